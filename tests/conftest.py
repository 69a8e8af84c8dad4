"""Loaded before any test module: idle OpenMP threads sleep (see hyperinr/__init__.py) even in
test modules that import torch before hyperinr."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
