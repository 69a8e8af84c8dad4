"""The explorer's frame logic on a toy run (fast): what the app and --snapshot both call."""

from __future__ import annotations

import numpy as np
import pytest

import hyperinr
from hyperinr.explore import open_explorer, parse_params, snapshot
from hyperinr.explore.frames import (
    FrameRequest,
    camera_from_pose,
    parse_camera,
    pose_from_camera,
    to_uint8,
)
from hyperinr.render import Camera
from tests.test_api import run  # noqa: F401  (the toy pipeline folder fixture)

CAM = Camera(60.0, 35.0, 2.2, 40.0, 20, 14)


@pytest.fixture(scope="module")
def explorer(run):  # noqa: F811
    return open_explorer(run / "hyperinr" / "model.pt", device="cpu")


def test_siblings_lerp_and_ground_truth_are_methods(explorer):
    assert explorer.method_names == ["hyperinr", "teacher", "lerp", "ground truth"]
    assert explorer.task == "tsr" and explorer.needs_camera


def test_frame_is_the_api_render_of_the_method(explorer, run):  # noqa: F811
    """Without skipping, the explorer's frame is exactly hyperinr.api's render, rounded."""
    req = FrameRequest("hyperinr", (1.5,), CAM, n_steps=24, skip_empty=False)
    res = explorer.render_frame(req)
    ref = hyperinr.load(run / "hyperinr" / "model.pt", device="cpu").generate(t=1.5)
    np.testing.assert_array_equal(res.image, to_uint8(ref.render(CAM, n_steps=24)))
    assert res.psnr_db is None and res.frame is None  # t = 1.5 is no dataset frame
    assert res.field_evals > 0


def test_skipping_changes_little_and_evaluates_less(explorer):
    plain = explorer.render_frame(FrameRequest("lerp", (1.0,), CAM, n_steps=24, skip_empty=False))
    fast = explorer.render_frame(FrameRequest("lerp", (1.0,), CAM, n_steps=24, skip_empty=True))
    assert np.abs(plain.image.astype(int) - fast.image.astype(int)).max() <= 1
    assert fast.field_evals <= plain.field_evals


def test_psnr_at_a_frame_and_comparisons(explorer):
    res = explorer.render_frame(FrameRequest("lerp", (1.0,), CAM, n_steps=8))
    assert res.frame == 1 and res.psnr_db is not None and np.isfinite(res.psnr_db)
    side = explorer.render_frame(FrameRequest("hyperinr", (1.0,), CAM, n_steps=8,
                                              compare="side by side"))  # fmt: skip
    assert side.image.shape == (14, 40, 3)
    split = explorer.render_frame(FrameRequest("hyperinr", (1.0,), CAM, n_steps=8,
                                               compare="split"))  # fmt: skip
    assert split.image.shape == (14, 20, 3)
    with pytest.raises(ValueError, match="no frame at"):
        explorer.render_frame(FrameRequest("ground truth", (1.5,), CAM, n_steps=8))


def test_snapshot_writes_the_frame(explorer, tmp_path):
    from PIL import Image

    req = FrameRequest("hyperinr", (2.5,), CAM, n_steps=8)
    res = snapshot(explorer, req, tmp_path / "s.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "s.png")), res.image)


def test_snapping_reaches_and_leaves_training_parameters(explorer):
    assert explorer.snap((2.03,)) == (2.0,)  # within 1 % of the range [0, 4]
    assert explorer.snap((2.2,)) == (2.2,)
    assert explorer.snap((2.004,), leaving=(2.0,)) == (2.004,)  # a keyboard step away


def test_cli_style_parameters_and_cameras(explorer):
    assert parse_params(explorer, ["t=3.7"]) == (3.7,)
    assert parse_params(explorer, ["3.7"]) == (3.7,)
    with pytest.raises(ValueError, match="unknown parameter"):
        parse_params(explorer, ["time=3"])
    cam = parse_camera("theta=30,phi=-20", (8, 6))
    assert (cam.theta_deg, cam.phi_deg, cam.width, cam.height) == (30.0, -20.0, 8, 6)
    with pytest.raises(ValueError, match="--camera"):
        parse_camera("tilt=3", (8, 8))


def test_browser_pose_round_trips_to_the_camera():
    for theta, phi in [(60.0, 35.0), (10.0, -170.0), (150.0, 90.0)]:
        cam = Camera(theta, phi, 2.5, 30.0, 8, 8)
        pos, look = pose_from_camera(cam)
        back = camera_from_pose(pos + 0.3, look + 0.3, np.radians(30.0), (8, 8))
        assert back.theta_deg == pytest.approx(theta) and back.phi_deg == pytest.approx(phi)
        assert back.distance == pytest.approx(2.5)
