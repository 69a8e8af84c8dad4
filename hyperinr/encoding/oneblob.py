"""tcnn's OneBlob encoding: each input becomes n_bins soft, periodic bin memberships.

Why it exists here: HyperINR configs are tcnn JSON, and tcnn's parameter-free encodings must
evaluate the same on a CPU-only machine.  tcnn replaces the Gaussian blob of Müller et al. (2019)
with the quartic kernel K(u) = 15/16 (1 - u^2)^2 (|u| <= 1) of radius 1/n_bins, and outputs the
kernel's mass inside each bin, i.e. CDF(right edge - x) - CDF(left edge - x).  The CDF is summed
over the shifts -1, 0, +1, which makes the encoding wrap around [0, 1) (so the masses of a sample
always add up to 1).  Output column = dim * n_bins + bin.

Like tcnn, inputs are not clamped; the wrap is exact for x in [-1 + r, 2 - r] (r = 1/n_bins).
Gradients w.r.t. x come from torch autograd and equal tcnn's analytic ones (the CDF's derivative
is the kernel; the clamp is only active where the kernel is zero).
"""

from __future__ import annotations

from typing import Any

import torch

_C1 = 15.0 / 16.0
_C2 = 2.0 / 3.0
_C3 = 1.0 / 5.0


def quartic_cdf(t: torch.Tensor, inv_radius: float) -> torch.Tensor:
    """CDF of the quartic kernel of radius 1/inv_radius, evaluated at offset t."""
    u = t * inv_radius
    u2 = u * u
    u4 = u2 * u2
    return (_C1 * u * (1.0 - _C2 * u2 + _C3 * u4) + 0.5).clamp(0.0, 1.0)


def fill_oneblob_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """Validate a tcnn OneBlob dict and fill the default (n_bins 16)."""
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ValueError(f"OneBlob: config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - {"otype", "n_bins"})
    if unknown:
        raise ValueError(f"OneBlob: unknown config keys {unknown}")
    otype = config.get("otype", "OneBlob")
    if not isinstance(otype, str) or otype.lower() != "oneblob":
        raise ValueError(f"OneBlob: otype must be 'OneBlob', got {otype!r}")
    n_bins = config.get("n_bins", 16)
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"OneBlob: n_bins must be a positive int, got {n_bins!r}")
    if n_bins & (n_bins - 1):
        raise ValueError(f"OneBlob: n_bins must be a power of 2 (as in tcnn), got {n_bins}")
    return {"otype": "OneBlob", "n_bins": n_bins}


class OneBlob(torch.nn.Module):
    """x [B, D] (float32 or float64) -> [B, D * n_bins] in x's dtype; no parameters."""

    def __init__(self, n_input_dims: int, config: dict[str, Any] | None = None) -> None:
        super().__init__()
        if isinstance(n_input_dims, bool) or not isinstance(n_input_dims, int) or n_input_dims < 1:
            raise ValueError(f"OneBlob: n_input_dims must be a positive int, got {n_input_dims!r}")
        self.config = fill_oneblob_config(config)
        self.n_input_dims = n_input_dims
        self.n_bins: int = self.config["n_bins"]
        self.n_output_dims = n_input_dims * self.n_bins
        self.n_params = 0

    def extra_repr(self) -> str:
        return f"n_input_dims={self.n_input_dims}, n_bins={self.n_bins}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype not in (torch.float32, torch.float64):
            raise ValueError("OneBlob: x must be a float32 or float64 tensor")
        if x.dim() != 2 or x.shape[1] != self.n_input_dims:
            raise ValueError(f"OneBlob: x must have shape [B, {self.n_input_dims}], "
                             f"got {list(x.shape)}")
        n = self.n_bins
        left = torch.arange(n, dtype=x.dtype, device=x.device) / n  # exact: n is a power of 2
        t = left - x.unsqueeze(-1)  # [B, D, n]: left edge minus x
        cdf = quartic_cdf(t, n) + quartic_cdf(t - 1.0, n) + quartic_cdf(t + 1.0, n)
        # Right edge of bin k is the left edge of bin k+1; the last bin wraps to bin 0 plus
        # the one saturated CDF it lost (tcnn's AoS kernel does the same).
        right = torch.roll(cdf, shifts=-1, dims=-1)
        right = torch.cat((right[..., :-1], right[..., -1:] + 1.0), dim=-1)
        return (right - cdf).reshape(x.shape[0], self.n_output_dims)
