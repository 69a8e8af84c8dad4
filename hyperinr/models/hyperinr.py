"""HyperINR: a bank of hash encoders at encoder positions in parameter space + one shared MLP.

Training evaluates the INR statelessly: each sample blends its K encoders' *encodings* (the
encoding is linear in its table, so this equals encoding with the blended table) and the
gradients flow back into the K tables and the shared MLP. Generation blends the *tables* once
and hands back a plain INR, which is why generation takes well under a millisecond.
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


class HyperINR(nn.Module):
    """theta in [0,1]^P -> INR over x in [0,1]^D.

    Args:
        positions: encoder positions [N, P] in normalised parameter space.
        n_spatial_dims: D (3 for volumes, 2 for images).
        n_outputs: channels predicted.
        encoding: tcnn HashGrid dict (each encoder is one such grid).
        network: tcnn FullyFusedMLP dict for the shared MLP.
        k_nearest: encoders blended per query in n-D (1-D always uses the two neighbours).
        seed: the initial tables' and shared MLP's (runtime.seed; hyperinr.models.seeding).
        power: Shepard exponent p of the n-D weights d^-p (Eq. 4; the paper's p = 1).
        periodic: per parameter dimension, whether it wraps (period 1 in normalised units,
            e.g. an azimuth); None: none does.
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
        init_tables: bool = True,
    ) -> None:
        super().__init__()
        positions = validate_positions(positions, "encoder positions", periodic)
        if positions.shape[1] > 1 and k_nearest > len(positions):
            raise ValueError(
                f"hyperinr.k_nearest={k_nearest} exceeds the {len(positions)} encoders"
            )
        if not (np.isfinite(power) and power > 0):
            raise ValueError(f"hyperinr.idw_power must be a finite number > 0, got {power}")
        self.register_buffer("positions", torch.from_numpy(positions))
        self.k_nearest = k_nearest
        self.power = float(power)
        self.periodic = None if periodic is None else tuple(bool(p) for p in periodic)
        self.encoding = HashGrid(n_spatial_dims, encoding, own_table=False)
        shape = (len(positions), self.encoding.n_params)
        if init_tables:
            tables = torch.rand(shape, generator=seeded(seed)).mul_(2).sub_(1).mul_(1e-4)
        else:  # a loader replaces them at once: never touched, these pages are never resident
            tables = torch.empty(shape)
        self.tables = nn.Parameter(tables)
        # the MLP's stream starts at `seed` too, as the global generator the stages seeded
        # with it did: every published HyperINR keeps its weights (hyperinr.models.seeding)
        self.mlp = MLP(self.encoding.n_output_dims, n_outputs, network, generator=seeded(seed))
        self._mlp_snapshot: tuple[tuple, MLP] | None = None  # see _frozen_mlp

    @property
    def n_encoders(self) -> int:
        return self.tables.shape[0]

    @property
    def n_outputs(self) -> int:
        return self.mlp.n_outputs

    def lookup(self, theta: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """theta [Q, P] (normalised) -> encoder indices [Q, K] and weights [Q, K] on our device."""
        idx, w = interpolation_weights(
            self.positions.cpu().numpy(),
            theta,
            self.k_nearest,
            power=self.power,
            periodic=self.periodic,
        )
        device = self.tables.device
        return torch.from_numpy(idx).to(device), torch.from_numpy(w).float().to(device)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B, D], per-sample encoder indices/weights [B, K] -> [B, n_outputs] in [0, 1]."""
        return self.mlp(self.encoding(x, self.tables, idx, w))

    @torch.no_grad()
    def generate(self, theta: np.ndarray, metadata: dict[str, Any] | None = None) -> INR:
        """One INR for one parameter: blend the K tables once, hand out a frozen MLP copy.

        The INR owns its weights (a new blended table and a snapshot of the MLP), so it stays
        what it was generated as while this hypernetwork keeps training.
        """
        idx, w = self.lookup(np.asarray(theta, dtype=np.float64).reshape(1, -1))
        table = blend_tables(self.tables, idx[0], w[0])
        return INR(self.encoding, table, self._frozen_mlp(), dict(metadata or {}))

    def _frozen_mlp(self) -> MLP:
        """A copy of the shared MLP that nothing ever modifies, made again only when the MLP's
        weights changed (in-place updates bump a tensor's version; a move changes its
        storage): INRs generated between two updates share it, so generation stays a blend
        (copying the module costs ~0.7 ms, twice the blend, on this CPU)."""
        key = tuple((p.data_ptr(), p._version) for p in self.mlp.parameters())
        if self._mlp_snapshot is None or self._mlp_snapshot[0] != key:
            frozen = copy.deepcopy(self.mlp).eval().requires_grad_(False)
            self._mlp_snapshot = (key, frozen)
        return self._mlp_snapshot[1]

    def describe(self) -> dict[str, Any]:
        """tcnn-style description stored in checkpoints so a model can be rebuilt from its file."""
        return {
            "positions": self.positions.cpu().tolist(),
            "n_spatial_dims": self.encoding.n_input_dims,
            "n_outputs": self.mlp.n_outputs,
            "encoding": self.encoding.config,
            "network": self.mlp.config,
            "k_nearest": self.k_nearest,
            "power": self.power,
            "periodic": None if self.periodic is None else list(self.periodic),
        }

    @classmethod
    def from_description(cls, desc: dict[str, Any], *, init_tables: bool = True) -> HyperINR:
        """Descriptions written before `power` and `periodic` existed load with p = 1 and no
        periodic dimension, which is what those models were trained with. `init_tables`
        False: for a loader that assigns the file's (memory-mapped) tables right after, so a
        predict holds only the tables it blends, not all of them twice."""
        return cls(
            np.asarray(desc["positions"]),
            desc["n_spatial_dims"],
            desc["n_outputs"],
            desc["encoding"],
            desc["network"],
            desc["k_nearest"],
            power=desc.get("power", 1.0),
            periodic=desc.get("periodic"),
            init_tables=init_tables,
        )


MODEL_KIND = "hyperinr"


def save_hyperinr(path: str | Path, model: HyperINR, meta: dict[str, Any]) -> None:
    """model.pt: the description to rebuild the model, its weights, and `meta` (the dataset's
    dims, parameter names and ranges, value range, provenance)."""
    save_model_file(path, MODEL_KIND, model, {"description": model.describe(), "meta": meta})


def load_hyperinr(path: str | Path, device: torch.device) -> tuple[HyperINR, dict[str, Any]]:
    """(model in eval mode on `device`, its meta); one-line errors naming `path`."""
    state = read_model_file(path, MODEL_KIND, "HyperINR")
    model = HyperINR.from_description(state["description"], init_tables=False)
    load_weights(path, model, state)
    return model.to(device).eval(), state["meta"]


KIND = GeneratingKind(load_hyperinr)
