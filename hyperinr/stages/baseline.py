"""Stage `baseline`: train NeurComp or HashINR on the training frames (the paper's Sec. 6.3).

Sec. 6.3 trains every architecture directly on the ground truth, so a baseline sees exactly
what the teacher sees (the sparse training frames, L1 loss by default) and nothing distilled.
Training goes through the one loop (hyperinr/train.py): checkpoints resume only for the same
provenance, and the last one is discarded once model.pt is published.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from hyperinr import distributed, provenance
from hyperinr.atomic import clean_stale_temporaries
from hyperinr.config import Config
from hyperinr.device import configure_threads, resolve_device
from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.models.baselines import (
    BASELINES,
    Baseline,
    HashINR,
    NeurComp,
    neurcomp_width_for_budget,
    parameter_count,
    save_baseline,
)
from hyperinr.models.coordnet import CoordNet
from hyperinr.stage_info import write_info
from hyperinr.stages.common import DatasetTensors, load_dataset_meta, read_frames
from hyperinr.train import discard_checkpoint, rank_batch_size, train

log = logging.getLogger(__name__)


def teacher_parameter_count(cfg: Config, meta: DatasetTensors) -> int:
    """Parameters of the configured CoordNet for this dataset, built on the meta device: no
    memory and no draw from the random stream the baseline's own initialisation uses."""
    with torch.device("meta"):
        teacher = CoordNet(
            meta.n_params + meta.n_spatial, meta.n_channels, cfg.teacher.widths,
            cfg.teacher.hidden_blocks,
        )
    return parameter_count(teacher)


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
            meta.n_params, meta.n_spatial, meta.n_channels, hc.encoding, hc.n_bins, hc.network,
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

    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    if distributed.is_main():
        clean_stale_temporaries(out_dir / "model.pt")
    t0 = time.perf_counter()
    result = train(
        model,
        batch_fn,
        cfg.baselines.train,
        device,
        checkpoint,
        tag=produced_by["hash"],
        desc=name,
        seed=cfg.runtime.seed,
    )
    if not distributed.is_main():  # rank 0 writes model.pt and info.json; the others wait
        distributed.barrier()
        distributed.cleanup()
        return out_dir / "model.pt"
    save_baseline(
        out_dir / "model.pt",
        model,
        {"produced_by": produced_by, "dataset_hash": store.content_hash, "dims": list(meta.dims)},
    )
    write_info(
        out_dir / "info.json",
        stage,
        result.wall_seconds,
        device=str(device),
        model=name,
        arch=model.arch(),
        steps=result.steps,
        final_loss=result.final_loss,
        resumed_from=result.resumed_from,
        parameters=parameter_count(model),
        run_seconds=round(time.perf_counter() - t0, 3),
        produced_by=produced_by,
        **({"processes": distributed.world_size()} if distributed.is_distributed() else {}),
    )
    discard_checkpoint(checkpoint)
    distributed.barrier()
    distributed.cleanup()
    return out_dir / "model.pt"
