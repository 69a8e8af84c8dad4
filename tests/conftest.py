"""Loaded before any test module: idle OpenMP threads sleep (see hyperinr/__init__.py) even in
test modules that import torch before hyperinr."""

import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny TSR config (config/test.yaml, 16^3 x 9 frames) run once to its report in a copy
    of the workflow (~1.5 min on 2 cores), shared read-only by the workflow tests: one that
    runs Snakemake or writes takes `tiny_clone`. Changing it fails the session's teardown."""
    from tests._workflow import copy_workflow, snakemake, unchanged

    work = copy_workflow(tmp_path_factory.mktemp("tiny_run"))
    snakemake(work)
    with unchanged(work):
        yield work


@pytest.fixture
def tiny_clone(tiny_run, tmp_path):
    """This test's own copy of the tiny run, to rerun and change at will."""
    from tests._workflow import clone_run

    return clone_run(tiny_run, tmp_path / "run")
