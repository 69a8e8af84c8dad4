"""Numba CPU kernels for the hash grid (imported lazily: numba is optional).

Why loops instead of torch ops: on CPU the vectorised torch path materialises [B, L, 2**D]
index/weight tensors and spends most of its time writing and re-reading them; a per-sample loop
keeps them in registers and is ~5x faster (field notes: 3.3M vs 0.58M samples/s).

Exactness: ``fastmath=False`` and float32 scalars throughout, positions through a real fused
multiply-add (LLVM's ``llvm.fma.f32``, as tcnn's ``fmaf``), and corner contributions
accumulated with fused multiply-adds in corner order, as tcnn's kernel does.

Parallelism: the forward pass and the ensemble-weight gradient split samples across threads
(each sample writes only its own output row).  The table gradient splits *levels* across
threads: levels own disjoint slices of every table, so the scatter needs no atomics and no
per-thread copies of the gradient, and the summation order is deterministic.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

_MASK32 = np.int64(0xFFFFFFFF)
_CHUNK = 256  # samples per parallel task: amortises the small scratch allocations


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
def _level_corners(x, b, scale, dense, size, off, strides_l, primes, smooth, n_feat, cw, ce):
    """Weights cw[c] and table offsets ce[c] (in floats) of the 2**D corners of x[b]'s cell.

    Built one dimension at a time, doubling the corner set: corner c has bit d set when it
    lies on the high side along d, and its weight is multiplied in dimension order, exactly as
    tcnn's ``weight *= ...`` loop (so results are bit-identical to it and to the torch path).
    ``index % size`` needs no division: a hashed level's size is 2**log2_hashmap_size, and a
    dense level's linear index is always < 2 * size (both checked in ``_config``).
    """
    half = np.float32(0.5)
    one = np.float32(1.0)
    two = np.float32(2.0)
    three = np.float32(3.0)
    cw[0] = one
    ce[0] = 0
    n = 1
    for d in range(x.shape[1]):
        p = fma32(scale, x[b, d], half)
        cf = np.floor(p)
        fr = p - cf
        if smooth:
            fr = fr * fr * (three - two * fr)
        lo = one - fr
        c0 = np.int64(cf)
        if dense:
            t0 = c0 * strides_l[d]
            t1 = t0 + strides_l[d]
            for c in range(n):
                cw[c + n] = cw[c] * fr
                cw[c] = cw[c] * lo
                ce[c + n] = ce[c] + t1
                ce[c] = ce[c] + t0
        else:
            t0 = (c0 * primes[d]) & _MASK32
            t1 = ((c0 + 1) * primes[d]) & _MASK32
            for c in range(n):
                cw[c + n] = cw[c] * fr
                cw[c] = cw[c] * lo
                ce[c + n] = ce[c] ^ t1
                ce[c] = ce[c] ^ t0
        n *= 2
    for c in range(n):
        h = ce[c]
        if dense:
            if h >= size:
                h -= size
        else:
            h = h & (size - 1)
        ce[c] = (off + h) * n_feat


@njit(parallel=True, fastmath=False, cache=True)
def forward_kernel(x, tables, n_params, indices, weights, ensemble, order, scales, table_sizes,
                   offsets, dense, strides, primes, n_feat, smooth, out):
    """out[b, l*F + f] = sum_k weights[b, k] * sum_c w_c * table_k[corner c, f].

    x [B, D] f32; tables: N flat tables back to back, [N * n_params] f32; indices [B, K] i64 and
    weights [B, K] f32 are ignored unless ``ensemble`` (then table 0 is used); out [B, L*F] f32.
    ``order`` [B] (or empty for identity) is the visiting order of samples: sorted by table,
    consecutive samples read the same table, which keeps an ensemble's working set in cache.
    Per table the corners are accumulated with fused multiply-adds in corner order (tcnn's
    order), and feature-outer loops keep each accumulator in a register.
    """
    n, dims = x.shape
    n_levels = scales.shape[0]
    n_corners = 1 << dims
    n_k = indices.shape[1]
    has_order = order.shape[0] > 0
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        cw = np.empty(n_corners, np.float32)
        ce = np.empty(n_corners, np.int64)
        tb = np.empty(n_k, np.int64)
        start = chunk * _CHUNK
        stop = min(n, start + _CHUNK)
        for lv in range(n_levels):  # level-major inside a chunk keeps one level's table hot
            for i in range(start, stop):
                b = order[i] if has_order else i
                _level_corners(x, b, scales[lv], dense[lv], table_sizes[lv], offsets[lv],
                               strides[lv], primes, smooth, n_feat, cw, ce)
                if ensemble:
                    for k in range(n_k):
                        tb[k] = indices[b, k] * n_params
                    for f in range(n_feat):
                        total = np.float32(0.0)
                        for k in range(n_k):
                            base = tb[k] + f
                            acc = np.float32(0.0)
                            for c in range(n_corners):
                                acc = fma32(cw[c], tables[base + ce[c]], acc)
                            total = fma32(weights[b, k], acc, total)
                        out[b, lv * n_feat + f] = total
                else:
                    for f in range(n_feat):
                        acc = np.float32(0.0)
                        for c in range(n_corners):
                            acc = fma32(cw[c], tables[ce[c] + f], acc)
                        out[b, lv * n_feat + f] = acc


@njit(parallel=True, fastmath=False, cache=True)
def backward_tables_kernel(x, n_params, indices, weights, ensemble, order, scales, table_sizes,
                           offsets, dense, strides, primes, n_feat, smooth, grad_lbf, grad_tables):
    """grad_tables[t * n_params + e*F + f] += weight * corner weight * grad_lbf[l, b, f].

    grad_lbf is the output gradient level-major, [L, B, F] (each thread walks one level over
    all samples, so this layout reads it contiguously).  grad_tables, flat [N * n_params] f32,
    must be zeroed by the caller; levels are split across threads.  ``order`` as in forward.
    """
    n, dims = x.shape
    n_levels = scales.shape[0]
    n_corners = 1 << dims
    n_k = indices.shape[1]
    has_order = order.shape[0] > 0
    for lv in prange(n_levels):
        cw = np.empty(n_corners, np.float32)
        ce = np.empty(n_corners, np.int64)
        tb = np.empty(n_k, np.int64)
        for i in range(n):
            b = order[i] if has_order else i
            _level_corners(x, b, scales[lv], dense[lv], table_sizes[lv], offsets[lv],
                           strides[lv], primes, smooth, n_feat, cw, ce)
            if ensemble:
                for k in range(n_k):
                    tb[k] = indices[b, k] * n_params
                for c in range(n_corners):
                    for f in range(n_feat):
                        g = cw[c] * grad_lbf[lv, b, f]
                        for k in range(n_k):
                            grad_tables[tb[k] + ce[c] + f] += weights[b, k] * g
            else:
                for c in range(n_corners):
                    for f in range(n_feat):
                        grad_tables[ce[c] + f] += cw[c] * grad_lbf[lv, b, f]


@njit(parallel=True, fastmath=False, cache=True)
def backward_weights_kernel(x, tables, n_params, indices, order, scales, table_sizes, offsets,
                            dense, strides, primes, n_feat, smooth, grad_out, grad_weights):
    """grad_weights[b, k] = <grad_out[b], encode(x[b], table indices[b, k])>.  [B, K] f32."""
    n, dims = x.shape
    n_levels = scales.shape[0]
    n_corners = 1 << dims
    n_k = indices.shape[1]
    has_order = order.shape[0] > 0
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    for chunk in prange(n_chunks):
        cw = np.empty(n_corners, np.float32)
        ce = np.empty(n_corners, np.int64)
        start = chunk * _CHUNK
        stop = min(n, start + _CHUNK)
        for i in range(start, stop):
            b = order[i] if has_order else i
            for k in range(n_k):
                grad_weights[b, k] = np.float32(0.0)
        for lv in range(n_levels):
            for i in range(start, stop):
                b = order[i] if has_order else i
                _level_corners(x, b, scales[lv], dense[lv], table_sizes[lv], offsets[lv],
                               strides[lv], primes, smooth, n_feat, cw, ce)
                for k in range(n_k):
                    base = indices[b, k] * n_params
                    dot = np.float32(0.0)
                    for f in range(n_feat):
                        acc = np.float32(0.0)
                        for c in range(n_corners):
                            acc = fma32(cw[c], tables[base + ce[c] + f], acc)
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
