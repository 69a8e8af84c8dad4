"""The default dataset: spectral field formulas, determinism, physics sanity, ingestibility."""

from __future__ import annotations

import importlib.util
import json
import os

import h5py
import numpy as np
import pytest

from hyperinr.config import DatasetConfig, SimulateConfig
from hyperinr.data import ingest, open_dataset
from hyperinr.data.simulate import (
    pressure_from_velocity,
    q_criterion,
    tgv_initial_velocity,
    vorticity_magnitude,
)


def _grid(n):
    x = np.arange(n) * (2 * np.pi / n)
    z3, y3, x3 = np.meshgrid(x, x, x, indexing="ij")
    return x3, y3, z3


def test_fields_of_the_initial_condition_match_the_analytic_ones():
    n = 16
    x, y, z = _grid(n)
    u = tgv_initial_velocity(n)
    np.testing.assert_allclose(u[0], np.sin(x) * np.cos(y) * np.cos(z), atol=1e-14)
    wx = -np.cos(x) * np.sin(y) * np.sin(z)
    wy = -np.sin(x) * np.cos(y) * np.sin(z)
    wz = 2 * np.sin(x) * np.sin(y) * np.cos(z)
    np.testing.assert_allclose(vorticity_magnitude(u), np.sqrt(wx**2 + wy**2 + wz**2), atol=1e-12)
    # the textbook TGV pressure (rho0 = V0 = 1), which has zero mean
    p = (np.cos(2 * x) + np.cos(2 * y)) * (np.cos(2 * z) + 2) / 16
    np.testing.assert_allclose(pressure_from_velocity(u), p, atol=1e-12)
    # Q = lap p / 2
    k = np.fft.fftfreq(n, 1 / n)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    lap_p = np.fft.ifftn(-k2 * np.fft.fftn(p)).real
    np.testing.assert_allclose(q_criterion(u), lap_p / 2, atol=1e-12)


needs_fluidsim = pytest.mark.skipif(
    importlib.util.find_spec("fluidsim") is None, reason="fluidsim (extra 'sim') not installed"
)


@needs_fluidsim
def test_simulate_is_deterministic_and_ingestible(tmp_path, sandbox_home, monkeypatch):
    from hyperinr.data.simulate import simulate_tgv

    cfg = SimulateConfig(resolution=16, t_end=0.5, n_frames=3, dt=0.1, output_dir="resources/tgv16")
    monkeypatch.chdir(tmp_path)
    first = simulate_tgv(cfg)
    assert first == tmp_path.joinpath("resources/tgv16/tgv.h5").relative_to(tmp_path)
    second = simulate_tgv(cfg, tmp_path / "again")
    with h5py.File(first) as a, h5py.File(second) as b:
        for name in ("vorticity", "pressure", "t"):
            assert a[name][()].tobytes() == b[name][()].tobytes()
        assert a["vorticity"].shape == (3, 16, 16, 16) and a["vorticity"].dtype == np.float32
        assert a["pressure"].dtype == np.float32 and a["t"].dtype == np.float64
        np.testing.assert_allclose(a["t"][()], [0.0, 0.25, 0.5])
        assert a.attrs["resolution"] == 16 and a.attrs["Re"] == 1600.0
        assert a.attrs["dt"] == pytest.approx(0.25 / 3) and a.attrs["steps_per_frame"] == 3
        assert "ns3d" in a.attrs["solver"] and a.attrs["fluidsim_version"]
        assert "provenance" in a.attrs
        # frame 0 is the initial condition: |curl u| peaks at 2 on the grid
        assert float(a["vorticity"][0].max()) == pytest.approx(2.0, abs=1e-3)
        assert abs(float(a["pressure"][1].mean())) < 1e-6
    params = json.loads((tmp_path / "resources/tgv16/params.json").read_text())
    assert params == {"names": ["t"], "values": [[0.0], [0.25], [0.5]]}
    # fluidsim wrote nothing in HOME (matplotlib, which it imports, may cache fonts there)
    # and no environment change leaks out
    assert not {".fluiddyn", "Sim_data", ".transonic", "Exp_data"} & {
        p.name for p in sandbox_home.iterdir()
    }
    assert "FLUIDSIM_PATH" not in os.environ and "TRANSONIC_DIR" not in os.environ
    # the default DatasetConfig reads it (file names and sidecar come from the default)
    default = DatasetConfig()
    cfg_ds = DatasetConfig(
        files=(str(first),),
        params=type(default.params)(sidecar=str(first.parent / "params.json")),
        split=type(default.split)(train_every=2),
    )
    ds = open_dataset(ingest(cfg_ds, tmp_path / "tgv.zarr"))
    assert ds.dims == (16, 16, 16) and ds.train_indices == (0, 2)


@needs_fluidsim
def test_tgv_physics_32(tmp_path, sandbox_home):
    """Energy decays monotonically; dissipation grows strongly towards the t ~ 9 peak."""
    from hyperinr.data.simulate import simulate_tgv

    cfg = SimulateConfig(resolution=32, t_end=10.0, n_frames=11, dt=0.05)
    path = simulate_tgv(cfg, tmp_path)
    with h5py.File(path) as f:
        energy = f["kinetic_energy"][()]
        eps = f["dissipation"][()]
        assert f.attrs["max_cfl"] < 0.5
    assert energy[0] == pytest.approx(0.125, rel=1e-6)
    assert np.all(np.diff(energy) < 0)
    assert eps[0] == pytest.approx(3 / 1600 / 4, rel=1e-3)  # nu * <|w|^2> = 3 nu / 4 at t = 0
    assert eps.max() > 5 * eps[0]
    assert int(np.argmax(eps)) >= 7  # the peak is late (t ~ 9 in DNS)
    # the kinetic-energy budget holds roughly: -dE/dt ~ eps
    dedt = -np.gradient(energy, 1.0)
    assert np.allclose(dedt[2:-2], eps[2:-2], rtol=0.3)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"fields": ("vorticity", "density")}, "unknown field 'density'"),
        ({"n_frames": 1}, "at least 2 frames"),
        ({"dt": 0.0}, "must be positive"),
    ],
)
def test_simulate_rejects_bad_config(tmp_path, kwargs, needle):
    from hyperinr.data import DataError
    from hyperinr.data.simulate import simulate_tgv

    with pytest.raises(DataError, match=needle):
        simulate_tgv(SimulateConfig(resolution=16, **kwargs), tmp_path / "out")
    assert not (tmp_path / "out" / "tgv.h5").exists()
