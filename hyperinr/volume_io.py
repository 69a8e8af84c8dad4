"""Write one regular-grid volume (or image) in formats that users' own tools open.

The pipeline's internal stores are Zarr and ``.npz``; people inspect results in ParaView, VisIt
or xarray, which want ``.vti``, NetCDF or raw bytes with a header. This module only publishes a
finished numpy array: it never imports torch, so it stays cheap for the CLI and for tests.

Conventions shared by every format (the package's, see `hyperinr.grid`):

* ``volume`` is indexed ``[z, y, x]`` in C order, so x varies fastest in memory, which is already
  the point order of VTK ImageData and of the usual ``.raw`` volume files: no transpose of the
  data is needed anywhere, only a *view* ``[x, y, z]`` for APIs that index that way.
* ``spacing`` and ``origin`` are listed in (x, y, z) order, physical units. Defaults put the grid
  on [0, 1] per axis: sample i of n at i / (n - 1) (spacing 1 for an axis of one sample).
* A 2-D image is ``[y, x]``. A trailing channel axis ``[..., C]`` is allowed. A 3-D array is
  ambiguous (``[z, y, x]`` or ``[y, x, C]``): it is a volume unless ``spatial_ndim=2`` says
  otherwise. This is not guessed from ``len(spacing)``: a wrong-length spacing must be an
  error, not silently turn a volume into a multi-channel image.
  Channels are kept as one array in ``.npz``/``.nc``/``.raw`` and split into scalar arrays
  ``<name>_0 .. <name>_{C-1}`` in ``.vti`` (VTK "vectors" must have exactly 3 components, and
  separate scalars colour and threshold the same way for any C).
* Parameter values are float64 and finite; attrs must survive a JSON round trip (numpy scalars
  and arrays are converted to plain numbers and lists first).
* Every file is written beside the target and renamed into place (`hyperinr.infra.atomic`): a
  crash or
  an error never leaves a partial file at ``path``, and an existing file stays intact.

Why pyevtk for ``.vti``: it is a small pure-Python package with no dependency beyond numpy,
maintained on PyPI, whereas the official ``vtk`` wheel is ~100 MB of compiled libraries for
what is a few lines of XML plus a binary blob (``vtk`` is only a test dependency, as the
independent reader). A hand-written writer would be shorter still but would own the XML layout,
the data type names and the appended-data offsets; pyevtk's `VtkFile` keeps those. Two things of
pyevtk are deliberately not used, both measured with pyevtk 1.7 and VTK 9.7:

* ``pyevtk.hl.imageToVTK(fieldData=...)`` puts ``<FieldData>`` inside ``<Piece>`` and without
  ``NumberOfTuples``; ``vtkXMLImageDataReader`` (hence ParaView) then reads no parameter values.
  Here the field data goes at the ``<ImageData>`` level with ``NumberOfTuples="1"``, as inline
  ASCII (``repr`` of the float, exact), which does not disturb the appended-data offsets.
* ``VtkFile.appendData`` packs the array through ``struct.pack(*values)``: a 256^3 float32
  volume took 2 s and ~0.9 GB of memory, a 512^3 one would need ~7 GB. The same bytes (a UInt64
  byte count, then the values x fastest in native byte order, the layout pyevtk's header
  declares) are written here straight from the array; a test checks them byte for byte against
  pyevtk's own ``appendData``.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hyperinr.infra.atomic import atomic_path

FORMATS = ("npz", "vti", "nc", "raw")

_AXES = ("x", "y", "z")
# A name must be safe unquoted in VTK's XML attributes, as a NetCDF variable and as an npz key.
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# npz keys that carry the grid: the volume and the parameters may not shadow them.
_NPZ_RESERVED = ("spacing", "origin", "axes", "param_names", "param_values", "attrs")
_EXPORT_HINT = "install hyperinr[export]"


class _Grid:
    """The validated inputs, so each format writer only decides layout, never checks."""

    def __init__(
        self,
        volume: Any,
        spacing: Sequence[float] | None,
        origin: Sequence[float] | None,
        name: str,
        param_names: Sequence[str],
        param_values: Sequence[float],
        attrs: Mapping[str, Any] | None,
        spatial_ndim: int | None,
    ):
        values = np.asarray(volume)
        if values.dtype.kind == "b":
            values = values.astype(np.uint8)
        elif values.dtype.kind not in "iuf":
            raise ValueError(f"volume must hold real numbers, got dtype {values.dtype}")
        if values.dtype == np.float16:  # no VTK or struct code for half floats
            values = values.astype(np.float32)
        # native byte order: VTK's header declares the machine's, NetCDF/npz do not care
        self.values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("="))

        nd = spatial_ndim if spatial_ndim is not None else (3 if self.values.ndim >= 3 else 2)
        if nd not in (2, 3):
            raise ValueError(f"spatial_ndim must be 2 or 3, got {nd}")
        if self.values.ndim not in (nd, nd + 1):
            raise ValueError(
                f"volume of shape {self.values.shape} is neither {nd}-D nor {nd}-D plus a "
                "trailing channel axis"
            )
        if min(self.values.shape, default=0) < 1:
            raise ValueError(f"volume of shape {self.values.shape} is empty")
        self.nd = nd
        self.has_channels = self.values.ndim == nd + 1
        self.n_channels = self.values.shape[-1] if self.has_channels else 1
        # sizes per axis in (x, y, z) order, like spacing and origin
        self.sizes = tuple(reversed(self.values.shape[:nd]))
        self.axes = _AXES[:nd]

        if spacing is None:
            spacing = [1.0 / (n - 1) if n > 1 else 1.0 for n in self.sizes]
        if origin is None:
            origin = [0.0] * nd
        self.spacing = _floats(spacing, nd, "spacing")
        self.origin = _floats(origin, nd, "origin")
        if any(s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive, got {self.spacing}")

        self.name = _check_name(name, "name")
        names = [_check_name(p, "parameter name") for p in param_names]
        vals = [float(v) for v in np.asarray(param_values, dtype=np.float64).reshape(-1)]
        if len(names) != len(vals):
            raise ValueError(f"{len(names)} parameter name(s) {names} for {len(vals)} value(s)")
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names repeat: {names}")
        if not all(math.isfinite(v) for v in vals):
            raise ValueError(f"parameter values must be finite, got {vals}")
        taken = {name, *self.axes, "channel", *_NPZ_RESERVED}
        clash = sorted(taken.intersection(names))
        if clash:
            raise ValueError(f"parameter name(s) {clash} clash with the volume, axis or grid names")
        if name in _NPZ_RESERVED:
            raise ValueError(f"name {name!r} is reserved ({', '.join(_NPZ_RESERVED)})")
        self.params = dict(zip(names, vals))
        self.attrs = _jsonable_attrs(attrs)

    def coords(self) -> dict[str, np.ndarray]:
        """Physical coordinates per axis: origin + i * spacing."""
        return {
            ax: o + s * np.arange(n, dtype=np.float64)
            for ax, n, s, o in zip(self.axes, self.sizes, self.spacing, self.origin)
        }

    def channels(self) -> list[tuple[str, np.ndarray]]:
        """(array name, [.., y, x] scalar field) per channel."""
        if not self.has_channels:
            return [(self.name, self.values)]
        return [(f"{self.name}_{c}", self.values[..., c]) for c in range(self.n_channels)]


def _floats(seq: Sequence[float], n: int, what: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in np.asarray(seq, dtype=np.float64).reshape(-1))
    if len(out) != n:
        raise ValueError(f"{what} needs {n} value(s) in (x, y, z) order, got {list(out)}")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{what} must be finite, got {list(out)}")
    return out


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(f"{what} {name!r} must match {_NAME_RE.pattern}")
    return name


def _jsonable_attrs(attrs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Plain JSON values (numpy scalars/arrays converted), so every format stores the same."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"{type(obj).__name__} is not JSON-able")

    if not attrs:
        return {}
    try:
        text = json.dumps(dict(attrs), default=default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"attrs must be JSON-able with string keys: {exc}") from None
    out = json.loads(text)
    if set(out) != set(attrs):  # json.dumps turned non-string keys into strings
        raise ValueError(f"attrs keys must be strings, got {list(attrs)}")
    return out


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        key = fmt.lower().lstrip(".")
        if key not in FORMATS:
            raise ValueError(f"unknown volume format {fmt!r} for {path}: use one of {FORMATS}")
        return key
    key = path.suffix.lower().lstrip(".")
    if key not in FORMATS:
        allowed = ", ".join(f".{f}" for f in FORMATS)
        raise ValueError(
            f"cannot tell the volume format of {path} from its suffix: use {allowed} or fmt="
        )
    return key


def _lazy_import(module: str, fmt: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"writing .{fmt} needs {module}: {_EXPORT_HINT}") from None


# ---------------------------------------------------------------------------------- writers


def _write_npz(tmp: Path, g: _Grid) -> None:
    """Plain arrays only, so ``np.load(allow_pickle=False)`` reads everything."""
    axes = ("z", "y", "x")[3 - g.nd :] + (("channel",) if g.has_channels else ())
    with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(
            fh,
            **{g.name: g.values},
            spacing=np.asarray(g.spacing, dtype=np.float64),
            origin=np.asarray(g.origin, dtype=np.float64),
            axes=np.asarray(axes, dtype=str),
            param_names=np.asarray(list(g.params), dtype=str),
            param_values=np.asarray(list(g.params.values()), dtype=np.float64),
            attrs=np.asarray(json.dumps(g.attrs)),
        )


def _append_block(vtk_file: Any, xyz: np.ndarray) -> None:
    """What pyevtk's ``VtkFile.appendData`` writes for one scalar array, without its per-value
    ``struct.pack`` (see the module docstring): UInt64 byte count, then the values x fastest."""
    vtk_file.openAppendedData()
    data = np.ravel(xyz, order="F")
    vtk_file.xml.stream.write(struct.pack("=Q", data.nbytes))
    vtk_file.xml.stream.write(data.tobytes())


def _write_vti(tmp: Path, g: _Grid) -> None:
    vtk = _lazy_import("pyevtk.vtk", "vti")
    pad = 3 - g.nd  # a 2-D image is one slice thick in z
    sizes = g.sizes + (1,) * pad
    end = tuple(n - 1 for n in sizes)
    spacing = g.spacing + (1.0,) * pad
    origin = g.origin + (0.0,) * pad
    # [x, y, z] views of C-order [z, y, x] data: pyevtk's indexing, no copy
    arrays = [(n, a.reshape(sizes[::-1]).T) for n, a in g.channels()]

    w = vtk.VtkFile(str(tmp), vtk.VtkImageData)  # writes str(tmp) + ".vti"
    written = Path(w.filename)
    try:
        w.openGrid(start=(0, 0, 0), end=end, origin=origin, spacing=spacing)
        if g.params:
            w.openData("Field")
            for pname, value in g.params.items():
                w.xml.openElement("DataArray").addAttributes(
                    Name=pname,
                    type="Float64",
                    NumberOfTuples=1,
                    NumberOfComponents=1,
                    format="ascii",
                )
                w.xml.addText(repr(value)).closeElement("DataArray")
            w.closeData("Field")
        w.openPiece(start=(0, 0, 0), end=end)
        w.openData("Point", scalars=arrays[0][0])
        for aname, xyz in arrays:
            w.addData(aname, xyz)
        w.closeData("Point")
        w.closePiece()
        w.closeGrid()
        for _, xyz in arrays:
            _append_block(w, xyz)
        w.save()
        os.replace(written, tmp)
    except BaseException:
        w.xml.stream.close()
        written.unlink(missing_ok=True)
        raise


def _nc_attr(value: Any) -> Any:
    """NetCDF attributes hold text, numbers and flat number lists; the rest goes as JSON text
    (NetCDF has no booleans, nulls or nesting)."""
    if isinstance(value, str) or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return np.asarray(value)
    return json.dumps(value)


def _write_nc(tmp: Path, g: _Grid) -> None:
    xr = _lazy_import("xarray", "nc")
    _lazy_import("h5netcdf", "nc")
    dims = ("z", "y", "x")[3 - g.nd :] + (("channel",) if g.has_channels else ())
    coords: dict[str, Any] = {ax: (ax, c) for ax, c in g.coords().items()}
    if g.has_channels:
        coords["channel"] = ("channel", np.arange(g.n_channels))
    coords.update(g.params)  # scalar coordinates: ds.sel/concat over parameter runs just work
    ds = xr.Dataset({g.name: (dims, g.values)}, coords=coords)
    for ax, s in zip(g.axes, g.spacing):
        ds[ax].attrs["spacing"] = s  # the coordinates alone lose it for a one-sample axis
    ds.attrs.update({k: _nc_attr(v) for k, v in g.attrs.items()})
    ds.to_netcdf(tmp, engine="h5netcdf")


def _raw_sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_raw(tmp: Path, g: _Grid, sidecar_tmp: Path, data_name: str) -> None:
    header = {
        "file": data_name,
        "dtype": "<f4",
        "order": "channel fastest, then x" if g.has_channels else "x fastest",
        "dims": dict(zip(g.axes, g.sizes)),
        "shape": list(g.values.shape),
        "components": g.n_channels,
        "spacing": dict(zip(g.axes, g.spacing)),
        "origin": dict(zip(g.axes, g.origin)),
        "name": g.name,
        "params": g.params,
        "attrs": g.attrs,
    }
    with open(tmp, "wb") as fh:
        g.values.astype("<f4", order="C").tofile(fh)
    sidecar_tmp.write_text(json.dumps(header, indent=2) + "\n")


# ------------------------------------------------------------------------------------- API


def write_volume(
    path: str | os.PathLike[str],
    volume: Any,
    *,
    fmt: str | None = None,
    spacing: Sequence[float] | None = None,
    origin: Sequence[float] | None = None,
    name: str = "value",
    param_names: Sequence[str] = (),
    param_values: Sequence[float] = (),
    attrs: Mapping[str, Any] | None = None,
    spatial_ndim: int | None = None,
) -> Path:
    """Write `volume` ([z, y, x], [y, x], optionally [..., C]) to `path`; returns `path`.

    Formats and where the metadata goes (axis conventions in the module docstring):

    * ``npz``: key `name` holds the array as given; ``spacing``/``origin`` (x, y, z order),
      ``axes`` (the array's axis names, e.g. ``["z", "y", "x"]``), ``param_names``,
      ``param_values`` and ``attrs`` (a JSON string) beside it.
    * ``vti``: VTK XML ImageData, point data `name` (or ``name_0..``), Origin/Spacing in the
      header; parameters as one-value FieldData arrays named by `param_names` (ParaView lists
      them under "Field Data"). attrs are not stored (VTK has no place for free-form metadata).
    * ``nc``: NetCDF4 (h5netcdf); variable `name` on dims ``(z, y, x[, channel])`` with
      coordinates in physical units (each with a ``spacing`` attribute), parameters as scalar
      coordinates, attrs as global attributes (lists of numbers as arrays; booleans, nulls and
      nested values as JSON text).
    * ``raw``: little-endian float32, C order of the array (x fastest; with channels, the
      channel fastest, then x), plus ``<path>.json`` describing dims, spacing, origin, params
      and attrs. The sidecar is published first, so a ``.raw`` never lacks its description.

    The format comes from the suffix unless `fmt` is given (then `path` is used as is).
    """
    path = Path(path)
    key = _format_of(path, fmt)
    grid = _Grid(volume, spacing, origin, name, param_names, param_values, attrs, spatial_ndim)
    if key == "raw":
        # inner context exits first: the sidecar is in place before the data appears
        with atomic_path(path) as tmp, atomic_path(_raw_sidecar(path)) as side_tmp:
            _write_raw(tmp, grid, side_tmp, path.name)
        return path
    writer = {"npz": _write_npz, "vti": _write_vti, "nc": _write_nc}[key]
    with atomic_path(path) as tmp:
        writer(tmp, grid)
    return path


def parse_param_assignments(
    texts: Iterable[str | float], param_names: Sequence[str]
) -> list[float]:
    """Parameter values in `param_names` order from ``["t=3.7"]`` or positional ``["3.7"]``.

    Both spellings exist because the CLI historically took bare values (``--param 3.7``) and
    names are safer once a model has several parameters. They mix like a Python call:
    positional values fill the first names, ``name=value`` the rest, in any order.
    """
    if isinstance(texts, str):
        texts = [texts]
    names = list(param_names)
    expected = ", ".join(names) if names else "none"
    got: dict[str, float] = {}
    positional = 0
    seen_named = False
    for item in texts:
        if isinstance(item, int | float) and not isinstance(item, bool):
            key, raw = None, repr(float(item))
        else:
            text = str(item).strip()
            key, sep, raw = text.partition("=")
            if sep:
                key, raw = key.strip(), raw.strip()
            else:
                key, raw = None, text
        if key is None:
            if seen_named:
                raise ValueError(f"positional parameter value {item!r} after a name=value one")
            if positional >= len(names):
                raise ValueError(
                    f"too many parameter values: {positional + 1} given, the model has "
                    f"{len(names)} ({expected})"
                )
            key = names[positional]
            positional += 1
        else:
            seen_named = True
            if key not in names:
                raise ValueError(f"unknown parameter {key!r} in {item!r} (parameters: {expected})")
            if key in got:
                raise ValueError(f"parameter {key!r} given twice")
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"parameter {key!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"parameter {key!r} must be finite, got {raw!r}")
        got[key] = value
    missing = [n for n in names if n not in got]
    if missing:
        raise ValueError(
            f"missing value for parameter(s) {', '.join(missing)} (give {expected}, "
            "as name=value or in that order)"
        )
    return [got[n] for n in names]
