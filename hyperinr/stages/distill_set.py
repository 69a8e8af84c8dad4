"""Stage `distill_set`: the teacher's outputs at N_D parameters, precomputed once (Sec. 3.1).

Precomputing keeps distillation from being bound by the teacher's inference speed. The set is
written shard by shard (one Zarr chunk per parameter) so the work can later be split across
jobs; today one job computes every shard.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import zarr
from tqdm import tqdm

from hyperinr.atomic import atomic_path
from hyperinr.config import Config
from hyperinr.device import configure_threads, resolve_device
from hyperinr.stages.common import load_dataset_meta, write_info
from hyperinr.stages.teacher import load_teacher, teacher_volume

_DTYPES = {"float16": np.float16, "float32": np.float32}


def distill_params(n: int, n_param_dims: int) -> np.ndarray:
    """Normalised distillation parameters [N_D, P]: uniform along a 1-D axis (the TSR recipe)."""
    if n < 2:
        raise ValueError("distill_set.n_params must be >= 2")
    if n_param_dims != 1:
        raise NotImplementedError("n-D distillation sets (NVS/DGS) are not implemented yet")
    return np.linspace(0.0, 1.0, n).reshape(-1, 1)


def build_distill_set(cfg: Config, dataset: Path, teacher: Path, out: Path) -> Path:
    """Writes the Zarr group `out` with `values` [N_D, V, C] in [0, 1] and `params01` [N_D, P]."""
    configure_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    if cfg.distill_set.dtype not in _DTYPES:
        raise ValueError(f"distill_set.dtype '{cfg.distill_set.dtype}' is not one of {list(_DTYPES)}")
    meta, store = load_dataset_meta(dataset)
    model, tstate = load_teacher(teacher, device)
    if model.n_inputs != meta.n_params + meta.n_spatial or list(meta.dims) != tstate["dims"]:
        raise ValueError(f"{teacher}: teacher was trained for another dataset layout")
    params01 = distill_params(cfg.distill_set.n_params, meta.n_params)
    n_vox = int(np.prod(meta.dims))
    dtype = _DTYPES[cfg.distill_set.dtype]
    t0 = time.perf_counter()
    with atomic_path(out, is_dir=True) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        values = root.create_array(
            "values",
            shape=(len(params01), n_vox, meta.n_channels),
            chunks=(1, n_vox, meta.n_channels),
            dtype=dtype,
        )
        root.create_array("params01", data=params01)
        for i in tqdm(range(len(params01)), desc="distill_set", mininterval=2.0):
            vol = teacher_volume(
                model, torch.from_numpy(params01[i]), meta.dims, cfg.distill_set.batch_size, device
            )
            values[i] = vol.astype(dtype)
        root.attrs.update(
            {
                "dims": list(meta.dims),
                "n_channels": meta.n_channels,
                "config_hash": cfg.section_hash("distill_set"),
                "teacher_config_hash": tstate["config_hash"],
                "dataset_hash": store.config_hash,
                "bytes": int(values.nbytes),
            }
        )
    wall = time.perf_counter() - t0
    write_info(
        out.parent / "distill_set_info.json",
        "distill_set",
        wall,
        device=str(device),
        n_params=len(params01),
        bytes=len(params01) * n_vox * meta.n_channels * np.dtype(dtype).itemsize,
    )
    return out
