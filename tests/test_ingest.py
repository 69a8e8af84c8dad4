"""Ingest: round trips for every format, normalisation, split rule, and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hyperinr.config import DatasetConfig, ParamsConfig, RawFormat, SplitConfig, load_config
from hyperinr.data import DataError, ingest, open_dataset, split_indices

ROOT = Path(__file__).resolve().parents[1]


def _cfg(**kw) -> DatasetConfig:
    """A DatasetConfig without the default TGV sidecar (params = frame index unless given)."""
    kw.setdefault("params", ParamsConfig())
    return DatasetConfig(**kw)


def _frames(n=5, shape=(3, 4, 5), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, *shape)) * 10 - 3).astype(np.float32)


def _values(n: int) -> tuple[tuple[float, ...], ...]:
    return tuple((0.5 * i,) for i in range(n))


def _check_round_trip(out: Path, frames: np.ndarray, train: list[int]) -> None:
    ds = open_dataset(out)
    lo = float(frames[train].min())
    hi = float(frames[train].max())
    assert ds.value_range == pytest.approx((lo, hi))
    assert list(ds.train_indices) == train
    assert list(ds.eval_indices) == list(range(len(frames)))
    stored = ds.frames[...]
    assert stored.dtype == np.float32 and stored.shape == frames.shape
    np.testing.assert_allclose(stored, (frames.astype(np.float64) - lo) / (hi - lo), atol=1e-6)
    np.testing.assert_allclose(ds.to_physical(stored), frames, atol=1e-5)
    assert stored[train].min() == 0.0 and stored[train].max() == 1.0


# --------------------------------------------------------------------------- round trips


def test_raw_round_trip_big_endian_header_axis_order(tmp_path):
    frames = _frames(4)
    for i, f in enumerate(frames):  # file order x slowest, big-endian, 32-byte header
        (tmp_path / f"t{i:02d}.raw").write_bytes(
            bytes(32) + f.transpose(2, 1, 0).astype(">f4").tobytes()
        )
    cfg = _cfg(
        format="raw",
        files=(str(tmp_path / "t*.raw"),),
        raw=RawFormat(dims=(5, 4, 3), dtype=">f4", header_bytes=32, axis_order="xyz"),
        params=ParamsConfig(values=_values(4)),
        split=SplitConfig(train_every=2),
    )
    out = ingest(cfg, tmp_path / "ds.zarr", config_hash="cafe")
    _check_round_trip(out, frames, [0, 2, 3])
    ds = open_dataset(out)
    assert ds.attrs.source_dtype == "float32" and ds.config_hash == "cafe"
    assert [Path(f["path"]).name for f in ds.attrs.provenance["files"]] == [
        f"t{i:02d}.raw" for i in range(4)
    ]
    assert ds.attrs.raw["provenance"]["raw"]["header_bytes"] == 32


def test_npy_round_trips(tmp_path):
    frames = _frames(5)
    for i, f in enumerate(frames):
        np.save(tmp_path / f"f{i}.npy", f)
    cfg = _cfg(
        format="npy", files=(str(tmp_path / "f*.npy"),), params=ParamsConfig(values=_values(5))
    )
    _check_round_trip(ingest(cfg, tmp_path / "a.zarr"), frames, [0, 4])
    np.save(tmp_path / "stack.npy", frames[:, 0])  # 2-D frames in one file
    cfg = _cfg(
        format="npy",
        files=(str(tmp_path / "stack.npy"),),
        params=ParamsConfig(values=_values(5)),
        split=SplitConfig(train_every=1),
    )
    _check_round_trip(ingest(cfg, tmp_path / "b.zarr"), frames[:, 0], [0, 1, 2, 3, 4])
    assert open_dataset(tmp_path / "b.zarr").dims == (4, 5)


def test_hdf5_round_trips(tmp_path, capsys):
    frames = _frames(6)
    with h5py.File(tmp_path / "all.h5", "w") as f:
        f.create_dataset("fields/v", data=frames)
    (tmp_path / "p.json").write_text(json.dumps({"names": ["t"], "values": _values(6)}))
    cfg = _cfg(
        format="hdf5",
        files=(str(tmp_path / "all.h5"),),
        hdf5_dataset="fields/v",
        params=ParamsConfig(sidecar=str(tmp_path / "p.json")),
        split=SplitConfig(train_every=2),
    )
    _check_round_trip(ingest(cfg, tmp_path / "a.zarr"), frames, [0, 2, 4, 5])
    assert "6 frames of 3x4x5" in capsys.readouterr().out
    for i, f in enumerate(frames):
        with h5py.File(tmp_path / f"one_{i}.nc", "w") as h:
            h.create_dataset("v", data=f)
    cfg = _cfg(
        format="netcdf",
        files=(str(tmp_path / "one_*.nc"),),
        hdf5_dataset="v",
        params=ParamsConfig(values=_values(6)),
        split=SplitConfig(train_indices=(5, 0, 3)),
    )
    _check_round_trip(ingest(cfg, tmp_path / "b.zarr"), frames, [0, 3, 5])


def test_eval_frames_may_leave_unit_range(tmp_path):
    frames = np.stack([np.full((2, 3), v, np.float32) for v in (0, 5, 1, 2)])
    frames[0, 0, 0] = 0.5
    np.save(tmp_path / "s.npy", frames)
    cfg = _cfg(
        format="npy", files=(str(tmp_path / "s.npy"),), split=SplitConfig(train_indices=(0, 3))
    )
    ds = open_dataset(ingest(cfg, tmp_path / "d.zarr"))
    assert ds.value_range == (0.0, 2.0)
    assert float(ds.frames[1].max()) == pytest.approx(2.5)  # unseen frame above the range


def test_nvs_channels(tmp_path):
    rgb = np.random.default_rng(3).random((3, 4, 5, 3)).astype(np.float32)
    np.save(tmp_path / "img.npy", rgb)
    cfg = _cfg(
        task="nvs",
        format="npy",
        files=(str(tmp_path / "img.npy"),),
        params=ParamsConfig(names=("theta", "phi"), values=((0, 0), (0, 1), (1, 0))),
    )
    ds = open_dataset(ingest(cfg, tmp_path / "d.zarr"))
    assert ds.dims == (4, 5) and ds.n_channels == 3 and ds.frames.shape == (3, 4, 5, 3)
    assert ds.param_range == ((0.0, 1.0), (0.0, 1.0))


# --------------------------------------------------------------------------- split rule


@pytest.mark.parametrize(
    ("n", "every", "expected"),
    [
        (10, 4, [0, 4, 8, 9]),
        (9, 4, [0, 4, 8]),
        (41, 4, [*range(0, 41, 4)]),
        (3, 5, [0, 2]),
        (4, 1, [0, 1, 2, 3]),
        (4, None, [0, 1, 2, 3]),
    ],
)
def test_split_every(n, every, expected):
    assert split_indices(SplitConfig(train_every=every), n) == expected


def test_split_explicit_and_invalid():
    assert split_indices(SplitConfig(train_indices=(4, 0, 2)), 5) == [0, 2, 4]
    with pytest.raises(DataError, match="train_indices.*outside"):
        split_indices(SplitConfig(train_indices=(0, 5)), 5)
    with pytest.raises(DataError, match="repeated"):
        split_indices(SplitConfig(train_indices=(0, 0)), 5)
    with pytest.raises(DataError, match="train_every"):
        split_indices(SplitConfig(train_every=0), 5)


def test_paper_config_trains_on_21_of_105_frames():
    """Sec. 4 of the paper: 105 timesteps, 21 for training (every 5th + the last would be 22)."""
    cfg = load_config(ROOT / "config/paper/tsr_pressure.yaml")
    n = cfg.simulate.n_frames
    assert n == 105
    train = split_indices(cfg.dataset.split, n)
    assert len(train) == 21
    # the rule stated in the file: evenly spread, first and last frame included
    assert train == np.round(np.linspace(0, n - 1, 21)).astype(int).tolist()
    assert train[0] == 0 and train[-1] == n - 1
    assert set(np.diff(train).tolist()) <= {5, 6}


# --------------------------------------------------------------------------- bad input


def _fails(cfg: DatasetConfig, out: Path, *needles: str) -> str:
    with pytest.raises(DataError) as info:
        ingest(cfg, out)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return message


def test_raw_wrong_size(tmp_path):
    good, bad = tmp_path / "a.raw", tmp_path / "b.raw"
    good.write_bytes(np.zeros(60, "<f4").tobytes())
    bad.write_bytes(np.zeros(59, "<f4").tobytes())
    cfg = _cfg(
        format="raw",
        files=(str(good), str(bad)),
        raw=RawFormat(dims=(5, 4, 3)),
        params=ParamsConfig(values=_values(2)),
    )
    _fails(cfg, tmp_path / "o.zarr", str(bad), "236 bytes", "expected 240")


@pytest.mark.parametrize("layout", ["files", "stack"])
def test_nan_or_inf_in_a_frame(tmp_path, layout):
    frames = _frames(5)
    frames[3, 1, 2, 0] = np.inf if layout == "files" else np.nan
    if layout == "files":  # frame 3 is an evaluation frame: found on the writing pass
        for i, f in enumerate(frames):
            np.save(tmp_path / f"f{i}.npy", f)
        cfg = _cfg(format="npy", files=(str(tmp_path / "f*.npy"),))
        _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "f3.npy"), "frame 3", "NaN/Inf")
    else:
        with h5py.File(tmp_path / "s.h5", "w") as h:
            h.create_dataset("v", data=frames)
        cfg = _cfg(
            format="hdf5",
            files=(str(tmp_path / "s.h5"),),
            hdf5_dataset="v",
            split=SplitConfig(train_indices=(0, 3, 4)),
        )
        _fails(cfg, tmp_path / "o.zarr", f"{tmp_path / 's.h5'}[3]", "frame 3", "NaN/Inf")


def test_nan_in_late_frame_keeps_existing_store(tmp_path):
    frames = _frames(4)
    np.save(tmp_path / "s.npy", frames)
    cfg = _cfg(format="npy", files=(str(tmp_path / "s.npy"),))
    out = ingest(cfg, tmp_path / "o.zarr")
    frames[2, 0, 0, 0] = np.nan
    np.save(tmp_path / "s.npy", frames)
    with pytest.raises(DataError, match="frame 2"):
        ingest(cfg, out)
    assert open_dataset(out).n_frames == 4  # the previous result is untouched


def test_constant_dataset(tmp_path):
    np.save(tmp_path / "c.npy", np.full((4, 2, 3), 7.0, np.float32))
    cfg = _cfg(format="npy", files=(str(tmp_path / "c.npy"),))
    _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "c.npy"), "constant")


def test_params_not_increasing(tmp_path):
    np.save(tmp_path / "s.npy", _frames(3))
    side = tmp_path / "p.json"
    side.write_text(json.dumps({"names": ["t"], "values": [[0], [2], [1]]}))
    cfg = _cfg(
        format="npy", files=(str(tmp_path / "s.npy"),), params=ParamsConfig(sidecar=str(side))
    )
    _fails(cfg, tmp_path / "o.zarr", str(side), "strictly increasing")
    cfg = _cfg(
        format="npy",
        files=(str(tmp_path / "s.npy"),),
        params=ParamsConfig(values=((0.0,), (1.0,), (1.0,))),
    )
    _fails(cfg, tmp_path / "o.zarr", "dataset.params.values", "strictly increasing")


def test_params_duplicated_nd(tmp_path):
    np.save(tmp_path / "s.npy", _frames(3))
    side = tmp_path / "views.json"
    side.write_text(json.dumps({"names": ["theta", "phi"], "values": [[0, 1], [1, 0], [0, 1]]}))
    cfg = _cfg(
        format="npy", files=(str(tmp_path / "s.npy"),), params=ParamsConfig(sidecar=str(side))
    )
    _fails(cfg, tmp_path / "o.zarr", str(side), "duplicated", "[0, 2]")


def test_param_count_differs_from_frame_count(tmp_path):
    np.save(tmp_path / "s.npy", _frames(3))
    side = tmp_path / "p.json"
    side.write_text(json.dumps({"names": ["t"], "values": [[0], [1]]}))
    cfg = _cfg(
        format="npy", files=(str(tmp_path / "s.npy"),), params=ParamsConfig(sidecar=str(side))
    )
    _fails(cfg, tmp_path / "o.zarr", str(side), "2 parameter values for 3 frames")


def test_missing_file_and_empty_glob(tmp_path):
    missing = str(tmp_path / "nope.h5")
    _fails(_cfg(format="hdf5", files=(missing,)), tmp_path / "o.zarr", missing, "not found")
    pattern = str(tmp_path / "frames_*.npy")
    _fails(_cfg(format="npy", files=(pattern,)), tmp_path / "o.zarr", pattern, "matched no files")
    np.save(tmp_path / "s.npy", _frames(3))
    cfg = _cfg(
        format="npy",
        files=(str(tmp_path / "s.npy"),),
        params=ParamsConfig(sidecar=str(tmp_path / "none.json")),
    )
    _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "none.json"), "not found")


def test_unknown_format(tmp_path):
    np.save(tmp_path / "s.npy", _frames(3))
    cfg = _cfg(format="vtk", files=(str(tmp_path / "s.npy"),))
    _fails(cfg, tmp_path / "o.zarr", "dataset.format", "'vtk'")


def test_frames_of_different_shapes(tmp_path):
    np.save(tmp_path / "f0.npy", np.zeros((3, 4, 5), np.float32))
    np.save(tmp_path / "f1.npy", np.zeros((3, 4, 6), np.float32))
    cfg = _cfg(format="npy", files=(str(tmp_path / "f*.npy"),))
    _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "f1.npy"), "(3, 4, 6)", "(3, 4, 5)")
    for i, shape in enumerate([(4, 5), (4, 4)]):
        with h5py.File(tmp_path / f"h{i}.h5", "w") as h:
            h.create_dataset("v", data=np.zeros(shape))
    cfg = _cfg(format="hdf5", files=(str(tmp_path / "h*.h5"),), hdf5_dataset="v")
    _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "h1.h5"), "differs")


def test_hdf5_dataset_missing(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as h:
        h.create_dataset("pressure", data=_frames(3))
    cfg = _cfg(format="hdf5", files=(str(tmp_path / "s.h5"),), hdf5_dataset="vorticity")
    msg = _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "s.h5"), "no dataset 'vorticity'")
    assert "pressure" in msg
    (tmp_path / "text.nc").write_text("CDF\x01 netcdf3 classic")
    cfg = _cfg(format="netcdf", files=(str(tmp_path / "text.nc"),))
    _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "text.nc"), "NetCDF")


# --------------------------------------------------------------------------- n-D parameter space


def _views_cfg(tmp_path, values, **params) -> DatasetConfig:
    np.save(tmp_path / "img.npy", np.random.default_rng(4).random((len(values), 8, 8, 3)))
    return _cfg(
        task="nvs",
        format="npy",
        files=(str(tmp_path / "img.npy"),),
        params=ParamsConfig(names=("theta", "phi"), values=tuple(values), **params),
    )


def test_declared_ranges_and_periodic_parameters(tmp_path):
    values = ((30.0, 0.0), (90.0, 350.0), (150.0, 10.0))
    cfg = _views_cfg(tmp_path, values, ranges=((30.0, 150.0), (0.0, 360.0)), periodic=("phi",))
    ds = open_dataset(ingest(cfg, tmp_path / "d.zarr"))
    assert ds.param_range == ((30.0, 150.0), (0.0, 360.0))  # declared, not the values' min/max
    assert ds.param_periodic == (False, True)
    np.testing.assert_allclose(ds.normalised_params()[1], [0.5, 350 / 360])


def test_sidecar_declares_the_parameter_space(tmp_path):
    np.save(tmp_path / "img.npy", np.random.default_rng(4).random((2, 8, 8, 3)))
    side = tmp_path / "p.json"
    side.write_text(
        json.dumps(
            {
                "names": ["theta", "phi"],
                "values": [[40, 5], [60, 300]],
                "ranges": [[0, 180], [0, 360]],
                "periodic": ["phi"],
            }
        )
    )
    cfg = _cfg(
        task="nvs",
        format="npy",
        files=(str(tmp_path / "img.npy"),),
        params=ParamsConfig(sidecar=str(side)),
    )
    ds = open_dataset(ingest(cfg, tmp_path / "d.zarr"))
    assert ds.param_range == ((0.0, 180.0), (0.0, 360.0)) and ds.param_periodic == (False, True)


def test_parameter_outside_the_declared_range(tmp_path):
    values = ((30.0, 0.0), (90.0, 400.0))
    cfg = _views_cfg(tmp_path, values, ranges=((0.0, 180.0), (0.0, 360.0)), periodic=("phi",))
    _fails(cfg, tmp_path / "o.zarr", "dataset.params.ranges", "'phi' = 400", "frame 1")


def test_periodic_parameter_needs_a_range_and_a_name(tmp_path):
    cfg = _views_cfg(tmp_path, ((1.0, 2.0), (3.0, 4.0)), periodic=("phi",))
    _fails(cfg, tmp_path / "o.zarr", "dataset.params.ranges", "periodic")
    cfg = _views_cfg(
        tmp_path, ((1.0, 2.0), (3.0, 4.0)), ranges=((0, 5), (0, 5)), periodic=("azimuth",)
    )
    _fails(cfg, tmp_path / "o.zarr", "dataset.params.periodic", "'azimuth'")


def test_images_of_inconsistent_channel_count(tmp_path):
    np.save(tmp_path / "v0.npy", np.zeros((8, 8, 3), np.float32))
    np.save(tmp_path / "v1.npy", np.ones((8, 8, 4), np.float32))
    cfg = _cfg(
        task="nvs",
        format="npy",
        files=(str(tmp_path / "v*.npy"),),
        params=ParamsConfig(names=("theta", "phi"), values=((0, 0), (1, 1))),
    )
    _fails(cfg, tmp_path / "o.zarr", str(tmp_path / "v1.npy"), "(8, 8, 4)", "(8, 8, 3)")


def test_split_train_first():
    assert split_indices(SplitConfig(train_first=3, train_every=2), 10) == [0, 1, 2]
    with pytest.raises(DataError, match="dataset.split.train_first"):
        split_indices(SplitConfig(train_first=11), 10)
