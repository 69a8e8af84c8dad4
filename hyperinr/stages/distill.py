"""Stage `distill`: optimise HyperINR on the distillation set (Sec. 3.1 and 5)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import qmc

from hyperinr import distributed
from hyperinr.atomic import atomic_path, clean_stale_temporaries
from hyperinr.config import Config
from hyperinr.data.loader import Targets, TeacherTargets, open_targets
from hyperinr.device import configure_threads, resolve_device
from hyperinr.models.hyperinr import HyperINR, even_positions
from hyperinr.stages.common import load_dataset_meta, write_info
from hyperinr.train import rank_batch_size, train

MODEL_KIND = "hyperinr"


def encoder_positions(n_encoders: int, n_param_dims: int, seed: int = 0) -> np.ndarray:
    """1-D: evenly spaced (TSR). n-D: Poisson-disk samples (Bridson's algorithm, scipy)."""
    if n_param_dims == 1:
        return even_positions(n_encoders)
    radius = 0.7 * n_encoders ** (-1.0 / n_param_dims)
    engine = qmc.PoissonDisk(d=n_param_dims, radius=radius, seed=seed)
    return engine.random(n_encoders)


def distill_hyperinr(
    cfg: Config,
    dataset: Path,
    distill_set: Path | None,
    out_dir: Path,
    teacher: Path | None = None,
) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json`; resumes from `out_dir/checkpoint.pt`.

    Targets come from the distillation set (`hyperinr.targets: precomputed`, in memory or
    streamed, see hyperinr/data/loader.py) or from the teacher itself (`on_demand`).

    Under torchrun (runtime.gpus_per_job > 1) every process trains data-parallel (one GPU each,
    hyperinr/train.py) with its own copy of the targets source and only rank 0 writes; the
    others wait for it, then return.
    """
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    torch.manual_seed(cfg.runtime.seed)
    meta, store = load_dataset_meta(dataset)
    batch = rank_batch_size(cfg.hyperinr.train.batch_size)  # this process's share
    world = distributed.world_size()
    targets, set_tag = _targets(cfg, meta, store.config_hash, distill_set, teacher, device, batch)
    params01 = targets.params01
    positions = encoder_positions(cfg.hyperinr.n_encoders, meta.n_params, cfg.runtime.seed)
    model = HyperINR(
        positions,
        meta.n_spatial,
        meta.n_channels,
        cfg.hyperinr.encoding,
        cfg.hyperinr.network,
        cfg.hyperinr.k_nearest,
        seed=cfg.runtime.seed,
    ).to(device)
    idx_table, w_table = model.lookup(params01)  # [N_D, K] each: parameters are fixed

    def batch_fn(step: int, gen: torch.Generator):
        # the streaming window follows the samples drawn by all processes: step * world
        # per-process batches (= the 1-process schedule); the other sources ignore the step
        j, x, y = targets.sample(step * world, gen)
        return (x, idx_table[j], w_table[j]), y

    out_dir.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        clean_stale_temporaries(out_dir / "model.pt")
    tag = f"hyperinr:{cfg.section_hash('hyperinr', 'runtime')}:{set_tag}"
    t0 = time.perf_counter()
    try:
        result = train(
            model,
            batch_fn,
            cfg.hyperinr.train,
            device,
            out_dir / "checkpoint.pt",
            tag=tag,
            desc="distill",
            seed=cfg.runtime.seed,
        )
    finally:
        targets.close()
    if not distributed.is_main():  # rank 0 writes model.pt and info.json; the others wait
        distributed.barrier()
        distributed.cleanup()
        return out_dir / "model.pt"
    save_hyperinr(out_dir / "model.pt", model, meta_dict(meta, store))
    write_info(
        out_dir / "info.json",
        "distill",
        result.wall_seconds,
        device=str(device),
        steps=result.steps,
        final_loss=result.final_loss,
        resumed_from=result.resumed_from,
        n_encoders=model.n_encoders,
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        run_seconds=round(time.perf_counter() - t0, 3),
        **targets.describe(),
        **({"processes": world} if world > 1 else {}),
    )
    distributed.barrier()
    distributed.cleanup()
    return out_dir / "model.pt"


def _targets(
    cfg: Config,
    meta: Any,
    dataset_hash: str,
    distill_set: Path | None,
    teacher: Path | None,
    device: torch.device,
    batch: int,
) -> tuple[Targets, str]:
    """The batch source and what identifies its data (part of the checkpoint tag)."""
    if cfg.hyperinr.targets == "on_demand":
        from hyperinr.models.coordnet import from_teacher_range
        from hyperinr.stages.distill_set import (
            check_teacher,
            distill_params,
            file_sha256,
            set_config_hash,
        )
        from hyperinr.stages.teacher import load_teacher

        if teacher is None:
            raise ValueError("hyperinr.targets is on_demand: distill needs --teacher")
        model, tstate = load_teacher(Path(teacher), device)
        check_teacher(Path(teacher), tstate, meta, dataset_hash, cfg)
        params01 = distill_params(cfg.distill_set.n_params, meta.n_params)
        source = TeacherTargets(model, params01, meta.dims, device, batch, from_teacher_range)
        return source, f"on_demand:{set_config_hash(cfg)}:{file_sha256(Path(teacher))[:16]}"
    if cfg.hyperinr.targets != "precomputed":
        raise ValueError(f"hyperinr.targets '{cfg.hyperinr.targets}' is not precomputed|on_demand")
    if distill_set is None:
        raise ValueError("hyperinr.targets is precomputed: distill needs --distill-set")
    source = open_targets(
        distill_set,
        device,
        batch,
        cfg.hyperinr.buffer_mb,
        cfg.hyperinr.loader_threads,
        cfg.runtime.seed,
    )
    ds = getattr(source, "ds", None)
    if ds is not None and tuple(ds.dims) != tuple(meta.dims):
        source.close()
        raise ValueError(f"{distill_set}: distillation set dims {ds.dims} != dataset {meta.dims}")
    return source, ds.config_hash if ds is not None else ""


def meta_dict(meta: Any, store: Any) -> dict[str, Any]:
    return {
        "dims": list(meta.dims),
        "param_names": meta.param_names,
        "param_range": meta.param_range.tolist(),
        "value_range": list(meta.value_range),
        "dataset_hash": store.config_hash,
    }


def save_hyperinr(path: Path, model: HyperINR, meta: dict[str, Any]) -> None:
    state = {
        "kind": MODEL_KIND,
        "description": model.describe(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_hyperinr(path: Path, device: torch.device) -> tuple[HyperINR, dict[str, Any]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable HyperINR checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a HyperINR model file")
    model = HyperINR.from_description(state["description"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), state["meta"]
