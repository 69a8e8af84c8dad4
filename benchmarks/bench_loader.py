"""Distillation-set loader vs distillation step, on this CPU (docs/benchmarks.md).

    python benchmarks/bench_loader.py [--buffer-mb 8] [--loader-threads 1] [--threads 1]

Builds a distillation set on disk shaped like the default config's (config/config.yaml: 64^3,
distill_set.n_samples parameters, float16) through the real shard/gather code, with a tiny
untrained teacher (the teacher's quality does not change what the loader moves), then measures
with the default HyperINR (config.yaml hyperinr section) and its batch size:

1. the step: samples/s one HyperINR optimisation step consumes (a fixed batch, no loading);
2. the loader alone, streaming a set larger than its buffer: samples/s it delivers over a whole
   epoch (every parameter read from disk once, the window advancing at the training rate), and
   the raw disk -> buffer rate;
3. training throughput with the set in memory vs streamed through the bounded buffer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from hyperinr.config import Config, TrainConfig
from hyperinr.data.store import write_dataset
from hyperinr.infra.device import configure_threads
from hyperinr.models.coordnet import CoordNet
from hyperinr.models.hyperinr import HyperINR
from hyperinr.param_space.positions import encoder_positions
from hyperinr.stages.distill_set import build_distill_set
from hyperinr.training.loader import DistillSet, InMemoryTargets, StreamingTargets
from hyperinr.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def build_set(work: Path, cfg: Config, dims: tuple[int, ...]) -> Path:
    out = work / "distill_set.zarr"
    if out.exists():
        return out
    rng = np.random.default_rng(0)
    dataset = write_dataset(
        work / "dataset.zarr",
        [rng.random(dims).astype(np.float32) for _ in range(2)],
        shape=(2, *dims),
        value_range=(0.0, 1.0),
        params=np.array([[0.0], [1.0]]),
        param_names=["t"],
        train_indices=[0, 1],
        source_dtype="float32",
        provenance={"bench": True},
        config_hash="bench",
    )
    torch.manual_seed(0)
    arch = {"n_inputs": 4, "n_outputs": 1, "widths": [16], "hidden_blocks": 0}
    teacher = work / "teacher.pt"
    torch.save(
        {"kind": "coordnet", "arch": arch, "config_hash": "bench", "dataset_hash": "bench",
         "dims": list(dims), "state_dict": CoordNet(4, 1, (16,), 0).state_dict()},
        teacher,
    )
    set_cfg = Config.from_dict(
        {
            "teacher": {"widths": [16], "hidden_blocks": 0},
            "distill_set": cfg.to_dict()["distill_set"],
            "runtime": {"threads": torch.get_num_threads(), "device": "cpu"},
        }
    )
    t0 = time.perf_counter()
    build_distill_set(set_cfg, dataset, teacher, out)
    print(f"built {out} in {time.perf_counter() - t0:.1f} s")
    return out


def time_training(model: HyperINR, batch_fn, steps: int, batch: int, work: Path) -> float:
    """samples/s of `steps` optimisation steps through the real training loop."""
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=1e-3, eps=1e-10, checkpoint_every=0,
                      log_every=steps)
    ckpt = work / f"ckpt-{time.monotonic_ns()}.pt"
    t0 = time.perf_counter()
    train(model, batch_fn, cfg, CPU, ckpt, tag="bench", desc="bench")
    wall = time.perf_counter() - t0
    ckpt.unlink(missing_ok=True)
    return steps * batch / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "config/config.yaml"))
    ap.add_argument("--buffer-mb", type=float, default=8.0, help="loader buffer (set is larger)")
    ap.add_argument("--loader-threads", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch/numba threads of the step")
    ap.add_argument("--train-steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="alternating training runs")
    ap.add_argument("--workdir", help="reuse/keep the set here (default: a temp dir)")
    args = ap.parse_args()

    cfg = Config.from_dict(yaml.safe_load(Path(args.config).read_text()))
    configure_threads(args.threads)
    dims = (cfg.simulate.resolution,) * 3
    batch = cfg.hyperinr.train.batch_size
    tmp = None
    if args.workdir:
        work = Path(args.workdir)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_loader-")
        work = Path(tmp.name)
    path = build_set(work, cfg, dims)
    ds = DistillSet(path)
    buffer_bytes = int(args.buffer_mb * 2**20)
    print(f"set: {ds.n_params} params x {ds.n_points} points x {ds.n_channels} ch "
          f"{ds.values_dtype}: {ds.nbytes / 2**20:.1f} MiB in memory, "
          f"{ds.attrs['disk_bytes'] / 2**20:.1f} MiB on disk; buffer {args.buffer_mb:g} MiB "
          f"({ds.nbytes / buffer_bytes:.1f}x smaller); batch {batch}; torch threads "
          f"{torch.get_num_threads()}, loader threads {args.loader_threads}")

    # 1. the step alone
    h = cfg.hyperinr
    model = HyperINR(encoder_positions(h.n_encoders, 1), 3, 1, h.encoding, h.network, h.k_nearest)
    idx, w = model.lookup(ds.params01)
    g = torch.Generator().manual_seed(0)
    j = torch.randint(ds.n_params, (batch,), generator=g)
    fixed = ((torch.rand(batch, 3, generator=g), idx[j], w[j]), torch.rand(batch, 1, generator=g))
    time_training(model, lambda s, gen: fixed, 3, batch, work)  # warm-up (numba compile)
    step_rate = float(np.median([
        time_training(model, lambda s, gen: fixed, args.train_steps, batch, work)
        for _ in range(args.repeats)
    ]))
    print(f"step (HyperINR fwd+bwd+Adam, fixed batch), median: {step_rate:,.0f} samples/s")

    # 2. the loader alone: one epoch, every chunk read from disk once
    t0 = time.perf_counter()
    out = np.empty((ds.n_points, ds.n_channels), ds.values_dtype)
    for k in range(ds.n_params):
        ds.read_into(k, out)
    read_rate = ds.n_params * ds.n_points / (time.perf_counter() - t0)
    mb_rate = ds.nbytes / 2**20 / (time.perf_counter() - t0)
    src = StreamingTargets(ds, CPU, batch, buffer_bytes, args.loader_threads, seed=0)
    steps = ds.n_params * ds.n_points // batch  # one epoch of window advances
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for step in range(steps):
        src.sample(step, gen)
    loader_rate = steps * batch / (time.perf_counter() - t0)
    info = src.describe()
    src.close()
    print(f"loader, streamed ({info['resident_params']} resident + {info['lookahead_params']} "
          f"lookahead params, {info['chunks_read']} chunks read over {steps} steps, stalled "
          f"{info['stall_seconds']:.2f} s): {loader_rate:,.0f} samples/s")
    print(f"disk -> buffer (read + crc32c + SHA-256, 1 thread): {read_rate:,.0f} points/s "
          f"= {mb_rate:.0f} MiB/s")
    print(f"loader / step = {loader_rate / step_rate:.1f}x "
          f"(disk alone {read_rate / step_rate:.1f}x: each point is drawn once per visit)")

    # 3. training from memory vs streamed
    mem = InMemoryTargets(ds, CPU, batch)

    def from_memory(step, gen):
        jj, x, y = mem.sample(step, gen)
        return (x, idx[jj], w[jj]), y

    stream = StreamingTargets(ds, CPU, batch, buffer_bytes, args.loader_threads, seed=0)

    def streamed(step, gen):
        jj, x, y = stream.sample(step, gen)
        return (x, idx[jj], w[jj]), y

    # alternate the two (the machine is shared: load drifts), report the medians
    rates_mem, rates_stream = [], []
    for rep in range(args.repeats):
        rates_mem.append(time_training(model, from_memory, args.train_steps, batch, work))
        start = (rep + 1) * steps // (args.repeats + 1)  # mid-epoch: the ring refills as it goes
        rates_stream.append(time_training(model, lambda s, gen, a=start: streamed(s + a, gen),
                                          args.train_steps, batch, work))
    rate_mem, rate_stream = float(np.median(rates_mem)), float(np.median(rates_stream))
    print("training runs (samples/s), memory:", [f"{r:,.0f}" for r in rates_mem],
          "streamed:", [f"{r:,.0f}" for r in rates_stream])
    info = stream.describe()
    stream.close()
    print(f"training, set in memory ({ds.nbytes / 2**20:.0f} MiB), median: "
          f"{rate_mem:,.0f} samples/s")
    print(f"training, streamed ({(stream.ring_bytes + stream.reserve_bytes) / 2**20:.1f} MiB "
          f"buffer, {info['chunks_read']} chunks read, stalled {info['stall_seconds']:.2f} s "
          f"incl. the first fills), median: {rate_stream:,.0f} samples/s "
          f"({rate_stream / rate_mem:.2f}x in-memory)")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
