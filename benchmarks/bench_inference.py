"""Inference bandwidth and INR generation latency: HyperINR's INR vs the CoordNet teacher.

The paper's claim (Fig. 12, Table 2): the INR that HyperINR generates infers ~100x faster than
CoordNet, and generating it takes well under a millisecond. This measures both on this machine,
side by side in one run (interleaved rounds, medians), with untrained weights: speed does not
depend on what the weights are.

    python benchmarks/bench_inference.py [--batch 65536] [--rounds 5] [--threads 2] [--device cpu]

--device (cpu, the default; cuda, cuda:N or auto) places models and inputs; on CUDA every timed
call ends with torch.cuda.synchronize(), so the rates are of finished work.
"""

from __future__ import annotations  # noqa: I001  (hyperinr is imported before torch on purpose)

import argparse
import statistics
import time

import hyperinr  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch

from hyperinr.config import HyperINRConfig
from hyperinr.infra.device import resolve_device
from hyperinr.models.coordnet import CoordNet
from hyperinr.models.hyperinr import HyperINR
from hyperinr.param_space.positions import encoder_positions

# the paper's TSR encoder and MLP are the package defaults (Sec. 5)
PAPER = HyperINRConfig()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, n: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    teachers = {
        "coordnet paper (3+10+1 blocks of 256)": CoordNet(4, 1, (64, 128, 256), 10),
        "coordnet CPU default (64,64,64 + 2)": CoordNet(4, 1, (64, 64, 64), 2),
    }
    teachers = {name: m.to(device).eval() for name, m in teachers.items()}
    positions = encoder_positions(PAPER.n_encoders, 1)
    hyper = HyperINR(positions, 3, 1, PAPER.encoding, PAPER.network).to(device).eval()
    inr = hyper.generate(np.array([0.37]))
    x01 = torch.rand(args.batch, 3).to(device)
    x_teacher = torch.cat([torch.full((args.batch, 1), -0.26, device=device), x01 * 2 - 1], dim=1)

    cases = {name: (lambda m=m: m(x_teacher)) for name, m in teachers.items()}
    cases["hyperinr INR (L8 F4 T2^15 + MLP 4x64)"] = lambda: inr(x01)
    with torch.inference_mode():
        for fn in cases.values():  # warm-up: numba JIT, allocator
            fn()
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                rates[name].append(_rate(fn, args.batch, device))
        latencies = []
        for theta in np.random.default_rng(0).random(200):
            _sync(device)
            t0 = time.perf_counter()
            hyper.generate(np.array([theta]))
            _sync(device)
            latencies.append((time.perf_counter() - t0) * 1e3)

    on = "" if device.type == "cpu" else f", device {device}"  # CPU output as it always was
    print(f"batch {args.batch}, threads {args.threads}, rounds {args.rounds}{on} "
          "(median samples/s)")
    inr_rate = statistics.median(rates["hyperinr INR (L8 F4 T2^15 + MLP 4x64)"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:42s} {median:14,.0f}   INR / this = {inr_rate / median:7.1f}x")
    print(
        f"INR generation (blend 2 of 24 tables, {hyper.encoding.n_params:,} params): "
        f"median {statistics.median(latencies):.3f} ms, p95 {np.percentile(latencies, 95):.3f} ms"
    )


if __name__ == "__main__":
    main()
