"""HyperINR: a bank of hash encoders at encoder positions in parameter space + one shared MLP.

Training evaluates the INR statelessly: each sample blends its K encoders' *encodings* (the
encoding is linear in its table, so this equals encoding with the blended table) and the
gradients flow back into the K tables and the shared MLP. Generation blends the *tables* once
and hands back a plain INR, which is why generation takes well under a millisecond.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperinr.atomic import atomic_path
from hyperinr.encoding import HashGrid, blend_tables
from hyperinr.models.inr import INR
from hyperinr.models.interpolation import interpolation_weights
from hyperinr.models.mlp import MLP


class HyperINR(nn.Module):
    """theta in [0,1]^P -> INR over x in [0,1]^D.

    Args:
        positions: encoder positions [N, P] in normalised parameter space.
        n_spatial_dims: D (3 for volumes, 2 for images).
        n_outputs: channels predicted.
        encoding: tcnn HashGrid dict (each encoder is one such grid).
        network: tcnn FullyFusedMLP dict for the shared MLP.
        k_nearest: encoders blended per query in n-D (1-D always uses the two neighbours).
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
    ) -> None:
        super().__init__()
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2:
            raise ValueError(f"encoder positions must be [N, P], got shape {positions.shape}")
        self.register_buffer("positions", torch.from_numpy(positions))
        self.k_nearest = k_nearest
        self.encoding = HashGrid(n_spatial_dims, encoding, own_table=False)
        gen = torch.Generator().manual_seed(seed)
        tables = (torch.rand(len(positions), self.encoding.n_params, generator=gen) * 2 - 1) * 1e-4
        self.tables = nn.Parameter(tables)
        self.mlp = MLP(self.encoding.n_output_dims, n_outputs, network)

    @property
    def n_encoders(self) -> int:
        return self.tables.shape[0]

    def lookup(self, theta: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """theta [Q, P] (normalised) -> encoder indices [Q, K] and weights [Q, K] on our device."""
        idx, w = interpolation_weights(self.positions.cpu().numpy(), theta, self.k_nearest)
        device = self.tables.device
        return torch.from_numpy(idx).to(device), torch.from_numpy(w).float().to(device)

    def forward(self, x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x [B, D], per-sample encoder indices/weights [B, K] -> [B, n_outputs] in [0, 1]."""
        return self.mlp(self.encoding(x, self.tables, idx, w))

    @torch.no_grad()
    def generate(self, theta: np.ndarray, metadata: dict[str, Any] | None = None) -> INR:
        """One INR for one parameter: blend the K tables once, copy the shared MLP.

        The INR owns its weights (a new blended table, a copy of the MLP: a few tens of kB), so
        it stays what it was generated as while this hypernetwork keeps training.
        """
        idx, w = self.lookup(np.asarray(theta, dtype=np.float64).reshape(1, -1))
        table = blend_tables(self.tables, idx[0], w[0])
        return INR(self.encoding, table, copy.deepcopy(self.mlp).eval(), dict(metadata or {}))

    def describe(self) -> dict[str, Any]:
        """tcnn-style description stored in checkpoints so a model can be rebuilt from its file."""
        return {
            "positions": self.positions.cpu().tolist(),
            "n_spatial_dims": self.encoding.n_input_dims,
            "n_outputs": self.mlp.n_outputs,
            "encoding": self.encoding.config,
            "network": self.mlp.config,
            "k_nearest": self.k_nearest,
        }

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> HyperINR:
        return cls(
            np.asarray(desc["positions"]),
            desc["n_spatial_dims"],
            desc["n_outputs"],
            desc["encoding"],
            desc["network"],
            desc["k_nearest"],
        )


MODEL_KIND = "hyperinr"


def save_hyperinr(path: str | Path, model: HyperINR, meta: dict[str, Any]) -> None:
    """model.pt: the description to rebuild the model, its weights, and `meta` (the dataset's
    dims, parameter names and ranges, value range, provenance)."""
    state = {
        "kind": MODEL_KIND,
        "description": model.describe(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_hyperinr(path: str | Path, device: torch.device) -> tuple[HyperINR, dict[str, Any]]:
    """(model in eval mode on `device`, its meta); one-line errors naming `path`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable HyperINR checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a HyperINR model file")
    model = HyperINR.from_description(state["description"])
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match the recorded description ({err})") from None
    return model.to(device).eval(), state["meta"]
