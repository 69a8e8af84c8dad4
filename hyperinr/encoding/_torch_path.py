"""Plain-torch hash-grid kernels: the reference path, and the one that runs on CUDA without tcnn.

Everything is vectorised over samples, levels and the 2**D cell corners, so it works on any
device.  Corner weights are computed with exactly the float32 operations (and order) of the
numba kernels, and positions use an exact emulation of tcnn's ``fmaf``; the two backends
therefore agree bit for bit on which table entries are read and how much each corner weighs,
and differ only in the order in which the weighted entries are summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._config import GridGeometry

_MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class TorchGeometry:
    """:class:`GridGeometry` as tensors on one device (built once per device and cached)."""

    scales: torch.Tensor  # [L] float32
    table_sizes: torch.Tensor  # [L] int64
    offsets: torch.Tensor  # [L] int64
    strides: torch.Tensor  # [L, D] int64
    primes: torch.Tensor  # [D] int64
    dense_levels: torch.Tensor  # [Ld] int64 level ids
    hashed_levels: torch.Tensor  # [Lh] int64 level ids
    smoothstep: bool
    n_features: int

    @staticmethod
    def build(geom: GridGeometry, device: torch.device) -> TorchGeometry:
        dense = torch.as_tensor(geom.dense)
        levels = torch.arange(geom.n_levels, dtype=torch.int64)

        def put(a: object) -> torch.Tensor:
            return torch.as_tensor(a).to(device)

        return TorchGeometry(
            scales=put(geom.scales),
            table_sizes=put(geom.table_sizes),
            offsets=put(geom.offsets),
            strides=put(geom.strides),
            primes=put(geom.primes),
            dense_levels=levels[dense].to(device),
            hashed_levels=levels[~dense].to(device),
            smoothstep=geom.smoothstep,
            n_features=geom.n_features_per_level,
        )


def fma_positions(x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """fmaf(scale_l, x, 0.5) for every level, rounded once to float32 like CUDA's fmaf.

    x: [B, D] float32 in [0, 1]; scales: [L] float32 >= 0  ->  [B, L, D] float32.
    The float64 product is exact (24 x 24 bits); the float64 sum is made exact-or-odd with
    TwoSum + round-to-odd, which makes the final float32 rounding correct (53 >= 24 + 2).
    """
    prod = x.double()[:, None, :] * scales.double()[None, :, None]
    total = prod + 0.5
    back = total - prod
    err = (prod - (total - back)) + (0.5 - back)
    bits = total.view(torch.int64)
    # total >= 0.5 > 0, so stepping the bit pattern by +-1 moves one ulp away from/towards 0.
    needs_odd = (err != 0) & ((bits & 1) == 0)
    step = torch.where(err > 0, 1, -1)
    bits = torch.where(needs_odd, bits + step, bits)
    return bits.view(torch.float64).float()


def _double(lo: torch.Tensor, hi: torch.Tensor, combine) -> torch.Tensor:
    """Corner values built one dimension at a time: [..., D] low/high terms -> [..., 2**D].

    Corner c takes the high term along d when bit d of c is set (the second half of each
    doubling), and terms are combined in dimension order -- the numba kernels' order.
    """
    acc = torch.stack((lo[..., 0], hi[..., 0]), dim=-1)
    for d in range(1, lo.shape[-1]):
        acc = torch.cat((combine(acc, lo[..., d, None]), combine(acc, hi[..., d, None])), dim=-1)
    return acc


def corner_terms(x: torch.Tensor, tg: TorchGeometry) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolation weights and global table-entry ids of every cell corner.

    x: [B, D] float32 (already clamped to [0, 1])  ->  (weights [B, L, C] float32,
    entries [B, L, C] int64), where C = 2**D and entry e's features live at
    ``params[e * F : (e + 1) * F]``.
    """
    pos = fma_positions(x, tg.scales)  # [B, L, D]
    cell = torch.floor(pos)
    frac = pos - cell  # exact in float32
    if tg.smoothstep:
        frac = frac * frac * (3.0 - 2.0 * frac)
    cell_i = cell.long()
    # Corner weight = prod_d (bit_d ? f_d : 1 - f_d), multiplied in dimension order.
    weight = _double(1.0 - frac, frac, torch.mul)  # [B, L, C]

    batch, n_levels, dims = pos.shape
    local = torch.empty((batch, n_levels, 1 << dims), dtype=torch.int64, device=x.device)
    if tg.dense_levels.numel():
        lv = tg.dense_levels
        ci = cell_i.index_select(1, lv)  # [B, Ld, D]
        stride = tg.strides.index_select(0, lv)  # [Ld, D]
        idx = _double(ci * stride, (ci + 1) * stride, torch.add)
        size = tg.table_sizes.index_select(0, lv)[:, None]  # [Ld, 1]
        # A dense index is < 2 * size (see _config.build_geometry), so one subtraction wraps it.
        local.index_copy_(1, lv, torch.where(idx >= size, idx - size, idx))
    if tg.hashed_levels.numel():
        lv = tg.hashed_levels
        ci = cell_i.index_select(1, lv)
        idx = _double((ci * tg.primes) & _MASK32, ((ci + 1) * tg.primes) & _MASK32,
                      torch.bitwise_xor)
        # Hashed levels all have the power-of-two size 2**log2_hashmap_size.
        local.index_copy_(1, lv, idx & (tg.table_sizes.index_select(0, lv)[:, None] - 1))
    return weight, local + tg.offsets[None, :, None]


def _gather(table2d: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """table2d [E, F] rows at ``rows`` [...] -> [..., F] (index_select beats advanced indexing)."""
    return table2d.index_select(0, rows.reshape(-1)).view(*rows.shape, table2d.shape[1])


def forward_single(x: torch.Tensor, table: torch.Tensor, tg: TorchGeometry) -> torch.Tensor:
    """x [B, D], table [P] -> [B, L*F] (float32 or float64, as ``table``)."""
    weight, entries = corner_terms(x, tg)
    vals = _gather(table.view(-1, tg.n_features), entries)  # [B, L, C, F]
    out = torch.matmul(weight.to(table.dtype).unsqueeze(-2), vals)  # [B, L, 1, F]
    return out.reshape(x.shape[0], -1)


def backward_single(
    x: torch.Tensor, grad_out: torch.Tensor, n_params: int, tg: TorchGeometry
) -> torch.Tensor:
    """Gradient of ``sum(grad_out * forward_single(x, table))`` w.r.t. ``table``: [P]."""
    weight, entries = corner_terms(x, tg)
    f = tg.n_features
    g = grad_out.reshape(x.shape[0], -1, 1, f)  # [B, L, 1, F]
    contrib = weight.to(grad_out.dtype).unsqueeze(-1) * g  # [B, L, C, F]
    grad = torch.zeros((n_params // f, f), dtype=grad_out.dtype, device=x.device)
    grad.index_add_(0, entries.reshape(-1), contrib.reshape(-1, f))
    return grad.view(-1)


def _ensemble_terms(
    x: torch.Tensor,
    tables: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    tg: TorchGeometry,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Corner weights [B, L, C]; rows of ``tables.view(-1, F)`` and their blend coefficients
    weights[b, k] * corner weight, both [B, L, K*C] (table-major within a level)."""
    weight, entries = corner_terms(x, tg)
    per_table = tables.shape[1] // tg.n_features
    rows = indices[:, None, :, None] * per_table + entries[:, :, None, :]  # [B, L, K, C]
    coef = weights[:, None, :, None] * weight.to(tables.dtype)[:, :, None, :]
    batch, n_levels = weight.shape[:2]
    return weight, rows.reshape(batch, n_levels, -1), coef.reshape(batch, n_levels, -1)


def forward_ensemble(
    x: torch.Tensor,
    tables: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    tg: TorchGeometry,
) -> torch.Tensor:
    """sum_k weights[b, k] * encode(x[b], tables[indices[b, k]]) -> [B, L*F].

    The K tables are gathered at the corners of one cell computation, never materialised.
    """
    _, rows, coef = _ensemble_terms(x, tables, indices, weights, tg)
    vals = _gather(tables.view(-1, tg.n_features), rows)  # [B, L, K*C, F]
    return torch.matmul(coef.unsqueeze(-2), vals).reshape(x.shape[0], -1)


def backward_ensemble(
    x: torch.Tensor,
    tables: torch.Tensor,
    indices: torch.Tensor,
    weights: torch.Tensor,
    grad_out: torch.Tensor,
    tg: TorchGeometry,
    need_tables: bool,
    need_weights: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients w.r.t. ``tables`` [N, P] (scatter-add) and ``weights`` [B, K]."""
    weight, rows, coef = _ensemble_terms(x, tables, indices, weights, tg)
    f = tg.n_features
    batch, n_levels = weight.shape[:2]
    g = grad_out.reshape(batch, n_levels, 1, f)  # [B, L, 1, F]
    grad_tables = grad_weights = None
    if need_tables:
        grad_tables = torch.zeros_like(tables).view(-1, f)
        grad_tables.index_add_(0, rows.reshape(-1), (coef.unsqueeze(-1) * g).reshape(-1, f))
        grad_tables = grad_tables.view(tables.shape)
    if need_weights:
        vals = _gather(tables.view(-1, f), rows)  # [B, L, K*C, F]
        per_corner = torch.matmul(vals, g.transpose(-1, -2))  # [B, L, K*C, 1]
        per_corner = per_corner.view(batch, n_levels, indices.shape[1], -1)  # [B, L, K, C]
        grad_weights = (per_corner * weight.to(tables.dtype)[:, :, None, :]).sum((1, 3))
    return grad_tables, grad_weights
