"""The Zarr v3 dataset layout: the one contract every later stage reads.

A dataset store is a Zarr v3 group:

- `frames`: float32 [n_frames, *spatial(, channels)]; spatial = (z, y, x) for volumes or (y, x)
  for images; a trailing channel axis only when n_channels > 1. One frame per chunk (so each
  job writes whole chunks; no sharding). Values are normalised to [0, 1] with ONE global range
  (lo, hi) taken over the TRAINING frames: evaluation frames are unseen, so they do not set the
  range and may fall slightly outside [0, 1].
- `params`: float64 [n_frames, n_params].
- every array carries Zarr v3 `dimension_names` (frames: "frame", "z", "y", "x"[, "channel"];
  params: "frame", "param") and the group holds consolidated metadata, so
  `xarray.open_zarr(path)` opens any store as one Dataset (docs/data.md). Neither is hashed.
- group attrs: `layout_version` (2), `dims` (spatial shape), `n_channels`, `source_dtype`,
  `value_range` [lo, hi], `param_names`, `param_range` [[min, max] per parameter: declared by
  dataset.params.ranges, else over all frames], `param_periodic` [bool per parameter],
  `split` {"train": [...], "eval": [...]} (eval = every frame), `provenance` {"format",
  "files": [{"path", "sha256", "bytes"}], ...}, `config_hash`, plus `name` and `task`, and
  `content_sha256`: the hash of the frames and params as written plus the attrs that give them
  meaning (dims, value range, parameters, split): what every later stage records as its input.

Prediction stores (`results/<name>/predictions/<method>.zarr`) reuse `write_frames_store`: the
same `frames` array (physical units there) with whatever attrs the writer passes, and their own
`content_sha256` of the frames.

Everything is published atomically: built in a temporary sibling directory, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from hyperinr.data.errors import DataError
from hyperinr.grid import normalise_params
from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.provenance import sha256_json

DATASET_LAYOUT_VERSION = 2  # 2: content_sha256 recorded (provenance)
_CONTENT_ATTRS = (
    "dims",
    "n_channels",
    "value_range",
    "param_names",
    "param_range",
    "param_periodic",
    "split",
)
FRAMES = "frames"
PARAMS = "params"
PARAMS_DIMS = ("frame", "param")  # "frame" is shared with the frames array: same length


def _jsonable(value: Any) -> Any:
    """Plain JSON types for Zarr attrs (numpy scalars/arrays, tuples, Paths)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.dtype):
        return value.name
    return value


def _dimension_names(frame_ndim: int, n_channels: int) -> list[str]:
    spatial = frame_ndim - (1 if n_channels > 1 else 0)
    names = ["z", "y", "x"][-spatial:] if spatial <= 3 else [f"d{i}" for i in range(spatial)]
    return ["frame", *names, *(["channel"] if n_channels > 1 else [])]


def consolidate(path: str | Path) -> None:
    """Write the children's metadata into the group's zarr.json (`consolidated_metadata`, marked
    `must_understand: false`, so readers that do not know it ignore it): `xarray.open_zarr(path)`
    then opens the store in one read and without a fallback warning. Call it once the store's
    arrays exist (the group's own attrs are not part of it; they may be written before or after).
    """
    with warnings.catch_warnings():  # zarr notes that v3 has no consolidation spec yet
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        zarr.consolidate_metadata(str(path), zarr_format=3)


def write_frames_store(
    path: str | Path,
    frames: Iterable[np.ndarray],
    shape: tuple[int, ...],
    attrs: Mapping[str, Any] | None = None,
    *,
    params: np.ndarray | None = None,
    dtype: str | np.dtype = "float32",
    n_channels: int = 1,
    hashed_attrs: tuple[str, ...] = (),
) -> Path:
    """Write `frames` (an iterable of arrays of shape `shape[1:]`) as a Zarr v3 store at `path`.

    `shape` = (n_frames, *frame_shape). The store holds the `frames` array (one frame per
    chunk), optionally a float64 `params` array [n_frames, n_params], and `attrs` on the group.
    Built beside `path` and renamed into place: on any error nothing appears at `path` (and an
    existing store there is left untouched). The attr `content_sha256` hashes the frames and
    params as stored and the attrs named in `hashed_attrs`, computed while writing (no reread).
    """
    path = Path(path)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2 or shape[0] < 1:
        raise ValueError(f"{path}: shape must be (n_frames >= 1, *frame_shape), got {shape}")
    frame_shape = shape[1:]
    dtype = np.dtype(dtype)
    with atomic_path(path, is_dir=True) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        array = group.create_array(
            FRAMES,
            shape=shape,
            dtype=dtype,
            chunks=(1, *frame_shape),
            fill_value=0,
            dimension_names=_dimension_names(len(frame_shape), n_channels),
        )
        content = hashlib.sha256(json.dumps([shape, dtype.str]).encode())
        count = 0
        for frame in frames:
            if count >= shape[0]:
                raise ValueError(f"{path}: more than the {shape[0]} frames announced")
            frame = np.asarray(frame)
            if frame.shape != frame_shape:
                raise ValueError(
                    f"{path}: frame {count} has shape {frame.shape}, expected {frame_shape}"
                )
            stored = np.ascontiguousarray(frame, dtype=dtype)
            array[count] = stored
            content.update(stored.view(np.uint8))
            count += 1
        if count != shape[0]:
            raise ValueError(f"{path}: got {count} frames, expected {shape[0]}")
        if params is not None:
            params = np.asarray(params, dtype=np.float64)
            if params.ndim != 2 or params.shape[0] != shape[0]:
                raise ValueError(
                    f"{path}: params must be [n_frames={shape[0]}, n_params], got {params.shape}"
                )
            group.create_array(
                PARAMS, data=params, chunks=params.shape, dimension_names=PARAMS_DIMS
            )
            content.update(np.ascontiguousarray(params).view(np.uint8))
        plain = _jsonable(dict(attrs or {}))
        content.update(sha256_json({k: plain.get(k) for k in hashed_attrs}).encode())
        group.attrs.update({**plain, "content_sha256": content.hexdigest()})
        consolidate(tmp)
    return path


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class FramesStore:
    """Read-only view of any frames store (dataset or predictions)."""

    path: Path
    frames: zarr.Array
    params: np.ndarray | None
    raw_attrs: dict[str, Any]

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def read_frame(self, i: int) -> np.ndarray:
        return np.asarray(self.frames[i])


def open_frames_store(path: str | Path) -> FramesStore:
    """Open a store written by `write_frames_store` read-only."""
    path = Path(path)
    try:
        group = zarr.open_group(str(path), mode="r")
        frames = group[FRAMES]
    except (
        FileNotFoundError,
        KeyError,
        zarr.errors.NodeNotFoundError,
        zarr.errors.GroupNotFoundError,
    ) as err:
        raise DataError(f"{path}: not a frames store ({err.__class__.__name__})") from None
    if not isinstance(frames, zarr.Array):
        raise DataError(f"{path}: '{FRAMES}' is not an array")
    params = np.asarray(group[PARAMS][...], dtype=np.float64) if PARAMS in group else None
    return FramesStore(path=path, frames=frames, params=params, raw_attrs=dict(group.attrs))


@dataclass(frozen=True)
class DatasetAttrs:
    """Typed view of a dataset store's attrs."""

    dims: tuple[int, ...]
    n_channels: int
    source_dtype: str
    value_range: tuple[float, float]
    param_names: tuple[str, ...]
    param_range: tuple[tuple[float, float], ...]
    param_periodic: tuple[bool, ...]
    train_indices: tuple[int, ...]
    eval_indices: tuple[int, ...]
    provenance: dict[str, Any]
    config_hash: str
    content_sha256: str
    layout_version: int
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, attrs: Mapping[str, Any], where: str = "dataset") -> DatasetAttrs:
        version = attrs.get("layout_version")
        if version != DATASET_LAYOUT_VERSION:
            raise DataError(
                f"{where}: layout_version {version!r}, this hyperinr reads "
                f"{DATASET_LAYOUT_VERSION}; rerun ingest"
            )
        try:
            lo, hi = (float(v) for v in attrs["value_range"])
            return cls(
                dims=tuple(int(d) for d in attrs["dims"]),
                n_channels=int(attrs["n_channels"]),
                source_dtype=str(attrs["source_dtype"]),
                value_range=(lo, hi),
                param_names=tuple(str(n) for n in attrs["param_names"]),
                param_range=tuple((float(a), float(b)) for a, b in attrs["param_range"]),
                param_periodic=tuple(
                    bool(v)
                    for v in attrs.get("param_periodic", [False] * len(attrs["param_names"]))
                ),
                train_indices=tuple(int(i) for i in attrs["split"]["train"]),
                eval_indices=tuple(int(i) for i in attrs["split"]["eval"]),
                provenance=dict(attrs.get("provenance", {})),
                config_hash=str(attrs.get("config_hash", "")),
                content_sha256=str(attrs["content_sha256"]),
                layout_version=int(version),
                raw=dict(attrs),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{where}: dataset attrs incomplete or malformed ({err!r})") from None

    def to_unit(self, physical: Any) -> np.ndarray:
        """Physical values -> the store's [0, 1] convention (float32 stays float32)."""
        x = np.asarray(physical)
        lo, hi = self.value_range
        out = (x.astype(np.float64) - lo) / (hi - lo)
        return out.astype(np.result_type(x.dtype, np.float32), copy=False)

    def to_physical(self, values01: Any) -> np.ndarray:
        """[0, 1] values (store, model outputs) -> physical units (float32 stays float32)."""
        x = np.asarray(values01)
        lo, hi = self.value_range
        out = x.astype(np.float64) * (hi - lo) + lo
        return out.astype(np.result_type(x.dtype, np.float32), copy=False)


class DatasetStore:
    """Read-only view of a dataset store: `.frames` (zarr), `.params` (numpy), `.attrs`."""

    def __init__(self, path: Path, frames: zarr.Array, params: np.ndarray, attrs: DatasetAttrs):
        self.path = path
        self.frames = frames
        self.params = params
        self.attrs = attrs

    def __repr__(self) -> str:
        return (
            f"DatasetStore({str(self.path)!r}, frames={self.frames.shape}, "
            f"params={self.param_names}, train={len(self.train_indices)})"
        )

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def dims(self) -> tuple[int, ...]:
        return self.attrs.dims

    @property
    def n_channels(self) -> int:
        return self.attrs.n_channels

    @property
    def value_range(self) -> tuple[float, float]:
        return self.attrs.value_range

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.attrs.param_names

    @property
    def param_range(self) -> tuple[tuple[float, float], ...]:
        return self.attrs.param_range

    @property
    def param_periodic(self) -> tuple[bool, ...]:
        """Per parameter: periodic (its period is its param_range span), e.g. an azimuth."""
        return self.attrs.param_periodic

    @property
    def train_indices(self) -> tuple[int, ...]:
        return self.attrs.train_indices

    @property
    def eval_indices(self) -> tuple[int, ...]:
        return self.attrs.eval_indices

    @property
    def config_hash(self) -> str:
        return self.attrs.config_hash

    @property
    def content_hash(self) -> str:
        """What later stages record as this dataset's identity (see hyperinr.infra.provenance)."""
        return self.attrs.content_sha256

    def read_frame(self, i: int) -> np.ndarray:
        """Frame `i` in [0, 1] units (float32)."""
        return np.asarray(self.frames[i])

    def to_unit(self, physical: Any) -> np.ndarray:
        return self.attrs.to_unit(physical)

    def to_physical(self, values01: Any) -> np.ndarray:
        return self.attrs.to_physical(values01)

    @property
    def name(self) -> str:
        """The `name` attr, else the store's directory (`<name>/dataset.zarr`) or stem."""
        name = self.attrs.raw.get("name")
        if name:
            return str(name)
        return self.path.parent.name if self.path.stem == "dataset" else self.path.stem

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame: (*dims) or (*dims, n_channels)."""
        return tuple(int(s) for s in self.frames.shape[1:])

    @property
    def n_spatial(self) -> int:
        return len(self.dims)

    @property
    def channel_axis(self) -> int | None:
        """The channel axis of a frame (-1), or None for single-channel frames."""
        return -1 if self.n_channels > 1 else None

    def is_train(self) -> np.ndarray:
        """Boolean mask [n_frames]: True for the frames in split.train."""
        train = np.asarray(self.train_indices, dtype=np.int64)
        if train.size and (train.min() < 0 or train.max() >= self.n_frames):
            raise DataError(f"{self.path}: split.train holds indices outside [0, {self.n_frames})")
        mask = np.zeros(self.n_frames, dtype=bool)
        mask[train] = True
        return mask

    def physical_frame(self, i: int) -> np.ndarray:
        """Frame `i` in physical units as float32: mapped in float64, then rounded to float32,
        as prediction stores are written (an exact reproduction compares equal)."""
        return self.to_physical(self.read_frame(int(i))).astype(np.float32, copy=False)

    def normalised_params(self) -> np.ndarray:
        """params [n_frames, n_params] mapped to [0, 1] per parameter by `param_range`."""
        return normalise_params(self.params, self.param_range)


def open_dataset(path: str | Path) -> DatasetStore:
    """Open a dataset store read-only and check its layout."""
    store = open_frames_store(path)
    attrs = DatasetAttrs.from_dict(store.raw_attrs, str(store.path))
    if store.params is None:
        raise DataError(f"{store.path}: dataset store has no '{PARAMS}' array")
    expected = (store.n_frames, *attrs.dims) + ((attrs.n_channels,) if attrs.n_channels > 1 else ())
    if tuple(store.frames.shape) != expected:
        raise DataError(
            f"{store.path}: frames shape {store.frames.shape} does not match attrs "
            f"(expected {expected})"
        )
    if store.params.shape != (store.n_frames, len(attrs.param_names)):
        raise DataError(
            f"{store.path}: params shape {store.params.shape} does not match "
            f"{store.n_frames} frames x {len(attrs.param_names)} parameters"
        )
    return DatasetStore(store.path, store.frames, store.params, attrs)


def open_prediction(path: str | Path, dataset: DatasetStore) -> FramesStore:
    """A prediction store, checked to hold frames of exactly the dataset's frames shape."""
    store = open_frames_store(path)
    if tuple(store.frames.shape) != tuple(dataset.frames.shape):
        raise DataError(
            f"{store.path}: prediction frames shape {tuple(store.frames.shape)} does not match "
            f"dataset frames shape {tuple(dataset.frames.shape)} ({dataset.path})"
        )
    return store


# --------------------------------------------------------------------------- writing a dataset


def write_dataset(
    out: str | Path,
    frames: Iterable[np.ndarray],
    *,
    shape: tuple[int, ...],
    value_range: tuple[float, float],
    params: np.ndarray,
    param_names: tuple[str, ...] | list[str],
    train_indices: Iterable[int],
    source_dtype: str | np.dtype,
    provenance: Mapping[str, Any],
    config_hash: str = "",
    n_channels: int = 1,
    param_range: Iterable[tuple[float, float]] | None = None,
    param_periodic: Iterable[bool] | None = None,
    extra_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write a dataset store at `out` (atomically) from frames in PHYSICAL units.

    Frames are mapped to [0, 1] with `value_range` (lo, hi) on the way in; `shape` is the full
    store shape (n_frames, *spatial(, channels)). `param_range` is the declared parameter
    space (default: the values' min/max); `param_periodic` marks periodic parameters, whose
    period is their range.
    """
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise DataError(f"{out}: value range [{lo}, {hi}] is empty")
    params = np.asarray(params, dtype=np.float64)
    n_frames = int(shape[0])
    names = [str(n) for n in param_names]
    if params.shape != (n_frames, len(names)):
        raise ValueError(f"{out}: params {params.shape} != ({n_frames}, {len(names)})")
    train = sorted({int(i) for i in train_indices})
    if not train or train[0] < 0 or train[-1] >= n_frames:
        raise ValueError(f"{out}: train indices {train} outside [0, {n_frames})")
    spatial = list(shape[1:-1] if n_channels > 1 else shape[1:])
    attrs: dict[str, Any] = dict(extra_attrs or {})
    attrs.update(
        {
            "layout_version": DATASET_LAYOUT_VERSION,
            "dims": spatial,
            "n_channels": int(n_channels),
            "source_dtype": np.dtype(source_dtype).name,
            "value_range": [lo, hi],
            "param_names": names,
            "param_range": [
                [float(params[:, j].min()), float(params[:, j].max())] for j in range(len(names))
            ]
            if param_range is None
            else [[float(a), float(b)] for a, b in param_range],
            "param_periodic": [False] * len(names)
            if param_periodic is None
            else [bool(v) for v in param_periodic],
            "split": {"train": train, "eval": list(range(n_frames))},
            "provenance": dict(provenance),
            "config_hash": str(config_hash),
        }
    )

    def unit(stream: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
        for frame in stream:  # the same arithmetic as DatasetAttrs.to_unit
            yield ((np.asarray(frame, dtype=np.float64) - lo) / (hi - lo)).astype(np.float32)

    return write_frames_store(
        out,
        unit(frames),
        tuple(shape),
        attrs,
        params=params,
        n_channels=n_channels,
        hashed_attrs=_CONTENT_ATTRS,
    )
