"""Ingest: sources -> validated, normalised Zarr dataset store.

Two passes over the frames, one slab (a `store.chunk`-deep cut along the frame's first axis)
in memory at a time, read from the source by slab where its format allows (raw, npy, HDF5,
NetCDF): the training frames first (checked for NaN/Inf; they set the value range), then
every frame on its way into the store. So memory follows `store.chunk`, not the frame size,
and `runtime.memory_mb` is checked against one slab before anything is read. Any problem
raises `DataError` and leaves nothing at `out`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from hyperinr.config import (
    Config,
    DatasetConfig,
    ParamsConfig,
    RuntimeConfig,
    SplitConfig,
    StoreConfig,
)
from hyperinr.data.errors import DataError
from hyperinr.data.sources import FrameSource, open_source, sidecar_space
from hyperinr.data.store import (
    SLAB_WRITE_BYTES_PER_VALUE,
    FrameLayout,
    frame_layout,
    write_dataset,
)
from hyperinr.infra import provenance
from hyperinr.infra.atomic import clean_stale_temporaries
from hyperinr.infra.memory import check_budget

#: Bytes ingest holds per element of a slab: the source's slab as read and its float32 copy,
#: the finite-check mask, the normalised float32 slab and zarr's write of it (the float64
#: normalisation goes 8 rows at a time).
INGEST_BYTES_PER_VALUE = 4 + 4 + 1 + 4 + SLAB_WRITE_BYTES_PER_VALUE


def split_indices(split: SplitConfig, n_frames: int) -> list[int]:
    """Training frames: the first `train_first`, else `train_indices` if given, else every
    `train_every`-th frame from 0 plus the last frame (so interpolation never extrapolates).
    None/None: every frame."""
    if split.train_first is not None:
        if not 1 <= split.train_first <= n_frames:
            raise DataError(
                f"dataset.split.train_first: {split.train_first} outside [1, {n_frames}] frames"
            )
        return list(range(split.train_first))
    if split.train_indices is not None:
        where = "dataset.split.train_indices"
        idx = list(split.train_indices)
        if not idx:
            raise DataError(f"{where}: empty list")
        bad = [i for i in idx if not 0 <= i < n_frames]
        if bad:
            raise DataError(f"{where}: {bad} outside the {n_frames} frames [0, {n_frames - 1}]")
        if len(set(idx)) != len(idx):
            repeated = sorted(i for i in set(idx) if idx.count(i) > 1)
            raise DataError(f"{where}: repeated indices {repeated}")
        return sorted(idx)
    if split.train_every is None:
        return list(range(n_frames))
    if split.train_every < 1:
        raise DataError(f"dataset.split.train_every: must be >= 1, got {split.train_every}")
    idx = list(range(0, n_frames, split.train_every))
    if idx[-1] != n_frames - 1:
        idx.append(n_frames - 1)
    return idx


def _space(cfg: ParamsConfig) -> ParamsConfig:
    """dataset.params with the ranges/periodic names its sidecar declares, where the config
    gives none."""
    ranges, periodic = sidecar_space(cfg)
    return replace(
        cfg,
        ranges=cfg.ranges if cfg.ranges is not None else ranges,
        periodic=cfg.periodic or periodic,
    )


def declared_ranges(
    cfg: ParamsConfig, params: np.ndarray, names: tuple[str, ...]
) -> list[tuple[float, float]] | None:
    """The declared parameter space (dataset.params.ranges), checked against every frame's
    values; None when not declared (the frames' own min/max then)."""
    for name in cfg.periodic:
        if name not in names:
            raise DataError(f"dataset.params.periodic: '{name}' is not a parameter {list(names)}")
    if cfg.ranges is None:
        if cfg.periodic:
            raise DataError("dataset.params.ranges: periodic parameters need declared ranges")
        return None
    if len(cfg.ranges) != len(names):
        raise DataError(
            f"dataset.params.ranges: {len(cfg.ranges)} ranges for parameters {list(names)}"
        )
    for j, (name, (lo, hi)) in enumerate(zip(names, cfg.ranges, strict=True)):
        if not hi > lo:
            raise DataError(f"dataset.params.ranges: range of '{name}' [{lo}, {hi}] is empty")
        outside = np.flatnonzero((params[:, j] < lo) | (params[:, j] > hi))
        if outside.size:
            f = int(outside[0])
            raise DataError(
                f"dataset.params.ranges: '{name}' = {params[f, j]:g} at frame {f} is outside "
                f"the declared [{lo:g}, {hi:g}] ({outside.size} frames)"
            )
    return [(float(lo), float(hi)) for lo, hi in cfg.ranges]


def channel_layout(frame_shape: tuple[int, ...], task: str) -> tuple[tuple[int, ...], int]:
    """(store frame shape, n_channels): a 3-D frame is (y, x, c) for `nvs`, else (z, y, x)."""
    if task == "nvs" and len(frame_shape) == 3:
        channels = frame_shape[-1]
        if channels == 1:
            return frame_shape[:2], 1
        return frame_shape, channels
    return frame_shape, 1


def _describe_files(src: FrameSource) -> str:
    if len(src.files) == 1:
        return str(src.files[0])
    return f"{src.files[0]} .. {src.files[-1]} ({len(src.files)} files)"


def _checked_slabs(src: FrameSource, i: int, layout: FrameLayout) -> Iterator[np.ndarray]:
    """Frame i's slabs in order, each checked for NaN/Inf (the first bad slab stops it)."""
    shape = layout.frame_shape
    for a, b in layout.slabs():
        slab = src.read_slab(i, a, b)
        finite = np.isfinite(slab)
        if not finite.all():
            bad = slab.size - int(np.count_nonzero(finite))
            raise DataError(
                f"{src.labels[i]}: frame {i} contains NaN/Inf ({bad} of {slab.size} values "
                f"in rows {a}..{b - 1})"
            )
        yield slab.reshape((b - a, *shape[1:]))


def _produced_by(cfg: Config, src: FrameSource) -> dict:
    """The config slice and the content of the source files and parameter values."""
    files = [f.get("sha256", f["path"]) for f in src.provenance["files"]]
    params = src.provenance.get("params")
    inputs = {"files": provenance.sha256_json(files), "params": provenance.sha256_json(params)}
    return provenance.record("ingest", cfg, inputs)


def ingest(
    cfg: DatasetConfig,
    out: Path,
    config_hash: str = "",
    store: StoreConfig | None = None,
    memory_mb: int = RuntimeConfig.memory_mb,
) -> Path:
    """Read the sources of `cfg`, validate, normalise and write the dataset store at `out`,
    chunked by `store` (None: the defaults), holding at most `memory_mb` (runtime.memory_mb)."""
    store = store or StoreConfig()
    out = Path(out)
    clean_stale_temporaries(out)
    src = open_source(cfg)
    frame_shape, n_channels = channel_layout(src.frame_shape, cfg.task)
    layout = frame_layout(frame_shape, n_channels, store.chunk, store.shard)
    check_budget(
        "ingest", memory_mb, layout.slab_voxels() * INGEST_BYTES_PER_VALUE,
        f"one slab of {layout.slab_depth} x {' x '.join(map(str, frame_shape[1:]))}",
        "lower store.chunk or raise runtime.memory_mb",
    )
    train = split_indices(cfg.split, src.n_frames)
    read_by = _produced_by(
        Config(dataset=cfg, store=store, runtime=RuntimeConfig(memory_mb=memory_mb)), src
    )

    space = _space(cfg.params)
    param_range = declared_ranges(space, src.params, src.param_names)
    periodic = [name in space.periodic for name in src.param_names]

    lo, hi = np.inf, -np.inf
    for i in train:
        for slab in _checked_slabs(src, i, layout):
            lo = min(lo, float(slab.min()))
            hi = max(hi, float(slab.max()))
    if not hi > lo:
        raise DataError(
            f"{_describe_files(src)}: the {len(train)} training frames are constant "
            f"(every value is {lo:g}); nothing to normalise"
        )

    def frames() -> Iterator[Iterator[np.ndarray]]:
        for i in range(src.n_frames):
            yield _checked_slabs(src, i, layout)

    shape = (src.n_frames, *frame_shape)
    write_dataset(
        out,
        frames(),
        shape=shape,
        value_range=(lo, hi),
        params=src.params,
        param_names=src.param_names,
        train_indices=train,
        source_dtype=src.source_dtype,
        provenance=src.provenance,
        config_hash=config_hash,
        n_channels=n_channels,
        param_range=param_range,
        param_periodic=periodic,
        extra_attrs={"name": cfg.name, "task": cfg.task, "produced_by": read_by},
        layout=layout,
    )
    spatial = frame_shape[:-1] if n_channels > 1 else frame_shape
    param_desc = ", ".join(
        f"{name} [{src.params[:, j].min():g}, {src.params[:, j].max():g}]"
        for j, name in enumerate(src.param_names)
    )
    print(
        f"ingest {cfg.name}: {src.n_frames} frames of {'x'.join(map(str, spatial))}"
        f"{f' x {n_channels} channels' if n_channels > 1 else ''} ({src.format}, "
        f"{src.source_dtype.name}), train {len(train)} / eval {src.n_frames}, "
        f"range [{lo:g}, {hi:g}], params {param_desc} -> {out}"
    )
    sys.stdout.flush()
    return out
