"""Run-time device choice: the same code runs on a laptop CPU and on an A100 node."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device is '{name}' but CUDA is not available on this machine")
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
