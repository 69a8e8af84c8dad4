"""The forced-turbulence dataset: determinism, stationarity, weak time correlation (unlike the
TGV), file layout, one-line errors, and the default Taylor-Green path left as it was."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from hyperinr.config import Config, DatasetConfig, SimulateConfig, merge_dicts, read_config_file
from hyperinr.data import DataError, ingest, open_dataset
from hyperinr.data.simulate import simulate, simulate_tgv, simulation_file

needs_fluidsim = pytest.mark.skipif(
    importlib.util.find_spec("fluidsim") is None, reason="fluidsim (extra 'sim') not installed"
)
ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("sandbox_home")

# 16^3, frames 0.1 apart as in config/forced32_vorticity.yaml; ~3 s
FORCED16 = SimulateConfig(
    flow="forced_turbulence",
    resolution=16,
    reynolds=50.0,
    t_end=1.6,
    n_frames=17,
    dt=0.025,
    fields=("vorticity", "pressure", "velocity"),
    output_dir="resources/forced16",
)
# a few steps only: enough to tell two random forcings apart
SHORT = replace(FORCED16, t_end=0.2, n_frames=3, spinup=1.0, fields=("vorticity",))


def _lag_correlation(frames: np.ndarray, lag: int) -> float:
    """Mean over frame pairs of the Pearson correlation, computed from its definition (not
    np.corrcoef, which the data-side measurements used)."""
    flat = frames.reshape(len(frames), -1).astype(np.float64)
    out = []
    for a, b in zip(flat[:-lag], flat[lag:]):
        da, db = a - a.mean(), b - b.mean()
        out.append(float(np.sum(da * db) / np.sqrt(np.sum(da * da) * np.sum(db * db))))
    return float(np.mean(out))


@pytest.fixture(scope="module")
def forced16(tmp_path_factory) -> Path:
    return simulate(FORCED16, tmp_path_factory.mktemp("forced16"))


@pytest.fixture(scope="module")
def tgv16(tmp_path_factory) -> Path:
    """The TGV at 16^3 with the default run's frame spacing (0.25 over [0, 10])."""
    cfg = SimulateConfig(resolution=16, t_end=10.0, n_frames=41, dt=0.05, fields=("vorticity",))
    return simulate(cfg, tmp_path_factory.mktemp("tgv16"))


@needs_fluidsim
def test_forced_layout_and_sidecar(forced16):
    assert forced16.name == "turbulence.h5"
    assert forced16 == simulation_file(FORCED16, forced16.parent)
    with h5py.File(forced16) as f:
        for name in FORCED16.fields:
            assert f[name].shape == (17, 16, 16, 16) and f[name].dtype == np.float32
        assert f["t"].dtype == np.float64
        np.testing.assert_allclose(f["t"][()], np.arange(17) * 0.1, atol=1e-12)
        assert f.attrs["flow"] == "forced_turbulence" and f.attrs["seed"] == 0
        assert f.attrs["spinup"] == pytest.approx(10.0)
        assert f.attrs["steps_per_frame"] == 4 and f.attrs["nu"] == pytest.approx(0.02)
        assert "forced" in f.attrs["provenance"] and "ns3d" in f.attrs["solver"]
        assert f.attrs["max_cfl"] < 1.0
        # the written fields agree with the recorded diagnostics (independent of the solver):
        # E = <|u|^2> / 2 from the |u| field, eps = nu <|w|^2> from the |w| field
        speed = f["velocity"][()].astype(np.float64)
        omega = f["vorticity"][()].astype(np.float64)
        energy = 0.5 * np.mean(speed**2, axis=(1, 2, 3))
        np.testing.assert_allclose(f["kinetic_energy"][()], energy, rtol=1e-5)
        eps = 0.02 * np.mean(omega**2, axis=(1, 2, 3))
        np.testing.assert_allclose(f["dissipation"][()], eps, rtol=1e-5)
        assert abs(float(f["pressure"][3].mean())) < 1e-5
    params = json.loads((forced16.parent / "params.json").read_text())
    assert params["names"] == ["t"] and len(params["values"]) == 17
    cfg_ds = DatasetConfig(
        files=(str(forced16),),
        params=type(DatasetConfig().params)(sidecar=str(forced16.parent / "params.json")),
        split=type(DatasetConfig().split)(train_every=4),
    )
    ds = open_dataset(ingest(cfg_ds, forced16.parent / "forced.zarr"))
    assert ds.dims == (16, 16, 16) and ds.train_indices == (0, 4, 8, 12, 16)


@needs_fluidsim
def test_forced_flow_is_stationary(forced16):
    with h5py.File(forced16) as f:
        energy = f["kinetic_energy"][()]
        eps = f["dissipation"][()]
    # after the spin-up the energy neither grows from rest nor decays: a narrow band
    assert np.all(np.abs(energy / energy.mean() - 1) < 0.15)
    assert 1.0 < energy.mean() < 4.0
    # stationary energy budget: dissipation balances the prescribed injection rate
    assert eps.mean() == pytest.approx(FORCED16.forcing_rate, rel=0.3)


@needs_fluidsim
def test_forced_frames_are_weakly_correlated_unlike_tgv(forced16, tgv16):
    with h5py.File(forced16) as f:
        omega = f["vorticity"][()]
    with h5py.File(tgv16) as f:
        tgv = f["vorticity"][()]
    lag1, lag4 = _lag_correlation(omega, 1), _lag_correlation(omega, 4)
    np.testing.assert_allclose(
        lag1, np.corrcoef(omega[0].ravel(), omega[1].ravel())[0, 1], atol=0.05
    )
    assert lag1 > 0.8
    assert 0.2 < lag4 < 0.6
    assert lag4 < lag1 - 0.3
    assert lag4 < _lag_correlation(tgv, 4) - 0.2


@needs_fluidsim
def test_forced_is_deterministic_seeded_and_restores_the_global_rng(tmp_path):
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = simulate(SHORT, tmp_path / "a")
    assert np.array_equal(np.random.get_state()[1], before)
    b = simulate(SHORT, tmp_path / "b")
    c = simulate(replace(SHORT, seed=1), tmp_path / "c")
    with h5py.File(a) as fa, h5py.File(b) as fb, h5py.File(c) as fc:
        for name in ("vorticity", "t", "kinetic_energy"):
            assert fa[name][()].tobytes() == fb[name][()].tobytes()
        assert not np.allclose(fa["vorticity"][-1], fc["vorticity"][-1], rtol=0.1)


@needs_fluidsim
def test_cli_routes_the_configured_flow(tmp_path, capsys):
    from hyperinr.cli import main

    cfg = {"simulate": {**SHORT.__dict__, "fields": ["vorticity"], "n_frames": 2, "t_end": 0.1}}
    main(["simulate", "--config-json", json.dumps(cfg), "--out-dir", str(tmp_path)])
    assert (tmp_path / "turbulence.h5").exists() and not (tmp_path / "tgv.h5").exists()
    assert capsys.readouterr().out.strip().endswith("turbulence.h5")


@needs_fluidsim
def test_taylor_green_default_unchanged(tmp_path):
    assert SimulateConfig().flow == "taylor_green"
    assert simulation_file(SimulateConfig()) == Path("resources/tgv64/tgv.h5")
    cfg = SimulateConfig(resolution=16, t_end=0.5, n_frames=3, dt=0.1)
    via_dispatch = simulate(cfg, tmp_path / "a")
    direct = simulate_tgv(replace(cfg, flow="forced_turbulence"), tmp_path / "b")
    assert via_dispatch.name == direct.name == "tgv.h5"
    with h5py.File(via_dispatch) as a, h5py.File(direct) as b:
        assert a["vorticity"][()].tobytes() == b["vorticity"][()].tobytes()
        assert "flow" not in a.attrs and "seed" not in a.attrs
        assert float(a["vorticity"][0].max()) == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"flow": "channel"}, "simulate.flow: unknown flow 'channel'"),
        ({"forcing_kmax": 6.0}, "simulate.forcing_kmax: 6.0 is not resolved"),
        ({"forcing_kmin": 4.0}, "need 0 < kmin <= kmax"),
        ({"forcing_rate": 0.0}, "simulate.forcing_rate: must be positive"),
        ({"spinup": -1.0}, "simulate.spinup"),
        ({"seed": -1}, "simulate.seed"),
        ({"n_frames": 1}, "at least 2 frames"),
    ],
)
def test_bad_forced_config_is_a_one_line_error(tmp_path, changes, needle):
    with pytest.raises(DataError, match=needle) as err:
        simulate(replace(FORCED16, **changes), tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("out/*.h5"))


def test_unknown_flow_in_simulation_file():
    with pytest.raises(DataError, match="unknown flow 'channel'"):
        simulation_file(SimulateConfig(flow="channel"))


@needs_fluidsim
def test_blow_up_is_a_one_line_error_naming_the_key(tmp_path):
    cfg = replace(SHORT, reynolds=1e6, dt=0.5, t_end=1.0, n_frames=2, spinup=20.0)
    with pytest.raises(DataError, match="blew up.*simulate.reynolds") as err:
        simulate(cfg, tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("out/*"))


@pytest.mark.parametrize(
    ("overlays", "name", "h5"),
    [
        (["config.yaml", "forced32_vorticity.yaml"], "forced32_vorticity", "forced32"),
        (["config.yaml", "test.yaml", "test_forced.yaml"], "forced16_test", "forced16"),
    ],
)
def test_overlays_point_the_dataset_at_the_simulated_file(overlays, name, h5):
    data: dict = {}
    for overlay in overlays:
        data = merge_dicts(data, read_config_file(ROOT / "config" / overlay))
    cfg = Config.from_dict(data)
    assert cfg.dataset.name == name and cfg.simulate.flow == "forced_turbulence"
    target = f"resources/{h5}/turbulence.h5"
    assert str(simulation_file(cfg.simulate)) == target
    assert cfg.dataset.files == (target,)
    assert cfg.dataset.params.sidecar == f"resources/{h5}/params.json"
    assert cfg.dataset.hdf5_dataset == "vorticity"
    assert cfg.simulate.forcing_kmax < cfg.simulate.resolution / 3
