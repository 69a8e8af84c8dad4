"""Hash-grid encoding throughput on CPU, against a bare gather of the same volume, in one run.

The question it answers: how close is the encoder to the memory-bound floor?  The floor
("bare gather") reads exactly the floats the forward reads -- B * L * 2**D rows of F contiguous
floats at precomputed random rows of the same table -- and sums each sample-level's 2**D rows,
so it does the forward's memory traffic and output writes with none of the index arithmetic.
Ratios are time(encoder) / time(bare gather of the same backend), measured in the same run.

    PYTHONPATH=. python benchmarks/bench_hashgrid.py [--batch 65536] [--threads 2] [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from hyperinr.encoding import HashGrid
from hyperinr.encoding._torch_path import forward_single
from hyperinr.encoding.hashgrid import numba_kernels

CONFIG = {
    "otype": "HashGrid",
    "n_levels": 8,
    "n_features_per_level": 4,
    "log2_hashmap_size": 15,
    "base_resolution": 4,  # the paper's TSR setting (R1 = 4)
    "per_level_scale": 2.0,
}
DIMS = 3


def timeit(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, best) seconds of ``fn`` after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def numba_bare_gather() -> Callable[..., None]:
    from numba import njit, prange

    @njit(parallel=True, fastmath=False, cache=True)
    def gather_sum(table2d, rows, out):  # rows [B, L, C] int64, out [B, L*F]
        n, n_levels, n_corners = rows.shape
        n_feat = table2d.shape[1]
        for b in prange(n):
            for lv in range(n_levels):
                for f in range(n_feat):
                    acc = np.float32(0.0)
                    for c in range(n_corners):
                        acc += table2d[rows[b, lv, c], f]
                    out[b, lv * n_feat + f] = acc

    return gather_sum


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2**16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--ensemble", type=int, default=24, help="N tables for the K=2 blend rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch, reps = args.batch, args.repeats
    enc = HashGrid(DIMS, CONFIG, seed=0)
    geom = enc.geometry
    n_corners = 2**DIMS
    n_feat = geom.n_features_per_level
    floats = batch * geom.n_levels * n_corners * n_feat
    print(f"config {CONFIG}, D={DIMS}, batch {batch}, threads {args.threads}, "
          f"n_params {enc.n_params}, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    print(f"floats read per forward = B*L*2^D*F = {floats}")

    x = torch.rand(batch, DIMS)
    grad_out = torch.randn(batch, enc.n_output_dims)
    table = torch.empty(enc.n_params).uniform_(-1, 1).requires_grad_(True)
    table2d = table.detach().view(-1, n_feat)
    rows = torch.randint(0, table2d.shape[0], (batch, geom.n_levels, n_corners))
    results: dict[str, tuple[float, float]] = {}

    def record(name: str, fn: Callable[[], object]) -> None:
        try:
            results[name] = timeit(fn, reps)
        except Exception as exc:  # report and keep going (e.g. torch.compile without gcc)
            print(f"{name:<34} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            return
        med, best = results[name]
        print(f"{name:<34} {batch / med / 1e6:7.3f} M samples/s (median)  "
              f"{batch / best / 1e6:7.3f} best")

    def fwd_bwd(fn: Callable[[], torch.Tensor], params: torch.Tensor) -> Callable[[], None]:
        def run() -> None:
            params.grad = None
            fn().backward(grad_out)
        return run

    # --- bare gathers (the floor) ---
    record("bare gather torch", lambda: table2d[rows].sum(2))
    kernels = numba_kernels()
    if kernels is not None:
        gather_sum = numba_bare_gather()
        out_np = np.empty((batch, enc.n_output_dims), np.float32)
        t_np, r_np = table2d.numpy(), rows.numpy()

        def bare_numba() -> None:
            import numba
            numba.set_num_threads(args.threads)
            gather_sum(t_np, r_np, out_np)

        record("bare gather numba", bare_numba)

    # --- encoder, per backend ---
    backends = ["torch"] + (["numba"] if kernels is not None else [])
    for backend in backends:
        enc.backend = backend
        with torch.no_grad():
            record(f"hashgrid fwd {backend}", lambda: enc(x, table))
        record(f"hashgrid fwd+bwd {backend}", fwd_bwd(lambda: enc(x, table), table))

    # --- torch.compile of the plain torch path (autograd backward) ---
    tg = enc._grid.torch_geometry(torch.device("cpu"))
    try:
        compiled = torch.compile(lambda xx, tt: forward_single(xx, tt, tg), dynamic=False)
    except Exception as exc:
        print(f"torch.compile unavailable: {exc}")
    else:
        with torch.no_grad():
            record("hashgrid fwd torch.compile", lambda: compiled(x, table))
        record("hashgrid fwd+bwd torch.compile", fwd_bwd(lambda: compiled(x, table), table))

    # --- HyperINR's training call: K=2 blend of N tables per sample ---
    tables = torch.empty(args.ensemble, enc.n_params).uniform_(-1, 1).requires_grad_(True)
    idx = torch.randint(0, args.ensemble - 1, (batch, 1))
    idx = torch.cat((idx, idx + 1), 1)
    w = torch.rand(batch, 1)
    w = torch.cat((w, 1 - w), 1)
    for backend in backends:
        enc.backend = backend
        with torch.no_grad():
            record(f"ensemble K=2 fwd {backend}", lambda: enc(x, tables, idx, w))
        record(f"ensemble K=2 fwd+bwd {backend}",
               fwd_bwd(lambda: enc(x, tables, idx, w), tables))

    print("ratios: time / time(bare gather of the same backend), medians")
    for name, (med, _) in results.items():
        if name.startswith("bare"):
            continue
        base = "numba" if "numba" in name else "torch"
        ref = results.get(f"bare gather {base}")
        if ref:
            print(f"  {name:<34} {med / ref[0]:6.2f}x")
    fastest = min((v[0], k) for k, v in results.items() if k.startswith("bare"))
    best_fb = min((v[0], k) for k, v in results.items() if k.startswith("hashgrid fwd+bwd"))
    print(f"fastest fwd+bwd ({best_fb[1]}) / fastest bare gather ({fastest[1]}): "
          f"{best_fb[0] / fastest[0]:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
