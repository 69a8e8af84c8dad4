"""The Zarr v3 dataset layout: the one contract every later stage reads.

A dataset store is a Zarr v3 group:

- `frames`: float32 [n_frames, *spatial(, channels)]; spatial = (z, y, x) for volumes or (y, x)
  for images; a trailing channel axis only when n_channels > 1. Chunked by `FrameLayout`
  (config `store`): one frame per chunk for frames no bigger than `store.chunk`, else
  `chunk`^D spatial chunks, grouped into one Zarr v3 shard per chunk-deep slab along the first
  axis. Writers write whole slabs (so whole shards) in order, one writer per store. Values
  are normalised to [0, 1] with ONE global range
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
import math
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from hyperinr.data.errors import DataError
from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.provenance import sha256_json
from hyperinr.param_space.normalise import normalise_params

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


#: Bytes zarr holds per float32 value while it writes a slab, beyond the slab itself: the
#: chunks cut out and encoded, the shard assembled and its copy on the way to disk
#: (benchmarks/bench_scale.py, 512^3: LERP ~2.6x, ingest ~4x the slab's 4 bytes; rounded up).
SLAB_WRITE_BYTES_PER_VALUE = 16


@dataclass(frozen=True)
class FrameLayout:
    """How a frame is cut into chunks, and the slab (chunk-deep along the frame's first axis)
    that is the unit of work of every writer and reader of large frames: a slab is whole
    chunks and, when sharded, exactly one shard, so no two writes ever share a shard
    (zarr-python #3682, dask #12583) and memory follows the slab, not the frame."""

    frame_shape: tuple[int, ...]
    chunks: tuple[int, ...]  # of one frame (the store's chunks without the frame axis)
    shards: tuple[int, ...] | None = None

    @property
    def slab_depth(self) -> int:
        return int(self.chunks[0])

    def slabs(self) -> list[tuple[int, int]]:
        """[start, stop) of every slab along the frame's first axis, in order."""
        n, d = self.frame_shape[0], self.slab_depth
        return [(a, min(a + d, n)) for a in range(0, n, d)]

    def slab_voxels(self) -> int:
        """Elements of the largest slab (every value of one slab of one frame)."""
        return self.slab_depth * math.prod(self.frame_shape[1:])

    @classmethod
    def of(cls, array: zarr.Array) -> FrameLayout:
        """The layout of a frames array as stored (inner chunks and shards)."""
        shards = array.shards
        return cls(
            tuple(int(s) for s in array.shape[1:]),
            tuple(int(c) for c in array.chunks[1:]),
            None if shards is None else tuple(int(s) for s in shards[1:]),
        )


def frame_layout(
    frame_shape: tuple[int, ...], n_channels: int = 1, chunk: int | None = None, shard: bool = True
) -> FrameLayout:
    """The layout of frames of `frame_shape` for a chunk edge `chunk` (None: one chunk per
    frame). Channels are never split; shards exist only where a slab holds several chunks."""
    frame_shape = tuple(int(s) for s in frame_shape)
    spatial = frame_shape[:-1] if n_channels > 1 else frame_shape
    channels = frame_shape[len(spatial) :]
    edge = tuple(spatial) if chunk is None else tuple(min(int(chunk), n) for n in spatial)
    grid = [math.ceil(n / c) for n, c in zip(spatial[1:], edge[1:], strict=True)]
    shards = None
    if shard and any(g > 1 for g in grid):
        shards = (edge[0], *(g * c for g, c in zip(grid, edge[1:], strict=True)), *channels)
    return FrameLayout(frame_shape, (*edge, *channels), shards)


def _slabs_of(item: Any, layout: FrameLayout) -> Iterator[np.ndarray]:
    """A whole frame (ndarray) or an iterable of its slabs in order -> the slabs."""
    if isinstance(item, np.ndarray):
        for a, b in layout.slabs():
            yield item[a:b]
    else:
        yield from item


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
    layout: FrameLayout | None = None,
) -> Path:
    """Write `frames` as a Zarr v3 store at `path`: each item is a whole frame (an array of
    shape `shape[1:]`) or an iterable of that frame's slabs in order (`layout.slabs()`), so a
    producer never needs to hold a frame.

    `shape` = (n_frames, *frame_shape). The store holds the `frames` array (chunked by
    `layout`, default one chunk per frame), optionally a float64 `params` array
    [n_frames, n_params], and `attrs` on the group.
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
    layout = layout or frame_layout(frame_shape, n_channels)
    if layout.frame_shape != frame_shape:
        raise ValueError(f"{path}: layout for frames {layout.frame_shape}, not {frame_shape}")
    with atomic_path(path, is_dir=True) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        array = group.create_array(
            FRAMES,
            shape=shape,
            dtype=dtype,
            chunks=(1, *layout.chunks),
            shards=None if layout.shards is None else (1, *layout.shards),
            fill_value=0,
            dimension_names=_dimension_names(len(frame_shape), n_channels),
        )
        # slabs in order are the frame's bytes in C order: the hash does not depend on layout
        content = hashlib.sha256(json.dumps([shape, dtype.str]).encode())
        bounds = layout.slabs()
        count = 0
        for item in frames:
            if count >= shape[0]:
                raise ValueError(f"{path}: more than the {shape[0]} frames announced")
            if isinstance(item, np.ndarray) and item.shape != frame_shape:
                raise ValueError(
                    f"{path}: frame {count} has shape {item.shape}, expected {frame_shape}"
                )
            n_slabs = 0
            for slab in _slabs_of(item, layout):
                if n_slabs >= len(bounds):
                    raise ValueError(f"{path}: frame {count} has more than {len(bounds)} slabs")
                a, b = bounds[n_slabs]
                want = (b - a, *frame_shape[1:])
                if slab.shape != want:
                    raise ValueError(
                        f"{path}: frame {count} slab [{a}, {b}) has shape {slab.shape}, "
                        f"expected {want}"
                    )
                stored = np.ascontiguousarray(slab, dtype=dtype)
                array[count, a:b] = stored
                content.update(stored.view(np.uint8))
                n_slabs += 1
            if n_slabs != len(bounds):
                raise ValueError(f"{path}: frame {count} has {n_slabs} of {len(bounds)} slabs")
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

    def read_slab(self, i: int, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.frames[i, start:stop])

    @property
    def layout(self) -> FrameLayout:
        return FrameLayout.of(self.frames)


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

    def read_slab(self, i: int, start: int, stop: int) -> np.ndarray:
        """Frame `i`'s slab [start, stop) along its first axis, in [0, 1] units (float32)."""
        return np.asarray(self.frames[i, start:stop])

    @property
    def layout(self) -> FrameLayout:
        return FrameLayout.of(self.frames)

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

    def physical_slab(self, i: int, start: int, stop: int) -> np.ndarray:
        """`physical_frame(i)[start:stop]` without reading the rest of the frame."""
        slab = self.read_slab(int(i), start, stop)
        return self.to_physical(slab).astype(np.float32, copy=False)

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
    layout: FrameLayout | None = None,
) -> Path:
    """Write a dataset store at `out` (atomically) from frames in PHYSICAL units (whole
    frames or iterables of slabs, as `write_frames_store` takes them).

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

    def unit(values: np.ndarray) -> np.ndarray:  # the same arithmetic as DatasetAttrs.to_unit
        out = np.empty(np.shape(values), dtype=np.float32)
        for r in range(0, len(out), 8):  # 8 rows at a time: the float64 copy stays small
            x = np.array(values[r : r + 8], dtype=np.float64)
            x -= lo
            x /= hi - lo
            out[r : r + 8] = x
        return out

    def units(stream: Iterable[Any]) -> Iterator[Any]:
        for item in stream:
            if isinstance(item, np.ndarray):
                yield unit(item)
            else:
                yield (unit(slab) for slab in item)

    return write_frames_store(
        out,
        units(frames),
        tuple(shape),
        attrs,
        params=params,
        n_channels=n_channels,
        hashed_attrs=_CONTENT_ATTRS,
        layout=layout,
    )
