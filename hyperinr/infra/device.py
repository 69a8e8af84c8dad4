"""Run-time device choice: the same code runs on a laptop CPU and on an A100 node."""

from __future__ import annotations

import torch

from hyperinr.cluster.gpus import claim as claim_gpu_slot


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA on a machine without it is an error.

    On a node whose GPUs the cluster profile declares, the process first takes a free GPU of its
    own (hyperinr.cluster.gpus: jobs packed onto one node never share one) if its job asked for
    a GPU; a job of a CPU rule (resources gpu 0) takes none and sees none, so `auto` is the CPU.
    Elsewhere a no-op.
    """
    visible = None
    if name in ("auto", "cuda"):  # cuda:N names its GPU itself
        visible = claim_gpu_slot()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        why = (
            " (its job asked for no GPU: resources gpu 0)" if visible == "" else " on this machine"
        )
        raise RuntimeError(f"runtime.device is '{name}' but CUDA is not available{why}")
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
