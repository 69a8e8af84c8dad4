"""LERP: the data-interpolation baseline of the paper's Sec. 7.2 (no network at all).

Every frame is blended from TRAINING frames only. 1-D parameter: linear interpolation between
the two training frames that bracket it (exact on training frames, clamped outside their
range). n-D: inverse-distance weighting (p = 1) over the K nearest training frames, with
parameters scaled to [0, 1] by the dataset's `param_range` so no parameter dominates by its
units; an exact parameter match returns that frame.

The weights come from `hyperinr.models.interpolation.interpolation_weights`, the same lookup
HyperINR uses to pick and blend its encoders, re-exported here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm.auto import tqdm

from hyperinr.atomic import atomic_path
from hyperinr.evaluate._store import FrameCache, open_dataset, write_json
from hyperinr.models.interpolation import interpolation_weights

__all__ = ["interpolation_weights", "lerp_predict", "lerp_weights"]


def lerp_weights(dataset_path: str | Path, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices [n_frames, K], weights [n_frames, K]) of every frame over training frames."""
    ds = open_dataset(dataset_path)
    return _weights(ds, k)


def _weights(ds, k: int) -> tuple[np.ndarray, np.ndarray]:
    if ds.train.size == 0:
        raise ValueError(f"{ds.path}: split.train is empty; LERP has nothing to interpolate")
    p = ds.normalised_params()
    idx, w = interpolation_weights(p[ds.train], p, k)
    return ds.train[idx], w


def lerp_predict(
    dataset_path: str | Path,
    out_path: str | Path,
    k: int = 4,
    progress: bool = True,
    info_path: str | Path | None = None,
) -> dict[str, Any]:
    """Write the LERP prediction store (physical units, one chunk per frame) atomically.

    Returns the stage info {"stage": "lerp", "wall_seconds", "k", "n_frames", "n_train"},
    also written as JSON to `info_path` when given.
    """
    t0 = time.perf_counter()
    ds = open_dataset(dataset_path)
    idx, w = _weights(ds, k)
    out_path = Path(out_path)
    shape = tuple(int(s) for s in ds.frames.shape)
    cache = FrameCache(ds.frames, size=idx.shape[1] + 1)

    with atomic_path(out_path, is_dir=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        out = root.create_array(
            "frames", shape=shape, chunks=(1, *shape[1:]), dtype="float32", fill_value=0.0
        )
        for i in tqdm(range(shape[0]), desc="lerp", unit="frame", disable=not progress):
            acc = np.zeros(shape[1:], dtype=np.float64)
            for j, wj in zip(idx[i], w[i], strict=True):
                if wj != 0.0:
                    acc += wj * cache.get(j)
            out[i] = ds.to_physical(acc)
        wall = time.perf_counter() - t0
        root.attrs.update(
            {
                "method": "lerp",
                "value_range": [float(v) for v in ds.value_range],
                "wall_seconds": wall,
                "k": int(k),
                "dataset": str(ds.path),
            }
        )
    info = {
        "stage": "lerp",
        "wall_seconds": wall,
        "k": int(k),
        "n_frames": shape[0],
        "n_train": int(ds.train.size),
    }
    if info_path is not None:
        write_json(info_path, info)
    return info
