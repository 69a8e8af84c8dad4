"""Direct volume rendering and global shadows (hyperinr/render.py) against analytic values and
independent slow references (numpy loops, scipy's trilinear interpolation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    TransferFunction,
    box_interval,
    direction,
    inr_field,
    render,
    shadow_volume,
    transmittance_to_light,
    volume_field,
)

WHERE = "render.transfer_function"


def constant_tf(opacity: float, density: float, color=(0.0, 0.0, 0.0)) -> TransferFunction:
    return TransferFunction((0.0, 1.0), (color, color), (opacity, opacity), density)


RAMP = TransferFunction(
    positions=(0.0, 0.3, 1.0),
    colors=((0.1, 0.2, 0.9), (0.2, 0.9, 0.3), (0.9, 0.3, 0.1)),
    opacities=(0.0, 0.2, 1.0),
    density=6.0,
)


def smooth_volume(n: int = 17, seed: int = 0) -> np.ndarray:
    """[Z, Y, X] values in [0, 1], smooth but not symmetric (float64)."""
    z, y, x = np.meshgrid(*[np.linspace(0.0, 1.0, n)] * 3, indexing="ij")
    rng = np.random.default_rng(seed)
    a = rng.uniform(1.0, 3.0, 3)
    v = np.sin(np.pi * a[0] * x) * np.cos(np.pi * a[1] * y + 0.3) * np.sin(np.pi * a[2] * z + 0.2)
    v = v + 0.5 * np.exp(-((x - 0.6) ** 2 + (y - 0.4) ** 2 + (z - 0.5) ** 2) / 0.05)
    return (v - v.min()) / (v.max() - v.min())


def scipy_trilinear(vol: np.ndarray):
    """Reference look-up by a different code path: map_coordinates on [z, y, x] indices."""
    n = np.array(vol.shape, dtype=np.float64) - 1

    def f(x: np.ndarray) -> np.ndarray:  # x [B, 3] (x, y, z)
        x = np.asarray(x, dtype=np.float64).reshape(-1, 3)
        idx = (x[:, ::-1] * n).T  # rows z, y, x in voxel units
        v = map_coordinates(vol, idx, order=1, mode="nearest")
        inside = np.all((x >= 0) & (x <= 1), axis=1)
        return np.where(inside, v, 0.0)

    return f


def np_tf(tf: TransferFunction, v: np.ndarray):
    p = np.array(tf.positions)
    rgb = np.stack([np.interp(v, p, np.array(tf.colors)[:, c]) for c in range(3)], axis=-1)
    return rgb, tf.density * np.interp(v, p, np.array(tf.opacities))


# ---------------------------------------------------------------------------------------------
# directions, camera, box


def test_direction_unit_norm_and_convention():
    th, ph = np.meshgrid(np.linspace(-30, 200, 7), np.linspace(0, 360, 5))
    d = direction(th, ph)
    assert d.shape == (5, 7, 3)
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(direction(0, 123), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(direction(90, 0), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(direction(90, 90), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(direction(180, 0), [0, 0, -1], atol=1e-12)


@pytest.mark.parametrize(
    "theta,phi", [(0.0, 0.0), (0.0, 77.0), (37.0, 211.0), (90.0, 0.0), (180.0, 5)]
)
def test_camera_central_ray_hits_centre(theta, phi):
    cam = Camera(theta, phi, distance=2.5, width=5, height=5)
    o, d = cam.rays()
    assert o.shape == d.shape == (25, 3)
    assert torch.isfinite(d).all()
    np.testing.assert_allclose(d.norm(dim=1).numpy(), 1.0, atol=1e-6)
    eye = 0.5 + 2.5 * direction(theta, phi)
    np.testing.assert_allclose(o[12].numpy(), eye, atol=1e-6)
    np.testing.assert_allclose(d[12].numpy(), -direction(theta, phi), atol=1e-6)
    # the central ray reaches the centre at t = distance
    np.testing.assert_allclose((o[12] + 2.5 * d[12]).numpy(), [0.5, 0.5, 0.5], atol=1e-5)


def test_camera_orientation():
    # theta 0 looks down -z; every ray goes down
    _, d = Camera(0.0, 0.0, width=8, height=8).rays()
    assert (d[:, 2] < 0).all()
    # theta 90, phi 0: eye on +x looking toward -x, image-up = +z, image-right = +y
    cam = Camera(90.0, 0.0, width=6, height=4)
    _, d = cam.rays()
    d = d.view(4, 6, 3)
    assert (d[..., 0] < 0).all()
    assert (d[0, :, 2] > 0).all() and (d[-1, :, 2] < 0).all()  # row 0 is the top
    assert (d[:, 0, 1] < 0).all() and (d[:, -1, 1] > 0).all()  # column 0 is the left
    # horizontal fov follows the aspect ratio: corners symmetric
    np.testing.assert_allclose(d[0, 0, 1].item(), -d[0, -1, 1].item(), atol=1e-6)


def test_camera_validation():
    with pytest.raises(ValueError, match="fov_deg"):
        Camera(0, 0, fov_deg=180)
    with pytest.raises(ValueError, match="width"):
        Camera(0, 0, width=0)


def test_box_interval():
    o = torch.tensor(
        [
            [-1.0, 0.5, 0.5],
            [0.5, 0.5, 0.5],
            [0.0, 0.3, 0.2],
            [2.0, 2.0, 2.0],
            [-1.0, 0.5, 0.5],
            [-1.0, 2.0, 0.5],
        ]
    )
    d = torch.tensor(
        [
            [1.0, 0.0, 0.0],
            [0.0, 0.0, 1.0],
            [0.0, 0.0, 1.0],
            [1.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
        ]
    )
    tn, tf = box_interval(o, d)
    np.testing.assert_allclose(tn[:3].numpy(), [1.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(tf[:3].numpy(), [2.0, 0.5, 0.8], atol=1e-7)  # row 2 on the x=0 face
    assert (tf[3:] <= tn[3:]).all()  # misses: beside, behind, and a zero component outside
    assert torch.isfinite(tn).all() and torch.isfinite(tf).all()


# ---------------------------------------------------------------------------------------------
# transfer function


def test_tf_interpolates_linearly_and_clamps():
    rgb, sigma = RAMP(torch.tensor([0.15, 0.65, -1.0, 2.0, 0.3]))
    np.testing.assert_allclose(rgb[0].numpy(), [0.15, 0.55, 0.6], atol=1e-6)  # midpoint of 0-0.3
    np.testing.assert_allclose(rgb[1].numpy(), [0.55, 0.6, 0.2], atol=1e-6)
    np.testing.assert_allclose(sigma.numpy(), 6.0 * np.array([0.1, 0.6, 0.0, 1.0, 0.2]), atol=1e-6)
    np.testing.assert_allclose(rgb[2].numpy(), RAMP.colors[0], atol=1e-7)
    np.testing.assert_allclose(rgb[3].numpy(), RAMP.colors[-1], atol=1e-7)


def test_tf_mapping_round_trip():
    assert TransferFunction.from_mapping(RAMP.to_mapping()) == RAMP
    m = DEFAULT_TRANSFER_FUNCTION.to_mapping()
    assert TransferFunction.from_mapping(m) == DEFAULT_TRANSFER_FUNCTION
    del m["density"]
    assert TransferFunction.from_mapping(m).density == 20.0


@pytest.mark.parametrize(
    "change,key,text",
    [
        ({"positions": [0.0, 0.6, 0.5]}, "positions", "not increasing at index 2 (0.5 after 0.6)"),
        ({"positions": [0.0, 0.5, 0.5]}, "positions", "index 2"),
        ({"opacities": [0.0, 1.0]}, "opacities", "lengths must agree"),
        ({"colors": [[0, 0, 0], [1, 1, 1]]}, "colors", "lengths must agree"),
        ({"opacities": [0.0, 1.5, 1.0]}, "opacities", "outside [0, 1]"),
        ({"colors": [[0, 0, 0], [1, 2, 1], [1, 1, 1]]}, "colors", "outside [0, 1]"),
        ({"colors": [[0, 0, 0], [1, 1], [1, 1, 1]]}, "colors", "RGB"),
        ({"positions": [-0.1, 0.5, 1.0]}, "positions", "outside [0, 1]"),
        ({"positions": [0.5], "colors": [[0, 0, 0]], "opacities": [1]}, "positions", "at least 2"),
        ({"density": -1.0}, "density", ">= 0"),
        ({"opacities": [0.0, "x", 1.0]}, "opacities", "not a finite number"),
    ],
)
def test_tf_from_mapping_rejects(change, key, text):
    m = {
        "positions": [0.0, 0.5, 1.0],
        "colors": [[0, 0, 0], [1, 1, 1], [1, 1, 1]],
        "opacities": [0.0, 0.5, 1.0],
        **change,
    }
    with pytest.raises(ValueError) as err:
        TransferFunction.from_mapping(m)
    msg = str(err.value)
    assert msg.startswith(f"{WHERE}.{key}") and text in msg and "\n" not in msg


def test_tf_from_mapping_rejects_unknown_key():
    with pytest.raises(ValueError, match=r"render\.transfer_function: unknown key.*'colour'"):
        TransferFunction.from_mapping({**RAMP.to_mapping(), "colour": 1})


# ---------------------------------------------------------------------------------------------
# transmittance and shadow volumes


def test_transmittance_homogeneous_medium_is_exact():
    """Constant sigma: exp(-sigma * exit distance) to float precision (midpoint rule exact)."""
    tf = constant_tf(0.5, 4.0)  # sigma = 2
    field = lambda x: torch.ones(len(x))  # noqa: E731
    pts = torch.tensor([[0.5, 0.5, 0.2], [0.3, 0.4, 0.5], [0.9, 0.1, 1.0]])
    light = direction(60.0, 30.0)
    t = transmittance_to_light(field, tf, pts, light, n_steps=8)
    # exit distance along light from each point (independent: smallest positive slab distance)
    ex = []
    for p in pts.numpy().astype(np.float64):
        ds = [((1.0 if li > 0 else 0.0) - pi) / li for pi, li in zip(p, light) if abs(li) > 1e-12]
        ex.append(min(d for d in ds if d >= 0))
    np.testing.assert_allclose(t.numpy(), np.exp(-2.0 * np.array(ex)), rtol=1e-5)
    # along +z from z = 0.2: length 0.8
    t_z = transmittance_to_light(field, tf, pts[:1], [0, 0, 1], n_steps=3)
    np.testing.assert_allclose(t_z.item(), math.exp(-1.6), rtol=1e-6)


def slab_field(x: torch.Tensor) -> torch.Tensor:
    """1 inside z in [0.25, 0.75], 0 elsewhere (analytic, sharp edges)."""
    z = x[:, 2]
    return ((z >= 0.25) & (z <= 0.75)).to(torch.float32)


def test_transmittance_through_slab_and_render():
    tf = TransferFunction((0.0, 1.0), ((0, 0, 0), (0, 0, 0)), (0.0, 1.0), density=2.0)
    pts = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.7, 0.5], [0.5, 0.5, 0.8]])
    n = 1000
    t = transmittance_to_light(slab_field, tf, pts, [0.0, 0.0, 1.0], n_steps=n)
    # a boundary between midpoints costs at most half a step of optical depth each
    step = np.array([1.0, 0.5, 0.2]) / n
    expect = np.exp(-2.0 * np.array([0.5, 0.25, 0.0]))
    np.testing.assert_allclose(t.numpy(), expect, atol=float(2.0 * step.max() + 1e-6))
    # a primary ray along -z through the slab, black absorber on a white background: T_final
    n_steps = 1024
    img = render(slab_field, Camera(0.0, 0.0, width=1, height=1), tf, n_steps=n_steps)
    dt = math.sqrt(3) / n_steps
    np.testing.assert_allclose(img[0, 0].numpy(), math.exp(-1.0), atol=2.0 * dt * math.exp(-1.0))
    assert abs(img[0, 0, 0].item() - math.exp(-1.0)) < 2e-3
    # constant medium through the whole box (chord 1 along z): exact despite the clipped step
    img = render(
        lambda x: torch.ones(len(x)),
        Camera(0.0, 0.0, width=1, height=1),
        constant_tf(0.5, 3.0),
        n_steps=7,
    )
    np.testing.assert_allclose(img[0, 0].numpy(), math.exp(-1.5), rtol=1e-5)


def test_shadow_volume_of_slab_matches_analytic():
    """Voxels z_i = i/32 with value 1 for i in 8..24: trilinear interpolation ramps over one
    voxel each side, so the effective slab is [7.5h, 24.5h] (thickness 17h)."""
    n, h = 33, 1.0 / 32
    vol = torch.zeros(n, n, n)
    vol[8:25] = 1.0
    tf = TransferFunction((0.0, 1.0), ((1, 1, 1), (1, 1, 1)), (0.0, 1.0), density=3.0)
    sv = shadow_volume(vol, tf, [0.0, 0.0, 1.0], n_steps=200)
    assert sv.shape == (n, n, n)
    i = np.arange(n)
    depth = np.where(i <= 7, 17 * h, np.where(i >= 25, 0.0, (24.5 - i) * h))
    expect = np.exp(-3.0 * depth)
    for zyx in [(slice(None), 0, 0), (slice(None), 16, 5), (slice(None), -1, -1)]:
        np.testing.assert_allclose(sv[zyx].numpy(), expect, atol=5e-4)
    # below: exp(-sigma * thickness); above: exactly 1
    np.testing.assert_allclose(sv[:8].numpy(), math.exp(-3.0 * 17 * h), atol=5e-4)
    assert (sv[25:] == 1.0).all()


def test_shadow_volume_batching_invariant():
    vol = torch.tensor(smooth_volume(9), dtype=torch.float32)
    light = direction(50.0, 200.0)
    a = shadow_volume(vol, RAMP, light, n_steps=16, batch=5)
    b = shadow_volume(vol, RAMP, light, n_steps=16)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# rendering


def test_render_inr_equals_render_volume():
    vol = smooth_volume(17)
    ref = scipy_trilinear(vol)

    def fake_inr(x: torch.Tensor) -> torch.Tensor:  # [B, 2]: channel 1 is the volume
        v = torch.as_tensor(ref(x.numpy()), dtype=torch.float32)
        return torch.stack([torch.zeros_like(v), v], dim=1)

    cam = Camera(55.0, 20.0, width=16, height=12)
    a = render(volume_field(torch.tensor(vol, dtype=torch.float32)), cam, RAMP, n_steps=64)
    b = render(inr_field(fake_inr, channel=1), cam, RAMP, n_steps=64)
    assert a.shape == (12, 16, 3)
    assert (a - 1.0).abs().max() > 0.1  # something is visible
    torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


def test_volume_field_matches_scipy_and_is_zero_outside():
    vol = smooth_volume(9, seed=3)[:, :7, :5].copy()  # non-cubic: catches a transposed axis
    f = volume_field(torch.tensor(vol, dtype=torch.float32))
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (200, 3))
    np.testing.assert_allclose(
        f(torch.tensor(x, dtype=torch.float32)).numpy(), scipy_trilinear(vol)(x), atol=1e-5
    )
    # voxel (k, j, i) at (i/4, j/6, k/8)
    at = torch.tensor([[0.25, 0.5, 0.375]])
    np.testing.assert_allclose(f(at).item(), vol[3, 3, 1], atol=1e-6)
    out = torch.tensor([[1.01, 0.5, 0.5], [0.5, -0.01, 0.5], [0.5, 0.5, 1.5]])
    assert (f(out) == 0).all()


def reference_render(
    field_np,
    cam: Camera,
    tf: TransferFunction,
    pixels,
    n_steps,
    *,
    shadow_np=None,
    light=None,
    shadow_steps=64,
    ambient=0.0,
    bg=(1, 1, 1),
):
    """One ray at a time in float64 numpy: its own camera, slab test, quadrature and shading."""
    t, p = math.radians(cam.theta_deg), math.radians(cam.phi_deg)
    fwd = -np.array([math.sin(t) * math.cos(p), math.sin(t) * math.sin(p), math.cos(t)])
    eye = 0.5 - cam.distance * fwd
    world_up = np.array([0.0, 0.0, 1.0])
    up = world_up - fwd * (fwd @ world_up)
    up /= np.linalg.norm(up)
    right = np.cross(fwd, up)
    half = math.tan(math.radians(cam.fov_deg) / 2)

    def exit_interval(o, d):
        lo, hi = 0.0, np.inf
        for a in range(3):
            if d[a] == 0:
                if not 0 <= o[a] <= 1:
                    return 0.0, 0.0
                continue
            t0, t1 = sorted(((0 - o[a]) / d[a], (1 - o[a]) / d[a]))
            lo, hi = max(lo, t0), min(hi, t1)
        return (lo, hi) if hi > lo else (0.0, 0.0)

    out = []
    for row, col in pixels:
        u = ((col + 0.5) / cam.width * 2 - 1) * half * cam.width / cam.height
        v = (1 - (row + 0.5) / cam.height * 2) * half
        d = fwd + u * right + v * up
        d /= np.linalg.norm(d)
        tn, tf_ = exit_interval(eye, d)
        dt = math.sqrt(3) / n_steps
        color, trans = np.zeros(3), 1.0
        for k in range(n_steps):
            a, b = tn + k * dt, min(tn + (k + 1) * dt, tf_)
            if b <= a:
                break
            x = eye + 0.5 * (a + b) * d
            rgb, sigma = np_tf(tf, field_np(x[None])[0])
            alpha = 1 - math.exp(-sigma * (b - a))
            shade = 1.0
            if shadow_np is not None:
                shade = ambient + (1 - ambient) * shadow_np(x[None])[0]
            elif light is not None and alpha > 0:
                s0, s1 = exit_interval(x, light)
                st = (s1 - s0) / shadow_steps
                xs = x + (s0 + (np.arange(shadow_steps) + 0.5) * st)[:, None] * light
                _, sig = np_tf(tf, field_np(xs))
                shade = ambient + (1 - ambient) * math.exp(-sig.sum() * st)
            color += trans * alpha * rgb * shade
            trans *= math.exp(-sigma * (b - a))
        out.append(color + trans * np.asarray(bg, dtype=np.float64))
    return np.array(out)


@pytest.mark.parametrize("mode", ["plain", "shadow_field", "secondary"])
def test_render_matches_slow_reference(mode):
    vol = smooth_volume(13, seed=2)
    ref = scipy_trilinear(vol)
    field = volume_field(torch.tensor(vol, dtype=torch.float32))
    cam = Camera(65.0, 140.0, distance=2.0, fov_deg=35.0, width=10, height=8)
    light = direction(30.0, 250.0)
    pixels = [(0, 0), (4, 5), (3, 3), (7, 9), (2, 6), (5, 1)]
    kw, rkw = {}, {}
    if mode == "shadow_field":
        shade_np = lambda x: 0.2 + 0.7 * x[:, 0] * x[:, 2]  # noqa: E731
        kw = {"shadow": lambda x: 0.2 + 0.7 * x[:, 0] * x[:, 2], "ambient": 0.3}
        rkw = {"shadow_np": shade_np, "ambient": 0.3}
    elif mode == "secondary":
        kw = {"light_dir": light, "shadow_steps": 24, "ambient": 0.1}
        rkw = {"light": light, "shadow_steps": 24, "ambient": 0.1}
    img = render(field, cam, RAMP, n_steps=48, background=(0.2, 0.5, 1.0), **kw)
    expect = reference_render(ref, cam, RAMP, pixels, 48, bg=(0.2, 0.5, 1.0), **rkw)
    got = np.array([img[r, c].numpy() for r, c in pixels])
    assert np.abs(expect - np.array([0.2, 0.5, 1.0])).max() > 0.1  # the rays see the volume
    np.testing.assert_allclose(got, expect, atol=5e-5)


def test_secondary_rays_with_empty_light_path_equal_unshadowed():
    """Medium only at z < 0.25, light from +z, 2 light steps: every secondary-ray sample lies at
    z >= 0.25 + 0.75 z_i, i.e. outside the medium, so the discretised light path is empty and
    the shading must be exactly 1. From -z the same medium shadows itself."""
    field = lambda x: (x[:, 2] < 0.25).to(torch.float32) * (0.5 + 0.5 * x[:, 0])  # noqa: E731
    cam = Camera(70.0, 30.0, width=12, height=12)
    plain = render(field, cam, RAMP, n_steps=64)
    lit = render(field, cam, RAMP, n_steps=64, light_dir=[0, 0, 1], shadow_steps=2, ambient=0.2)
    torch.testing.assert_close(lit, plain, atol=1e-6, rtol=0)
    dark = render(field, cam, RAMP, n_steps=64, light_dir=[0, 0, -1], shadow_steps=2)
    assert (plain - dark).abs().max() > 0.05


def test_shadow_volume_render_approximates_secondary_rays():
    vol = torch.tensor(smooth_volume(32, seed=4), dtype=torch.float32)
    field = volume_field(vol)
    light = direction(40.0, 120.0)
    cam = Camera(60.0, 300.0, width=20, height=20)
    sv = shadow_volume(vol, RAMP, light, n_steps=48)
    plain = render(field, cam, RAMP, n_steps=64)
    via_volume = render(field, cam, RAMP, n_steps=64, shadow=volume_field(sv), ambient=0.1)
    secondary = render(field, cam, RAMP, n_steps=64, light_dir=light, shadow_steps=48, ambient=0.1)
    shadow_effect = (plain - secondary).abs().max().item()
    diff = (via_volume - secondary).abs()
    assert shadow_effect > 0.2
    assert diff.max().item() < 0.01 and diff.mean().item() < 0.001
    assert diff.max().item() < 0.05 * shadow_effect


def test_batching_invariance():
    vol = torch.tensor(smooth_volume(11, seed=5), dtype=torch.float32)
    field = volume_field(vol)
    cam = Camera(35.0, 10.0, width=8, height=6)
    light = direction(70.0, 45.0)
    for kw in ({}, {"light_dir": light, "shadow_steps": 8}):
        a = render(field, cam, RAMP, n_steps=32, batch=7, **kw)
        b = render(field, cam, RAMP, n_steps=32, batch=16384, **kw)
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_render_validation_and_outputs_usable_outside_inference_mode():
    field = volume_field(torch.rand(4, 4, 4))
    cam = Camera(10.0, 10.0, width=4, height=4)
    with pytest.raises(ValueError, match="either"):
        render(field, cam, RAMP, shadow=field, light_dir=[0, 0, 1])
    img = render(field, cam, RAMP, n_steps=8)
    assert not img.is_inference()
    assert img.min() >= 0 and img.max() <= 1
    img += 0  # in-place on the result works outside inference mode
    with pytest.raises(ValueError, match="channel"):
        inr_field(type("M", (), {"network": type("N", (), {"n_outputs": 1})()})(), channel=1)


def test_inr_field_wraps_a_real_inr():
    from hyperinr.encoding import HashGrid
    from hyperinr.models.inr import INR
    from hyperinr.models.mlp import MLP

    torch.manual_seed(0)
    enc = HashGrid(
        3,
        {
            "otype": "HashGrid",
            "n_levels": 2,
            "n_features_per_level": 2,
            "log2_hashmap_size": 8,
            "base_resolution": 4,
            "per_level_scale": 2.0,
        },
        own_table=False,
    )
    inr = INR(
        enc,
        torch.rand(enc.n_params) * 2 - 1,
        MLP(enc.n_output_dims, 2, {"n_neurons": 16, "n_hidden_layers": 1}),
    )
    cam = Camera(40.0, 60.0, width=6, height=5)
    a = render(inr_field(inr, channel=1), cam, RAMP, n_steps=24)
    b = render(lambda x: inr(x)[:, 1], cam, RAMP, n_steps=24)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert inr_field(inr).device == inr.table.device
    with pytest.raises(ValueError, match="channel 2 but the INR has 2"):
        inr_field(inr, channel=2)
