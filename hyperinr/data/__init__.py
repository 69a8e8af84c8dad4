"""Data stage: readers, the Zarr dataset layout, ingest and the default TGV dataset.

`simulate_tgv` lives in `hyperinr.data.simulate` and imports fluidsim (an optional dependency,
extra `sim`) only when called.
"""

from hyperinr.data.errors import DataError
from hyperinr.data.ingest import ingest, split_indices
from hyperinr.data.simulate import simulate_tgv
from hyperinr.data.sources import FrameSource, load_params, open_source
from hyperinr.data.store import (
    DATASET_LAYOUT_VERSION,
    DatasetAttrs,
    DatasetStore,
    FramesStore,
    open_dataset,
    open_frames_store,
    write_dataset,
    write_frames_store,
)

__all__ = [
    "DATASET_LAYOUT_VERSION",
    "DataError",
    "DatasetAttrs",
    "DatasetStore",
    "FrameSource",
    "FramesStore",
    "ingest",
    "load_params",
    "open_dataset",
    "open_frames_store",
    "open_source",
    "simulate_tgv",
    "split_indices",
    "write_dataset",
    "write_frames_store",
]
