"""What several stages need: the dataset as tensors and the teacher check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.data.store import open_dataset


@dataclass
class DatasetTensors:
    """The frames a stage trains on, flattened to [n, n_voxels, C] in [0, 1]."""

    dims: tuple[int, ...]
    n_channels: int
    params01: torch.Tensor  # [n_frames, P] normalised parameters of ALL frames
    param_range: torch.Tensor  # [P, 2]
    value_range: tuple[float, float]
    train_indices: list[int]
    eval_indices: list[int]
    param_names: list[str]

    @property
    def n_params(self) -> int:
        return self.params01.shape[1]

    @property
    def n_spatial(self) -> int:
        return len(self.dims)


def load_dataset_meta(path: str | Path) -> tuple[DatasetTensors, Any]:
    """Open the Zarr dataset; returns typed metadata and the store (frames read lazily)."""
    store = open_dataset(path)
    param_range = torch.tensor(store.param_range, dtype=torch.float64)
    params01 = torch.from_numpy(store.normalised_params())
    meta = DatasetTensors(
        dims=tuple(store.dims),
        n_channels=int(store.n_channels),
        params01=params01.float(),
        param_range=param_range,
        value_range=tuple(store.value_range),
        train_indices=list(store.train_indices),
        eval_indices=list(store.eval_indices),
        param_names=list(store.param_names),
    )
    return meta, store


def read_frames(store: Any, indices: list[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Frames [len(indices), n_voxels, C]; one frame at a time so peaks stay one frame large."""
    out = []
    for i in indices:
        frame = np.asarray(store.frames[i], dtype=np.float32)
        out.append(torch.from_numpy(frame.reshape(-1, max(1, store.n_channels))).to(dtype))
    return torch.stack(out)


def check_teacher(
    path: Path, tstate: dict[str, Any], meta: DatasetTensors, dataset_hash: str
) -> None:
    """One-line errors naming the teacher file when it was made for another dataset."""
    arch = tstate.get("arch", {})
    if arch.get("n_inputs") != meta.n_params + meta.n_spatial or arch.get(
        "n_outputs"
    ) != meta.n_channels or list(tstate.get("dims", [])) != list(meta.dims):
        raise ValueError(
            f"{path}: teacher was trained for another dataset layout (inputs "
            f"{arch.get('n_inputs')}, outputs {arch.get('n_outputs')}, dims {tstate.get('dims')}; "
            f"dataset needs {meta.n_params + meta.n_spatial}, {meta.n_channels}, {list(meta.dims)})"
        )
    if tstate.get("dataset_hash") != dataset_hash:
        raise ValueError(
            f"{path}: teacher was trained on another dataset (dataset content "
            f"{str(tstate.get('dataset_hash'))[:16]!r}, this dataset's is {dataset_hash[:16]!r})"
        )
