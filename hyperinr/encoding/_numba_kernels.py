"""Numba CPU kernels for the hash grid (imported lazily: numba is optional).

Why loops instead of torch ops: on CPU the vectorised torch path materialises [B, L, 2**D]
index/weight tensors and spends most of its time writing and re-reading them; these kernels keep
them in an L1-sized scratch block per chunk of samples (field notes: ~5x faster).

Layout: samples are processed in chunks of ``_CHUNK``.  For one level and one chunk,
:func:`_chunk_corners` computes the weights and table offsets of all 2**D corners of every
sample in structure-of-arrays form ([corner, sample]), so its loops run over samples and LLVM
vectorises them; the gathers / scatters then walk that block.  Inputs arrive transposed, xt
[D, B], for the same reason.

Exactness: ``fastmath=False`` and float32 scalars throughout, positions through a real fused
multiply-add (LLVM's ``llvm.fma.f32``, as tcnn's ``fmaf``), corner weights multiplied in
dimension order (as tcnn's ``weight *= ...``), and per-table corner sums accumulated with fused
multiply-adds in corner order, as tcnn's forward kernel does.

Parallelism: the forward pass and the ensemble-weight gradient split sample chunks across
threads (each sample writes only its own output row).  The table gradient splits *levels*
across threads: levels own disjoint slices of every table, so the scatter needs no atomics and
no per-thread copy of the gradient, and its summation order is deterministic.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

_MASK32 = np.int64(0xFFFFFFFF)
_CHUNK = 256  # samples per block: scratch stays in L1, allocations are amortised


@intrinsic
def fma32(typingctx, a, b, c):  # noqa: ARG001 - numba's intrinsic signature
    """Single-rounding float32 a * b + c (CUDA's ``fmaf``)."""
    f32 = types.float32
    if not all(t == f32 for t in (a, b, c)):
        return None
    sig = f32(f32, f32, f32)

    def codegen(context, builder, signature, args):  # noqa: ARG001
        fty = ir.FunctionType(ir.FloatType(), [ir.FloatType()] * 3)
        fn = cgutils.get_or_insert_function(builder.module, fty, "llvm.fma.f32")
        return builder.call(fn, args)

    return sig, codegen


@njit(inline="always", fastmath=False)
def _chunk_corners(xt, start, m, scale, dense, size, off, strides_l, primes, smooth, n_feat,
                   cw, ce, fr, lo, t0, t1):
    """Corner weights cw[c, s] and float offsets ce[c, s] for samples start..start+m at one level.

    Corner c has bit d set when it lies on the high side along d; the corner set is built one
    dimension at a time (doubling it), so each weight is multiplied in dimension order.
    ``index % size`` needs no division: a hashed level's size is 2**log2_hashmap_size and a dense
    level's linear index is always < 2 * size (both checked in ``_config``).
    Inputs are clamped to [0, 1] here (finite inputs are checked by the caller).
    Scratch: fr, lo [D, S] f32 (high/low factors), t0, t1 [D, S] i64 (index terms).
    """
    dims = xt.shape[0]
    zero = np.float32(0.0)
    half = np.float32(0.5)
    one = np.float32(1.0)
    two = np.float32(2.0)
    three = np.float32(3.0)
    for d in range(dims):
        stride = strides_l[d]
        prime = primes[d]
        for s in range(m):
            p = fma32(scale, min(max(xt[d, start + s], zero), one), half)  # clamp to [0, 1]
            cf = np.floor(p)
            f = p - cf
            if smooth:
                f = f * f * (three - two * f)
            fr[d, s] = f
            lo[d, s] = one - f
            c0 = np.int64(cf)
            if dense:
                t0[d, s] = c0 * stride
                t1[d, s] = c0 * stride + stride
            else:
                t0[d, s] = (c0 * prime) & _MASK32
                t1[d, s] = ((c0 + 1) * prime) & _MASK32
    for s in range(m):
        cw[0, s] = one
        ce[0, s] = 0
    n = 1
    for d in range(dims):
        for c in range(n):
            for s in range(m):
                cw[c + n, s] = cw[c, s] * fr[d, s]
                cw[c, s] = cw[c, s] * lo[d, s]
            if dense:
                for s in range(m):
                    ce[c + n, s] = ce[c, s] + t1[d, s]
                    ce[c, s] = ce[c, s] + t0[d, s]
            else:
                for s in range(m):
                    ce[c + n, s] = ce[c, s] ^ t1[d, s]
                    ce[c, s] = ce[c, s] ^ t0[d, s]
        n *= 2
    for c in range(n):
        if dense:
            for s in range(m):
                h = ce[c, s]
                if h >= size:
                    h -= size
                ce[c, s] = (off + h) * n_feat
        else:
            for s in range(m):
                ce[c, s] = (off + (ce[c, s] & (size - 1))) * n_feat


@njit(inline="always")
def _scratch(dims, n_corners):
    return (np.empty((n_corners, _CHUNK), np.float32), np.empty((n_corners, _CHUNK), np.int64),
            np.empty((dims, _CHUNK), np.float32), np.empty((dims, _CHUNK), np.float32),
            np.empty((dims, _CHUNK), np.int64), np.empty((dims, _CHUNK), np.int64))


@njit(parallel=True, fastmath=False, cache=True)
def forward_kernel(xt, tables, n_params, indices, weights, ensemble, scales, table_sizes,
                   offsets, dense, strides, primes, n_feat, smooth, out):
    """out[b, l*F + f] = sum_k weights[b, k] * sum_c w_c * table_k[corner c, f].

    xt [D, B] f32; tables: N flat tables back to back, [N * n_params] f32; indices [B, K] i64
    and weights [B, K] f32 are ignored unless ``ensemble`` (then table 0 is used);
    out [B, L*F] f32.  Feature-outer loops keep each accumulator in a register.
    """
    dims, n = xt.shape
    n_corners = 1 << dims
    n_k = indices.shape[1]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        cw, ce, fr, lo, t0, t1 = _scratch(dims, n_corners)
        start = chunk * _CHUNK
        m = min(_CHUNK, n - start)
        if ensemble:  # table bases and blend weights of the chunk, reused by every level
            tb = np.empty((m, n_k), np.int64)
            wt = np.empty((m, n_k), np.float32)
            for s in range(m):
                for k in range(n_k):
                    tb[s, k] = indices[start + s, k] * n_params
                    wt[s, k] = weights[start + s, k]
        for lv in range(scales.shape[0]):
            _chunk_corners(xt, start, m, scales[lv], dense[lv], table_sizes[lv], offsets[lv],
                           strides[lv], primes, smooth, n_feat, cw, ce, fr, lo, t0, t1)
            col = lv * n_feat
            if ensemble:
                for s in range(m):
                    for f in range(n_feat):
                        total = np.float32(0.0)
                        for k in range(n_k):
                            base = tb[s, k] + f
                            acc = np.float32(0.0)
                            for c in range(n_corners):
                                acc = fma32(cw[c, s], tables[base + ce[c, s]], acc)
                            total = fma32(wt[s, k], acc, total)
                        out[start + s, col + f] = total
            else:
                for s in range(m):
                    for f in range(n_feat):
                        acc = np.float32(0.0)
                        for c in range(n_corners):
                            acc = fma32(cw[c, s], tables[ce[c, s] + f], acc)
                        out[start + s, col + f] = acc


@njit(parallel=True, fastmath=False, cache=True)
def backward_tables_kernel(xt, n_params, indices, weights, ensemble, scales, table_sizes,
                           offsets, dense, strides, primes, n_feat, smooth, grad_lbf, grad_tables):
    """grad_tables[t * n_params + e*F + f] = sum of weight * corner weight * grad_lbf[l, b, f].

    grad_lbf is the output gradient level-major, [L, B, F] (each thread walks one level over
    all samples, so this layout reads it contiguously).  grad_tables, flat [N * n_params] f32,
    may be uninitialised: each level's thread zeroes that level's slice of every table first,
    which spreads the (page-faulting) first touch of a large ensemble gradient over threads.
    """
    dims, n = xt.shape
    n_corners = 1 << dims
    n_k = indices.shape[1]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    n_tables = grad_tables.shape[0] // n_params
    for lv in prange(scales.shape[0]):
        lo_f = offsets[lv] * n_feat
        hi_f = lo_f + table_sizes[lv] * n_feat
        for t in range(n_tables):
            grad_tables[t * n_params + lo_f:t * n_params + hi_f] = np.float32(0.0)
        cw, ce, fr, lo, t0, t1 = _scratch(dims, n_corners)
        for chunk in range(n_chunks):
            start = chunk * _CHUNK
            m = min(_CHUNK, n - start)
            _chunk_corners(xt, start, m, scales[lv], dense[lv], table_sizes[lv], offsets[lv],
                           strides[lv], primes, smooth, n_feat, cw, ce, fr, lo, t0, t1)
            if ensemble:
                for s in range(m):
                    b = start + s
                    for k in range(n_k):
                        base = indices[b, k] * n_params
                        wk = weights[b, k]
                        for c in range(n_corners):
                            wc = wk * cw[c, s]
                            e = base + ce[c, s]
                            for f in range(n_feat):
                                grad_tables[e + f] += wc * grad_lbf[lv, b, f]
            else:
                for s in range(m):
                    b = start + s
                    for c in range(n_corners):
                        wc = cw[c, s]
                        e = ce[c, s]
                        for f in range(n_feat):
                            grad_tables[e + f] += wc * grad_lbf[lv, b, f]


@njit(parallel=True, fastmath=False, cache=True)
def backward_weights_kernel(xt, tables, n_params, indices, scales, table_sizes, offsets, dense,
                            strides, primes, n_feat, smooth, grad_out, grad_weights):
    """grad_weights[b, k] = <grad_out[b], encode(x[b], table indices[b, k])>.  [B, K] f32."""
    dims, n = xt.shape
    n_corners = 1 << dims
    n_k = indices.shape[1]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        cw, ce, fr, lo, t0, t1 = _scratch(dims, n_corners)
        start = chunk * _CHUNK
        m = min(_CHUNK, n - start)
        for s in range(m):
            for k in range(n_k):
                grad_weights[start + s, k] = np.float32(0.0)
        for lv in range(scales.shape[0]):
            _chunk_corners(xt, start, m, scales[lv], dense[lv], table_sizes[lv], offsets[lv],
                           strides[lv], primes, smooth, n_feat, cw, ce, fr, lo, t0, t1)
            for s in range(m):
                b = start + s
                for k in range(n_k):
                    base = indices[b, k] * n_params
                    dot = np.float32(0.0)
                    for f in range(n_feat):
                        acc = np.float32(0.0)
                        for c in range(n_corners):
                            acc = fma32(cw[c, s], tables[base + ce[c, s] + f], acc)
                        dot = fma32(grad_out[b, lv * n_feat + f], acc, dot)
                    grad_weights[b, k] += dot


@njit(parallel=True, fastmath=False, cache=True)
def fma_positions_kernel(x, scales, out):
    """Positions fmaf(scale_l, x, 0.5) [B, L, D] f32 -- for testing the torch emulation."""
    n, dims = x.shape
    half = np.float32(0.5)
    for b in prange(n):
        for lv in range(scales.shape[0]):
            for d in range(dims):
                out[b, lv, d] = fma32(scales[lv], x[b, d], half)
