"""CoordNet, the teacher: a conditional SIREN with residual blocks (Han & Wang, TVCG 2023).

The layout follows the public reference (stevenhan1991/TVCG23-CoordNet): residual blocks of two
sine layers whose outputs are averaged with a (sine) shortcut, widths growing 64 -> 128 -> 256,
then N hidden blocks and a decoder block. The output ends in a sine, so CoordNet lives in
[-1, 1]; the package keeps values in [0, 1] and maps only at this model's boundary (Sec. 5).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperinr.grid import field_values
from hyperinr.models.model_file import (
    load_weights,
    parameter_count,
    read_model_file,
    save_model_file,
)
from hyperinr.models.seeding import seeded, torch_linear

OMEGA_0 = 30.0
MODEL_KIND = "coordnet"


class SineLayer(nn.Module):
    """sin(w0 * (W x + b)) with SIREN's non-first-layer init U(+-sqrt(6/n)/w0).

    Every layer uses the non-first init, as the reference does (Sec. 5 of the paper), because
    the first layer's U(-1/n, 1/n) would make the 4-D input barely excite the sines.

    The linear map and the sine run in the weights' dtype (float32) even inside an autocast
    region (training autocasts to float16 on CUDA): float16 has a relative error of ~1e-3
    (10-bit mantissa, rounding of inputs, weights and the accumulated product), and times
    omega_0 = 30 that is a phase error of ~3e-2 rad for |W x + b| ~ 1, in every one of the
    paper's ~30 sine layers: not negligible. The input is cast to the weights' dtype, so is the
    output; autocast still applies outside this layer.

    `generator`: where the initial weights come from (hyperinr.models.seeding; None: seeded 0).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        omega_0: float = OMEGA_0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        gen = seeded(0) if generator is None else generator
        self.omega_0 = omega_0
        # torch's default init, overwritten below: drawn all the same, so the stream, and with
        # it every published model's weights, stays what it was
        self.linear = torch_linear(n_in, n_out, gen)
        bound = math.sqrt(6.0 / n_in) / omega_0
        with torch.no_grad():
            self.linear.weight.uniform_(-bound, bound, generator=gen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.sin(self.omega_0 * self.linear(x.to(self.linear.weight.dtype)))


class ResBlock(nn.Module):
    """Two sine layers plus a shortcut; averaging (0.5*(a+b)) keeps the output inside [-1, 1]."""

    def __init__(
        self, n_in: int, n_out: int, *, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        gen = seeded(0) if generator is None else generator
        self.layer1 = SineLayer(n_in, n_out, generator=gen)
        self.layer2 = SineLayer(n_out, n_out, generator=gen)
        self.shortcut: nn.Module = (
            SineLayer(n_in, n_out, generator=gen) if n_in != n_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self.layer2(self.layer1(x)) + self.shortcut(x))


class CoordNet(nn.Module):
    """(theta, x) in [-1, 1]^(P+D) -> value in [-1, 1].

    Args:
        n_inputs: parameter dims + spatial dims (4 for TSR: t, x, y, z).
        n_outputs: channels of the field (1 for a scalar volume, 3 for RGB).
        widths: the encoder blocks' widths; the last one is also the hidden width.
        hidden_blocks: number of hidden width->width blocks (10 in the paper).
        seed: the initial weights' (runtime.seed; hyperinr.models.seeding).
        periodic: one flag per scene parameter (the first len(periodic) inputs; empty: no
            input is treated as a parameter), whether it wraps. A wrapping one (an azimuth)
            enters as (cos, sin) of its angle, so 0 and 360 degrees are one input and a view
            near the seam has neighbours on both sides; fed as a number, the network sees
            them 2 units apart and must learn the wrap from data.
        param_scale: factor on the scene parameters' inputs. The sine layers' frequency along
            an input grows with its scale, and between training parameters the network has
            only that frequency to go by: a lower scale makes it smoother (more like
            interpolation) in parameter space, leaving space's resolution alone. It applies to
            the len(periodic) parameter inputs.
    The defaults (no periodic parameter, scale 1) are the reference's network, unchanged.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int = 1,
        widths: tuple[int, ...] = (64, 128, 256),
        hidden_blocks: int = 10,
        *,
        seed: int = 0,
        periodic: tuple[bool, ...] = (),
        param_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not widths:
            raise ValueError("CoordNet needs at least one encoder width")
        if len(periodic) > n_inputs:
            raise ValueError(f"CoordNet: {len(periodic)} periodic flags for {n_inputs} inputs")
        if not param_scale > 0:
            raise ValueError(f"CoordNet: param_scale must be > 0, got {param_scale}")
        self.periodic = tuple(bool(p) for p in periodic)
        self.param_scale = float(param_scale)
        gen = seeded(seed)
        blocks: list[nn.Module] = []
        n_prev = n_inputs + sum(self.periodic)
        for width in widths:
            blocks.append(ResBlock(n_prev, width, generator=gen))
            n_prev = width
        blocks.extend(ResBlock(n_prev, n_prev, generator=gen) for _ in range(hidden_blocks))
        blocks.append(ResBlock(n_prev, n_outputs, generator=gen))
        self.net = nn.Sequential(*blocks)
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self.widths = tuple(widths)
        self.hidden_blocks = hidden_blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, n_inputs] in [-1, 1] -> [B, n_outputs] in [-1, 1]."""
        return self.net(self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The network's first-layer input: the parameters wrapped and scaled (see the class)."""
        if not any(self.periodic) and self.param_scale == 1.0:
            return x
        cols: list[torch.Tensor] = []
        for i, wraps in enumerate(self.periodic):
            p = x[:, i : i + 1]
            if wraps:  # [-1, 1] is one turn
                angle = math.pi * (p + 1.0)
                cols += [torch.cos(angle), torch.sin(angle)]
            else:
                cols.append(p)
        params = torch.cat(cols, dim=1) if cols else x[:, :0]
        if self.param_scale != 1.0:
            params = params * self.param_scale
        return torch.cat([params, x[:, len(self.periodic) :]], dim=1)


def coordnet_parameter_count(
    n_inputs: int,
    n_outputs: int,
    widths: tuple[int, ...],
    hidden_blocks: int,
    periodic: tuple[bool, ...] = (),
) -> int:
    """Parameters of a CoordNet, built on the meta device: no memory and no draw from the
    random stream (the baselines' budget is the configured teacher's count)."""
    with torch.device("meta"):
        net = CoordNet(n_inputs, n_outputs, tuple(widths), hidden_blocks, periodic=periodic)
    return parameter_count(net)


def to_teacher_range(values01: torch.Tensor) -> torch.Tensor:
    """[0, 1] package values -> CoordNet's [-1, 1]."""
    return values01 * 2.0 - 1.0


def from_teacher_range(values11: torch.Tensor) -> torch.Tensor:
    """CoordNet's [-1, 1] -> [0, 1] package values."""
    return (values11 + 1.0) * 0.5


@torch.no_grad()
def evaluate_teacher(
    model: CoordNet, theta01: torch.Tensor, coords01: torch.Tensor
) -> torch.Tensor:
    """The one way the package queries its teacher: theta [1 or B, P] and x [B, D] in [0, 1]
    -> values [B, C] in [0, 1]; the [-1, 1] convention stays inside this function."""
    n_params = model.n_inputs - coords01.shape[1]
    theta = theta01.to(coords01.device, torch.float32).reshape(-1, n_params)
    if theta.shape[0] == 1:
        theta = theta.expand(len(coords01), -1)
    y = model(torch.cat([to_teacher_range(theta), to_teacher_range(coords01.float())], dim=1))
    return from_teacher_range(y.float())


def teacher_values(
    model: CoordNet,
    theta01: torch.Tensor,
    dims: tuple[int, ...],
    batch: int,
    device: torch.device,
    coords01: np.ndarray | None = None,
) -> np.ndarray:
    """The teacher's field at one parameter, `batch` points at a time: on the whole grid of
    `dims` (coords01 None) or at given points [M, D]; [M, C] float32 in [0, 1]."""
    theta = theta01.reshape(1, -1)
    return field_values(
        lambda x: evaluate_teacher(model, theta, x), dims, model.n_outputs, batch, device, coords01
    )


def save_teacher(path: str | Path, model: CoordNet, extra: dict[str, Any]) -> None:
    """model.pt: the architecture, the weights and `extra` (dims, provenance, dataset hash)."""
    arch = {
        "n_inputs": model.n_inputs,
        "n_outputs": model.n_outputs,
        "widths": list(model.widths),
        "hidden_blocks": model.hidden_blocks,
        "periodic": list(model.periodic),
        "param_scale": model.param_scale,
    }
    save_model_file(path, MODEL_KIND, model, {"arch": arch, **extra})


def load_teacher(path: str | Path, device: torch.device) -> tuple[CoordNet, dict[str, Any]]:
    """(model in eval mode on `device`, the whole saved state); one-line errors naming `path`."""
    state = read_model_file(path, MODEL_KIND, "CoordNet teacher")
    arch = state["arch"]
    model = CoordNet(  # files written before periodic / param_scale: the reference's inputs
        arch["n_inputs"], arch["n_outputs"], tuple(arch["widths"]), arch["hidden_blocks"],
        periodic=tuple(arch.get("periodic", ())), param_scale=arch.get("param_scale", 1.0),
    )
    load_weights(path, model, state)
    return model.to(device).eval(), state


class _TeacherKind:
    """The registry's view of the teacher (hyperinr.models.registry): one network over
    (theta, x), queried at a fixed theta."""

    generates = False

    def load(self, path: str | Path, device: torch.device) -> tuple[CoordNet, dict[str, Any]]:
        return load_teacher(path, device)

    def field(self, network: CoordNet, theta01: np.ndarray):
        device = next(network.parameters()).device
        theta = torch.as_tensor(theta01, dtype=torch.float32, device=device).reshape(1, -1)
        return lambda x: evaluate_teacher(network, theta, x)

    def n_outputs(self, network: CoordNet) -> int:
        return network.n_outputs


KIND = _TeacherKind()
