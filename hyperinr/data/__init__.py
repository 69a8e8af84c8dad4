"""Data stage: readers, the Zarr dataset layout, ingest and the default TGV dataset.

The names below load their module on first use (PEP 562), so `hyperinr simulate`, which needs
only `hyperinr.data.simulate` (h5py, numpy; fluidsim when called), runs in the small sim
environment (envs/sim.yaml) without zarr or torch, which the store and ingest modules import.
"""

from __future__ import annotations

from hyperinr._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _HOME)
