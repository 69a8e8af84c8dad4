"""write_volume: every format read back by an independent reader, axis order, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hyperinr import volume_io
from hyperinr.volume_io import FORMATS, parse_param_assignments, write_volume


def _xyz_volume(nz=3, ny=4, nx=5) -> np.ndarray:
    """[z, y, x] with value 100 z + 10 y + x: any axis mix-up changes the values."""
    z, y, x = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return (100 * z + 10 * y + x).astype(np.float32)


def _read_vti(path):
    vtk = pytest.importorskip("vtk")
    from vtk.util import numpy_support

    reader = vtk.vtkXMLImageDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    point = image.GetPointData()
    arrays = {
        point.GetArrayName(i): numpy_support.vtk_to_numpy(point.GetArray(i))
        for i in range(point.GetNumberOfArrays())
    }
    field = image.GetFieldData()
    fields = {
        field.GetArrayName(i): numpy_support.vtk_to_numpy(field.GetArray(i))
        for i in range(field.GetNumberOfArrays())
    }
    return image, arrays, fields


# ----------------------------------------------------------------------------------- .vti


def test_vti_axis_order_spacing_origin_and_params(tmp_path):
    vol = _xyz_volume()
    spacing, origin = (0.5, 0.25, 2.0), (-1.0, 3.0, 10.0)
    out = write_volume(
        tmp_path / "v.vti",
        vol,
        spacing=spacing,
        origin=origin,
        name="density",
        param_names=("t", "Re"),
        param_values=(3.7, 1 / 3),
    )
    assert out == tmp_path / "v.vti"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.vti"]  # no temporaries left
    image, arrays, fields = _read_vti(out)
    assert image.GetDimensions() == (5, 4, 3)  # (nx, ny, nz)
    assert image.GetSpacing() == pytest.approx(spacing)
    assert image.GetOrigin() == pytest.approx(origin)
    assert list(arrays) == ["density"]
    values = arrays["density"]
    assert values.dtype == np.float32
    for z in range(3):
        for y in range(4):
            for x in range(5):
                pid = image.ComputePointId([x, y, z])
                assert values[pid] == 100 * z + 10 * y + x
                assert image.GetPoint(pid) == pytest.approx(
                    (origin[0] + 0.5 * x, origin[1] + 0.25 * y, origin[2] + 2.0 * z)
                )
    assert fields.keys() == {"t", "Re"}
    assert fields["t"].tolist() == [3.7]
    assert fields["Re"].tolist() == [1 / 3]  # repr of a float: exact


def test_vti_default_grid_is_unit_cube(tmp_path):
    image, arrays, fields = _read_vti(write_volume(tmp_path / "v.vti", _xyz_volume(2, 3, 5)))
    assert image.GetDimensions() == (5, 3, 2)
    assert image.GetSpacing() == pytest.approx((1 / 4, 1 / 2, 1.0))
    assert image.GetOrigin() == (0.0, 0.0, 0.0)
    assert fields == {}


def test_vti_image_and_channels(tmp_path):
    img = _xyz_volume(1, 4, 5)[0]  # [y, x]
    image, arrays, _ = _read_vti(write_volume(tmp_path / "i.vti", img, spacing=(1.0, 2.0)))
    assert image.GetDimensions() == (5, 4, 1)
    assert image.GetSpacing()[:2] == (1.0, 2.0)
    np.testing.assert_array_equal(arrays["value"], img.ravel())

    vol = _xyz_volume()
    two = np.stack([vol, -vol], axis=-1)  # [z, y, x, 2]
    image, arrays, _ = _read_vti(write_volume(tmp_path / "c.vti", two, name="u"))
    assert image.GetDimensions() == (5, 4, 3)
    assert list(arrays) == ["u_0", "u_1"]
    np.testing.assert_array_equal(arrays["u_0"], vol.ravel())
    np.testing.assert_array_equal(arrays["u_1"], -vol.ravel())


def test_vti_binary_blocks_match_pyevtk(tmp_path):
    """The fast appended-data writer produces exactly pyevtk's own bytes."""
    pytest.importorskip("pyevtk")
    from pyevtk.vtk import VtkFile, VtkImageData

    xyz = np.random.default_rng(0).random((3, 4, 5)).astype(np.float64).T  # [x, y, z] view
    files = []
    for tag, append in (
        ("ours", lambda w, a: volume_io._append_block(w, a)),
        ("pyevtk", lambda w, a: w.appendData(a)),
    ):
        w = VtkFile(str(tmp_path / tag), VtkImageData)
        w.openGrid(start=(0, 0, 0), end=(4, 3, 2), origin=(0, 0, 0), spacing=(1, 1, 1))
        w.openPiece(start=(0, 0, 0), end=(4, 3, 2))
        w.openData("Point", scalars="a")
        w.addData("a", xyz)
        w.addData("b", xyz[::-1])
        w.closeData("Point")
        w.closePiece()
        w.closeGrid()
        append(w, xyz)
        append(w, np.asfortranarray(xyz[::-1]))
        w.save()
        files.append((tmp_path / f"{tag}.vti").read_bytes())
    assert files[0] == files[1]


# ------------------------------------------------------------------------------------ .nc


def test_nc_roundtrip_with_xarray(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    vol = _xyz_volume()
    attrs = {"model": "hyperinr", "epoch": 12, "ranges": [0.0, 1.5], "ok": True, "cfg": {"a": 1}}
    out = write_volume(
        tmp_path / "v.nc",
        vol,
        spacing=(0.5, 0.25, 2.0),
        origin=(-1.0, 3.0, 10.0),
        param_names=["t"],
        param_values=[3.7],
        attrs={**attrs, "np": np.float32(0.5)},
    )
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        da = ds["value"]
        assert da.dims == ("z", "y", "x")
        np.testing.assert_array_equal(da.values, vol)
        assert da.sel(x=-1.0 + 0.5 * 4, y=3.0 + 0.25 * 1, z=10.0 + 2.0 * 2).item() == 214
        np.testing.assert_allclose(ds["x"].values, -1.0 + 0.5 * np.arange(5))
        np.testing.assert_allclose(ds["z"].values, [10.0, 12.0, 14.0])
        assert ds["y"].attrs["spacing"] == 0.25
        assert "t" in ds.coords and ds.coords["t"].ndim == 0 and float(ds["t"]) == 3.7
        assert ds.attrs["model"] == "hyperinr" and ds.attrs["epoch"] == 12
        assert list(ds.attrs["ranges"]) == [0.0, 1.5]
        assert json.loads(ds.attrs["ok"]) is True
        assert json.loads(ds.attrs["cfg"]) == {"a": 1}
        assert ds.attrs["np"] == 0.5


def test_nc_image_and_channels(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    img = _xyz_volume(1, 4, 5)[0]
    with xr.open_dataset(write_volume(tmp_path / "i.nc", img), engine="h5netcdf") as ds:
        assert ds["value"].dims == ("y", "x")
        np.testing.assert_allclose(ds["y"].values, np.arange(4) / 3)
        np.testing.assert_array_equal(ds["value"].values, img)
    # [y, x, C]: only spatial_ndim tells it from a [z, y, x] volume
    rgb = np.stack([img, img + 1, img + 2], axis=-1)
    out = write_volume(tmp_path / "c.nc", rgb, spacing=(1.0, 1.0), spatial_ndim=2)
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds["value"].dims == ("y", "x", "channel")
        assert ds["channel"].values.tolist() == [0, 1, 2]
        np.testing.assert_array_equal(ds["value"].values, rgb)


# ----------------------------------------------------------------------------------- .raw


def test_raw_bytes_and_sidecar(tmp_path):
    vol = _xyz_volume().astype(">f8")  # any dtype/byte order in, "<f4" out
    out = write_volume(
        tmp_path / "v.raw", vol, origin=(1, 2, 3), param_names=["t"], param_values=[0.5]
    )
    header = json.loads((tmp_path / "v.raw.json").read_text())
    assert header["dtype"] == "<f4" and header["order"] == "x fastest"
    assert header["dims"] == {"x": 5, "y": 4, "z": 3}
    assert header["spacing"] == {"x": 0.25, "y": pytest.approx(1 / 3), "z": 0.5}
    assert header["origin"] == {"x": 1.0, "y": 2.0, "z": 3.0}
    assert header["params"] == {"t": 0.5}
    assert header["file"] == "v.raw"
    flat = np.fromfile(out, dtype="<f4")
    assert flat[:6].tolist() == [0, 1, 2, 3, 4, 10]  # x fastest, then y
    d = header["dims"]
    np.testing.assert_array_equal(flat.reshape(d["z"], d["y"], d["x"]), vol)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.raw", "v.raw.json"]


def test_raw_channels_interleaved(tmp_path):
    vol = _xyz_volume()
    two = np.stack([vol, -vol], axis=-1)
    out = write_volume(tmp_path / "c.raw", two)
    header = json.loads((tmp_path / "c.raw.json").read_text())
    assert header["components"] == 2 and header["shape"] == [3, 4, 5, 2]
    flat = np.fromfile(out, dtype="<f4")
    assert flat[:4].tolist() == [0, -0, 1, -1]
    np.testing.assert_array_equal(flat.reshape(header["shape"]), two)


# ----------------------------------------------------------------------------------- .npz


def test_npz_roundtrip_without_pickle(tmp_path):
    vol = _xyz_volume().astype(np.float64)
    out = write_volume(
        tmp_path / "v.npz",
        vol,
        spacing=(1, 2, 3),
        param_names=("t", "Re"),
        param_values=(1.5, 100),
        attrs={"note": "x"},
    )
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["value"], vol)
        assert z["value"].dtype == np.float64
        assert z["spacing"].tolist() == [1.0, 2.0, 3.0]
        assert z["origin"].tolist() == [0.0, 0.0, 0.0]
        assert z["axes"].tolist() == ["z", "y", "x"]
        assert z["param_names"].tolist() == ["t", "Re"]
        assert z["param_values"].tolist() == [1.5, 100.0]
        assert json.loads(str(z["attrs"])) == {"note": "x"}


def test_npz_image_channels_and_no_params(tmp_path):
    img = np.stack([_xyz_volume(1, 4, 5)[0]] * 2, axis=-1)
    out = write_volume(tmp_path / "i.npz", img, spatial_ndim=2)
    with np.load(out, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["value"], img)
        assert z["axes"].tolist() == ["y", "x", "channel"]
        assert z["spacing"].tolist() == pytest.approx([1 / 4, 1 / 3])
        assert z["param_names"].tolist() == [] and z["param_values"].tolist() == []


# --------------------------------------------------------------------------- errors, atomic


def test_format_from_suffix_and_explicit(tmp_path):
    with pytest.raises(ValueError, match=r"v\.vtk.*\.npz, \.vti, \.nc, \.raw") as exc:
        write_volume(tmp_path / "v.vtk", _xyz_volume())
    assert "\n" not in str(exc.value)
    with pytest.raises(ValueError, match="unknown volume format"):
        write_volume(tmp_path / "v.npz", _xyz_volume(), fmt="hdf")
    out = write_volume(tmp_path / "v.dat", _xyz_volume(), fmt="npz")  # path used as is
    assert out.name == "v.dat" and np.load(out)["value"].shape == (3, 4, 5)
    assert write_volume(tmp_path / "V.NPZ", _xyz_volume()).exists()
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spacing": (1, 1)}, r"spacing needs 3 value\(s\) in \(x, y, z\) order"),
        ({"spacing": (1, 1, 0)}, "positive"),
        ({"param_names": ["t"], "param_values": [1, 2]}, "1 parameter name"),
        ({"param_names": ["x"], "param_values": [1]}, "clash"),
        ({"param_names": ["a b"], "param_values": [1]}, "must match"),
        ({"attrs": {"f": object()}}, "JSON-able"),
        ({"attrs": {"f": float("nan")}}, "JSON-able"),
        ({"spatial_ndim": 2}, "neither"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    vol = _xyz_volume(2, 2, 2)[..., None, None] if kwargs.get("spatial_ndim") else _xyz_volume()
    with pytest.raises(ValueError, match=message):
        write_volume(tmp_path / "v.npz", vol, **kwargs)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", FORMATS)
def test_failed_write_leaves_no_file_and_keeps_old_one(tmp_path, monkeypatch, fmt):
    if fmt == "vti":
        pytest.importorskip("pyevtk")
    if fmt == "nc":
        pytest.importorskip("xarray")
        pytest.importorskip("h5netcdf")
    path = tmp_path / f"v.{fmt}"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    # fail after the format's writer has started producing bytes
    target = {
        "npz": (np, "savez"),
        "vti": (volume_io, "_append_block"),
        "raw": (json, "dumps"),
    }.get(fmt)
    if fmt == "nc":
        import xarray

        target = (xarray.Dataset, "to_netcdf")
    monkeypatch.setattr(*target, boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_volume(path, _xyz_volume(), param_names=["t"], param_values=[1.0])
    assert not list(tmp_path.iterdir())

    monkeypatch.undo()
    write_volume(path, _xyz_volume())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(*target, boom)
    with pytest.raises(RuntimeError):
        write_volume(path, 2 * _xyz_volume())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_missing_export_dependency_is_one_line(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "xarray", None)  # makes `import xarray` fail
    with pytest.raises(ImportError, match=r"install hyperinr\[export\]") as exc:
        write_volume(tmp_path / "v.nc", _xyz_volume())
    assert "\n" not in str(exc.value)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ parse_param_assignments


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["t=3.7"], [3.7]),
        (["3.7"], [3.7]),
        ([3.7], [3.7]),
        ("t=-1e-3", [-0.001]),
    ],
)
def test_parse_one_param(texts, expected):
    assert parse_param_assignments(texts, ["t"]) == expected


def test_parse_several_params():
    names = ("t", "Re")
    assert parse_param_assignments(["Re=100", "t=0.5"], names) == [0.5, 100.0]
    assert parse_param_assignments(["0.5", "100"], names) == [0.5, 100.0]
    assert parse_param_assignments(["0.5", " Re = 100 "], names) == [0.5, 100.0]
    assert parse_param_assignments([], ()) == []


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["u=1"], r"unknown parameter 'u'.*\(parameters: t, Re\)"),
        (["t=1"], "missing value for parameter.*Re"),
        (["1"], "missing value for parameter.*Re"),
        (["1", "2", "3"], "too many parameter values"),
        (["t=1", "2"], "positional parameter value '2' after"),
        (["t=1", "t=2"], "'t' given twice"),
        (["1", "t=2"], "'t' given twice"),
        (["t=abc", "Re=1"], "'abc' is not a number"),
        (["t=nan", "Re=1"], "finite"),
        (["t=", "Re=1"], "'' is not a number"),
    ],
)
def test_parse_errors_are_one_line(texts, message):
    with pytest.raises(ValueError, match=message) as exc:
        parse_param_assignments(texts, ["t", "Re"])
    assert "\n" not in str(exc.value)


def test_nc_export_survives_the_simulator_import(tmp_path, monkeypatch):
    """fluidsim replaces h5netcdf.File by a functools.partial on import (fluidsim/util/util.py);
    the simulate stage undoes it right after its import, so the NetCDF export (xarray's h5netcdf
    backend) still works in the same process."""
    import functools

    xr = pytest.importorskip("xarray")
    h5netcdf = pytest.importorskip("h5netcdf")
    from hyperinr.data.simulate import _undo_fluidsim_h5netcdf_patch

    original = h5netcdf.File
    monkeypatch.setattr(h5netcdf, "File", functools.partial(original, decode_vlen_strings=True))
    with pytest.raises(TypeError):  # what fluidsim's patch does to xarray
        write_volume(tmp_path / "broken.nc", _xyz_volume())
    _undo_fluidsim_h5netcdf_patch()
    assert h5netcdf.File is original
    with xr.open_dataset(write_volume(tmp_path / "v.nc", _xyz_volume()), engine="h5netcdf") as ds:
        assert ds["value"].shape == (3, 4, 5)
