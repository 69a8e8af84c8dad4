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
