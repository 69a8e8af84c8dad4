"""Training targets for the distillation: (parameter index, coordinates, values) minibatches.

Three sources, one interface (`sample(step, gen) -> (j, x, y)` on the training device):

- `InMemoryTargets`: the whole set in memory (on the GPU when there is one); each sample draws a
  parameter and a point uniformly over the whole set. Used when the set fits `buffer_mb`.
- `StreamingTargets`: a set larger than the buffer is read from disk by background threads into
  a ring of chunk slots (one chunk = one parameter). The parameters are visited in a fresh random
  permutation every epoch; at each step the `resident` parameters of a window sliding along that
  stream are in memory and each sample draws one of them and a point uniformly. The window
  advances by one parameter per `n_points` samples drawn, so every parameter is resident for the
  same number of steps and receives the same expected number of samples per epoch; the
  `lookahead` slots ahead of the window are read while training runs. Memory stays below the
  buffer: slots + one in-flight chunk read (compressed + decoded) per thread.
- `TeacherTargets`: no set at all; the teacher is evaluated on each minibatch ("on demand").

Resume: the window is a pure function of the step and every random draw comes from the
generator the training loop checkpoints, so a resumed run draws exactly the batches an
uninterrupted one would have, in every mode (the loader refills its window at the resumed step).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from hyperinr.data.distill_store import DistillSet
from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.models.coordnet import evaluate_teacher

MiB = 2**20
_READ_OVERHEAD = 64 * 1024

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # j [B] long, x [B, D], y [B, C] float32


class Targets(Protocol):
    params01: np.ndarray

    def sample(self, step: int, gen: torch.Generator) -> Batch: ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def _torch_dtype(dtype: np.dtype) -> torch.dtype:
    return {np.dtype(np.float16): torch.float16, np.dtype(np.float32): torch.float32}[dtype]


class InMemoryTargets:
    """The whole set in memory; today's sampling: parameter and point uniform over the set."""

    def __init__(self, ds: DistillSet, device: torch.device, batch: int) -> None:
        self.ds, self.device, self.batch = ds, device, batch
        self.params01 = ds.params01
        values = np.empty((ds.n_params, ds.n_points, ds.n_channels), ds.values_dtype)
        coords = None
        if ds.coords is not None:
            coords = np.empty((ds.n_params, ds.n_points, ds.n_dims), np.float32)
        for j in range(ds.n_params):
            ds.read_into(j, values[j], None if coords is None else coords[j])
        self.values = torch.from_numpy(values).to(device)  # [N_D, V, C] at the stored precision
        self.coords = None if coords is None else torch.from_numpy(coords).to(device)

    def sample(self, step: int, gen: torch.Generator) -> Batch:
        j = torch.randint(self.ds.n_params, (self.batch,), generator=gen).to(self.device)
        v = torch.randint(self.ds.n_points, (self.batch,), generator=gen).to(self.device)
        x = flat_to_coords(v, self.ds.dims) if self.coords is None else self.coords[j, v]
        return j, x, self.values[j, v].float()

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"loader": "in_memory", "loader_bytes": self.ds.nbytes}


class StreamingTargets:
    """A set larger than the buffer, read by background threads into a ring of chunk slots."""

    def __init__(
        self,
        ds: DistillSet,
        device: torch.device,
        batch: int,
        buffer_bytes: int,
        threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.ds, self.device, self.batch, self.seed = ds, device, batch, seed
        self.params01 = ds.params01
        self.threads = max(1, threads)
        chunk = ds.chunk_nbytes
        self.reserve_bytes = self.reserve_for(chunk, self.threads)
        slots = (buffer_bytes - self.reserve_bytes) // chunk
        lookahead = max(self.threads, slots // 4)
        resident = min(slots - lookahead, ds.n_params)
        if resident < 1:
            need = self.reserve_bytes + (1 + self.threads) * chunk
            raise ValueError(
                f"hyperinr.buffer_mb={buffer_bytes / MiB:.3g} is too small to stream {ds.path}: "
                f"one parameter takes {chunk / MiB:.3g} MiB; with {self.threads} loader "
                f"thread(s) the buffer needs at least {need / MiB:.3g} MiB"
            )
        self.resident, self.lookahead = resident, lookahead
        self.n_slots = resident + lookahead
        self.ring_bytes = self.n_slots * chunk
        pin = device.type == "cuda"
        self._values = self._ring((self.n_slots, ds.n_points, ds.n_channels), ds.values_dtype, pin)
        self._coords = None
        if ds.coords is not None:
            self._coords = self._ring((self.n_slots, ds.n_points, ds.n_dims), np.float32, pin)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="distill-loader")
        self._futures: dict[int, Future[int]] = {}
        self._next = 0  # next stream position to submit
        self._a = -1  # window start of the last step served
        self._params = torch.empty(0, dtype=torch.int64)
        self._perms: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()
        self.stall_seconds = 0.0
        self.chunks_read = 0

    @staticmethod
    def reserve_for(chunk_nbytes: int, threads: int) -> int:
        """Transient bytes of the reads in flight: each reader thread holds one chunk's
        compressed bytes and its decoded copy at once, plus Zarr's bookkeeping (~30 KiB)."""
        return threads * (2 * chunk_nbytes + _READ_OVERHEAD) + _READ_OVERHEAD

    @staticmethod
    def _ring(shape: tuple[int, ...], dtype: Any, pin: bool) -> torch.Tensor:
        if pin:  # pinned host memory: batches go to the GPU with non-blocking copies
            return torch.empty(shape, dtype=_torch_dtype(np.dtype(dtype)), pin_memory=True)
        return torch.from_numpy(np.empty(shape, dtype))  # numpy-allocated: visible to tracemalloc

    # ------------------------------------------------------------------ schedule (pure functions)

    def permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            perm = self._perms.get(epoch)
            if perm is None:
                rng = np.random.default_rng([self.seed, epoch, 0x5E7])
                perm = rng.permutation(self.ds.n_params)
                self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
                self._perms[epoch] = perm
            return perm

    def param_at(self, position: int) -> int:
        epoch, r = divmod(position, self.ds.n_params)
        return int(self.permutation(epoch)[r])

    def window_start(self, step: int) -> int:
        """First stream position resident at `step`: one position per n_points samples drawn."""
        return (step * self.batch) // self.ds.n_points

    def window(self, step: int) -> np.ndarray:
        """Parameter indices resident at `step` (each drawn with probability 1/resident)."""
        a = self.window_start(step)
        return np.array([self.param_at(p) for p in range(a, a + self.resident)], dtype=np.int64)

    # ------------------------------------------------------------------ background reading

    def _load(self, position: int) -> int:
        j = self.param_at(position)
        slot = position % self.n_slots
        coords = None if self._coords is None else self._coords[slot].numpy()
        self.ds.read_into(j, self._values[slot].numpy(), coords)
        return j

    def _release(self, fut: Future[int]) -> None:
        if not fut.cancel():
            fut.exception()  # wait for it: its slot is about to be reused (errors of a position
            # that is never sampled do not matter)

    def _advance(self, a: int) -> None:
        """Free positions before `a`; have every position in [a, a + n_slots) read or reading."""
        if a < self._a:  # the step went backwards (a new run on this loader): start over
            for fut in self._futures.values():
                self._release(fut)
            self._futures.clear()
            self._next = a
        for p in [p for p in self._futures if p < a]:
            self._release(self._futures.pop(p))
        for p in range(max(self._next, a), a + self.n_slots):
            self._futures[p] = self._pool.submit(self._load, p)
            self.chunks_read += 1
        self._next = max(self._next, a + self.n_slots)
        t0 = time.perf_counter()
        resident = range(a, a + self.resident)
        self._params = torch.tensor([self._futures[p].result() for p in resident])
        self.stall_seconds += time.perf_counter() - t0
        self._a = a

    def sample(self, step: int, gen: torch.Generator) -> Batch:
        a = self.window_start(step)
        if a != self._a:
            self._advance(a)
        k = torch.randint(self.resident, (self.batch,), generator=gen)
        v = torch.randint(self.ds.n_points, (self.batch,), generator=gen)
        slot = (k + a) % self.n_slots
        y = self._values[slot, v]
        j = self._params[k]
        x = flat_to_coords(v, self.ds.dims) if self._coords is None else self._coords[slot, v]
        if self.device.type == "cuda":
            y, x = y.pin_memory(), x.pin_memory()
        move = self._to_device
        return move(j), move(x), move(y).float()

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.device, non_blocking=True) if self.device.type != "cpu" else t

    def close(self) -> None:
        for fut in self._futures.values():
            fut.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()

    def describe(self) -> dict[str, Any]:
        return {
            "loader": "streaming",
            "loader_bytes": self.ring_bytes + self.reserve_bytes,
            "resident_params": self.resident,
            "lookahead_params": self.lookahead,
            "chunks_read": self.chunks_read,
            "stall_seconds": round(self.stall_seconds, 3),
        }


class TeacherTargets:
    """On-demand targets: the teacher evaluated on every minibatch (no set on disk)."""

    def __init__(
        self,
        model: torch.nn.Module,
        params01: np.ndarray,
        dims: tuple[int, ...],
        device: torch.device,
        batch: int,
    ) -> None:
        self.model, self.params01, self.dims = model.eval(), params01, dims
        self.device, self.batch = device, batch
        self.theta01 = torch.from_numpy(params01).float().to(device)
        self.n_points = n_voxels(dims)

    def sample(self, step: int, gen: torch.Generator) -> Batch:
        j = torch.randint(len(self.params01), (self.batch,), generator=gen).to(self.device)
        v = torch.randint(self.n_points, (self.batch,), generator=gen).to(self.device)
        x = flat_to_coords(v, self.dims)
        return j, x, evaluate_teacher(self.model, self.theta01[j], x)

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"loader": "on_demand"}


def open_targets(
    path: str | Path,
    device: torch.device,
    batch: int,
    buffer_mb: float,
    threads: int = 2,
    seed: int = 0,
) -> InMemoryTargets | StreamingTargets:
    """In memory if the set fits `buffer_mb`, else streamed through a ring of that size."""
    ds = DistillSet(path)
    buffer_bytes = int(buffer_mb * MiB)
    if ds.nbytes <= buffer_bytes:
        return InMemoryTargets(ds, device, batch)
    return StreamingTargets(ds, device, batch, buffer_bytes, threads, seed)
