"""One training loop for every model: teacher, HyperINR, baselines.

Models differ in what a batch is, not in how they are optimised, so the loop takes a
`batch_fn(step) -> (inputs, target)` and owns the rest: Adam, exponential learning-rate decay,
AMP + gradient scaling on CUDA only, progress, and checkpoints written atomically every K steps
so that a job killed at any moment resumes from its last checkpoint with the same random stream.

A checkpoint is resumed only when its tag (the stage's provenance hash, hyperinr.infra.provenance)
equals the current one, and only while it is unfinished: the loop never writes a checkpoint at
the last step, and the stage deletes the last intermediate one (`discard_checkpoint`) once it
has published the model. A finished stage therefore leaves nothing a later run could resume
from, and `snakemake --forcerun X` trains X from step 0.

Data-parallel (DDP, `hyperinr.training.distributed`; torchrun started the stage with
WORLD_SIZE = W > 1):

- The model is wrapped in DistributedDataParallel: every rank computes the loss on its own
  batch and DDP averages the gradients over the ranks during `backward`, so every rank takes the
  same optimiser step. Parameters are the same on every rank at all times (DDP broadcasts rank
  0's at the start). Gradients are all-reduced dense; HyperINR's encoder bank is one Parameter,
  so a batch that touches a few encoders still gives the whole bank a (mostly zero) gradient and
  no parameter goes unused. A model with branches a batch may skip must pass
  `find_unused_parameters=True`. The average is `distributed.ordered_mean_hook` (a DDP comm
  hook: all-gather, then a sum in rank order), not DDP's default all-reduce, whose rounding
  depends on the bucket layout DDP rebuilds after a process's first step: with 3 or more ranks a
  resumed run would otherwise round its first steps differently from an uninterrupted one and
  end with other weights (~0.02 on the test teacher).
- Batches: `train.batch_size` is the global batch. Each rank draws its own per-rank batch of
  `rank_batch_size(batch_size)` = batch_size // W samples (the stages size their batch
  functions with it; a remainder is dropped, with a warning) from its own generator, seeded
  `seed + rank`. Rank r's gradient is the mean over its b samples and DDP averages the W means,
  which is the gradient of the mean over all W*b samples: a W-rank run of per-rank batch b takes
  the optimiser steps of a 1-process run of batch W*b that sees the same samples, up to float
  summation order (tests/test_ddp.py checks this with a batch function that hands rank r the
  r-th slice of the 1-process batch). With the stages' random batches the samples themselves
  differ from a 1-process run (other generators), the statistics do not. Rank 0 of 1 is seeded
  `seed + 0`: a single process is bit-identical to what it always was.
- Only rank 0 writes checkpoints and shows a progress bar; the logged loss is the mean over
  the ranks (all-reduced at every log point), identical on every rank, as is the TrainResult.
- Checkpoints hold the model and optimiser (identical on all ranks) and, besides rank 0's
  generator state under `generator` (what a single process saves), the state of every rank's
  generator under `generators` (gathered from all ranks at each checkpoint) and `world_size`.
  Resume: every rank reads the same checkpoint, the ranks check they agree on the step, and
  with the same W each rank restores its own generator, so a resumed run draws exactly the
  batches the uninterrupted run would have and, the reduction being layout-independent, ends
  with bit-identical weights (same guarantee as a single process; tests/test_ddp.py, 4 ranks).
  With another W (the tag knows W only through runtime.gpus_per_job, which the rules set to the
  process count they launch; a hand-run torchrun may differ) the weights, optimiser and step are
  resumed, rank 0 restores the saved rank-0 generator and rank r > 0 re-seeds deterministically
  from (seed, r, step) - a valid, reproducible continuation, but not the batches an
  uninterrupted run would have drawn.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hyperinr.config import TrainConfig
from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.device import amp_enabled
from hyperinr.models.model_file import torch_load_plain
from hyperinr.training import distributed

log = logging.getLogger(__name__)

Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]

_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "l1": nn.functional.l1_loss,
    "l2": nn.functional.mse_loss,
}


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    wall_seconds: float  # this run's wall time plus that of the runs it resumed
    resumed_from: int
    losses: list[tuple[int, float]]


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def discard_checkpoint(path: Path) -> None:
    """Called by a stage after it published its model: the run is over, nothing to resume."""
    path.unlink(missing_ok=True)


def _load_checkpoint(path: Path, tag: str, steps: int) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:  # weights_only=True: a checkpoint holding pickled code is refused, never run
        state = torch_load_plain(path, "training checkpoint")
    except ValueError as err:  # a torn, foreign or refused file: start over rather than crash
        log.warning("%s; starting from scratch", err)
        return None
    if not isinstance(state, dict):
        log.warning("%s: not a training checkpoint; starting from scratch", path)
        return None
    if state.get("tag") != tag:
        log.warning(
            "%s: checkpoint of other inputs or settings (%s, now %s); starting from scratch",
            path,
            state.get("tag"),
            tag,
        )
        return None
    if not 0 < state.get("step", 0) < steps:
        log.warning("%s: checkpoint of a finished run; starting from scratch", path)
        return None
    return state


def rank_batch_size(batch_size: int) -> int:
    """Samples this rank draws per step: `batch_size` (the global batch) split over the ranks.

    batch_size // world_size; a remainder is dropped (with a warning), so the global batch is
    world_size * (batch_size // world_size). A single process gets `batch_size` itself.
    """
    world = distributed.world_size()
    if world == 1:
        return batch_size
    per_rank = batch_size // world
    if per_rank < 1:
        raise ValueError(f"train.batch_size {batch_size} is smaller than the {world} processes")
    if per_rank * world != batch_size and distributed.is_main():
        log.warning(
            "train.batch_size %d is not a multiple of %d processes: global batch %d",
            batch_size,
            world,
            per_rank * world,
        )
    return per_rank


def _derived_seed(seed: int, rank: int, step: int) -> int:
    """Seed of rank `rank`'s generator when it resumes a checkpoint of another world size."""
    digest = hashlib.sha256(f"hyperinr-rank-generator:{seed}:{rank}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def train(
    model: nn.Module,
    batch_fn: Callable[[int, torch.Generator], Batch],
    cfg: TrainConfig,
    device: torch.device,
    checkpoint: Path,
    tag: str,
    desc: str = "train",
    seed: int = 0,
    extra_state: Callable[[], dict[str, Any]] | None = None,
    find_unused_parameters: bool = False,
) -> TrainResult:
    """Optimise `model` for `cfg.steps` steps, resuming from `checkpoint` if it matches `tag`.

    `tag` identifies the configuration and inputs (the stage's provenance hash): a checkpoint
    with another tag, or of a finished run, is never resumed. The generator handed to
    `batch_fn` is checkpointed too, so a resumed run draws the same batches it would have drawn.
    Under torchrun (WORLD_SIZE > 1, process group joined with
    `hyperinr.training.distributed.init`) this
    trains data-parallel: see the module docstring.
    """
    if cfg.loss not in _LOSSES:
        raise ValueError(f"train.loss '{cfg.loss}' is not one of {sorted(_LOSSES)}")
    loss_fn = _LOSSES[cfg.loss]
    rank, world = distributed.rank(), distributed.world_size()
    main = rank == 0
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(
        params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay
    )
    steps = max(cfg.steps, 1)
    decay = math.log(cfg.lr_decay) / steps if cfg.lr_decay > 0 else 0.0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: math.exp(decay * s))
    use_amp = amp_enabled(device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    gen = torch.Generator().manual_seed(seed + rank)

    start, elapsed_before, losses = 0, 0.0, []
    state = _load_checkpoint(checkpoint, tag, steps)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        saved_world = state.get("world_size", 1)
        if saved_world == world:
            gen.set_state(state["generators"][rank] if world > 1 else state["generator"])
        elif rank == 0:
            gen.set_state(state["generator"])
        else:
            gen.manual_seed(_derived_seed(seed, rank, state["step"]))
        start, elapsed_before, losses = state["step"], state["wall_seconds"], state["losses"]
        if main:
            log.info("%s: resuming from step %d of %d", checkpoint, start, steps)
            if saved_world != world:
                log.warning(
                    "%s: written by %d process(es), resumed by %d: ranks > 0 draw new batch "
                    "streams (deterministic, but not those of an uninterrupted run)",
                    checkpoint,
                    saved_world,
                    world,
                )

    net: nn.Module = model
    if world > 1:
        starts = distributed.all_gather_object(start)
        if len(set(starts)) != 1:
            raise RuntimeError(f"{checkpoint}: ranks disagree on the step to resume: {starts}")
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters,
        )
        # rank-order sums: a resumed run rounds its gradients as the uninterrupted run does
        net.register_comm_hook(None, distributed.ordered_mean_hook)

    def snapshot(step: int, elapsed: float) -> dict[str, Any] | None:
        """The checkpoint (on rank 0; None elsewhere). Every rank must call it: it gathers."""
        gens = distributed.all_gather_object(gen.get_state()) if world > 1 else None
        if not main:
            return None
        state = {
            "tag": tag,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": gen.get_state() if gens is None else gens[0],
            "wall_seconds": elapsed,
            "losses": losses,
            **(extra_state() if extra_state else {}),
        }
        if gens is not None:
            state["world_size"] = world
            state["generators"] = gens
        return state

    def save(step: int, elapsed: float) -> None:
        state = snapshot(step, elapsed)
        if state is not None:
            save_checkpoint(checkpoint, state)

    t0 = time.perf_counter()
    running, n_running, last = 0.0, 0, float("nan")
    model.train()
    bar = tqdm(
        total=steps,
        initial=start,
        desc=desc,
        mininterval=2.0,
        dynamic_ncols=True,
        disable=not main,
    )
    for step in range(start, steps):
        inputs, target = batch_fn(step, gen)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            pred = net(*inputs)
        loss = loss_fn(pred.float(), target.float())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss became {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        running += loss.item()
        n_running += 1
        done = step + 1
        if done % cfg.log_every == 0 or done == steps:
            last = running / n_running
            if world > 1:
                last = distributed.all_reduce_mean(last)
            losses.append((done, last))
            bar.set_postfix(loss=f"{last:.5f}")
            running, n_running = 0.0, 0
        bar.update(1)
        if cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0 and done < steps:
            save(done, elapsed_before + time.perf_counter() - t0)
    bar.close()
    elapsed = elapsed_before + time.perf_counter() - t0
    return TrainResult(steps, last, elapsed, start, losses)
