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
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperinr.encoding import HashGrid, OneBlob
from hyperinr.grid import grid_coords, n_voxels
from hyperinr.models.coordnet import OMEGA_0, ResBlock, SineLayer
from hyperinr.models.mlp import MLP
from hyperinr.models.model_file import load_weights, read_model_file, save_model_file

BASELINES = ("neurcomp", "hashinr")


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (hash tables included): the quantity budgets are equalised on."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class NeurComp(nn.Module):
    """(theta, x) in [0, 1]^(P+D) -> value in ~[-1, 1] (mapped to [-1, 1] inside `forward`).

    Layout of the reference (SirenResnet): SineLayer(P+D -> width) with SIREN's first-layer init
    U(+-1/n_in), `n_blocks` x ResBlock(width -> width) (0.5 * (x + sine(sine(x)))), then a
    linear layer with SIREN's init U(+-sqrt(6/width)/omega_0). The first layer keeps NeurComp's
    own init (unlike CoordNet, which uses the hidden-layer init everywhere) because NeurComp is
    being reproduced, not re-designed; the output is linear, as in the reference.
    """

    kind = "neurcomp"

    def __init__(self, n_params: int, n_spatial: int, n_outputs: int, width: int, n_blocks: int):
        super().__init__()
        if width < 1 or n_blocks < 0:
            raise ValueError(f"NeurComp: width must be >= 1 and n_blocks >= 0 "
                             f"(got width {width}, n_blocks {n_blocks})")
        n_inputs = n_params + n_spatial
        first = SineLayer(n_inputs, width, OMEGA_0)
        last = nn.Linear(width, n_outputs)
        with torch.no_grad():
            first.linear.weight.uniform_(-1.0 / n_inputs, 1.0 / n_inputs)
            bound = math.sqrt(6.0 / width) / OMEGA_0
            last.weight.uniform_(-bound, bound)
        self.net = nn.Sequential(first, *(ResBlock(width, width) for _ in range(n_blocks)), last)
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
    ) -> None:
        super().__init__()
        self.grid = HashGrid(n_spatial, encoding)
        self.blob = OneBlob(n_params, {"otype": "OneBlob", "n_bins": n_bins})
        self.mlp = MLP(self.grid.n_output_dims + self.blob.n_output_dims, n_outputs, network)
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
_CLASSES: dict[str, type[NeurComp] | type[HashINR]] = {"neurcomp": NeurComp, "hashinr": HashINR}
_LABELS = {"neurcomp": "NeurComp baseline", "hashinr": "HashINR baseline"}


@torch.no_grad()
def evaluate_baseline(
    model: Baseline, theta01: torch.Tensor, coords01: torch.Tensor
) -> torch.Tensor:
    """The one way to query a baseline: theta [1 or B, P], x [B, D] in [0, 1] -> [B, C] in
    [0, 1]; each model's own value convention stays inside it."""
    theta = theta01.to(coords01.device, torch.float32).reshape(-1, model.n_params)
    if theta.shape[0] == 1:
        theta = theta.expand(len(coords01), -1)
    return model.from_native(model(theta, coords01.float()).float())


def baseline_volume(
    model: Baseline, theta01: torch.Tensor, dims: tuple[int, ...], batch: int,
    device: torch.device,
) -> np.ndarray:
    """A baseline's field at one parameter on the whole grid of `dims`, `batch` points at a
    time: [n_voxels, C] float32 in [0, 1]."""
    total = n_voxels(dims)
    out = np.empty((total, model.n_outputs), dtype=np.float32)
    theta = theta01.reshape(1, -1)
    for start in range(0, total, batch):
        x = grid_coords(dims, start, start + batch, device=device)
        out[start : start + len(x)] = evaluate_baseline(model, theta, x).cpu().numpy()
    return out


def save_baseline(path: str | Path, model: Baseline, extra: dict[str, Any]) -> None:
    """model.pt: the architecture, the weights and `extra` (dims, provenance, dataset hash)."""
    save_model_file(path, model.kind, model, {"arch": model.arch(), **extra})


def load_baseline(
    path: str | Path, name: str, device: torch.device
) -> tuple[Baseline, dict[str, Any]]:
    """(model `name` in eval mode on `device`, the whole saved state); one-line errors naming
    `path` when it is not a `name` model file or its weights do not fit."""
    if name not in _CLASSES:
        raise ValueError(f"unknown baseline '{name}' (one of {', '.join(BASELINES)})")
    state = read_model_file(path, name, _LABELS[name])
    arch = state["arch"]
    try:
        model = _CLASSES[name](**arch)
    except (TypeError, ValueError) as err:
        label = _LABELS[name]
        raise ValueError(f"{path}: recorded {label} architecture is invalid ({err})") from None
    load_weights(path, model, state)
    return model.to(device).eval(), state
