"""Stage `baseline`: train NeurComp or HashINR on the training frames (the paper's Sec. 6.3).

Sec. 6.3 trains every architecture directly on the ground truth, so a baseline sees exactly
what the teacher sees (the sparse training frames, L1 loss by default) and nothing distilled.
Training goes through the one loop (hyperinr/training/loop.py): checkpoints resume only for the same
provenance, and the last one is discarded once model.pt is published.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hyperinr.infra import provenance

from hyperinr.training import distributed
from hyperinr.config import Config
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.models.baselines import (
    BASELINES,
    Baseline,
    HashINR,
    NeurComp,
    neurcomp_width_for_budget,
    save_baseline,
)
from hyperinr.stages.common import (
    DatasetTensors,
    load_dataset_meta,
    read_frames,
    teacher_parameter_count,
    train_and_publish,
)
from hyperinr.training.loop import rank_batch_size

log = logging.getLogger(__name__)


def build_baseline(name: str, cfg: Config, meta: DatasetTensors) -> Baseline:
    """The untrained baseline `name` for this dataset's parameters, dims and channels."""
    if name == "neurcomp":
        nc = cfg.baselines.neurcomp
        width = nc.width
        if width is None:
            budget = nc.budget if nc.budget is not None else teacher_parameter_count(cfg, meta)
            width = neurcomp_width_for_budget(
                budget, nc.n_blocks, meta.n_params + meta.n_spatial, meta.n_channels
            )
        return NeurComp(meta.n_params, meta.n_spatial, meta.n_channels, width, nc.n_blocks)
    if name == "hashinr":
        hc = cfg.baselines.hashinr
        return HashINR(
            meta.n_params,
            meta.n_spatial,
            meta.n_channels,
            hc.encoding,
            hc.n_bins,
            hc.network,
            periodic=meta.periodic or None,
        )
    raise ValueError(f"baseline: unknown model '{name}' (one of {', '.join(BASELINES)})")


def train_baseline(cfg: Config, name: str, dataset: Path, out_dir: Path) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json`; resumes from `out_dir/checkpoint.pt`
    only when it was written for the same dataset content and settings (its provenance).

    Under torchrun every process trains data-parallel and only rank 0 writes (as the teacher).
    """
    if name not in BASELINES:
        raise ValueError(f"baseline: unknown model '{name}' (one of {', '.join(BASELINES)})")
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    meta, store = load_dataset_meta(dataset)
    stage = f"baseline_{name}"
    produced_by = provenance.record(stage, cfg, {"dataset": store.content_hash})
    torch.manual_seed(cfg.runtime.seed)
    model = build_baseline(name, cfg, meta)
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
        lambda path: save_baseline(path, model, {
            "produced_by": produced_by, "dataset_hash": store.content_hash,
            "dims": list(meta.dims),
        }),
        seed=cfg.runtime.seed, desc=name, info=lambda: {"model": name, "arch": model.arch()},
    )  # fmt: skip
