"""Encoder positions and distillation parameters (hyperinr/param_space/positions.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from hyperinr.param_space.positions import (
    GaussianSpec,
    distill_params,
    encoder_positions,
    gaussian_samples,
    poisson_disk,
    uniform_samples,
)


def _grid(d: int, per_axis: int) -> np.ndarray:
    axes = [np.linspace(0.0, 1.0, per_axis)] * d
    return np.array(list(itertools.product(*axes)))


# ----------------------------------------------------------------------------- Poisson disk


@settings(max_examples=12, deadline=None)
@given(st.sampled_from([(2, 3), (2, 17), (2, 40), (3, 2), (3, 12)]), st.integers(0, 2**16))
def test_poisson_disk_keeps_radius_and_covers_the_domain(shape, seed):
    d, n = shape
    points, r = poisson_disk(n, d, seed)
    assert points.shape == (n, d)
    assert ((points >= 0) & (points <= 1)).all()
    assert pdist(points).min() >= r > 0
    # no empty disk of radius 2r: every point of a fine grid lies within 2r of a sample
    gaps = cKDTree(points).query(_grid(d, 41 if d == 2 else 17))[0]
    assert gaps.max() <= 2 * r


def test_poisson_disk_is_deterministic_for_a_seed():
    a, ra = poisson_disk(20, 2, 5)
    b, rb = poisson_disk(20, 2, 5)
    c, _ = poisson_disk(20, 2, 6)
    assert np.array_equal(a, b) and ra == rb
    assert not np.allclose(a, c)


def test_poisson_disk_single_point():
    points, r = poisson_disk(1, 3, 0)
    assert points.shape == (1, 3) and r > 0


def test_poisson_disk_explicit_radius():
    points, r = poisson_disk(10, 2, 0, radius=0.1)
    assert points.shape == (10, 2)
    assert pdist(points).min() >= r >= 0.1 * (1 - 1e-6)  # scipy's float32 slack at most
    with pytest.raises(ValueError, match=r"radius 0.5 fits only \d+ points .*, 50 asked"):
        poisson_disk(50, 2, 0, radius=0.5)


def test_poisson_disk_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n >= 1"):
        poisson_disk(0, 2, 0)
    with pytest.raises(ValueError, match="radius must be"):
        poisson_disk(3, 2, 0, radius=-0.1)


# ----------------------------------------------------------------------------- Gaussian


def test_gaussian_samples_centre_and_spread():
    centres = np.array([[0.3, 0.6], [0.7, 0.4]])
    spec = GaussianSpec(count=20000, sigma=0.05)
    x = gaussian_samples(centres, spec, seed=1)
    assert x.shape == (20000, 2)
    for c in range(2):  # round-robin: sample i around centre i mod 2
        own = x[c::2]
        assert np.allclose(own.mean(0), centres[c], atol=3e-3)
        assert np.allclose(own.std(0), 0.05, rtol=0.03)


def test_gaussian_samples_are_deterministic_for_a_seed():
    centres = np.array([[0.5, 0.5]])
    spec = GaussianSpec(count=10, sigma=0.1)
    a = gaussian_samples(centres, spec, seed=3)
    assert np.array_equal(a, gaussian_samples(centres, spec, seed=3))
    assert not np.allclose(a, gaussian_samples(centres, spec, seed=4))


def test_gaussian_samples_wrap_periodic_and_reflect_the_others():
    centres = np.array([[0.0, 0.0], [1.0, 1.0]])  # on the faces: half the mass falls outside
    spec = GaussianSpec(count=4000, sigma=0.05)
    x = gaussian_samples(centres, spec, seed=0, periodic=[True, False])
    assert ((x[:, 0] >= 0) & (x[:, 0] < 1)).all()
    assert ((x[:, 1] >= 0) & (x[:, 1] <= 1)).all()
    # wrapped: both ends of the periodic axis are populated around each centre
    assert (x[0::2, 0] > 0.8).mean() > 0.4 and (x[0::2, 0] < 0.2).mean() > 0.4
    # reflected (not clipped): no pile-up at the faces, and mass stays near its centre
    assert not np.isin(x[:, 1], [0.0, 1.0]).any()
    assert (x[0::2, 1] < 0.2).all() and (x[1::2, 1] > 0.8).all()


def test_a_sample_just_below_zero_wraps_to_just_below_one():
    # one sample: its offset is the first normal draw of the stream, known in advance; take a
    # seed whose offsets are both negative and a centre that they carry just below 0
    seed = next(s for s in range(100) if (np.random.default_rng(s).normal(size=2) < 0).all())
    offset = np.random.default_rng(seed).normal(0.0, 0.01, (1, 2))
    centre = 0.5 * np.abs(offset)
    want = centre + offset
    assert (want < 0).all() and (want > -0.1).all()
    x = gaussian_samples(centre, GaussianSpec(1, 0.01), seed=seed, periodic=[True, False])
    assert np.isclose(x[0, 0], 1.0 + want[0, 0]) and x[0, 0] < 1.0
    assert np.isclose(x[0, 1], -want[0, 1])  # reflected at 0


def test_gaussian_samples_reject_bad_input():
    with pytest.raises(ValueError, match="at least one centre"):
        gaussian_samples(np.empty((0, 2)), GaussianSpec(3, 0.1))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_samples(np.zeros((1, 2)), GaussianSpec(3, 0.0))
    assert gaussian_samples(np.zeros((1, 2)), GaussianSpec(0, 0.1)).shape == (0, 2)


def test_uniform_samples():
    x = uniform_samples(5000, 3, seed=2)
    assert x.shape == (5000, 3) and ((x >= 0) & (x < 1)).all()
    assert np.allclose(x.mean(0), 0.5, atol=0.02)
    assert np.array_equal(x, uniform_samples(5000, 3, seed=2))


# ----------------------------------------------------------------------------- encoders


def test_encoder_positions_1d_even_and_periodic_without_the_end_point():
    assert np.array_equal(encoder_positions(5, 1).ravel(), np.linspace(0, 1, 5))
    assert np.array_equal(encoder_positions(4, 1, periodic=[True]).ravel(), [0, 0.25, 0.5, 0.75])
    with pytest.raises(ValueError, match="hyperinr.encoder_gaussian.count"):
        encoder_positions(5, 1, centres=np.zeros((1, 1)), gaussian=GaussianSpec(2))


def test_encoder_positions_nd_poisson_plus_gaussian():
    centres = np.array([[0.2, 0.2], [0.8, 0.5]])
    pos = encoder_positions(30, 2, 0, centres=centres, gaussian=GaussianSpec(10, 0.02))
    assert pos.shape == (30, 2) and ((pos >= 0) & (pos <= 1)).all()
    poisson, gauss = pos[:20], pos[20:]
    assert np.array_equal(poisson, poisson_disk(20, 2, [0, 0, 0])[0])
    near = np.linalg.norm(gauss - centres[np.arange(10) % 2], axis=1)
    assert near.max() < 0.1
    assert len(np.unique(pos, axis=0)) == 30
    plain = encoder_positions(30, 2, 0)
    assert plain.shape == (30, 2) and pdist(plain).min() >= poisson_disk(30, 2, [0, 0, 0])[1]


def test_encoder_positions_deterministic_and_bad_counts():
    centres = np.array([[0.5, 0.5]])
    kw = {"centres": centres, "gaussian": GaussianSpec(4, 0.05)}
    assert np.array_equal(encoder_positions(12, 2, 3, **kw), encoder_positions(12, 2, 3, **kw))
    assert not np.allclose(encoder_positions(12, 2, 3, **kw), encoder_positions(12, 2, 4, **kw))
    with pytest.raises(ValueError, match="hyperinr.encoder_gaussian.count=4 needs centres"):
        encoder_positions(12, 2, gaussian=GaussianSpec(4))
    with pytest.raises(ValueError, match="encoder_gaussian.count=13 exceeds hyperinr.n_encoders"):
        encoder_positions(12, 2, centres=centres, gaussian=GaussianSpec(13))
    with pytest.raises(ValueError, match="n_encoders must be >= 1"):
        encoder_positions(0, 2)
    only_gauss = encoder_positions(4, 2, centres=centres, gaussian=GaussianSpec(4, 0.05))
    assert only_gauss.shape == (4, 2)


# ----------------------------------------------------------------------------- distillation


def test_distill_params_1d_unchanged():
    assert np.array_equal(distill_params(7, 1), np.linspace(0, 1, 7).reshape(-1, 1))
    with pytest.raises(ValueError, match="distill_set.uniform"):
        distill_params(7, 1, uniform=2)
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        distill_params(1, 1)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 6), st.integers(0, 6), st.integers(0, 8), st.integers(0, 1000))
def test_distill_params_counts_add_up(n_gauss, n_uniform, n_poisson, seed):
    n = n_gauss + n_uniform + n_poisson
    centres = np.array([[0.1, 0.9], [0.5, 0.5], [0.95, 0.05]])
    if n < 2:
        return
    x = distill_params(
        n, 2, seed, centres=centres, gaussian=GaussianSpec(n_gauss, 0.03), uniform=n_uniform
    )
    assert x.shape == (n, 2) and ((x >= 0) & (x <= 1)).all()
    assert len(np.unique(x, axis=0)) == n
    g = x[n_poisson : n_poisson + n_gauss]
    near = np.linalg.norm(g - centres[np.arange(n_gauss) % 3], axis=1)
    assert (near < 0.25).all()


def test_distill_parts_are_independent_streams():
    centres = np.array([[0.3, 0.3]])
    a = distill_params(20, 2, 1, centres=centres, gaussian=GaussianSpec(5, 0.05))
    b = distill_params(20 + 7, 2, 1, centres=centres, gaussian=GaussianSpec(5, 0.05), uniform=7)
    assert np.array_equal(a, b[:20])  # adding uniform samples changes neither other part
    enc = encoder_positions(20, 2, 1, centres=centres, gaussian=GaussianSpec(5, 0.05))
    assert not np.allclose(enc, a)  # nor do encoders repeat the distillation set


def test_distill_params_periodic_wraps_gaussians():
    centres = np.array([[0.0, 0.5]])
    x = distill_params(
        40, 2, 0, centres=centres, gaussian=GaussianSpec(30, 0.05), periodic=[True, False]
    )
    g = x[10:, 0]
    assert ((g >= 0) & (g < 1)).all() and (g > 0.8).any() and (g < 0.2).any()


def test_distill_params_bad_counts_name_the_config_keys():
    centres = np.array([[0.5, 0.5]])
    with pytest.raises(ValueError, match=r"distill_set.gaussian.count=8 \+ distill_set.uniform=5"):
        distill_params(10, 2, centres=centres, gaussian=GaussianSpec(8), uniform=5)
    with pytest.raises(ValueError, match="distill_set.uniform must be >= 0"):
        distill_params(10, 2, uniform=-1)
    with pytest.raises(ValueError, match="distill_set.gaussian.count must be >= 0"):
        distill_params(10, 2, centres=centres, gaussian=GaussianSpec(-1))
    with pytest.raises(ValueError, match="distill_set.gaussian.count=3 needs centres"):
        distill_params(10, 2, gaussian=GaussianSpec(3))
