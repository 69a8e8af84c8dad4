"""Hash-grid encoding throughput on CPU, against a bare gather of the same volume, in one run.

The question it answers: how close is the encoder to the memory-bound floor?  Three floors:
"computed gather" (numba) reads the rows the forward reads, at indices computed exactly as the
encoder computes them, and sums each sample-level's 2**D rows: the forward without its
interpolation weights (the numba rows' ratios are to it); "bare gather" reads as many floats
at precomputed random rows (a 33 MB index array the encoder never reads: it inflates that
floor, kept for comparison); "copy table bytes" copies the table once (the least any use of
the table costs).  Ratios are time(case) / time(floor), measured in the same run.

    PYTHONPATH=. python benchmarks/bench_hashgrid.py [--batch 65536] [--threads 2] [--repeats 9]
"""

from __future__ import annotations

import argparse
import math
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


def numba_computed_gather() -> Callable[..., None]:
    """The forward's reads with its own index arithmetic (the package's `_chunk_corners`: same
    positions, levels, hashing, corner order) but no interpolation: a sum of the 2^D corner
    rows. It reads the rows the encoder reads, from an index computed in registers, not from a
    33 MB index array of random rows the encoder never touches (the old floor)."""
    from numba import njit, prange

    from hyperinr.encoding._numba_kernels import _CHUNK, _chunk_corners, _scratch

    @njit(parallel=True, fastmath=False, cache=True)
    def gather(xt, table, scales, table_sizes, offsets, dense, strides, primes, n_feat, smooth,
               out):  # fmt: skip
        dims, n = xt.shape
        n_corners = 1 << dims
        n_chunks = (n + _CHUNK - 1) // _CHUNK
        for chunk in prange(n_chunks):
            cw, ce, fr, lo, t0, t1 = _scratch(dims, n_corners)
            start = chunk * _CHUNK
            m = min(_CHUNK, n - start)
            for lv in range(scales.shape[0]):
                _chunk_corners(xt, start, m, scales[lv], dense[lv], table_sizes[lv],
                               offsets[lv], strides[lv], primes, smooth, n_feat, cw, ce, fr,
                               lo, t0, t1)  # fmt: skip
                for s in range(m):
                    for f in range(n_feat):
                        acc = np.float32(0.0)
                        for c in range(n_corners):
                            acc += table[ce[c, s] + f]
                        out[start + s, lv * n_feat + f] = acc

    return gather


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2**16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
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
    cases: dict[str, Callable[[], object]] = {}

    def fwd_bwd(fn: Callable[[], torch.Tensor], params: torch.Tensor) -> Callable[[], None]:
        def run() -> None:
            params.grad = None
            fn().backward(grad_out)
        return run

    def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return fn()
        return run

    # --- bare gathers (the floor) ---
    cases["bare gather torch"] = lambda: table2d[rows].sum(2)
    kernels = numba_kernels()
    if kernels is not None:
        gather_sum = numba_bare_gather()
        out_np = np.empty((batch, enc.n_output_dims), np.float32)
        t_np, r_np = table2d.numpy(), rows.numpy()

        def bare_numba() -> None:
            import numba
            numba.set_num_threads(args.threads)
            gather_sum(t_np, r_np, out_np)

        cases["bare gather numba"] = bare_numba
        computed = numba_computed_gather()
        xt_np = x.T.contiguous().numpy()
        flat_np = table.detach().numpy()

        def computed_numba() -> None:
            import numba
            numba.set_num_threads(args.threads)
            computed(xt_np, flat_np, *enc._grid.numba_args, out_np)

        cases["computed gather numba"] = computed_numba
    copy_src = table.detach()
    cases["copy table bytes"] = lambda: copy_src.clone()

    # --- encoder, per backend (one module per backend so the cases can be interleaved) ---
    backends = ["torch"] + (["numba"] if kernels is not None else [])
    tables = torch.empty(args.ensemble, enc.n_params).uniform_(-1, 1).requires_grad_(True)
    idx = torch.randint(0, args.ensemble - 1, (batch, 1))
    idx = torch.cat((idx, idx + 1), 1)  # 1-D parameter space: the two neighbouring encoders
    w = torch.rand(batch, 1)
    w = torch.cat((w, 1 - w), 1)
    for backend in backends:
        e = HashGrid(DIMS, CONFIG, backend=backend)
        cases[f"hashgrid fwd {backend}"] = no_grad(lambda e=e: e(x, table))
        cases[f"hashgrid fwd+bwd {backend}"] = fwd_bwd(lambda e=e: e(x, table), table)
        cases[f"ensemble K=2 fwd {backend}"] = no_grad(lambda e=e: e(x, tables, idx, w))
        cases[f"ensemble K=2 fwd+bwd {backend}"] = fwd_bwd(lambda e=e: e(x, tables, idx, w),
                                                           tables)

    # --- torch.compile of the plain torch path (autograd backward) ---
    tg = enc._grid.torch_geometry(torch.device("cpu"))
    compiled = torch.compile(lambda xx, tt: forward_single(xx, tt, tg), dynamic=False)
    cases["hashgrid fwd torch.compile"] = no_grad(lambda: compiled(x, table))
    cases["hashgrid fwd+bwd torch.compile"] = fwd_bwd(lambda: compiled(x, table), table)

    # Warm up (JIT, torch.compile); drop cases that fail, saying why.
    for name in list(cases):
        try:
            t0 = time.perf_counter()
            cases[name]()
            cases[name]()
            if time.perf_counter() - t0 > 5:
                print(f"{name}: warm-up took {time.perf_counter() - t0:.0f} s")
        except Exception as exc:  # e.g. torch.compile without a working compiler
            print(f"{name:<34} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            del cases[name]

    # Rounds interleave all cases, so a shared machine's load hits them alike; ratios are
    # taken within a round and summarised by their median.
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    def baseline(name: str) -> str:
        if "numba" in name and "computed gather numba" in times:
            return "computed gather numba"
        return "bare gather numba" if "numba" in name else "bare gather torch"

    def ratios(name: str, ref: str) -> tuple[float, float]:
        """(median over rounds of time / ref time, best time / best ref time)."""
        med = statistics.median(t / r for t, r in zip(times[name], times[ref], strict=True))
        return med, min(times[name]) / min(times[ref])

    print(f"{'case':<32} {'M samples/s':>11} {'best':>7}   ratio to bare gather: median, best")
    for name, ts in times.items():
        rate, peak = batch / statistics.median(ts) / 1e6, batch / min(ts) / 1e6
        line = f"{name:<32} {rate:11.3f} {peak:7.3f}"
        floor = name.startswith(("bare", "computed", "copy"))
        if not floor and baseline(name) in times:
            med, best = ratios(name, baseline(name))
            line += f"   {med:5.2f}x {best:5.2f}x ({baseline(name).split()[-1]})"
        print(line)
    copy = statistics.median(times["copy table bytes"])
    print(f"copy of the table ({enc.n_params * 4:,} bytes): {copy * 1e3:.3f} ms; encoder "
          f"forward numba / copy: "
          f"{statistics.median(times.get('hashgrid fwd numba', [math.nan])) / copy:.1f}x")
    bare = min(("computed gather numba", "bare gather numba", "bare gather torch"),
               key=lambda k: statistics.median(times.get(k, [math.inf])))
    fb = min((k for k in times if k.startswith("hashgrid fwd+bwd")),
             key=lambda k: statistics.median(times[k]))
    med, best = ratios(fb, bare)
    print(f"fastest fwd+bwd ({fb}) / fastest bare gather ({bare}): {med:.2f}x median, "
          f"{best:.2f}x best (target <= 3x: {'met' if med <= 3 else 'not met'} on the median); "
          f"load after run {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
