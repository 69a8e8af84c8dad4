"""CoordNet, the teacher: a conditional SIREN with residual blocks (Han & Wang, TVCG 2023).

The layout follows the public reference (stevenhan1991/TVCG23-CoordNet): residual blocks of two
sine layers whose outputs are averaged with a (sine) shortcut, widths growing 64 -> 128 -> 256,
then N hidden blocks and a decoder block. The output ends in a sine, so CoordNet lives in
[-1, 1]; the package keeps values in [0, 1] and maps only at this model's boundary (Sec. 5).
"""

from __future__ import annotations

import math

import torch
from torch import nn

OMEGA_0 = 30.0


class SineLayer(nn.Module):
    """sin(w0 * (W x + b)) with SIREN's non-first-layer init U(+-sqrt(6/n)/w0).

    Every layer uses the non-first init, as the reference does (Sec. 5 of the paper), because
    the first layer's U(-1/n, 1/n) would make the 4-D input barely excite the sines.
    """

    def __init__(self, n_in: int, n_out: int, omega_0: float = OMEGA_0) -> None:
        super().__init__()
        self.omega_0 = omega_0
        self.linear = nn.Linear(n_in, n_out)
        bound = math.sqrt(6.0 / n_in) / omega_0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega_0 * self.linear(x))


class ResBlock(nn.Module):
    """Two sine layers plus a shortcut; averaging (0.5*(a+b)) keeps the output inside [-1, 1]."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.layer1 = SineLayer(n_in, n_out)
        self.layer2 = SineLayer(n_out, n_out)
        self.shortcut: nn.Module = SineLayer(n_in, n_out) if n_in != n_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.layer2(self.layer1(x)) + self.shortcut(x))


class CoordNet(nn.Module):
    """(theta, x) in [-1, 1]^(P+D) -> value in [-1, 1].

    Args:
        n_inputs: parameter dims + spatial dims (4 for TSR: t, x, y, z).
        n_outputs: channels of the field (1 for a scalar volume, 3 for RGB).
        widths: the encoder blocks' widths; the last one is also the hidden width.
        hidden_blocks: number of hidden width->width blocks (10 in the paper).
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        widths: tuple[int, ...] = (64, 128, 256),
        hidden_blocks: int = 10,
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("CoordNet needs at least one encoder width")
        blocks: list[nn.Module] = []
        n_prev = n_inputs
        for width in widths:
            blocks.append(ResBlock(n_prev, width))
            n_prev = width
        blocks.extend(ResBlock(n_prev, n_prev) for _ in range(hidden_blocks))
        blocks.append(ResBlock(n_prev, n_outputs))
        self.net = nn.Sequential(*blocks)
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, n_inputs] in [-1, 1] -> [B, n_outputs] in [-1, 1]."""
        return self.net(x)


def to_teacher_range(values01: torch.Tensor) -> torch.Tensor:
    """[0, 1] package values -> CoordNet's [-1, 1]."""
    return values01 * 2.0 - 1.0


def from_teacher_range(values11: torch.Tensor) -> torch.Tensor:
    """CoordNet's [-1, 1] -> [0, 1] package values."""
    return (values11 + 1.0) * 0.5
