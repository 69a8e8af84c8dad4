"""The renderer's opt-in accelerations (hyperinr/render.py): empty-space skipping with an
occupancy grid and early ray termination, against the exact default render and an independent
dense per-cell reference (numpy loop over cells).

Tolerances. Skipping leaves every sample position unchanged and gives a sample in an empty cell
sigma = 0 exactly, which is what the field would give it when the grid is right; so the only
difference to the plain image is the field's own float32 rounding, which may depend on how many
points one call gets (a matmul over 30 000 rows need not round like one over 8 000). Through the
compositing sum (weights <= 1) that is a few ulp of values in [0, 1]: ATOL = 1e-6. Early
termination drops rays whose transmittance T is <= eps; what they would still have added is in
[0, T] per channel (colours, light factors, background in [0, 1]), so the image is darker by at
most eps, plus ATOL for the chunked prefix sum's rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperinr.render import (
    Camera,
    RenderStats,
    TransferFunction,
    direction,
    occupancy_grid,
    render,
    volume_field,
)

ATOL = 1e-6
COLORS = ((0.1, 0.2, 0.9), (0.2, 0.9, 0.3), (0.9, 0.3, 0.1))


def threshold_tf(t: float, density: float = 30.0) -> TransferFunction:
    """Transparent below value t, opacity rising linearly to 1 at value 1."""
    return TransferFunction((0.0, t, 1.0), COLORS, (0.0, 0.0, 1.0), density)


def blob(center=(0.6, 0.4, 0.55), radius=0.12):
    """A Gaussian blob exp(-|x - c|^2 / (2 r^2)) as a torch field and its numpy twin."""
    c = np.asarray(center, dtype=np.float64)

    def field(x: torch.Tensor) -> torch.Tensor:
        d2 = ((x - torch.tensor(c, dtype=torch.float32)) ** 2).sum(dim=1)
        return torch.exp(-d2 / (2 * radius**2))

    def field_np(x: np.ndarray) -> np.ndarray:
        return np.exp(-((x - c) ** 2).sum(axis=1) / (2 * radius**2))

    return field, field_np


def mlp_field(seed: int = 0, width: int = 32):
    """An INR-like field: a random tanh MLP of x (first layer scaled up for some detail)."""
    g = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, 1),
    )
    with torch.no_grad():
        for p in net.parameters():
            fan_in = p.shape[-1] if p.dim() == 2 else 1
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        net[0].weight.mul_(6.0)

    def field(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.sigmoid(2.0 * net(x)[:, 0])

    return field


def mlp_scene(seed: int = 0):
    """The MLP field and a TF transparent below its 80th percentile (most of the box empty)."""
    field = mlp_field(seed)
    values = field(torch.rand(50_000, 3, generator=torch.Generator().manual_seed(1)))
    return field, threshold_tf(float(values.quantile(0.8)))


def evals(field, cam, tf, **kw) -> tuple[torch.Tensor, RenderStats]:
    stats = RenderStats()
    return render(field, cam, tf, stats=stats, **kw), stats


def reference_occupied(field_np, tf: TransferFunction, r: int, m: int = 8) -> np.ndarray:
    """[R, R, R] (z, y, x): cells where any of (m + 1)^3 points has opacity > 0 (numpy loop)."""
    t = np.linspace(0.0, 1.0, r * m + 1)
    z, y, x = np.meshgrid(t, t, t, indexing="ij")
    v = field_np(np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)).reshape(z.shape)
    opaque = np.interp(v, tf.positions, tf.opacities) > 0
    out = np.zeros((r, r, r), dtype=bool)
    for k in range(r):
        for j in range(r):
            for i in range(r):
                sl = (slice(k * m, (k + 1) * m + 1), slice(j * m, (j + 1) * m + 1))
                out[k, j, i] = opaque[(*sl, slice(i * m, (i + 1) * m + 1))].any()
    return out


# ---------------------------------------------------------------------------------------------
# the default is untouched


def test_new_arguments_off_give_the_default_image_bitwise():
    field, _ = blob()
    cam = Camera(60.0, 30.0, width=12, height=10)
    tf = threshold_tf(0.3)
    plain = render(field, cam, tf, n_steps=32)
    stats = RenderStats()
    same = render(field, cam, tf, n_steps=32, occupancy=None, early_stop=None, stats=stats)
    assert torch.equal(plain, same)
    assert (stats.rays, stats.shadow_evals) == (120, 0)
    assert stats.samples == stats.field_evals > 0  # every in-box sample evaluated


# ---------------------------------------------------------------------------------------------
# empty-space skipping


@pytest.mark.parametrize("mode", ["plain", "shadow_field", "secondary"])
def test_skipping_equals_plain_on_blob_with_far_fewer_evaluations(mode):
    field, _ = blob()
    tf = threshold_tf(0.3)
    cam = Camera(60.0, 30.0, width=24, height=24)
    kw = {"n_steps": 48}
    if mode == "shadow_field":
        kw.update(shadow=lambda x: 0.3 + 0.6 * x[:, 0], ambient=0.2)
    elif mode == "secondary":
        kw.update(light_dir=direction(40.0, 120.0), shadow_steps=16, ambient=0.1)
    grid = occupancy_grid(field, tf, 16)
    assert 0.0 < grid.fraction < 0.25
    plain, s0 = evals(field, cam, tf, **kw)
    fast, s1 = evals(field, cam, tf, occupancy=grid, **kw)
    assert (plain - 1.0).abs().max() > 0.3  # the blob is visible
    torch.testing.assert_close(fast, plain, atol=ATOL, rtol=0)
    assert s1.samples == s0.samples and s1.shadow_evals == s0.shadow_evals
    assert 2 * s1.field_evals <= s0.field_evals  # secondary rays are skipped too


def test_skipping_equals_plain_on_an_mlp():
    field, tf = mlp_scene(0)
    cam = Camera(50.0, 200.0, width=24, height=24)
    grid = occupancy_grid(field, tf, 16)
    plain, s0 = evals(field, cam, tf, n_steps=64)
    fast, s1 = evals(field, cam, tf, n_steps=64, occupancy=grid)
    assert (plain - 1.0).abs().max() > 0.3
    torch.testing.assert_close(fast, plain, atol=ATOL, rtol=0)
    assert s1.field_evals < 0.8 * s0.field_evals


@pytest.mark.parametrize("scene", ["blob", "mlp0", "mlp1"])
def test_occupancy_grid_is_conservative(scene):
    """Every cell where a 4x denser sampling sees opacity > 0 is occupied; and the grid still
    skips something (not trivially all occupied)."""
    if scene == "blob":
        field, field_np = blob((0.35, 0.6, 0.45), 0.1)
        tf = threshold_tf(0.5)
    else:
        field, tf = mlp_scene(int(scene[-1]))

        def field_np(x):
            return field(torch.tensor(x, dtype=torch.float32)).double().numpy()

    r = 12
    grid = occupancy_grid(field, tf, r)
    occupied = grid.occupied.numpy()
    ref = reference_occupied(field_np, tf, r)
    assert ref.any()
    missed = np.argwhere(ref & ~occupied)
    assert len(missed) == 0, f"cells (z, y, x) missed: {missed[:5].tolist()}"
    assert occupied.mean() < 0.8
    assert grid.field_evals == (2 * r + 1) ** 3


def test_value_margin_catches_a_peak_between_samples():
    """Why the widening exists: a peak between lattice points is higher than every sample, so
    the samples' [min, max] alone would call its cell empty; the slope margin does not."""
    field, _ = blob((0.45, 0.45, 0.45), 0.05)  # R = 5, 2 samples per cell: lattice step 0.1
    tf = threshold_tf(0.3)
    t = torch.linspace(0.0, 1.0, 11)
    lattice = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), dim=-1).reshape(-1, 3)
    assert field(lattice).max() < 0.3 < field(torch.tensor([[0.45, 0.45, 0.45]]))
    grid = occupancy_grid(field, tf, 5, dilate=0)
    assert grid.occupied[2, 2, 2] and grid.occupied.sum() < 27


def test_for_tf_and_tf_mismatch():
    field, _ = blob()
    tf_a, tf_b = threshold_tf(0.3), threshold_tf(0.7)
    grid = occupancy_grid(field, tf_a, 8)
    rebuilt = occupancy_grid(field, tf_b, 8)
    assert torch.equal(grid.for_tf(tf_b).occupied, rebuilt.occupied)
    assert rebuilt.fraction < grid.fraction
    cam = Camera(30.0, 10.0, width=4, height=4)
    with pytest.raises(ValueError, match="another transfer function"):
        render(field, cam, tf_b, occupancy=grid)


def test_nan_values_mark_cells_occupied_and_validation():
    field = lambda x: torch.where(x[:, 0] < 0.5, 0.0, float("nan"))  # noqa: E731
    grid = occupancy_grid(field, threshold_tf(0.3), 4, dilate=0)  # NaN from x = 0.5 on
    assert grid.occupied[:, :, 1:].all() and not grid.occupied[:, :, 0].any()
    for kw in ({"samples_per_cell": 1}, {"resolution": 0}, {"dilate": -1}, {"margin": -0.1}):
        with pytest.raises(ValueError, match="occupancy_grid"):
            occupancy_grid(field, threshold_tf(0.3), **{"resolution": 4, **kw})


@settings(max_examples=30, deadline=None)
@given(
    lo=st.floats(-0.5, 1.5),
    width=st.floats(0.0, 1.0),
    inner=st.lists(st.floats(0.02, 0.98), min_size=0, max_size=4, unique=True),
    opacities=st.lists(st.sampled_from([0.0, 0.0, 0.3, 1.0]), min_size=6, max_size=6),
)
def test_tf_max_sigma_over_an_interval(lo, width, inner, opacities):
    """Max over [lo, hi] vs dense sampling: never below it (so never "empty" where the TF is
    not), above it by at most the slope times the sampling step."""
    pos = [0.0, *sorted(inner), 1.0]
    tf = TransferFunction(pos, [(0.5, 0.5, 0.5)] * len(pos), opacities[: len(pos)], 10.0)
    hi = lo + width
    got = float(tf.max_sigma(torch.tensor([lo]), torch.tensor([hi]))[0])
    x = np.linspace(lo, hi, 20001)
    dense = tf.density * np.interp(x, pos, tf.opacities)
    slope = tf.density * np.max(np.abs(np.diff(tf.opacities) / np.diff(pos)))
    assert dense.max() <= got + 1e-5
    assert got <= dense.max() + slope * (x[1] - x[0]) + 1e-5


@settings(max_examples=12, deadline=None)
@given(
    center=st.tuples(*[st.floats(0.1, 0.9)] * 3),
    radius=st.floats(0.06, 0.2),
    threshold=st.floats(0.1, 0.9),
    theta=st.floats(10.0, 170.0),
    phi=st.floats(0.0, 360.0),
    resolution=st.sampled_from([6, 8, 16]),
)
def test_property_skipping_equals_plain(center, radius, threshold, theta, phi, resolution):
    field, _ = blob(center, radius)
    tf = threshold_tf(threshold)
    cam = Camera(theta, phi, width=10, height=10)
    grid = occupancy_grid(field, tf, resolution)
    plain, s0 = evals(field, cam, tf, n_steps=32)
    fast, s1 = evals(field, cam, tf, n_steps=32, occupancy=grid)
    torch.testing.assert_close(fast, plain, atol=ATOL, rtol=0)
    assert s1.field_evals <= s0.field_evals


# ---------------------------------------------------------------------------------------------
# early ray termination


def smooth_field(x: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] everywhere: with a dense TF, most rays saturate well inside the box."""
    s = torch.sin(3.0 * x[:, 0] + 1.0) * torch.cos(4.0 * x[:, 1]) * torch.sin(5.0 * x[:, 2] + 0.5)
    return 0.5 + 0.5 * s


@pytest.mark.parametrize("eps", [0.1, 1e-2, 1e-3])
def test_early_stop_error_is_within_threshold(eps):
    tf = TransferFunction((0.0, 0.5, 1.0), COLORS, (0.2, 0.5, 1.0), 15.0)
    cam = Camera(70.0, 40.0, width=20, height=20)
    kw = {"n_steps": 64, "background": (0.2, 0.5, 1.0)}
    exact, s0 = evals(smooth_field, cam, tf, **kw)
    fast, s1 = evals(smooth_field, cam, tf, early_stop=eps, **kw)
    lost = exact - fast  # what the dropped rays would still have added: in [0, eps]
    assert lost.min() >= -ATOL
    assert lost.max() <= eps + ATOL
    assert s1.samples < s0.samples  # some rays did stop
    assert lost.max() > 0.3 * eps  # and the bound is nearly reached: it is not vacuous


def test_early_stop_on_an_opaque_scene_saves_most_evaluations():
    tf = TransferFunction((0.0, 1.0), COLORS[:2], (0.6, 1.0), 60.0)
    cam = Camera(60.0, 30.0, width=24, height=24)
    exact, s0 = evals(smooth_field, cam, tf, n_steps=128)
    fast, s1 = evals(smooth_field, cam, tf, n_steps=128, early_stop=1e-3)
    assert (exact - fast).abs().max() <= 1e-3 + ATOL
    assert 3 * s1.field_evals < s0.field_evals and s1.field_evals == s1.samples


def test_early_stop_with_skipping_shadows_and_batching():
    """Both accelerations together, in both shadow modes, batch-size invariant."""
    field, _ = blob(radius=0.15)
    tf = threshold_tf(0.3, density=80.0)
    cam = Camera(65.0, 140.0, width=16, height=16)
    grid = occupancy_grid(field, tf, 16)
    fast_kw = {"occupancy": grid, "early_stop": 1e-3}
    for kw in (
        {},
        {"light_dir": direction(30.0, 250.0), "shadow_steps": 16, "ambient": 0.1},
        {"shadow": lambda x: 1.0 - 0.8 * x[:, 2], "ambient": 0.3},
    ):
        exact, s0 = evals(field, cam, tf, n_steps=64, **kw)
        fast, s1 = evals(field, cam, tf, n_steps=64, **fast_kw, **kw)
        small = render(field, cam, tf, n_steps=64, batch=7, **fast_kw, **kw)
        lost = exact - fast
        assert lost.min() >= -ATOL and lost.max() <= 1e-3 + ATOL
        torch.testing.assert_close(small, fast, atol=ATOL, rtol=0)
        assert s1.samples < s0.samples and 2 * s1.field_evals < s0.field_evals


def test_early_stop_on_a_volume_field_and_validation():
    vol = torch.tensor(np.random.default_rng(0).random((10, 11, 12)), dtype=torch.float32)
    tf = TransferFunction((0.0, 1.0), COLORS[:2], (0.5, 1.0), 40.0)
    cam = Camera(20.0, 80.0, width=12, height=12)
    exact = render(volume_field(vol), cam, tf, n_steps=50)  # 50: the last chunk is partial
    fast = render(volume_field(vol), cam, tf, n_steps=50, early_stop=1e-2)
    assert not fast.is_inference()
    assert 0 <= (exact - fast).min() + ATOL and (exact - fast).max() <= 1e-2 + ATOL
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="early_stop"):
            render(volume_field(vol), cam, tf, early_stop=bad)


def test_stats_add_up_over_calls():
    field, _ = blob()
    cam = Camera(30.0, 60.0, width=5, height=4)
    stats = RenderStats()
    render(field, cam, threshold_tf(0.3), n_steps=8, stats=stats)
    render(field, cam, threshold_tf(0.3), n_steps=8, stats=stats, early_stop=0.5)
    assert stats.rays == 40 and 0 < stats.field_evals == stats.samples <= 40 * 8
