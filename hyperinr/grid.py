"""Voxel/pixel coordinates in [0, 1]^D, the one convention every model and stage shares.

Sample i along an axis of n samples sits at i / (n - 1), so the first and last voxels are the
domain's corners. Coordinates are ordered x, y, z (x fastest, as tiny-cuda-nn and raw volume
files do) while arrays are indexed [z, y, x] (C order), so a flat index into an array maps to a
coordinate row without any transpose.
"""

from __future__ import annotations

from collections.abc import Callable

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
    *,
    flat_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """The one batched evaluation of a field (x [B, D] in [0, 1] -> [B, C]) over the whole
    grid of `dims` (coords01 None), over the grid's C-order flat indices `flat_range`
    [start, stop) (a slab of a big volume), or at given points coords01 [M, D]: [M, C] float32.

    `batch` points at a time, so memory stays bounded by the batch, not by the volume; every
    model kind, the distillation set and predict evaluate through here. Grid batches are
    always [k * batch, (k + 1) * batch), whatever the range, so a slab's values are the whole
    grid's bit for bit (at most two partly used batches per range)."""
    if coords01 is not None:
        out = np.empty((len(coords01), n_outputs), dtype=np.float32)
        for start in range(0, len(coords01), batch):
            x = torch.from_numpy(coords01[start : start + batch]).to(device)
            out[start : start + len(x)] = field(x).float().cpu().numpy()
        return out
    total = n_voxels(dims)
    first, last = (0, total) if flat_range is None else flat_range
    out = np.empty((last - first, n_outputs), dtype=np.float32)
    # Whole aligned batches only, even where the range cuts one (its other points are
    # computed and dropped): on the CPU a point's output depends on the batch it is in
    for b0 in range(first // batch * batch, last, batch):
        b1 = min(total, b0 + batch)
        values = field(grid_coords(dims, b0, b1, device=device)).float().cpu().numpy()
        lo, hi = max(b0, first), min(b1, last)
        out[lo - first : hi - first] = values[lo - b0 : hi - b0]
    return out
