"""Stage `baseline`: train a network over (theta, x) on the training frames (Sec. 6.3).

Sec. 6.3 trains every architecture directly on the ground truth, so a baseline sees exactly
what the teacher sees (the sparse training frames, L1 loss by default) and nothing distilled.
Which networks these are is the registry's business (kinds trained_by "baseline": NeurComp,
HashINR, and any plugin's; hyperinr.models.direct): this stage builds, trains and saves any of
them alike. Training goes through the one loop (hyperinr/training/loop.py): checkpoints resume
only for the same provenance, and the last one is discarded once model.pt is published.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hyperinr.config import Config
from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.infra import provenance
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.models import registry
from hyperinr.stages.common import load_dataset_meta, read_frames, train_and_publish
from hyperinr.training import distributed
from hyperinr.training.loop import rank_batch_size

log = logging.getLogger(__name__)


def baseline_kind(name: str):
    """The implementation of a kind trained by this stage; one line naming the choices else."""
    names = registry.names_trained_by("baseline")
    if name not in names:
        raise ValueError(f"baseline: unknown model '{name}' (one of {', '.join(names)})")
    return registry.get(name).impl()


def train_baseline(
    cfg: Config,
    name: str,
    dataset: Path,
    out_dir: Path,
    *,
    extra_info: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json` (with `extra_info`); resumes from
    `out_dir/checkpoint.pt` only when it was written for the same dataset content and settings
    (its provenance).

    Under torchrun every process trains data-parallel and only rank 0 writes (as the teacher).
    """
    kind = baseline_kind(name)
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    meta, store = load_dataset_meta(dataset)
    stage = f"baseline_{name}"
    produced_by = provenance.record(stage, cfg, {"dataset": store.content_hash})
    model = kind.build(cfg, meta)  # its initial weights from runtime.seed
    frames = read_frames(store, meta.train_indices).to(device)  # [T, V, C] in [0, 1]
    theta = meta.params01[meta.train_indices].to(device)  # [T, P] in [0, 1]
    n_vox = n_voxels(meta.dims)
    batch = rank_batch_size(cfg.baselines.train.batch_size)

    def batch_fn(step: int, gen: torch.Generator):
        f = torch.randint(len(meta.train_indices), (batch,), generator=gen).to(device)
        v = torch.randint(n_vox, (batch,), generator=gen).to(device)
        x = flat_to_coords(v, meta.dims)
        return (theta[f], x), model.to_native(frames[f, v])

    return train_and_publish(
        model, batch_fn, cfg.baselines.train, device, out_dir, stage, produced_by,
        lambda path: kind.save(path, model, {
            "produced_by": produced_by, "dataset_hash": store.content_hash,
            "dims": list(meta.dims),
        }),
        seed=cfg.runtime.seed, desc=name, info=lambda: {"model": name, "arch": model.arch()},
        extra_info=extra_info,
    )  # fmt: skip
