"""The one way the package times work on a device.

CUDA kernels run asynchronously: a host clock read right after a call measures the launch,
not the work. Every timing (predict's generation and inference, the API's generation latency,
the speed figures) therefore synchronises the device before starting and before stopping.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def synchronize(device: torch.device | None) -> None:
    """Wait for `device`'s queued work (a no-op off CUDA)."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Elapsed:
    seconds: float = 0.0

    @property
    def ms(self) -> float:
        return self.seconds * 1e3


@contextmanager
def timer(device: torch.device | None) -> Iterator[Elapsed]:
    """`with timer(device) as t: ...` then t.seconds: the block's wall time, device work
    included."""
    elapsed = Elapsed()
    synchronize(device)
    t0 = time.perf_counter()
    try:
        yield elapsed
    finally:
        synchronize(device)
        elapsed.seconds = time.perf_counter() - t0
