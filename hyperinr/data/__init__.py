"""Data stage: readers, the Zarr dataset layout, ingest and the default TGV dataset.

The names below load their module on first use (PEP 562), so `hyperinr simulate`, which needs
only `hyperinr.data.simulate` (h5py, numpy; fluidsim when called), runs in the small sim
environment (envs/sim.yaml) without zarr or torch, which the store and ingest modules import.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOME = {
    "DataError": "errors",
    "ingest": "ingest",
    "split_indices": "ingest",
    "simulate_tgv": "simulate",
    "FrameSource": "sources",
    "load_params": "sources",
    "open_source": "sources",
    "DATASET_LAYOUT_VERSION": "store",
    "DatasetAttrs": "store",
    "DatasetStore": "store",
    "FramesStore": "store",
    "open_dataset": "store",
    "open_frames_store": "store",
    "write_dataset": "store",
    "write_frames_store": "store",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'hyperinr.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hyperinr.data.{_HOME[name]}"), name)
    # bound here, after the import: importing submodule `ingest` sets this package's attribute
    # `ingest` to the module, which must not shadow the function of the same name
    globals()[name] = value
    return value
