"""Loaded before any test module: idle OpenMP threads sleep (see hyperinr/__init__.py) even in
test modules that import torch before hyperinr."""

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _restore_environ():
    """Every test sees the environment the session started with: loading a cluster profile
    (its YAML sets HYPERINR_NODE_GPUS when Snakemake reads it) or a test's own setenv must not
    leak into later tests' Snakemake runs (a leaked node GPU count trains on 4 processes)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def sandbox_home(tmp_path, monkeypatch):
    """A fresh HOME and no fluidsim/fluiddyn/transonic paths: a simulation in a test writes
    nothing under the developer's home (fluidsim's defaults are ~/Sim_data and friends)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in ("FLUIDSIM_PATH", "FLUIDDYN_PATH_SCRATCH", "TRANSONIC_DIR"):
        monkeypatch.delenv(key, raising=False)
    return home
