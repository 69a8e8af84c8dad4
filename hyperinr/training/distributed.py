"""Data-parallel training over the GPUs of one node: torchrun + torch.distributed (DDP).

`torchrun --standalone --nproc_per_node N -m hyperinr.cli teacher ...` starts N copies of a
stage with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT in their environment.
`init()` joins them into one process group: NCCL with one GPU per process (cuda:LOCAL_RANK)
on CUDA, gloo on CPU (the tests run 2 CPU processes). When WORLD_SIZE is unset or 1 nothing
happens: no process group, and every helper here answers as rank 0 of 1 or does nothing, so a
single-process run takes exactly the code path it always took.

What each rank does in a training stage is described in hyperinr/training/loop.py; in short
every rank trains on its own batches, gradients are averaged by DDP, and only rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

_owned = False  # the process group was created by init() (and is destroyed by cleanup())
_device = torch.device("cpu")  # where collectives put their tensors (NCCL needs CUDA ones)


def env_world_size() -> int:
    """Processes torchrun started for this job (1 when not started by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    """A process group of more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes checkpoints, models, info files and progress bars."""
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group when WORLD_SIZE > 1; returns this process's device.

    On CUDA every process gets its own GPU, cuda:LOCAL_RANK (an explicit `runtime.device:
    cuda:N` is overridden), and the backend is NCCL; on CPU the backend is gloo. A group that
    already exists (a test may have made one) is used as it is. Single process: returns
    `device` untouched.
    """
    global _owned, _device
    if env_world_size() <= 1 and not is_distributed():
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        visible = torch.cuda.device_count()
        if local >= visible:
            raise RuntimeError(
                f"torchrun started process LOCAL_RANK={local} but only {visible} GPU(s) are "
                "visible: the job got fewer GPUs than runtime.gpus_per_job (check the "
                "profile's gpu setting, docs/cluster.md, Multi-GPU)"
            )
        if device.index is not None and device.index != local:
            log.warning("runtime.device %s ignored under torchrun: using cuda:%d", device, local)
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)  # env:// rendezvous: MASTER_ADDR/PORT, RANK, WORLD_SIZE
        _owned = True
        log.info(
            "rank %d of %d (%s, %s) joined the process group",
            dist.get_rank(),
            dist.get_world_size(),
            backend,
            device,
        )
    _device = device
    return device


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[_device.index if _device.index is not None else 0])
    else:
        dist.barrier()


def all_reduce_mean(value: float) -> float:
    """The mean of `value` over the ranks (the value itself in a single process)."""
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank ([obj] in a single process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def ordered_mean_hook(group, bucket):  # (ProcessGroup | None, GradBucket) -> Future[Tensor]
    """DDP communication hook: the mean of a gradient bucket over the ranks, summed in rank order.

    DDP's default all-reduce sums each element in an order that depends on where it lies in the
    flattened bucket (ring all-reduce: every chunk starts at another rank). DDP lays its buckets
    out once at construction and again after the first step (in the order the gradients became
    ready), so a run resumed at step k (fresh layout at step k) and an uninterrupted one (rebuilt
    layout at step k) round the same gradients differently from 3 ranks on - enough to end
    training with other weights. Here every rank gathers all ranks' buckets and adds them
    element-wise as ((g0 + g1) + g2) + ..., then divides by the world size: the same bits for
    every element whatever the bucket layout, on every rank. Costs W copies of a bucket and an
    all-gather instead of an all-reduce (about W/2 x the traffic): small next to the training.
    No annotations: DDP checks a hook's annotations against the real classes, and this module's
    `from __future__ import annotations` would turn them into strings.
    """
    buf = bucket.buffer()
    world = dist.get_world_size(group)
    flat = torch.empty(world * buf.numel(), dtype=buf.dtype, device=buf.device)  # gloo: 1-D
    work = dist.all_gather_into_tensor(flat, buf.reshape(-1), group=group, async_op=True)
    gathered = flat.view(world, *buf.shape)

    def mean(_: torch.futures.Future) -> torch.Tensor:
        total = gathered[0].clone()
        for r in range(1, world):
            total += gathered[r]
        return total.div_(world)

    return work.get_future().then(mean)


def cleanup() -> None:
    """Leave the process group init() created (a group made by someone else is left alone)."""
    global _owned
    if _owned and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False
