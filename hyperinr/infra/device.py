"""Run-time device choice: the same code runs on a laptop CPU and on an A100 node.

Two steps. `claim_gpus`, once, where a CLI verb starts (hyperinr.cli.main) and before torch
touches CUDA: on a node whose GPUs the cluster profile declares it takes this process's own
GPU(s) and narrows CUDA_VISIBLE_DEVICES to them. Then `resolve_device`, a pure choice among
the GPUs the process sees, which library code and tests call freely: no locks, no environment.
"""

from __future__ import annotations

import torch

from hyperinr.cluster.gpus import claim as claim_gpu_slot


def claim_gpus(name: str) -> str | None:
    """Take the GPU slot(s) device `name` (runtime.device) needs, before CUDA is initialised.

    On a node whose GPUs the cluster profile declares, `auto` and `cuda` take a free GPU of
    this process's own (hyperinr.cluster.gpus.claim: jobs packed onto one node never share
    one); a job of a CPU rule (resources gpu 0) takes none and sees none, so `auto` is the CPU.
    `cpu` and `cuda:N` (which names its GPU itself) take nothing, nor does anything elsewhere.
    Returns CUDA_VISIBLE_DEVICES as claimed (None: untouched).
    """
    if name not in ("auto", "cuda"):
        return None
    return claim_gpu_slot()


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"runtime.device is '{name}' but CUDA is not available (on this machine, or to this "
            "job: a job that asked for no GPU, resources gpu 0, sees none)"
        )
    return device


def amp_enabled(device: torch.device) -> bool:
    """Mixed precision only on CUDA: CPU autocast to bfloat16 loses the accuracy we measure."""
    return device.type == "cuda"


def configure_threads(threads: int) -> None:
    """Pin intra-op threads so Snakemake's `threads:` is what a job really uses."""
    if threads > 0:
        torch.set_num_threads(threads)
        try:
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        except ImportError:  # numba is optional for correctness, only the CPU fast path needs it
            pass
