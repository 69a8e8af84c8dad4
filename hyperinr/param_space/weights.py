"""Which encoders a parameter falls between, and with what weights (Eq. 4 of the paper).

One function serves every "neighbours + weights" need: HyperINR's encoder lookup, the LERP
baseline's frame lookup and the ground-truth anchors of the distillation targets. 1-D is
linear interpolation between the bracketing positions (the paper's fast path); n-D is Shepard's
inverse-distance weighting w_j = d_j^-p (the paper's p = 1) over the K nearest positions found
with a KD-tree, and an exact hit takes that position alone.

Periodic parameters (an azimuth) live on a circle of period 1 in normalised units: 0.99 sits
next to 0.01. Positions and queries are wrapped into [0, 1) on those dimensions, and the
distance there is min(|d|, 1 - |d|).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

# Two parameters closer than this are one: the lookup treats the query as an exact hit, and
# two positions this close could never be told apart by it.
EXACT = 1e-12


def interpolation_weights(
    positions: np.ndarray,
    query: np.ndarray,
    k: int = 4,
    *,
    power: float = 1.0,
    periodic: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """positions [M, P], query [Q, P] -> (indices [Q, K] int64, weights [Q, K] float64).

    Rows of weights are non-negative and sum to 1.

    1-D: K is 2 whatever `k` is (the bracketing pair; `power` is unused). Non-periodic queries
    outside the positions clamp to the end position; a periodic axis brackets across 1 -> 0.

    n-D: the `k` nearest positions (k > M raises: silently blending fewer encoders than asked
    would change the model without a word), weighted by d^-power. With periodic dimensions the
    KD-tree is toroidal (cKDTree `boxsize`): the box is 1 on periodic dimensions, where
    positions and queries are first wrapped into [0, 1); on the others it is 2 * span + 1
    (span: the extent of positions and queries, 1 for data in [0, 1], so the box is 3 there),
    which is >= twice any distance on that dimension, so its wrap never shortens one.
    """
    positions = np.asarray(positions, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    if positions.ndim != 2 or query.ndim != 2 or positions.shape[1] != query.shape[1]:
        raise ValueError(
            f"positions {positions.shape} and query {query.shape} must be [M, P] and [Q, P]"
        )
    if positions.shape[0] == 0:
        raise ValueError("no positions to interpolate between")
    if int(k) != k or k < 1:
        raise ValueError(f"k_nearest must be a positive integer, got {k}")
    if not (np.isfinite(power) and power > 0):
        raise ValueError(f"IDW power must be a finite number > 0, got {power}")
    mask = periodic_mask(periodic, positions.shape[1])
    if positions.shape[1] == 1:
        if mask[0]:
            return _linear_1d_periodic(positions[:, 0], query[:, 0])
        return _linear_1d(positions[:, 0], query[:, 0])
    if k > len(positions):
        raise ValueError(f"k_nearest={k} exceeds the {len(positions)} positions")
    return _idw(positions, query, int(k), float(power), mask)


def periodic_mask(periodic: Sequence[bool] | None, n_dims: int) -> np.ndarray:
    """[n_dims] bool; None means no dimension is periodic."""
    if periodic is None:
        return np.zeros(n_dims, dtype=bool)
    mask = np.asarray([bool(p) for p in periodic], dtype=bool)
    if mask.shape != (n_dims,):
        raise ValueError(f"periodic has {mask.size} entries for {n_dims} parameter dimensions")
    return mask


def wrap_unit(x: np.ndarray) -> np.ndarray:
    """x mod 1 in [0, 1): np.mod alone maps a tiny negative number to 1.0, the same point as 0
    on the circle but outside the half-open interval a KD-tree box requires."""
    y = np.mod(x, 1.0)
    return np.where(y >= 1.0, 0.0, y)


def check_distinct(points: np.ndarray, where: str, periodic: Sequence[bool] | None = None) -> None:
    """Two coinciding positions make the lookup ambiguous (which one an exact hit takes) and
    waste an encoder or a distillation parameter; periodic dimensions compare on the circle."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return
    mask = periodic_mask(periodic, points.shape[1])
    pts, _, box = _torus(points, points[:0], mask)
    pairs = cKDTree(pts, boxsize=box).query_pairs(EXACT, output_type="ndarray")
    if len(pairs):
        i, j = sorted(pairs.tolist())[0]
        row = ", ".join(f"{v:.6g}" for v in points[i])
        raise ValueError(f"{where}: rows {i} and {j} coincide ({row})")


def validate_positions(
    positions: np.ndarray, where: str, periodic: Sequence[bool] | None = None
) -> np.ndarray:
    """The positions as float64 [M, P] if they are usable for the lookup: at least one row,
    finite, inside [0, 1] (normalised parameter units) and distinct."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[0] < 1 or positions.shape[1] < 1:
        raise ValueError(f"{where} must be [M, P] with M, P >= 1, got shape {positions.shape}")
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise ValueError(f"{where}: row {bad[0]} is not finite ({positions[bad[0]].tolist()})")
    bad = np.flatnonzero(((positions < 0.0) | (positions > 1.0)).any(axis=1))
    if bad.size:
        raise ValueError(
            f"{where}: row {bad[0]} ({positions[bad[0]].tolist()}) lies outside [0, 1]"
        )
    check_distinct(positions, where, periodic)
    return positions


def _torus(
    pos: np.ndarray, q: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(positions, queries, boxsize) for cKDTree: see interpolation_weights for the boxes.

    Without periodic dimensions there is no box and the coordinates are untouched, so plain
    n-D lookups stay bit-identical to a non-toroidal tree."""
    if not mask.any():
        return pos, q, None
    pos, q = pos.copy(), q.copy()
    pos[:, mask] = wrap_unit(pos[:, mask])
    q[:, mask] = wrap_unit(q[:, mask])
    both = np.concatenate([pos, q])
    lo = np.minimum(both.min(axis=0), 0.0)  # shift only dimensions reaching below 0
    lo[mask] = 0.0
    pos, q = pos - lo, q - lo
    span = np.concatenate([pos, q]).max(axis=0)
    box = np.where(mask, 1.0, 2.0 * span + 1.0)
    return pos, q, box


def _linear_1d(pos: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(pos, kind="stable")
    sorted_pos = pos[order]
    if len(sorted_pos) == 1:
        idx = np.zeros((len(q), 2), dtype=np.int64)
        return order[idx], np.tile([1.0, 0.0], (len(q), 1))
    qc = np.clip(q, sorted_pos[0], sorted_pos[-1])
    right = np.clip(np.searchsorted(sorted_pos, qc, side="right"), 1, len(sorted_pos) - 1)
    left = right - 1
    span = sorted_pos[right] - sorted_pos[left]
    alpha = np.where(span > 0, (qc - sorted_pos[left]) / np.where(span > 0, span, 1.0), 0.0)
    idx = np.stack([order[left], order[right]], axis=1).astype(np.int64)
    weights = np.stack([1.0 - alpha, alpha], axis=1)
    return idx, weights


def _linear_1d_periodic(pos: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Between the neighbours on the circle: below the first position the left neighbour is
    the last one, one period down; above the last, the right one is the first, one period up."""
    pos, q = wrap_unit(pos), wrap_unit(q)
    order = np.argsort(pos, kind="stable")
    s = pos[order]
    m = len(s)
    if m == 1:
        idx = np.zeros((len(q), 2), dtype=np.int64)
        return order[idx], np.tile([1.0, 0.0], (len(q), 1))
    right = np.searchsorted(s, q, side="right")  # s[left] <= q < s[right], both in [0, m]
    left = right - 1
    left_pos = np.where(left >= 0, s[left % m], s[-1] - 1.0)
    right_pos = np.where(right < m, s[right % m], s[0] + 1.0)
    alpha = (q - left_pos) / (right_pos - left_pos)  # right_pos > q >= left_pos: no 0 span
    idx = np.stack([order[left % m], order[right % m]], axis=1).astype(np.int64)
    return idx, np.stack([1.0 - alpha, alpha], axis=1)


def _idw(
    pos: np.ndarray, q: np.ndarray, k: int, power: float, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    pos_t, q_t, box = _torus(pos, q, mask)
    dist, idx = cKDTree(pos_t, boxsize=box).query(q_t, k=k)
    dist = np.asarray(dist, dtype=np.float64).reshape(len(q), k)  # ascending per row
    idx = np.asarray(idx).reshape(len(q), k).astype(np.int64)
    exact = dist[:, 0] <= EXACT
    safe = np.where(exact[:, None], 1.0, dist)
    # (d_min / d)^p: the same weights as d^-p after normalising, but in [0, 1], so a large
    # power or a tiny distance cannot overflow
    w = (safe[:, :1] / safe) ** power
    w[exact] = 0.0
    w[exact, 0] = 1.0
    w /= w.sum(axis=1, keepdims=True)
    return idx, w
