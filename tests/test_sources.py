"""Readers: every format, layout rules, parameter values, provenance."""

from __future__ import annotations

import hashlib
import json
import logging

import h5py
import numpy as np
import pytest

from hyperinr.config import Config, DatasetConfig, ParamsConfig, RawFormat
from hyperinr.data.errors import DataError
from hyperinr.data.sources import load_params, open_source, resolve_files, sha256_file


def _cfg(**kw) -> DatasetConfig:
    """A DatasetConfig without the default TGV sidecar (params = frame index unless given)."""
    kw.setdefault("params", ParamsConfig())
    return DatasetConfig(**kw)


def _vol(seed: int, shape=(3, 4, 5)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_raw_big_endian_header_and_axis_order(tmp_path):
    # logical volume (z, y, x) = (3, 4, 5); file stores x slowest ("xyz"), big-endian f8,
    # after a 16-byte header.
    vols = [_vol(i).astype(np.float64) for i in range(2)]
    files = []
    for i, v in enumerate(vols):
        path = tmp_path / f"v{i}.raw"
        payload = v.transpose(2, 1, 0).astype(">f8").tobytes()
        path.write_bytes(b"H" * 16 + payload)
        files.append(str(path))
    cfg = _cfg(
        format="raw",
        files=tuple(files),
        raw=RawFormat(dims=(5, 4, 3), dtype=">f8", header_bytes=16, axis_order="xyz"),
        params=ParamsConfig(values=((0.0,), (1.0,))),
    )
    src = open_source(cfg)
    assert src.n_frames == 2 and src.frame_shape == (3, 4, 5)
    assert src.source_dtype == np.dtype(">f8")
    for i, v in enumerate(vols):
        got = src.read(i)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, v.astype(np.float32))
    assert src.provenance["raw"]["dtype"] == ">f8"


def test_raw_default_zyx_and_2d(tmp_path):
    v = _vol(0)
    (tmp_path / "a.raw").write_bytes(v.tobytes())
    cfg = _cfg(
        format="raw",
        files=(str(tmp_path / "a.raw"),),
        raw=RawFormat(dims=(5, 4, 3)),
        params=ParamsConfig(values=((0.0,),)),
    )
    np.testing.assert_array_equal(open_source(cfg).read(0), v)
    img = _vol(1, (4, 6))
    (tmp_path / "b.raw").write_bytes(img.astype("<u2").tobytes())
    cfg = _cfg(
        format="raw",
        files=(str(tmp_path / "b.raw"),),
        raw=RawFormat(dims=(6, 4), dtype="<u2"),
        params=ParamsConfig(values=((0.0,),)),
    )
    assert open_source(cfg).frame_shape == (4, 6)


def test_raw_bad_axis_order(tmp_path):
    (tmp_path / "a.raw").write_bytes(b"\0" * 240)
    cfg = _cfg(
        format="raw",
        files=(str(tmp_path / "a.raw"),),
        raw=RawFormat(dims=(5, 4, 3), axis_order="zzy"),
    )
    with pytest.raises(DataError, match="axis_order"):
        open_source(cfg)


def test_npy_per_file_and_stack(tmp_path):
    vols = [_vol(i) for i in range(3)]
    for i, v in enumerate(vols):
        np.save(tmp_path / f"f{i}.npy", v.astype(np.float64))
    cfg = _cfg(format="npy", files=(str(tmp_path / "f*.npy"),), params=ParamsConfig())
    src = open_source(cfg)
    assert src.n_frames == 3 and src.source_dtype == np.float64
    np.testing.assert_array_equal(src.read(2), vols[2])
    np.save(tmp_path / "stack.npy", np.stack(vols))
    cfg = _cfg(format="npy", files=(str(tmp_path / "stack.npy"),))
    src = open_source(cfg)
    assert src.n_frames == 3 and src.labels[1].endswith("stack.npy[1]")
    np.testing.assert_array_equal(list(src), vols)
    # no values and no sidecar: the parameter is the frame index
    np.testing.assert_array_equal(src.params[:, 0], [0, 1, 2])
    assert src.provenance["params"] == {"source": "frame_index"}


def test_glob_natural_order(tmp_path):
    for i in (10, 2, 1):
        np.save(tmp_path / f"frame_{i}.npy", np.full((2, 2), i, np.float32))
    files = resolve_files([str(tmp_path / "frame_*.npy")])
    assert [p.name for p in files] == ["frame_1.npy", "frame_2.npy", "frame_10.npy"]


def test_hdf5_stack_and_per_file(tmp_path):
    vols = [_vol(i) for i in range(4)]
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f.create_dataset("grp/field", data=np.stack(vols))
    cfg = _cfg(
        format="hdf5",
        files=(str(tmp_path / "s.h5"),),
        hdf5_dataset="grp/field",
        params=ParamsConfig(values=((0.0,), (0.5,), (1.0,), (2.0,))),
    )
    src = open_source(cfg)
    assert src.n_frames == 4 and src.frame_shape == (3, 4, 5)
    np.testing.assert_array_equal(src.read(3), vols[3])
    for i, v in enumerate(vols):
        with h5py.File(tmp_path / f"p{i}.h5", "w") as f:
            f.create_dataset("v", data=v[0])  # 2-D frames
    cfg = _cfg(
        format="hdf5", files=(str(tmp_path / "p*.h5"),), hdf5_dataset="v", params=ParamsConfig()
    )
    src = open_source(cfg)
    assert src.frame_shape == (4, 5)
    np.testing.assert_array_equal(src.read(1), vols[1][0])


def test_netcdf4_with_cf_packing(tmp_path):
    h5netcdf = pytest.importorskip("h5netcdf")
    data = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    path = tmp_path / "d.nc"
    with h5netcdf.File(path, "w") as f:
        f.dimensions = {"time": 2, "y": 3, "x": 4}
        var = f.create_variable("temp", ("time", "y", "x"), dtype="i2")
        var[...] = data
        var.attrs["scale_factor"] = 0.5
        var.attrs["add_offset"] = 10.0
    cfg = _cfg(format="netcdf", files=(str(path),), hdf5_dataset="temp", params=ParamsConfig())
    src = open_source(cfg)
    np.testing.assert_allclose(src.read(1), data[1] * 0.5 + 10.0)


def test_sidecar_params_and_names(tmp_path, monkeypatch):
    np.save(tmp_path / "s.npy", np.zeros((3, 2, 2), np.float32))
    (tmp_path / "p.json").write_text(
        json.dumps({"names": ["theta", "phi"], "values": [[0, 1], [0, 2], [1, 1]]})
    )
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the working directory
    cfg = _cfg(format="npy", files=("s.npy",), params=ParamsConfig(sidecar="p.json"))
    src = open_source(cfg)
    assert src.param_names == ("theta", "phi")
    assert src.params.shape == (3, 2) and src.params.dtype == np.float64
    assert src.provenance["params"]["sha256"] == sha256_file(tmp_path / "p.json")


def test_load_params_flat_list_and_conflicts(tmp_path):
    side = tmp_path / "p.json"
    side.write_text(json.dumps({"values": [0.0, 0.5, 1.0]}))
    values, names, _ = load_params(ParamsConfig(sidecar=str(side)), 3)
    assert names == ("t",) and values.shape == (3, 1)
    with pytest.raises(DataError, match="2 values per frame but 1"):
        load_params(ParamsConfig(values=((0.0, 1.0), (1.0, 0.0))), 2)


def test_inline_values_win_over_an_inherited_sidecar(tmp_path, caplog):
    """The default config's sidecar reaches every user config; inline values must win."""
    side = tmp_path / "p.json"
    side.write_text(json.dumps({"names": ["s"], "values": [9.0, 10.0]}))
    for sidecar in (str(side), str(tmp_path / "missing.json")):  # never read, not even checked
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hyperinr"):
            values, names, prov = load_params(
                ParamsConfig(values=((1.0,), (2.0,)), sidecar=sidecar), 2
            )
        assert names == ("t",) and values[:, 0].tolist() == [1.0, 2.0]
        assert prov == {"source": "inline"}
        lines = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
        assert len(lines) == 1 and sidecar in lines[0] and "inline" in lines[0]
    # the built-in defaults carry the TGV sidecar: a user's inline values still win
    params = Config.from_dict({"dataset": {"params": {"values": [1, 2]}}}).dataset.params
    assert params.sidecar == "resources/tgv64/params.json"
    values, _, _ = load_params(params, 2)
    assert values[:, 0].tolist() == [1.0, 2.0]
    # without inline values the sidecar is read, and a missing one is still an error
    with pytest.raises(DataError, match="sidecar not found"):
        load_params(ParamsConfig(sidecar=str(tmp_path / "missing.json")), 2)


def test_provenance_hashes(tmp_path):
    np.save(tmp_path / "s.npy", np.ones((2, 2, 2), np.float32))
    src = open_source(_cfg(format="npy", files=(str(tmp_path / "s.npy"),)))
    entry = src.provenance["files"][0]
    assert entry["path"] == str(tmp_path / "s.npy")
    assert entry["sha256"] == hashlib.sha256((tmp_path / "s.npy").read_bytes()).hexdigest()
    assert src.provenance["format"] == "npy"


def test_single_file_must_be_a_stack(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(DataError, match="one.npy.*stack"):
        open_source(_cfg(format="npy", files=(str(tmp_path / "one.npy"),)))
