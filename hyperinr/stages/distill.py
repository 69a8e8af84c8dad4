"""Stage `distill`: optimise HyperINR on the distillation set (Sec. 3.1 and 5)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hyperinr.config import Config
from hyperinr.infra import provenance
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.models.coordnet import load_teacher, teacher_values
from hyperinr.models.hyperinr import HyperINR, save_hyperinr
from hyperinr.stages.common import (
    DatasetTensors,
    check_teacher,
    distill_parameters,
    encoder_positions_for,
    load_dataset_meta,
    meta_dict,
    read_frames,
    train_and_publish,
)
from hyperinr.sweeps import GROUND_TRUTH, TRAINING_MODES
from hyperinr.training import distributed
from hyperinr.training.loader import Targets, TeacherTargets, open_targets
from hyperinr.training.loop import rank_batch_size
from hyperinr.training.targets import (
    Anchors,
    CorrectedTargets,
    GroundTruthTargets,
    HybridTargets,
    choose_shrinkage,
)

_TEACHER_BATCH = 65536  # points per teacher call for the anchors (changes no value)


def distill_hyperinr(
    cfg: Config,
    dataset: Path,
    distill_set: Path | None,
    out_dir: Path,
    teacher: Path | None = None,
    validation_teacher: Path | None = None,
    *,
    extra_info: Mapping[str, Any] | None = None,
) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json` (with `extra_info`); resumes from
    `out_dir/checkpoint.pt` only when it was written for the same targets and settings (its
    provenance).

    Targets come from the distillation set (`hyperinr.target_source: precomputed`, in memory or
    streamed, see hyperinr/training/loader.py) or from the teacher itself (`on_demand`); with
    targets_mode ground_truth from the training frames alone (neither is read). targets_mode
    corrected with shrinkage null chooses a with `validation_teacher` (rule teacher_validation).

    Under torchrun (runtime.gpus_per_job > 1) every process trains data-parallel (one GPU each,
    hyperinr/training/loop.py) with its own copy of the targets source and only rank 0 writes; the
    others wait for it, then return.
    """
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    meta, store = load_dataset_meta(dataset)
    batch = rank_batch_size(cfg.hyperinr.train.batch_size)  # this process's share
    world = distributed.world_size()
    if cfg.hyperinr.targets_mode == GROUND_TRUTH:
        train_params = meta.params01[meta.train_indices].double().numpy()
        frames = read_frames(store, meta.train_indices).to(device)
        targets, inputs = GroundTruthTargets(frames, train_params, meta.dims, batch), {}
        mode_facts: dict[str, Any] = {}
    else:
        targets, inputs = _targets(
            cfg, meta, store.content_hash, distill_set, teacher, device, batch
        )
        targets, mode_facts = _apply_mode(
            cfg, meta, store, targets, teacher, validation_teacher, device, batch
        )
    if cfg.hyperinr.targets_mode not in ("teacher", GROUND_TRUTH):
        inputs["teacher"] = provenance.sha256_file(teacher)  # its training-frame outputs
    if "shrinkage_choice" in mode_facts:
        inputs["validation_teacher"] = provenance.sha256_file(validation_teacher)
    produced_by = provenance.record("distill", cfg, {"dataset": store.content_hash, **inputs})
    positions = encoder_positions_for(cfg, meta)
    model = HyperINR(
        positions,
        meta.n_spatial,
        meta.n_channels,
        cfg.hyperinr.encoding,
        cfg.hyperinr.network,
        cfg.hyperinr.k_nearest,
        seed=cfg.runtime.seed,
        power=cfg.hyperinr.idw_power,
        periodic=meta.periodic or None,
    ).to(device)
    idx_table, w_table = model.lookup(targets.params01)  # [N_D, K] each: parameters are fixed

    def batch_fn(step: int, gen: torch.Generator):
        # the streaming window follows the samples drawn by all processes: step * world
        # per-process batches (= the 1-process schedule); the other sources ignore the step
        j, x, y = targets.sample(step * world, gen)
        return (x, idx_table[j], w_table[j]), y

    try:
        return train_and_publish(
            model, batch_fn, cfg.hyperinr.train, device, out_dir, "distill", produced_by,
            lambda path: save_hyperinr(
                path, model, {**meta_dict(meta), "produced_by": produced_by}
            ),
            seed=cfg.runtime.seed, desc="distill", extra_info=extra_info,
            info=lambda: {
                "n_encoders": model.n_encoders, "targets_mode": cfg.hyperinr.targets_mode,
                **mode_facts, **targets.describe(),
            },
        )  # fmt: skip
    finally:
        targets.close()


def _targets(
    cfg: Config,
    meta: DatasetTensors,
    dataset_hash: str,
    distill_set: Path | None,
    teacher: Path | None,
    device: torch.device,
    batch: int,
) -> tuple[Targets, dict[str, str]]:
    """The batch source and the content hash of where its numbers come from (provenance)."""
    if cfg.hyperinr.target_source == "on_demand":
        if teacher is None:
            raise ValueError("hyperinr.target_source is on_demand: distill needs --teacher")
        model, tstate = load_teacher(Path(teacher), device)
        check_teacher(Path(teacher), tstate, meta, dataset_hash)
        params01 = distill_parameters(cfg, meta)
        source = TeacherTargets(model, params01, meta.dims, device, batch)
        return source, {"teacher": provenance.sha256_file(teacher)}
    if cfg.hyperinr.target_source != "precomputed":
        raise ValueError(
            f"hyperinr.target_source '{cfg.hyperinr.target_source}' is not precomputed|on_demand"
        )
    if distill_set is None:
        raise ValueError("hyperinr.target_source is precomputed: distill needs --distill-set")
    source = open_targets(
        distill_set,
        device,
        batch,
        cfg.hyperinr.buffer_mb,
        cfg.hyperinr.loader_threads,
        cfg.runtime.seed,
    )
    ds = source.ds
    if tuple(ds.dims) != tuple(meta.dims):
        source.close()
        raise ValueError(f"{distill_set}: distillation set dims {ds.dims} != dataset {meta.dims}")
    if ds.attrs.get("dataset_hash") != dataset_hash:
        source.close()
        raise ValueError(f"{distill_set}: distillation set was computed for another dataset")
    return source, {"distill_set": ds.content_hash}


def _apply_mode(
    cfg: Config,
    meta: DatasetTensors,
    store: Any,
    source: Targets,
    teacher: Path | None,
    validation_teacher: Path | None,
    device: torch.device,
    batch: int,
) -> tuple[Targets, dict[str, Any]]:
    """Wrap the batch source for targets_mode corrected/hybrid (hyperinr/training/targets.py);
    the anchors read the training frames only, never an unseen one."""
    mode = cfg.hyperinr.targets_mode
    if mode == "teacher":
        return source, {}
    if mode not in TRAINING_MODES:
        source.close()
        raise ValueError(
            f"hyperinr.targets_mode '{mode}' is not one of {', '.join(TRAINING_MODES)}"
        )
    if teacher is None:
        source.close()
        raise ValueError(f"hyperinr.targets_mode {mode}: distill needs --teacher")
    anchors = training_anchors(cfg, meta, store, Path(teacher), device)
    if mode == "hybrid":
        fraction = cfg.hyperinr.hybrid_fraction
        return HybridTargets(source, anchors, fraction, batch), {"hybrid_fraction": fraction}
    facts: dict[str, Any] = {}
    a = cfg.hyperinr.shrinkage
    if a is None:
        if validation_teacher is None:
            source.close()
            raise ValueError(
                "hyperinr.shrinkage is null: distill needs --validation-teacher "
                "(rule teacher_validation) to choose it"
            )
        try:
            facts["shrinkage_choice"] = shrinkage_choice(
                anchors, meta, store, Path(validation_teacher), device
            )
        except Exception:
            source.close()  # its loader threads must not outlive the error
            raise
        a = facts["shrinkage_choice"]["chosen"]
    return CorrectedTargets(source, anchors, a), facts


def shrinkage_choice(
    anchors: Anchors,
    meta: DatasetTensors,
    store: Any,
    validation_teacher: Path,
    device: torch.device,
) -> dict[str, Any]:
    """The shrinkage chosen on the training frames the validation teacher never trained on
    (the frames its file names), with the curve, the scored dataset frames and its cost."""
    t0 = time.perf_counter()
    values, vstate = _teacher_at_training_frames(validation_teacher, meta, store, device)
    held_frames = [int(i) for i in vstate.get("held_out_frames", [])]
    position = {int(f): i for i, f in enumerate(meta.train_indices)}
    if not held_frames or any(f not in position for f in held_frames):
        raise ValueError(
            f"{validation_teacher}: not a validation teacher of this dataset (held-out frames "
            f"{held_frames} are not training frames {list(meta.train_indices)})"
        )
    validation = dataclasses.replace(anchors, teacher=values)
    choice = choose_shrinkage(validation, [position[f] for f in held_frames])
    choice["scored"] = held_frames  # dataset frame indices, as the validation teacher names them
    choice["validation_teacher_frames"] = [int(i) for i in vstate.get("trained_frames", [])]
    choice["seconds"] = round(time.perf_counter() - t0, 3)
    return choice


def _teacher_at_training_frames(
    path: Path, meta: DatasetTensors, store: Any, device: torch.device
) -> tuple[torch.Tensor, dict[str, Any]]:
    """[n_train, V, C] outputs of the teacher file at the training parameters, and its state."""
    model, tstate = load_teacher(path, device)
    check_teacher(path, tstate, meta, store.content_hash)
    outputs = [
        torch.from_numpy(teacher_values(model, meta.params01[i], meta.dims, _TEACHER_BATCH, device))
        for i in meta.train_indices
    ]
    return torch.stack(outputs).to(device), tstate


def training_anchors(
    cfg: Config, meta: DatasetTensors, store: Any, teacher: Path, device: torch.device
) -> Anchors:
    """The training frames and the teacher's outputs at their parameters, on `device`."""
    values, _ = _teacher_at_training_frames(teacher, meta, store, device)
    train = meta.train_indices
    return Anchors(
        params01=meta.params01[train].double().numpy(),
        ground_truth=read_frames(store, train).to(device),
        teacher=values,
        dims=meta.dims,
        k_nearest=cfg.hyperinr.k_nearest,
        power=cfg.hyperinr.idw_power,
        periodic=meta.periodic or None,
    )
