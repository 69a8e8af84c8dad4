"""The paper's comparison INRs (Sec. 6.3): NeurComp and HashINR, each one network over (theta, x).

Both take (theta, x) in the package's [0, 1] and are trained on the ground-truth training frames
directly (no distillation), so they answer "is a hypernetwork needed at all?" at an equal
parameter budget (~2.1-2.2 M in the paper; CoordNet is the budget's reference).

- NeurComp (Lu et al. 2021, matthewberger/neurcomp): a SIREN residual MLP, omega_0 = 30, input
  (theta, x) in [-1, 1]; one sine layer in, `n_blocks` residual blocks of two sine layers, one
  linear layer out. Like CoordNet it lives in [-1, 1]: values are mapped only at this model's
  boundary (`to_native` / `from_native`). Its width is usually chosen from a parameter budget
  (`neurcomp_width_for_budget`; the paper: 10 blocks of 327).
- HashINR: a hash grid over the spatial coordinates, every parameter through a OneBlob
  encoding, concatenated, then the tcnn-style MLP; values in [0, 1] as every hash INR of the
  package. Its budget is set by the grid's log2_hashmap_size (the paper: T = 2^17).

Building blocks are the package's own (SineLayer/ResBlock of CoordNet, HashGrid, OneBlob, MLP),
so a baseline differs from the other models only in how they are put together.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hyperinr.encoding import HashGrid, OneBlob
from hyperinr.models.coordnet import OMEGA_0, ResBlock, SineLayer, coordnet_parameter_count
from hyperinr.models.direct import DirectKind
from hyperinr.models.mlp import MLP
from hyperinr.models.seeding import seeded, torch_linear


class NeurComp(nn.Module):
    """(theta, x) in [0, 1]^(P+D) -> value in ~[-1, 1] (mapped to [-1, 1] inside `forward`).

    Layout of the reference (SirenResnet): SineLayer(P+D -> width) with SIREN's first-layer init
    U(+-1/n_in), `n_blocks` x ResBlock(width -> width) (0.5 * (x + sine(sine(x)))), then a
    linear layer with SIREN's init U(+-sqrt(6/width)/omega_0). The first layer keeps NeurComp's
    own init (unlike CoordNet, which uses the hidden-layer init everywhere) because NeurComp is
    being reproduced, not re-designed; the output is linear, as in the reference.
    """

    kind = "neurcomp"

    def __init__(
        self, n_params: int, n_spatial: int, n_outputs: int, width: int, n_blocks: int,
        *, seed: int = 0,
    ):  # fmt: skip
        super().__init__()
        if width < 1 or n_blocks < 0:
            raise ValueError(f"NeurComp: width must be >= 1 and n_blocks >= 0 "
                             f"(got width {width}, n_blocks {n_blocks})")
        n_inputs = n_params + n_spatial
        gen = seeded(seed)  # runtime.seed; draws in the order they always had (models/seeding)
        first = SineLayer(n_inputs, width, OMEGA_0, generator=gen)
        last = torch_linear(width, n_outputs, gen)
        with torch.no_grad():
            first.linear.weight.uniform_(-1.0 / n_inputs, 1.0 / n_inputs, generator=gen)
            bound = math.sqrt(6.0 / width) / OMEGA_0
            last.weight.uniform_(-bound, bound, generator=gen)
        blocks = (ResBlock(width, width, generator=gen) for _ in range(n_blocks))
        self.net = nn.Sequential(first, *blocks, last)
        self.n_params, self.n_spatial, self.n_outputs = n_params, n_spatial, n_outputs
        self.width, self.n_blocks = width, n_blocks

    def forward(self, theta01: torch.Tensor, coords01: torch.Tensor) -> torch.Tensor:
        """theta [B, P], x [B, D] in [0, 1] -> [B, C] in NeurComp's [-1, 1]."""
        return self.net(torch.cat([theta01, coords01], dim=1).float() * 2.0 - 1.0)

    @staticmethod
    def to_native(values01: torch.Tensor) -> torch.Tensor:
        """Training targets: [0, 1] package values -> [-1, 1]."""
        return values01 * 2.0 - 1.0

    @staticmethod
    def from_native(output: torch.Tensor) -> torch.Tensor:
        return (output + 1.0) * 0.5

    def arch(self) -> dict[str, Any]:
        return {"n_params": self.n_params, "n_spatial": self.n_spatial,
                "n_outputs": self.n_outputs, "width": self.width, "n_blocks": self.n_blocks}


def neurcomp_parameter_count(
    width: int, n_blocks: int, n_inputs: int = 4, n_outputs: int = 1
) -> int:
    """Closed form of parameter_count(NeurComp(...)): in + blocks + out layers (with biases)."""
    return (n_inputs + 1) * width + n_blocks * 2 * (width + 1) * width + (width + 1) * n_outputs


def neurcomp_width_for_budget(
    budget: int, n_blocks: int, n_inputs: int = 4, n_outputs: int = 1
) -> int:
    """The width whose NeurComp has the parameter count nearest `budget` (at least 1).

    The count is quadratic in the width, a w^2 + b w + c, so the real root is the estimate and
    the nearer of its two neighbouring integers is the answer.
    """
    if budget < 1:
        raise ValueError(f"baselines.neurcomp.budget must be positive, got {budget}")
    a = 2 * n_blocks
    b = n_inputs + 1 + 2 * n_blocks + n_outputs
    c = n_outputs - budget
    root = -c / b if a == 0 else (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(
        candidates,
        key=lambda w: (abs(neurcomp_parameter_count(w, n_blocks, n_inputs, n_outputs) - budget), w),
    )


#: OneBlob wraps around [0, 1) (tcnn's encoding is periodic): x = 0 and x = 1 encode alike.
#: A non-periodic parameter is therefore squeezed into [r, 1 - r], r = 1 / n_bins, where the
#: kernel never reaches across the seam, so the first and last frames stay distinct; a periodic
#: one (an azimuth) keeps [0, 1), where the wrap is exactly right.


class HashINR(nn.Module):
    """(theta, x) in [0, 1]^(P+D) -> value in [0, 1]: MLP(HashGrid(x) ++ OneBlob(theta)).

    One OneBlob over the P parameters is one OneBlob per parameter (its columns are parameter-
    major: dim * n_bins + bin), concatenated after the D-dimensional hash grid's features.
    """

    kind = "hashinr"

    def __init__(
        self,
        n_params: int,
        n_spatial: int,
        n_outputs: int,
        encoding: dict[str, Any],
        n_bins: int,
        network: dict[str, Any],
        periodic: tuple[bool, ...] | None = None,
        *,
        seed: int = 0,
    ) -> None:
        super().__init__()
        gen = seeded(seed)  # runtime.seed: the table, then the MLP (hyperinr.models.seeding)
        self.grid = HashGrid(n_spatial, encoding, generator=gen)
        self.blob = OneBlob(n_params, {"otype": "OneBlob", "n_bins": n_bins})
        self.mlp = MLP(
            self.grid.n_output_dims + self.blob.n_output_dims, n_outputs, network, generator=gen
        )
        periodic = tuple(periodic) if periodic else (False,) * n_params
        if len(periodic) != n_params:
            raise ValueError(f"HashINR: {len(periodic)} periodic flags for {n_params} parameters")
        margin = torch.tensor([0.0 if p else 1.0 / n_bins for p in periodic])
        self.register_buffer("_margin", margin, persistent=False)
        self.n_params, self.n_spatial, self.n_outputs = n_params, n_spatial, n_outputs
        self.n_bins, self.periodic = n_bins, periodic

    def forward(self, theta01: torch.Tensor, coords01: torch.Tensor) -> torch.Tensor:
        """theta [B, P], x [B, D] in [0, 1] -> [B, C] (trained to [0, 1])."""
        theta = theta01.float()
        theta = self._margin + theta * (1.0 - 2.0 * self._margin)
        features = torch.cat([self.grid(coords01.float().contiguous()), self.blob(theta)], dim=1)
        return self.mlp(features)

    @staticmethod
    def to_native(values01: torch.Tensor) -> torch.Tensor:
        return values01

    @staticmethod
    def from_native(output: torch.Tensor) -> torch.Tensor:
        return output

    def arch(self) -> dict[str, Any]:
        return {"n_params": self.n_params, "n_spatial": self.n_spatial,
                "n_outputs": self.n_outputs, "encoding": dict(self.grid.config),
                "n_bins": self.n_bins, "network": dict(self.mlp.config),
                "periodic": list(self.periodic)}


Baseline = NeurComp | HashINR


def build_neurcomp(cfg: Any, meta: Any) -> NeurComp:
    """NeurComp for this dataset: `baselines.neurcomp.width`, or the width whose count is
    nearest the budget (`baselines.neurcomp.budget`, else the configured teacher's count)."""
    nc = cfg.baselines.neurcomp
    n_inputs = meta.n_params + meta.n_spatial
    width = nc.width
    if width is None:
        budget = nc.budget
        if budget is None:
            budget = coordnet_parameter_count(
                n_inputs, meta.n_channels, cfg.teacher.widths, cfg.teacher.hidden_blocks
            )
        width = neurcomp_width_for_budget(budget, nc.n_blocks, n_inputs, meta.n_channels)
    return NeurComp(
        meta.n_params, meta.n_spatial, meta.n_channels, width, nc.n_blocks, seed=cfg.runtime.seed
    )


def build_hashinr(cfg: Any, meta: Any) -> HashINR:
    hc = cfg.baselines.hashinr
    return HashINR(
        meta.n_params, meta.n_spatial, meta.n_channels, hc.encoding, hc.n_bins, hc.network,
        periodic=meta.periodic or None, seed=cfg.runtime.seed,
    )  # fmt: skip


NEURCOMP = DirectKind("neurcomp", "NeurComp baseline", NeurComp, build_neurcomp)
HASHINR = DirectKind("hashinr", "HashINR baseline", HashINR, build_hashinr)
