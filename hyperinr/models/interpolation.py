"""Which encoders a parameter falls between, and with what weights (Eq. 4 of the paper).

One function serves every "neighbours + weights" need: HyperINR's encoder lookup and the LERP
baseline's frame lookup. 1-D is linear interpolation between the bracketing positions (the
paper's fast path); n-D is inverse-distance weighting (p = 1) over the K nearest positions
found with a KD-tree, and an exact hit takes that position alone.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def interpolation_weights(
    positions: np.ndarray, query: np.ndarray, k: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """positions [M, P], query [Q, P] -> (indices [Q, K] int64, weights [Q, K] float64).

    In 1-D, K is 2 and queries outside the positions clamp to the end position. Weights of a
    row sum to 1.
    """
    positions = np.asarray(positions, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    if positions.ndim != 2 or query.ndim != 2 or positions.shape[1] != query.shape[1]:
        raise ValueError(
            f"positions {positions.shape} and query {query.shape} must be [M, P] and [Q, P]"
        )
    if positions.shape[0] == 0:
        raise ValueError("no positions to interpolate between")
    if positions.shape[1] == 1:
        return _linear_1d(positions[:, 0], query[:, 0])
    return _idw(positions, query, k)


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


def _idw(pos: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = max(1, min(k, len(pos)))
    dist, idx = cKDTree(pos).query(q, k=k)
    dist = dist.reshape(len(q), k)
    idx = idx.reshape(len(q), k).astype(np.int64)
    exact = dist[:, 0] <= 1e-12
    with np.errstate(divide="ignore"):
        w = np.where(exact[:, None], 0.0, 1.0 / np.maximum(dist, 1e-300))
    w[exact, 0] = 1.0
    w /= w.sum(axis=1, keepdims=True)
    return idx, w
