"""Voxel/pixel coordinates in [0, 1]^D, the one convention every model and stage shares.

Sample i along an axis of n samples sits at i / (n - 1), so the first and last voxels are the
domain's corners. Coordinates are ordered x, y, z (x fastest, as tiny-cuda-nn and raw volume
files do) while arrays are indexed [z, y, x] (C order), so a flat index into an array maps to a
coordinate row without any transpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def flat_to_coords(flat: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """flat [B] int64 C-order indices into an array of shape `dims` (slowest first) -> [B, D]."""
    coords = []
    rest = flat
    for n in reversed(dims):  # fastest axis first -> column 0 is x
        coords.append((rest % n).to(torch.float32) / max(n - 1, 1))
        rest = rest // n
    return torch.stack(coords, dim=1)


def grid_coords(
    dims: tuple[int, ...],
    start: int = 0,
    stop: int | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Coordinates of flat indices [start, stop): lets big volumes be evaluated slab by slab."""
    total = 1
    for n in dims:
        total *= n
    stop = total if stop is None else min(stop, total)
    flat = torch.arange(start, stop, dtype=torch.int64, device=device)
    return flat_to_coords(flat, dims)


def n_voxels(dims: tuple[int, ...]) -> int:
    total = 1
    for n in dims:
        total *= n
    return total


@torch.inference_mode()
def field_values(
    field: Callable[[torch.Tensor], torch.Tensor],
    dims: tuple[int, ...],
    n_outputs: int,
    batch: int,
    device: torch.device,
    coords01: np.ndarray | None = None,
) -> np.ndarray:
    """The one batched evaluation of a field (x [B, D] in [0, 1] -> [B, C]) over the whole
    grid of `dims` (coords01 None) or at given points coords01 [M, D]: [M, C] float32.

    `batch` points at a time, so memory stays bounded by the batch, not by the volume; every
    model kind, the distillation set and predict evaluate through here."""
    total = n_voxels(dims) if coords01 is None else len(coords01)
    out = np.empty((total, n_outputs), dtype=np.float32)
    for start in range(0, total, batch):
        if coords01 is None:
            x = grid_coords(dims, start, start + batch, device=device)
        else:
            x = torch.from_numpy(coords01[start : start + batch]).to(device)
        out[start : start + len(x)] = field(x).float().cpu().numpy()
    return out


def normalise_params(params: Any, param_range: Any) -> np.ndarray:
    """Physical parameter values [..., P] -> [0, 1] per parameter, by a recorded range [P, 2].

    The one parameter normalisation: datasets, LERP, the stages and `hyperinr export` all map
    through it, so a parameter means the same position everywhere. A zero span maps to 0.
    """
    prange = np.asarray(param_range, dtype=np.float64).reshape(-1, 2)
    lo, hi = prange[:, 0], prange[:, 1]
    span = np.where(hi > lo, hi - lo, 1.0)
    return (np.asarray(params, dtype=np.float64) - lo) / span
