"""Readers for ingest: raw binary, npy, HDF5 and NetCDF4 frames, plus parameter values.

`open_source(cfg)` checks everything it can without reading voxel data (files exist, sizes,
shapes, dataset paths, parameter values) and returns a `FrameSource` that reads one frame, or
one slab of a frame along its axis 0 (`read_slab`), at a time, so neither a dataset nor a frame
has to fit in memory.

File layout rules (one for every format):
- several files: each file holds exactly one frame;
- exactly one file: axis 0 of its array indexes the frames (`raw` always holds one frame per
  file, so one raw file is a one-frame dataset).
A frame is 2-D (y, x) or 3-D (z, y, x); for the `nvs` task a 3-D frame is an image with a
trailing channel axis (y, x, c).

Paths and glob patterns in `files` (and a relative sidecar path) are relative to the working
directory. The files a pattern matches are sorted in natural order (frame_2 before frame_10).
"""

from __future__ import annotations

import glob
import json
import logging
import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hyperinr.config import DatasetConfig, ParamsConfig, RawFormat
from hyperinr.data.errors import DataError
from hyperinr.infra.provenance import sha256_file

log = logging.getLogger(__name__)

FORMATS = ("raw", "npy", "hdf5", "netcdf")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class FrameSource:
    """A lazily read sequence of frames with their parameter values."""

    format: str
    files: list[Path]
    n_frames: int
    frame_shape: tuple[int, ...]  # shape of one frame as read (spatial, then channels if any)
    source_dtype: np.dtype
    params: np.ndarray  # float64 [n_frames, n_params]
    param_names: tuple[str, ...]
    labels: list[str]  # "file" or "file[i]" per frame, for messages
    provenance: dict[str, Any] = field(default_factory=dict)
    _read: Callable[[int], np.ndarray] | None = field(default=None, repr=False)
    # (frame, start, stop) -> rows [start, stop) of the frame's axis 0; open_source sets it so
    # that only those bytes are read. Without it a slab is cut from the whole frame (`_read`).
    _read_slab: Callable[[int, int, int], np.ndarray] | None = field(default=None, repr=False)

    def read(self, i: int) -> np.ndarray:
        """Frame `i` as a new float32 array of `frame_shape`."""
        if self._read_slab is not None:
            return self.read_slab(i, 0, self.frame_shape[0])
        self._check_index(i)
        assert self._read is not None
        frame = np.asarray(self._read(i))
        if frame.shape != self.frame_shape:
            raise DataError(
                f"{self.labels[i]}: frame shape {frame.shape} differs from {self.frame_shape}"
            )
        return np.array(frame, dtype=np.float32, order="C")

    def read_slab(self, i: int, start: int, stop: int) -> np.ndarray:
        """Frame i restricted to [start, stop) along its first axis (z for volumes, y for
        images), float32 C-order, shape (stop-start, *frame_shape[1:]).

        Only the slab's bytes are read where the layout on disk allows it (raw and npy with
        axis 0 slowest, HDF5/NetCDF hyperslabs), so ingest never holds a whole frame."""
        i, start, stop = operator.index(i), operator.index(start), operator.index(stop)
        self._check_index(i)
        depth = self.frame_shape[0]
        if not 0 <= start <= stop <= depth:
            raise IndexError(
                f"{self.labels[i]}: slab [{start}, {stop}) of frame {i} is not within "
                f"[0, {depth}] (axis 0 of frame shape {self.frame_shape})"
            )
        want = (stop - start, *self.frame_shape[1:])
        if start == stop:
            return np.empty(want, dtype=np.float32)
        if self._read_slab is None:
            return self.read(i)[start:stop].copy()
        slab = np.asarray(self._read_slab(i, start, stop))
        if slab.shape != want:
            raise DataError(
                f"{self.labels[i]}: rows [{start}, {stop}) read as shape {slab.shape}, "
                f"expected {want} (file changed since it was opened?)"
            )
        return np.array(slab, dtype=np.float32, order="C")

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range [0, {self.n_frames})")

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.n_frames):
            yield self.read(i)


# --------------------------------------------------------------------------- files


def _natural_key(path: str) -> list[Any]:
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", path)]


def resolve_files(patterns: tuple[str, ...] | list[str]) -> list[Path]:
    """Expand paths and glob patterns (relative to the working directory), in order."""
    if not patterns:
        raise DataError("dataset.files: no files given")
    files: list[Path] = []
    for pattern in patterns:
        if _GLOB_CHARS.search(pattern):
            matches = sorted(glob.glob(pattern), key=_natural_key)
            matches = [m for m in matches if Path(m).is_file()]
            if not matches:
                raise DataError(f"{pattern}: glob pattern matched no files")
            files.extend(Path(m) for m in matches)
        else:
            path = Path(pattern)
            if not path.is_file():
                raise DataError(f"{pattern}: file not found")
            files.append(path)
    return files


def file_provenance(files: list[Path]) -> list[dict[str, Any]]:
    return [{"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files]


# --------------------------------------------------------------------------- formats


def _check_frame_ndim(shape: tuple[int, ...], label: str) -> None:
    if len(shape) not in (2, 3):
        raise DataError(f"{label}: a frame must be 2-D or 3-D, got shape {shape}")
    if min(shape) < 1:
        raise DataError(f"{label}: empty frame shape {shape}")


def _same_shapes(shapes: list[tuple[int, ...]], files: list[Path]) -> None:
    for path, shape in zip(files, shapes, strict=True):
        if shape != shapes[0]:
            raise DataError(f"{path}: frame shape {shape} differs from {shapes[0]} of {files[0]}")


def _raw_layout(raw: RawFormat) -> tuple[tuple[int, ...], tuple[int, ...], np.dtype]:
    """(shape in the file, transpose to (z, y, x) order, dtype) from the raw description."""
    dims = tuple(raw.dims)
    if len(dims) not in (2, 3) or min(dims, default=0) < 1:
        raise DataError(f"dataset.raw.dims: need 2 or 3 positive sizes (x, y[, z]), got {dims}")
    try:
        dtype = np.dtype(raw.dtype)
    except TypeError:
        raise DataError(f"dataset.raw.dtype: not a numpy dtype: {raw.dtype!r}") from None
    if raw.header_bytes < 0:
        raise DataError(f"dataset.raw.header_bytes: must be >= 0, got {raw.header_bytes}")
    letters = "xyz"[: len(dims)]
    order = "".join(c for c in raw.axis_order.lower() if c in letters)
    if sorted(order) != sorted(letters) or len(raw.axis_order) not in (2, 3):
        raise DataError(
            f"dataset.raw.axis_order: '{raw.axis_order}' is not an order of the axes "
            f"'{letters[::-1]}' (slowest first)"
        )
    size = dict(zip(letters, dims, strict=True))
    file_shape = tuple(size[c] for c in order)
    target = letters[::-1]  # "zyx" or "yx"
    transpose = tuple(order.index(c) for c in target)
    return file_shape, transpose, dtype


def _read_rows(
    path: Path, dtype: np.dtype, offset: int, shape: tuple[int, ...], start: int, stop: int
) -> np.ndarray:
    """Rows [start, stop) of a C-order array of `shape` whose data start at byte `offset`.

    The rows are one contiguous byte range: one seek and one read of exactly their bytes, so a
    slab of a frame larger than memory costs only the slab."""
    row = math.prod(shape[1:])
    count = (stop - start) * row
    first = offset + start * row * dtype.itemsize
    data = np.fromfile(path, dtype=dtype, count=count, offset=first)
    if data.size != count:
        raise DataError(
            f"{path}: file ends after {data.size} of {count} values read from byte {first} "
            "(truncated since it was opened?)"
        )
    return data.reshape((stop - start, *shape[1:]))


def _open_raw(files: list[Path], raw: RawFormat):
    file_shape, transpose, dtype = _raw_layout(raw)
    n_bytes = math.prod(file_shape) * dtype.itemsize
    expected = raw.header_bytes + n_bytes
    for path in files:
        actual = path.stat().st_size
        if actual != expected:
            raise DataError(
                f"{path}: raw file has {actual} bytes, expected {expected} "
                f"(header {raw.header_bytes} + {'x'.join(map(str, raw.dims))} x "
                f"{dtype.itemsize} bytes of {dtype.str})"
            )
    frame_shape = tuple(file_shape[t] for t in transpose)
    axis = transpose[0]  # the file axis that is the frame's axis 0

    def read(i: int, start: int, stop: int) -> np.ndarray:
        if axis == 0 or (start, stop) == (0, frame_shape[0]):
            rows = (start, stop) if axis == 0 else (0, file_shape[0])
            data = _read_rows(files[i], dtype, raw.header_bytes, file_shape, *rows)
            return data.transpose(transpose)
        # The frame's axis 0 is not the slowest on disk, so its slab is strided: a memory map
        # faults in only the pages holding it (all of them when it is the fastest axis) and
        # the caller copies out only the slab, so memory stays at one slab.
        try:
            mm = np.memmap(
                files[i], dtype=dtype, mode="r", offset=raw.header_bytes, shape=file_shape
            )
        except ValueError as err:
            raise DataError(f"{files[i]}: cannot map raw file ({err})") from None
        index: list[slice] = [slice(None)] * len(file_shape)
        index[axis] = slice(start, stop)
        return mm[tuple(index)].transpose(transpose)

    return len(files), frame_shape, dtype, [str(p) for p in files], read


def _open_npy(files: list[Path]):
    shapes, dtypes = [], []
    for path in files:  # headers only: memory maps, dropped at once
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"{path}: not a readable .npy file ({err})") from None
        shapes.append(array.shape)
        dtypes.append(array.dtype)
        del array

    def read(f: int, k: int | None, start: int, stop: int) -> np.ndarray:
        path = files[f]
        # the memory map gives the header (shape, dtype, order, data offset) without reading data
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        if mm.shape != shapes[f]:
            raise DataError(f"{path}: array shape {mm.shape} differs from {shapes[f]} at open")
        frame_shape = mm.shape if k is None else mm.shape[1:]
        if not mm.flags.c_contiguous:  # fortran_order: the slab is strided, map its pages only
            return (mm if k is None else mm[k])[start:stop]
        offset = mm.offset + (0 if k is None else k * math.prod(frame_shape) * mm.dtype.itemsize)
        return _read_rows(path, mm.dtype, offset, frame_shape, start, stop)

    return _from_arrays(files, shapes, dtypes, read)


def _h5_info(path: Path, dataset: str, fmt: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        f = h5py.File(path, "r")
    except OSError:
        kind = (
            "NetCDF4/HDF5 (NetCDF3 classic files are not supported)" if fmt == "netcdf" else "HDF5"
        )
        raise DataError(f"{path}: not a readable {kind} file") from None
    with f:
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            names: list[str] = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            raise DataError(f"{path}: no dataset '{dataset}' (datasets: {shown or 'none'})")
        return tuple(obj.shape), obj.dtype


def _open_h5(files: list[Path], dataset: str, fmt: str):
    if not dataset:
        raise DataError("dataset.hdf5_dataset: empty dataset path")
    infos = [_h5_info(p, dataset, fmt) for p in files]

    def read(f: int, k: int | None, start: int, stop: int) -> np.ndarray:
        # a hyperslab selection: HDF5 reads only the chunks (or the contiguous byte ranges)
        # that hold these rows; the CF decoding is elementwise, so decoding the slab equals
        # slicing the decoded frame
        with h5py.File(files[f], "r") as h5:
            ds = h5[dataset]
            if ds.shape != infos[f][0]:
                raise DataError(
                    f"{files[f]}: dataset '{dataset}' shape {ds.shape} differs from "
                    f"{infos[f][0]} at open"
                )
            data = ds[start:stop] if k is None else ds[k, start:stop]
            return _cf_decode(data, ds.attrs) if fmt == "netcdf" else data

    return _from_arrays(files, [s for s, _ in infos], [d for _, d in infos], read)


def _cf_decode(data: np.ndarray, attrs: Any) -> np.ndarray:
    """NetCDF (CF) conventions: missing values become NaN; packed values are unpacked."""
    keys = ("_FillValue", "missing_value", "scale_factor", "add_offset")
    if not any(k in attrs for k in keys):
        return data
    out = np.asarray(data, dtype=np.float64)
    for key in ("_FillValue", "missing_value"):
        if key in attrs:
            for value in np.atleast_1d(attrs[key]):
                out[np.asarray(data) == value] = np.nan
    if "scale_factor" in attrs:
        out = out * float(np.atleast_1d(attrs["scale_factor"])[0])
    if "add_offset" in attrs:
        out = out + float(np.atleast_1d(attrs["add_offset"])[0])
    return out


def _from_arrays(files, shapes, dtypes, read_part):
    """Frames from arrays: one frame per file, or a stack along axis 0 of the only file.

    `read_part(f, k, start, stop)` reads rows [start, stop) of frame k of file f (k None: the
    file's whole array is the frame)."""
    if len(files) == 1:
        shape = shapes[0]
        if len(shape) < 3:
            raise DataError(
                f"{files[0]}: a single file must hold a stack [n_frames, ...] of 2-D or 3-D "
                f"frames, got shape {shape}"
            )
        frame_shape = tuple(shape[1:])
        _check_frame_ndim(frame_shape, str(files[0]))
        n = shape[0]
        if n < 1:
            raise DataError(f"{files[0]}: no frames (shape {shape})")
        labels = [f"{files[0]}[{i}]" for i in range(n)]
        return n, frame_shape, np.dtype(dtypes[0]), labels, lambda i, a, b: read_part(0, i, a, b)
    for path, shape in zip(files, shapes, strict=True):
        _check_frame_ndim(tuple(shape), str(path))
    _same_shapes([tuple(s) for s in shapes], files)
    labels = [str(p) for p in files]
    return (
        len(files),
        tuple(shapes[0]),
        np.dtype(dtypes[0]),
        labels,
        lambda i, a, b: read_part(i, None, a, b),
    )


# --------------------------------------------------------------------------- parameters


def _as_matrix(values: Any, where: str) -> np.ndarray:
    if (
        isinstance(values, (list, tuple))
        and values
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ):
        values = [[v] for v in values]  # a flat list: one parameter
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}: parameter values must be a list of equal-length number lists"
        ) from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise DataError(
            f"{where}: parameter values must be a list of equal-length number "
            f"lists, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: parameter values contain NaN or Inf")
    return arr


def sidecar_space(cfg: ParamsConfig) -> tuple[list[list[float]] | None, tuple[str, ...]]:
    """(ranges, periodic names) a sidecar may declare besides its values (rule scene's does:
    the parameter space is the scene's, so the config need not repeat it); config keys win."""
    if cfg.values is not None or cfg.sidecar is None or not Path(cfg.sidecar).is_file():
        return None, ()
    try:
        doc = json.loads(Path(cfg.sidecar).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, ()  # load_params reports it
    if not isinstance(doc, dict):
        return None, ()
    ranges = doc.get("ranges")
    periodic = doc.get("periodic", [])
    if ranges is not None and not (
        isinstance(ranges, list) and all(isinstance(r, list) and len(r) == 2 for r in ranges)
    ):
        raise DataError(f"{cfg.sidecar}: 'ranges' must be a list of [min, max] pairs")
    if not isinstance(periodic, list) or not all(isinstance(n, str) for n in periodic):
        raise DataError(f"{cfg.sidecar}: 'periodic' must be a list of parameter names")
    return ranges, tuple(periodic)


def load_params(cfg: ParamsConfig, n_frames: int) -> tuple[np.ndarray, tuple[str, ...], dict]:
    """Parameter values [n_frames, n_params], their names and their provenance.

    Inline `values`, or a sidecar JSON `{"names": [...], "values": [[...], ...]}` (its names,
    when present, win over `params.names`). With neither, the parameter is the frame index.
    Inline values win over a sidecar: a user's config inherits the default dataset's sidecar
    (Snakemake's recursive config merge, the CLI's built-in defaults), so with both given the
    sidecar is ignored, and one log line says so.
    """
    names = tuple(cfg.names)
    if cfg.values is not None and cfg.sidecar is not None:
        log.info(
            "dataset.params: values given inline; sidecar %s ignored (inline values win)",
            cfg.sidecar,
        )
    if cfg.values is None and cfg.sidecar is not None:
        where = cfg.sidecar
        path = Path(cfg.sidecar)
        if not path.is_file():
            raise DataError(f"{where}: parameter sidecar not found")
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{where}: not valid JSON ({err})") from None
        if isinstance(doc, list):
            doc = {"values": doc}
        if not isinstance(doc, dict) or "values" not in doc:
            raise DataError(f'{where}: expected {{"names": [...], "values": [[...], ...]}}')
        if "names" in doc:
            if not isinstance(doc["names"], list) or not all(
                isinstance(n, str) for n in doc["names"]
            ):
                raise DataError(f"{where}: 'names' must be a list of strings")
            names = tuple(doc["names"])
        values = _as_matrix(doc["values"], where)
        prov = {"source": "sidecar", "path": str(path), "sha256": sha256_file(path)}
    elif cfg.values is not None:
        where = "dataset.params.values"
        values = _as_matrix(cfg.values, where)
        prov = {"source": "inline"}
    else:
        where = "dataset.params"
        values = np.arange(n_frames, dtype=np.float64)[:, None]
        prov = {"source": "frame_index"}
    if not names or len(set(names)) != len(names):
        raise DataError(f"{where}: parameter names must be distinct and non-empty, got {names}")
    if values.shape[1] != len(names):
        raise DataError(
            f"{where}: {values.shape[1]} values per frame but {len(names)} parameter names "
            f"{list(names)}"
        )
    if values.shape[0] != n_frames:
        raise DataError(f"{where}: {values.shape[0]} parameter values for {n_frames} frames")
    if values.shape[1] == 1:
        steps = np.diff(values[:, 0])
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0))
            raise DataError(
                f"{where}: parameter '{names[0]}' is not strictly increasing "
                f"(frame {i}: {values[i, 0]:g}, frame {i + 1}: {values[i + 1, 0]:g})"
            )
    else:
        _, first, counts = np.unique(values, axis=0, return_index=True, return_counts=True)
        if np.any(counts > 1):
            row = values[first[np.argmax(counts > 1)]]
            dupes = np.flatnonzero(np.all(values == row, axis=1)).tolist()
            raise DataError(
                f"{where}: duplicated parameter values {row.tolist()} at frames {dupes}"
            )
    return values, names, prov


# --------------------------------------------------------------------------- entry point


def open_source(cfg: DatasetConfig, hash_files: bool = True) -> FrameSource:
    """Check the sources described by `cfg` and return a lazy `FrameSource`."""
    fmt = cfg.format.lower()
    if fmt not in FORMATS:
        raise DataError(
            f"dataset.format: unknown format '{cfg.format}' (known: {', '.join(FORMATS)})"
        )
    files = resolve_files(cfg.files)
    if fmt == "raw":
        n, shape, dtype, labels, read = _open_raw(files, cfg.raw)
    elif fmt == "npy":
        n, shape, dtype, labels, read = _open_npy(files)
    else:
        n, shape, dtype, labels, read = _open_h5(files, cfg.hdf5_dataset, fmt)
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_) or np.issubdtype(
        dtype, np.complexfloating
    ):
        raise DataError(f"{files[0]}: unsupported data type {dtype} (need real numbers)")
    params, names, params_prov = load_params(cfg.params, n)
    provenance: dict[str, Any] = {"format": fmt}
    if fmt == "raw":
        provenance["raw"] = {
            "dims": list(cfg.raw.dims),
            "dtype": np.dtype(cfg.raw.dtype).str,
            "header_bytes": cfg.raw.header_bytes,
            "axis_order": cfg.raw.axis_order,
        }
    if fmt in ("hdf5", "netcdf"):
        provenance["hdf5_dataset"] = cfg.hdf5_dataset
    provenance["files"] = (
        file_provenance(files) if hash_files else [{"path": str(p)} for p in files]
    )
    provenance["params"] = params_prov
    return FrameSource(
        format=fmt,
        files=files,
        n_frames=n,
        frame_shape=tuple(int(s) for s in shape),
        source_dtype=np.dtype(dtype),
        params=params,
        param_names=names,
        labels=labels,
        provenance=provenance,
        _read_slab=read,
    )
