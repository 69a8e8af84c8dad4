"""LERP: the data-interpolation baseline of the paper's Sec. 7.2 (no network at all).

Every frame is blended from TRAINING frames only. 1-D parameter: linear interpolation between
the two training frames that bracket it (exact on training frames, clamped outside their
range). n-D: inverse-distance weighting (w = d^-p, the paper's p = 1) over the K nearest
training frames, with parameters scaled to [0, 1] by the dataset's `param_range` so no parameter
dominates by its units, periodic parameters (the dataset's `param_periodic`, e.g. an azimuth)
measured around their circle; an exact parameter match returns that frame.

The weights come from `hyperinr.param_space.weights.interpolation_weights`, the same lookup
HyperINR uses to pick and blend its encoders, re-exported here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hyperinr.config import RuntimeConfig, StoreConfig
from hyperinr.data.store import (
    SLAB_WRITE_BYTES_PER_VALUE,
    DatasetStore,
    frame_layout,
    open_dataset,
    write_frames_store,
)
from hyperinr.infra import provenance
from hyperinr.infra.memory import check_budget
from hyperinr.infra.stage_info import write_info
from hyperinr.param_space.weights import interpolation_weights

__all__ = ["interpolation_weights", "lerp_predict", "lerp_weights"]


def lerp_weights(
    dataset_path: str | Path, k: int = 4, power: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices [n_frames, K], weights [n_frames, K]) of every frame over training frames."""
    ds = open_dataset(dataset_path)
    return _weights(ds, k, power)


def _weights(ds: DatasetStore, k: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    train = np.flatnonzero(ds.is_train())
    if train.size == 0:
        raise ValueError(f"{ds.path}: split.train is empty; LERP has nothing to interpolate")
    p = ds.normalised_params()
    if p.shape[1] > 1 and k > train.size:
        raise ValueError(
            f"{ds.path}: hyperinr.k_nearest={k} exceeds the {train.size} training frames"
        )
    periodic = ds.param_periodic if any(ds.param_periodic) else None
    idx, w = interpolation_weights(p[train], p, k, power=power, periodic=periodic)
    return train[idx], w


def lerp_predict(
    dataset_path: str | Path,
    out_path: str | Path,
    k: int = 4,
    power: float = 1.0,
    progress: bool = True,
    info_path: str | Path | None = None,
    store: StoreConfig | None = None,
    memory_mb: int = RuntimeConfig.memory_mb,
) -> dict[str, Any]:
    """Write the LERP prediction store (physical units, chunked by `store`) atomically.

    Slab by slab: each slab of a frame is blended from the same slab of its K training
    neighbours, one chunk-row at a time, so memory is the slab being written plus one row's
    blend whatever the frame size (`memory_mb` is checked against that before any work), and
    every value is the whole-frame blend's.

    Returns the stage info {"stage": "predict_lerp", "wall_seconds", "method", "frames", "k",
    "n_train"}, also written to `info_path` (when given) by `hyperinr.infra.stage_info.write_info`,
    like every other stage's info.
    """
    t0 = time.perf_counter()
    ds = open_dataset(dataset_path)
    idx, w = _weights(ds, k, power)
    shape = tuple(int(s) for s in ds.frames.shape)
    store = store or StoreConfig()
    layout = frame_layout(shape[1:], ds.n_channels, store.chunk, store.shard)
    n_near = idx.shape[1]
    # a slab is blended one chunk-row (chunk x chunk x the rest) at a time: the float32 slab
    # it fills and zarr's write of it, plus the float64 sum and one neighbour's float32 and
    # float64 copies of a row
    row = layout.chunks[1] if len(layout.chunks) > 1 else 1
    row_voxels = layout.slab_voxels() // layout.frame_shape[1] * row if len(shape) > 2 else 0
    check_budget(
        "predict lerp", memory_mb,
        layout.slab_voxels() * (4 + SLAB_WRITE_BYTES_PER_VALUE) + row_voxels * (8 + 4 + 8 + 8),
        f"a slab of {layout.slab_depth} rows and the blend of {n_near} neighbours' chunk-rows",
        "lower store.chunk or raise runtime.memory_mb",
    )
    produced_by = provenance.record(
        "predict_lerp",
        {
            "hyperinr": {"k_nearest": int(k), "idw_power": float(power)},
            "store": asdict(store),
            "runtime": {"memory_mb": int(memory_mb)},
        },
        {"dataset": ds.content_hash},
    )
    attrs: dict[str, Any] = {
        "produced_by": produced_by,
        "method": "lerp",
        "value_range": [float(v) for v in ds.value_range],
        "k": int(k),
        "dataset": str(ds.path),
    }

    def blend(i: int, region: tuple[slice, ...]) -> np.ndarray:
        """Frame i's LERP over `region` (the same float64 arithmetic as a whole frame)."""
        acc = np.zeros(out_shape(region), dtype=np.float64)
        for j, wj in zip(idx[i], w[i], strict=True):
            if wj != 0.0:
                acc += wj * np.asarray(ds.frames[(int(j), *region)], dtype=np.float64)
        return ds.to_physical(acc).astype(np.float32)

    def out_shape(region: tuple[slice, ...]) -> tuple[int, ...]:
        return tuple(len(range(*r.indices(n))) for r, n in zip(region, shape[1:])) + tuple(
            shape[1 + len(region) :]
        )

    def slabs(i: int) -> Iterator[np.ndarray]:
        for a, b in layout.slabs():
            if len(shape) <= 2:  # 1-D frames: the slab is the row
                yield blend(i, (slice(a, b),))
                continue
            out = np.empty((b - a, *shape[2:]), dtype=np.float32)
            for c in range(0, shape[2], row):
                out[:, c : c + row] = blend(i, (slice(a, b), slice(c, c + row)))
            yield out

    def frames() -> Iterator[Iterator[np.ndarray]]:
        for i in tqdm(range(shape[0]), desc="lerp", unit="frame", disable=not progress):
            yield slabs(i)
        # write_frames_store sets the attrs once every frame is written: time them all
        attrs["wall_seconds"] = time.perf_counter() - t0

    write_frames_store(
        out_path, frames(), shape, attrs, n_channels=ds.n_channels, layout=layout
    )
    wall = attrs["wall_seconds"]
    extra = {
        "method": "lerp",
        "frames": shape[0],
        "k": int(k),
        "n_train": int(ds.is_train().sum()),
        "produced_by": produced_by,
    }
    if info_path is not None:
        write_info(info_path, "predict_lerp", wall, **extra)
    return {"stage": "predict_lerp", "wall_seconds": wall, **extra}
