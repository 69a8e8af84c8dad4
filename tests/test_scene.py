"""Rule scene's datasets (NVS images, DGS shadow volumes) and the task figures built on them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy import stats

from hyperinr.config import SceneConfig
from hyperinr.data.errors import DataError
from hyperinr.data.scene import (
    even_training_lights,
    fibonacci_band,
    light_grid,
    random_band,
    read_scene,
    write_scene,
)
from hyperinr.evaluate.view_gain import gain_test, psnr_differences
from hyperinr.render import direction


def _volume_file(tmp_path: Path) -> Path:
    z, y, x = np.meshgrid(*[np.linspace(0, 1, 12)] * 3, indexing="ij")
    vol = np.exp(-((x - 0.6) ** 2 + (y - 0.4) ** 2 + (z - 0.5) ** 2) / 0.05)
    path = tmp_path / "vol.h5"
    with h5py.File(path, "w") as h5:
        h5.create_dataset("vorticity", data=np.stack([vol * 0.5, vol]))
    return path


def _scene(tmp_path: Path, **kw) -> SceneConfig:
    base = dict(volume_file=str(_volume_file(tmp_path)), resolution=10,
                output_dir=str(tmp_path / "scene"), image_size=12, n_steps=16, shadow_steps=8,
                n_train=6, n_test=4, n_theta=2, n_phi=6)  # fmt: skip
    return SceneConfig(**{**base, **kw})


def test_fibonacci_band_spreads_views_inside_the_band():
    views = fibonacci_band(100, (30.0, 150.0))
    assert views[:, 0].min() >= 30.0 and views[:, 0].max() <= 150.0
    assert ((views[:, 1] >= 0) & (views[:, 1] < 360)).all()
    vec = direction(views[:, 0], views[:, 1])
    nearest = np.sort(vec @ vec.T, axis=1)[:, -2]  # cosine to the nearest other view
    # evenly spread: the closest pair is not much closer than the typical neighbour
    gaps = np.arccos(np.clip(nearest, -1, 1))
    assert gaps.min() > 0.5 * np.median(gaps)


def test_test_views_differ_from_training_views():
    train = fibonacci_band(50, (30.0, 150.0))
    test = random_band(50, (30.0, 150.0), seed=1)
    assert not (np.abs(test[:, None] - train[None]).sum(-1) < 1e-6).any()
    np.testing.assert_array_equal(test, random_band(50, (30.0, 150.0), seed=1))


def test_training_lights_are_evenly_spread():
    cfg = SceneConfig(n_theta=5, n_phi=30, n_train=35)
    grid = light_grid(cfg)
    train = even_training_lights(cfg)
    assert len(grid) == 150 and len(np.unique(train)) == 35
    per_theta = np.unique(grid[train, 0], return_counts=True)[1]
    assert (per_theta == 7).all()
    gaps = np.diff(np.sort(grid[train][grid[train, 0] == grid[0, 0], 1]))
    assert gaps.max() - gaps.min() <= 12.0 + 1e-9  # one grid step of 360 / 30
    fps = even_training_lights(SceneConfig(n_theta=5, n_phi=30, n_train=17))
    assert len(np.unique(fps)) == 17


def test_nvs_scene_files(tmp_path):
    cfg = _scene(tmp_path)
    frames, sidecar = write_scene("nvs", cfg, torch.device("cpu"))
    with h5py.File(frames) as h5:
        images = h5["frames"][...]
    assert images.shape == (10, 12, 12, 3) and np.isfinite(images).all()
    assert images.std() > 0.01  # the volume is visible
    side = json.loads(Path(sidecar).read_text())
    assert side["names"] == ["theta", "phi"] and side["periodic"] == ["phi"]
    assert len(side["values"]) == 10 and side["ranges"] == [[30.0, 150.0], [0.0, 360.0]]
    again = write_scene("nvs", cfg, torch.device("cpu"))[0]
    with h5py.File(again) as h5:
        np.testing.assert_array_equal(h5["frames"][...], images)  # deterministic
    volume, tf, meta = read_scene(frames)
    assert volume.shape == (10, 10, 10) and meta["n_train"] == 6
    assert tf.to_mapping() == meta["transfer_function"]


def test_dgs_scene_is_transmittance_with_training_lights_first(tmp_path):
    cfg = _scene(tmp_path, n_train=4)
    frames, sidecar = write_scene("dgs", cfg, torch.device("cpu"))
    with h5py.File(frames) as h5:
        shadows = h5["frames"][...]
    assert shadows.shape == (12, 10, 10, 10)
    assert shadows.min() >= 0.0 and shadows.max() <= 1.0 + 1e-6 and shadows.min() < 0.9
    values = np.array(json.loads(Path(sidecar).read_text())["values"])
    grid = light_grid(cfg)
    np.testing.assert_allclose(values[:4], grid[even_training_lights(cfg)])
    assert sorted(map(tuple, values)) == sorted(map(tuple, grid))  # every light once


def test_bad_scene_inputs(tmp_path):
    with pytest.raises(DataError, match="scene.volume_file not found"):
        write_scene("nvs", _scene(tmp_path, volume_file=str(tmp_path / "no.h5")), "cpu")
    with pytest.raises(DataError, match="scene.frame 5 outside its 2 frames"):
        write_scene("nvs", _scene(tmp_path, frame=5), torch.device("cpu"))
    bad_tf = {"positions": [0, 0.6, 0.5], "colors": [[0, 0, 0]] * 3, "opacities": [0, 1, 1]}
    with pytest.raises(ValueError, match="scene.transfer_function.positions"):
        write_scene("nvs", _scene(tmp_path, transfer_function=bad_tf), torch.device("cpu"))
    assert not (tmp_path / "scene" / "frames.h5").exists()


# --------------------------------------------------------------------------- Fig. 13


def _metrics(path: Path, diffs: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "theta", "phi", "split", "method", "psnr", "ssim"])
        for i, d in enumerate(diffs):
            for m, p in (("hyperinr", 30 + d), ("teacher", 31.0), ("lerp", 30.0)):
                w.writerow([i + 2, 40 + i, 10 * i, "unseen", m, p, 0.9])
        for m in ("hyperinr", "lerp"):
            w.writerow([0, 40, 0, "train", m, "inf" if m == "lerp" else 35, 1.0])


def test_gain_test_is_scipys_one_sided_t_test():
    diff = np.array([0.5, 1.2, -0.3, 0.8, 0.1])
    want = stats.ttest_1samp(diff, 0.0, alternative="greater")
    got = gain_test(diff)
    assert got["p"] == pytest.approx(want.pvalue) and got["t"] == pytest.approx(want.statistic)
    assert got["share_positive"] == pytest.approx(0.8)
    # a negative mean gives a large one-sided p
    assert gain_test(-diff)["p"] > 0.5


def test_view_gain_uses_unseen_frames_only(tmp_path):
    diffs = np.array([0.5, 1.5, 0.2, 0.9, -0.1, 0.7])
    _metrics(tmp_path / "m.csv", diffs)
    from hyperinr.evaluate.metrics import read_metrics

    frames, got = psnr_differences(read_metrics(tmp_path / "m.csv"), "hyperinr", "lerp")
    np.testing.assert_allclose(got, diffs)
    assert 0 not in frames.tolist()
