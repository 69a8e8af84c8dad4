import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperinr.models.interpolation import interpolation_weights


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
