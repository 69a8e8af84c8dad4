"""One training loop for every model: teacher, HyperINR, baselines.

Models differ in what a batch is, not in how they are optimised, so the loop takes a
`batch_fn(step) -> (inputs, target)` and owns the rest: Adam, exponential learning-rate decay,
AMP + gradient scaling on CUDA only, progress, and checkpoints written atomically every K steps
so that a job killed at any moment resumes from its last checkpoint with the same random stream.
"""

from __future__ import annotations

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

from hyperinr.atomic import atomic_path
from hyperinr.config import TrainConfig
from hyperinr.device import amp_enabled

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


def _load_checkpoint(path: Path, tag: str) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a torn or foreign file: start over rather than crash
        log.warning("%s: unreadable checkpoint (%s); starting from scratch", path, err)
        return None
    if state.get("tag") != tag:
        log.warning("%s: checkpoint is for another configuration; starting from scratch", path)
        return None
    return state


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
) -> TrainResult:
    """Optimise `model` for `cfg.steps` steps, resuming from `checkpoint` if it matches `tag`.

    `tag` identifies the configuration and inputs (a hash): a checkpoint with another tag is
    never resumed. The generator handed to `batch_fn` is checkpointed too, so a resumed run
    draws the same batches it would have drawn.
    """
    if cfg.loss not in _LOSSES:
        raise ValueError(f"train.loss '{cfg.loss}' is not one of {sorted(_LOSSES)}")
    loss_fn = _LOSSES[cfg.loss]
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
    gen = torch.Generator().manual_seed(seed)

    start, elapsed_before, losses = 0, 0.0, []
    state = _load_checkpoint(checkpoint, tag)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        gen.set_state(state["generator"])
        start, elapsed_before, losses = state["step"], state["wall_seconds"], state["losses"]
        log.info("%s: resuming from step %d of %d", checkpoint, start, steps)

    def snapshot(step: int, elapsed: float) -> dict[str, Any]:
        return {
            "tag": tag,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "generator": gen.get_state(),
            "wall_seconds": elapsed,
            "losses": losses,
            **(extra_state() if extra_state else {}),
        }

    t0 = time.perf_counter()
    running, n_running, last = 0.0, 0, float("nan")
    model.train()
    bar = tqdm(total=steps, initial=start, desc=desc, mininterval=2.0, dynamic_ncols=True)
    for step in range(start, steps):
        inputs, target = batch_fn(step, gen)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            pred = model(*inputs)
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
            losses.append((done, last))
            bar.set_postfix(loss=f"{last:.5f}")
            running, n_running = 0.0, 0
        bar.update(1)
        if cfg.checkpoint_every > 0 and done % cfg.checkpoint_every == 0 and done < steps:
            save_checkpoint(checkpoint, snapshot(done, elapsed_before + time.perf_counter() - t0))
    bar.close()
    elapsed = elapsed_before + time.perf_counter() - t0
    if start < steps:
        save_checkpoint(checkpoint, snapshot(steps, elapsed))
    elif losses:
        last = losses[-1][1]
    return TrainResult(steps, last, elapsed, start, losses)
