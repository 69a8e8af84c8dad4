"""Stage `teacher`: train CoordNet on the sparse training frames (Sec. 5 of the paper)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.config import Config
from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.infra import provenance
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.models.coordnet import CoordNet, save_teacher, to_teacher_range
from hyperinr.stages.common import (
    load_dataset_meta,
    read_frames,
    teacher_inputs,
    train_and_publish,
)
from hyperinr.training import distributed
from hyperinr.training.loop import rank_batch_size
from hyperinr.training.targets import validation_split

log = logging.getLogger(__name__)


def train_teacher(
    cfg: Config,
    dataset: Path,
    out_dir: Path,
    validation: bool = False,
    *,
    extra_info: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json` (with `extra_info`); resumes from
    `out_dir/checkpoint.pt` only when it was written for the same dataset content and settings
    (its provenance).

    `validation`: the validation teacher that chooses the correction's shrinkage: the same
    network and schedule trained without the held-out training frames of
    `target_modes.validation_split`, for hyperinr.shrinkage_validation.steps_fraction of the
    steps; the file and info.json name the frames it trained on and the ones it never saw.

    Under torchrun (runtime.gpus_per_job > 1) every process trains data-parallel (one GPU each,
    hyperinr/training/loop.py) and only rank 0 writes; the others wait for it, then return.
    """
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    meta, store = load_dataset_meta(dataset)
    stage = "teacher_validation" if validation else "teacher"
    produced_by = provenance.record(stage, cfg, {"dataset": store.content_hash})
    train_cfg, used, split = cfg.teacher.train, meta.train_indices, {}
    if validation:
        kept, held = validation_split(meta.params01[meta.train_indices].double().numpy(),
                                      cfg.runtime.seed)  # fmt: skip
        train = np.asarray(meta.train_indices)
        used = [int(i) for i in train[kept]]
        fraction = cfg.hyperinr.shrinkage_validation.steps_fraction
        train_cfg = dataclasses.replace(train_cfg, steps=max(1, round(train_cfg.steps * fraction)))
        split = {
            "trained_frames": used,
            "held_out_frames": [int(i) for i in train[held]],
        }
    frames = read_frames(store, used).to(device)  # [T, V, C] in [0, 1]
    theta = (meta.params01[used] * 2 - 1).to(device)  # [T, P] in [-1, 1]
    n_vox = n_voxels(meta.dims)
    model = CoordNet(
        meta.n_params + meta.n_spatial,
        meta.n_channels,
        cfg.teacher.widths,
        cfg.teacher.hidden_blocks,
        seed=cfg.runtime.seed,
        **teacher_inputs(cfg, meta),
    )
    batch = rank_batch_size(train_cfg.batch_size)  # this process's share

    def batch_fn(step: int, gen: torch.Generator):
        f = torch.randint(len(used), (batch,), generator=gen).to(device)
        v = torch.randint(n_vox, (batch,), generator=gen).to(device)
        x = flat_to_coords(v, meta.dims) * 2 - 1
        inputs = torch.cat([theta[f], x], dim=1)
        return (inputs,), to_teacher_range(frames[f, v])

    return train_and_publish(
        model, batch_fn, train_cfg, device, out_dir, stage, produced_by,
        lambda path: save_teacher(path, model, {
            "produced_by": produced_by, "dataset_hash": store.content_hash,
            "dims": list(meta.dims), **split,
        }),
        seed=cfg.runtime.seed, desc=stage.replace("_", " "), info=lambda: split,
        extra_info=extra_info,
    )  # fmt: skip
