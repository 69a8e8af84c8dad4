"""Stage `teacher`: train CoordNet on the sparse training frames (Sec. 5 of the paper)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr import distributed
from hyperinr.atomic import atomic_path, clean_stale_temporaries
from hyperinr.config import Config
from hyperinr.device import amp_enabled, configure_threads, resolve_device
from hyperinr.grid import flat_to_coords, grid_coords, n_voxels
from hyperinr.models.coordnet import CoordNet, from_teacher_range, to_teacher_range
from hyperinr.stages.common import load_dataset_meta, read_frames, write_info
from hyperinr.train import rank_batch_size, train

log = logging.getLogger(__name__)

MODEL_KIND = "coordnet"


def teacher_tag(cfg: Config, dataset_hash: str) -> str:
    return f"teacher:{cfg.section_hash('teacher', 'runtime')}:{dataset_hash}"


def train_teacher(cfg: Config, dataset: Path, out_dir: Path) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json`; resumes from `out_dir/checkpoint.pt`.

    Under torchrun (runtime.gpus_per_job > 1) every process trains data-parallel (one GPU each,
    hyperinr/train.py) and only rank 0 writes; the others wait for it, then return.
    """
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    torch.manual_seed(cfg.runtime.seed)
    meta, store = load_dataset_meta(dataset)
    frames = read_frames(store, meta.train_indices).to(device)  # [T, V, C] in [0, 1]
    theta = (meta.params01[meta.train_indices] * 2 - 1).to(device)  # [T, P] in [-1, 1]
    n_vox = n_voxels(meta.dims)
    model = CoordNet(
        meta.n_params + meta.n_spatial,
        meta.n_channels,
        cfg.teacher.widths,
        cfg.teacher.hidden_blocks,
    )
    batch = rank_batch_size(cfg.teacher.train.batch_size)  # this process's share

    def batch_fn(step: int, gen: torch.Generator):
        f = torch.randint(len(meta.train_indices), (batch,), generator=gen).to(device)
        v = torch.randint(n_vox, (batch,), generator=gen).to(device)
        x = flat_to_coords(v, meta.dims) * 2 - 1
        inputs = torch.cat([theta[f], x], dim=1)
        return (inputs,), to_teacher_range(frames[f, v])

    out_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        clean_stale_temporaries(out_dir / "model.pt")
    t0 = time.perf_counter()
    result = train(
        model,
        batch_fn,
        cfg.teacher.train,
        device,
        out_dir / "checkpoint.pt",
        tag=teacher_tag(cfg, store.config_hash),
        desc="teacher",
        seed=cfg.runtime.seed,
    )
    if not distributed.is_main():  # rank 0 writes model.pt and info.json; the others wait
        distributed.barrier()
        distributed.cleanup()
        return out_dir / "model.pt"
    state = {
        "kind": MODEL_KIND,
        "arch": {
            "n_inputs": meta.n_params + meta.n_spatial,
            "n_outputs": meta.n_channels,
            "widths": list(cfg.teacher.widths),
            "hidden_blocks": cfg.teacher.hidden_blocks,
        },
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "config_hash": cfg.section_hash("teacher"),
        "dataset_hash": store.config_hash,
        "dims": list(meta.dims),
    }
    with atomic_path(out_dir / "model.pt") as tmp:
        torch.save(state, tmp)
    write_info(
        out_dir / "info.json",
        "teacher",
        result.wall_seconds,
        device=str(device),
        steps=result.steps,
        final_loss=result.final_loss,
        resumed_from=result.resumed_from,
        parameters=sum(p.numel() for p in model.parameters()),
        run_seconds=round(time.perf_counter() - t0, 3),
        **({"processes": distributed.world_size()} if distributed.is_distributed() else {}),
    )
    distributed.barrier()
    distributed.cleanup()
    return out_dir / "model.pt"


def load_teacher(path: Path, device: torch.device) -> tuple[CoordNet, dict[str, Any]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable teacher checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a CoordNet teacher file")
    arch = state["arch"]
    model = CoordNet(
        arch["n_inputs"], arch["n_outputs"], tuple(arch["widths"]), arch["hidden_blocks"]
    )
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise ValueError(
            f"{path}: weights do not match the recorded architecture ({err})"
        ) from None
    return model.to(device).eval(), state


@torch.inference_mode()
def teacher_volume(
    model: CoordNet, theta01: torch.Tensor, dims: tuple[int, ...], batch: int, device: torch.device
) -> np.ndarray:
    """The teacher's field at one normalised parameter: [n_voxels, C] float32 in [0, 1]."""
    total = n_voxels(dims)
    out = np.empty((total, model.n_outputs), dtype=np.float32)
    t = (theta01.to(device).float() * 2 - 1).reshape(1, -1)
    for start in range(0, total, batch):
        x = grid_coords(dims, start, start + batch, device=device) * 2 - 1
        inputs = torch.cat([t.expand(len(x), -1), x], dim=1)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp_enabled(device)):
            y = model(inputs)
        out[start : start + len(x)] = from_teacher_range(y.float()).cpu().numpy()
    return out
