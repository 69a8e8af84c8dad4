import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hyperinr.param_space.weights import (
    check_distinct,
    interpolation_weights,
    validate_positions,
)


def _slow_linear(pos, q):
    """Bracketing positions by a scan; clamped at the ends."""
    order = sorted(range(len(pos)), key=lambda i: pos[i])
    q = min(max(q, pos[order[0]]), pos[order[-1]])
    for a, b in zip(order[:-1], order[1:]):
        if pos[a] <= q <= pos[b]:
            t = (q - pos[a]) / (pos[b] - pos[a])
            return {a: 1 - t, b: t}
    raise AssertionError


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=2, max_size=12, unique=True),
    st.lists(st.floats(-0.2, 1.2), min_size=1, max_size=8),
)
def test_linear_matches_scan(pos, queries):
    idx, w = interpolation_weights(np.array(pos)[:, None], np.array(queries)[:, None])
    for row, q in enumerate(queries):
        got: dict[int, float] = {}
        for i, wi in zip(idx[row], w[row]):
            got[int(i)] = got.get(int(i), 0.0) + wi
        want = _slow_linear(pos, q)
        value_got = sum(pos[i] * wi for i, wi in got.items())
        value_want = sum(pos[i] * wi for i, wi in want.items())
        assert abs(value_got - value_want) < 1e-9
        assert abs(sum(w[row]) - 1) < 1e-12


def test_idw_weights_exact_hit_and_inverse_distance():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    idx, w = interpolation_weights(pos, np.array([[1.0, 0.0], [0.25, 0.0]]), k=2)
    assert idx[0, 0] == 1 and w[0, 0] == 1.0 and w[0, 1] == 0.0
    # distances 0.25 and 0.75 -> weights 1/0.25 : 1/0.75 = 3 : 1
    assert idx[1].tolist() == [0, 1]
    assert np.allclose(w[1], [0.75, 0.25])


def test_idw_rows_sum_to_one():
    rng = np.random.default_rng(0)
    pos = rng.random((50, 3))
    _, w = interpolation_weights(pos, rng.random((20, 3)), k=5)
    assert np.allclose(w.sum(axis=1), 1.0) and (w >= 0).all()


# ----------------------------------------------------------------------------- n-D references


def _slow_idw(pos, q, k, power, periodic):
    """Brute force: every distance, periodic dims on the circle, sorted; Shepard weights."""
    pos = [list(p) for p in pos]
    out = []
    for row in q:
        dists = []
        for j, p in enumerate(pos):
            sq = 0.0
            for a, b, per in zip(p, row, periodic):
                d = abs(a - b)
                if per:
                    d = d % 1.0
                    d = min(d, 1.0 - d)
                sq += d * d
            dists.append((sq**0.5, j))
        dists.sort()
        near = dists[:k]
        if near[0][0] <= 1e-12:
            out.append(({near[0][1]: 1.0}, dists))
            continue
        raw = {j: d**-power for d, j in near}
        total = sum(raw.values())
        out.append(({j: v / total for j, v in raw.items()}, dists))
    return out


def _as_dict(idx_row, w_row):
    got: dict[int, float] = {}
    for i, wi in zip(idx_row, w_row):
        got[int(i)] = got.get(int(i), 0.0) + float(wi)
    return got


@st.composite
def _nd_case(draw):
    p = draw(st.integers(2, 3))
    coord = st.floats(0, 1, allow_nan=False)
    rows = draw(st.lists(st.tuples(*[coord] * p), min_size=1, max_size=14, unique=True))
    qcoord = st.floats(-0.5, 1.5, allow_nan=False)  # outside [0, 1] too: wrap / box sizing
    queries = draw(st.lists(st.tuples(*[qcoord] * p), min_size=1, max_size=6))
    k = draw(st.integers(1, len(rows)))
    power = draw(st.sampled_from([0.5, 1.0, 2.0, 3.0]))
    periodic = draw(st.lists(st.booleans(), min_size=p, max_size=p))
    return np.array(rows), np.array(queries), k, power, periodic


@settings(max_examples=200, deadline=None)
@given(_nd_case())
def test_idw_matches_brute_force(case):
    pos, q, k, power, periodic = case
    idx, w = interpolation_weights(pos, q, k, power=power, periodic=periodic)
    assert idx.shape == w.shape == (len(q), k)
    assert np.allclose(w.sum(1), 1.0) and (w >= 0).all()
    for r, (want, dists) in enumerate(_slow_idw(pos, q, k, power, periodic)):
        if k < len(dists) and dists[k][0] - dists[k - 1][0] < 1e-9:
            continue  # a tie at the K-th neighbour: either choice is right
        if len(dists) > 1 and dists[0][0] <= 1e-12 and dists[1][0] - dists[0][0] < 1e-9:
            continue  # an exact hit on positions coinciding on the circle: either is right
        got = _as_dict(idx[r], w[r])
        for j in set(got) | set(want):
            assert abs(got.get(j, 0.0) - want.get(j, 0.0)) < 1e-9, (r, j, got, want)


def test_k1_is_the_nearest():
    rng = np.random.default_rng(4)
    pos, q = rng.random((40, 3)), rng.random((30, 3))
    idx, w = interpolation_weights(pos, q, k=1)
    d = np.linalg.norm(pos[None] - q[:, None], axis=-1)
    assert idx[:, 0].tolist() == d.argmin(1).tolist() and (w == 1.0).all()


def test_power_changes_the_weights_as_d_to_the_minus_p():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    _, w = interpolation_weights(pos, np.array([[0.25, 0.0]]), k=2, power=2.0)
    assert np.allclose(w[0], [0.9, 0.1])  # 1/0.25^2 : 1/0.75^2 = 9 : 1
    _, w = interpolation_weights(pos, np.array([[0.25, 0.0]]), k=2, power=1e3)
    assert np.allclose(w[0], [1.0, 0.0]) and np.isfinite(w).all()  # no overflow


def test_periodic_neighbour_across_the_wrap():
    pos = np.array([[0.01, 0.5], [0.5, 0.5], [0.9, 0.5]])
    q = np.array([[0.99, 0.5]])
    assert interpolation_weights(pos, q, k=1)[0][0, 0] == 2
    idx, w = interpolation_weights(pos, q, k=2, periodic=[True, False])
    assert idx[0].tolist() == [0, 2] and np.allclose(w[0], [0.9 / 1.1, 0.2 / 1.1])
    # only the periodic dimension wraps: 0.99 on a plain axis is far from 0.01
    idx, _ = interpolation_weights(pos[:, ::-1], q[:, ::-1], k=1, periodic=[True, False])
    assert idx[0, 0] == 2


def test_k_larger_than_positions_raises():
    pos = np.random.default_rng(0).random((4, 2))
    with pytest.raises(ValueError, match="k_nearest=5 exceeds the 4 positions"):
        interpolation_weights(pos, pos, k=5)
    with pytest.raises(ValueError, match="positive integer"):
        interpolation_weights(pos, pos, k=0)
    with pytest.raises(ValueError, match="power"):
        interpolation_weights(pos, pos, k=2, power=0.0)
    with pytest.raises(ValueError, match="periodic has 1 entries for 2"):
        interpolation_weights(pos, pos, k=2, periodic=[True])


# ----------------------------------------------------------------------------- 1-D periodic


def _slow_circle(pos, q):
    """Neighbours on the circle by a scan: the nearest position at or before q going down
    (mod 1) and the nearest strictly after it going up."""
    q = q % 1.0
    back = [((q - p) % 1.0, i) for i, p in enumerate(pos)]
    ahead = [((p - q) % 1.0 or 1.0, i) for i, p in enumerate(pos)]
    (dl, left), (dr, right) = min(back), min(ahead)
    if dl == 0.0:
        return {left: 1.0}
    return {left: dr / (dl + dr), right: dl / (dl + dr)} if left != right else {left: 1.0}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 0.999), min_size=1, max_size=10, unique=True),
    st.lists(st.floats(-1.5, 2.5), min_size=1, max_size=8),
)
def test_1d_periodic_matches_scan(pos, queries):
    gaps = np.diff(np.sort(pos + [min(pos) + 1.0]))
    assume(gaps.min() > 1e-6)  # closer positions are one point to the reference's arithmetic
    idx, w = interpolation_weights(
        np.array(pos)[:, None], np.array(queries)[:, None], periodic=[True]
    )
    assert np.allclose(w.sum(1), 1.0) and (w >= 0).all()
    for r, q in enumerate(queries):
        got, want = _as_dict(idx[r], w[r]), _slow_circle(pos, q)
        for j in set(got) | set(want):
            assert abs(got.get(j, 0.0) - want.get(j, 0.0)) < 1e-9, (q, got, want)


def test_1d_periodic_wraps_between_last_and_first():
    pos = np.array([[0.1], [0.4], [0.8]])
    idx, w = interpolation_weights(pos, np.array([[0.95], [0.05], [0.4]]), periodic=[True])
    assert _as_dict(idx[0], w[0]) == pytest.approx({2: 0.5, 0: 0.5})
    assert _as_dict(idx[1], w[1]) == pytest.approx({2: 1 / 6, 0: 5 / 6})
    assert _as_dict(idx[2], w[2]) == pytest.approx({1: 1.0, 2: 0.0})
    # the plain axis clamps instead
    idx, w = interpolation_weights(pos, np.array([[0.95]]))
    assert _as_dict(idx[0], w[0]).get(2) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- validation


def test_check_distinct_names_the_rows():
    pts = np.array([[0.1, 0.2], [0.3, 0.4], [0.1, 0.2]])
    with pytest.raises(ValueError, match=r"^encoders: rows 0 and 2 coincide \(0.1, 0.2\)$"):
        check_distinct(pts, "encoders")
    check_distinct(pts[:2], "encoders")
    wrapped = np.array([[0.0, 0.5], [1.0, 0.5]])  # the same azimuth
    check_distinct(wrapped, "plain")
    with pytest.raises(ValueError, match="rows 0 and 1 coincide"):
        check_distinct(wrapped, "circle", periodic=[True, False])


def test_validate_positions():
    good = np.array([[0.0, 1.0], [0.5, 0.5]])
    assert validate_positions(good, "p").dtype == np.float64
    with pytest.raises(ValueError, match=r"p must be \[M, P\]"):
        validate_positions(np.zeros(3), "p")
    with pytest.raises(ValueError, match="p: row 1 is not finite"):
        validate_positions(np.array([[0.1, 0.2], [np.nan, 0.1]]), "p")
    with pytest.raises(ValueError, match=r"p: row 0 \(\[1.5, 0.2\]\) lies outside \[0, 1\]"):
        validate_positions(np.array([[1.5, 0.2], [0.1, 0.1]]), "p")
    with pytest.raises(ValueError, match="p: rows 0 and 1 coincide"):
        validate_positions(np.array([[0.3, 0.3], [0.3, 0.3]]), "p")


# ----------------------------------------------------------------------------- consumers


def test_anchors_use_the_same_lookup_with_power_and_periodic():
    """The ground-truth anchors of the distillation targets weight training frames exactly as
    HyperINR weights encoders (hyperinr/training/targets.py)."""
    import torch

    from hyperinr.training.targets import Anchors, shrinkage_curve

    rng = np.random.default_rng(8)
    train = rng.random((5, 2))
    frames = torch.rand(5, 8, 1)
    q = np.array([[0.98, 0.4], [0.3, 0.7]])
    anchors = Anchors(train, frames, frames, (2, 2, 2), 3, power=2.0, periodic=(True, False))
    want = interpolation_weights(train, q, 3, power=2.0, periodic=(True, False))
    for a, b in zip(anchors.weights(q), want):
        assert np.array_equal(a, b)
    plain = Anchors(train, frames, frames, (2, 2, 2), 3)
    assert not np.allclose(plain.weights(q)[1], want[1])
    # the shrinkage curve keeps working with k_nearest = n_train (fewer frames are kept)
    everything = Anchors(train, frames, frames, (2, 2, 2), 5, periodic=(True, False))
    assert shrinkage_curve(everything, [1, 3])["scored"] == [1, 3]
