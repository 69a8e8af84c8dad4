"""Independently trained INRs whose weights are interpolated: the naive design of Sec. 6.2.

One standalone INR (a hash-grid table and its own MLP) per training frame, each started from
its own seed as separately trained networks would be. At an unseen parameter the tables *and*
the MLP matrices are blended with the weights HyperINR's lookup gives. Nothing ties hidden
unit i of one MLP to unit i of another (a network is the same function under any permutation
of its hidden units), so a blend of MLPs need not be an INR of anything in between: this is
the comparison that motivates HyperINR's one shared MLP (ablation_shared_mlp).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperinr.encoding import HashGrid, blend_tables
from hyperinr.models.inr import INR, GeneratingKind
from hyperinr.models.mlp import MLP
from hyperinr.models.model_file import load_weights, read_model_file, save_model_file
from hyperinr.models.seeding import seeded
from hyperinr.param_space.weights import interpolation_weights, validate_positions

MODEL_KIND = "independent_inrs"
_SEED_STRIDE = 1_000_003  # INR i's MLP draws from seed + i * stride: streams far apart


class IndependentINRs(nn.Module):
    """N INRs at `positions` [N, P] (normalised), trained each on its own frame.

    Training: `forward(x, j)` evaluates sample b with INR j[b] only. Generation blends the K
    nearest INRs' tables and MLP matrices (1-D: the two neighbours, linear; n-D: IDW), as
    HyperINR blends its tables.
    """

    def __init__(
        self,
        positions: np.ndarray,
        n_spatial_dims: int,
        n_outputs: int,
        encoding: dict[str, Any],
        network: dict[str, Any],
        k_nearest: int = 4,
        seed: int = 0,
        *,
        power: float = 1.0,
        periodic: Sequence[bool] | None = None,
    ) -> None:
        super().__init__()
        positions = validate_positions(positions, "INR positions", periodic)
        if positions.shape[1] > 1 and k_nearest > len(positions):
            raise ValueError(f"k_nearest={k_nearest} exceeds the {len(positions)} INRs")
        self.register_buffer("positions", torch.from_numpy(positions))
        self.k_nearest, self.power = k_nearest, float(power)
        self.periodic = None if periodic is None else tuple(bool(p) for p in periodic)
        self.encoding = HashGrid(n_spatial_dims, encoding, own_table=False)
        tables, mlps = [], []
        for i in range(len(positions)):
            table = torch.rand(self.encoding.n_params, generator=seeded(seed + i))
            tables.append((table * 2 - 1) * 1e-4)
            mlp_gen = seeded(seed + (i + 1) * _SEED_STRIDE)
            mlps.append(MLP(self.encoding.n_output_dims, n_outputs, network, generator=mlp_gen))
        self.tables = nn.Parameter(torch.stack(tables))
        self.mlps = nn.ModuleList(mlps)

    @property
    def n_inrs(self) -> int:
        return self.tables.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.mlps[0].n_outputs

    def forward(self, x: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """x [B, D] and the INR of each sample j [B] -> [B, n_outputs]."""
        order = torch.argsort(j)
        counts = torch.bincount(j, minlength=self.n_inrs).tolist()
        pieces = [
            self.mlps[i](self.encoding(xi, self.tables[i]))
            for i, xi in enumerate(x[order].split(counts))
            if len(xi)
        ]
        return torch.cat(pieces)[torch.argsort(order)]

    @torch.no_grad()
    def generate(self, theta: np.ndarray, metadata: dict[str, Any] | None = None) -> INR:
        """The INR at `theta`: blended table, and an MLP whose every matrix is the same blend."""
        idx, w = interpolation_weights(
            self.positions.cpu().numpy(),
            np.asarray(theta, dtype=np.float64).reshape(1, -1),
            self.k_nearest,
            power=self.power,
            periodic=self.periodic,
        )
        device = self.tables.device
        idx_t = torch.from_numpy(idx[0]).to(device)
        w_t = torch.from_numpy(w[0]).float().to(device)
        table = blend_tables(self.tables, idx_t, w_t)
        mlp = copy.deepcopy(self.mlps[int(idx[0, 0])]).eval().requires_grad_(False)
        for n, layer in enumerate(mlp.layers):
            stacked = torch.stack([self.mlps[int(i)].layers[n].weight for i in idx[0]])
            layer.weight.copy_(torch.einsum("k,koi->oi", w_t, stacked))
        return INR(self.encoding, table, mlp, dict(metadata or {}))

    def describe(self) -> dict[str, Any]:
        return {
            "positions": self.positions.cpu().tolist(),
            "n_spatial_dims": self.encoding.n_input_dims,
            "n_outputs": self.mlps[0].n_outputs,
            "encoding": self.encoding.config,
            "network": self.mlps[0].config,
            "k_nearest": self.k_nearest,
            "power": self.power,
            "periodic": None if self.periodic is None else list(self.periodic),
        }

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> IndependentINRs:
        return cls(
            np.asarray(desc["positions"]),
            desc["n_spatial_dims"],
            desc["n_outputs"],
            desc["encoding"],
            desc["network"],
            desc["k_nearest"],
            power=desc["power"],
            periodic=desc["periodic"],
        )


def save_independent(path: str | Path, model: IndependentINRs, meta: dict[str, Any]) -> None:
    save_model_file(path, MODEL_KIND, model, {"description": model.describe(), "meta": meta})


def load_independent(
    path: str | Path, device: torch.device
) -> tuple[IndependentINRs, dict[str, Any]]:
    """(model in eval mode on `device`, its meta); one-line errors naming `path`."""
    state = read_model_file(path, MODEL_KIND, "independent INRs")
    model = IndependentINRs.from_description(state["description"])
    load_weights(path, model, state)
    return model.to(device).eval(), state["meta"]


KIND = GeneratingKind(load_independent)
