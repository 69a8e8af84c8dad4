"""PSNR/SSIM per frame and metrics.csv."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import zarr
from _synthetic import synthetic_case, write_prediction
from skimage.metrics import structural_similarity

from hyperinr.evaluate.metrics import evaluate, frame_metrics, read_metrics


def test_psnr_matches_hand_computation():
    gt = np.zeros((8, 9, 10))
    gt[0, 0, 0] = 4.0  # data range 4
    pred = gt + 0.5  # every voxel off by 0.5 -> MSE 0.25
    psnr, _ = frame_metrics(gt, pred)
    assert psnr == pytest.approx(10 * math.log10(16 / 0.25))


def test_psnr_uses_ground_truth_range_not_prediction_range():
    rng = np.random.default_rng(1)
    gt = rng.uniform(2.0, 3.0, size=(12, 12))
    pred = gt * 10  # huge range in the prediction must not change data_range
    psnr, _ = frame_metrics(gt, pred)
    mse = np.mean((gt - pred) ** 2)
    assert psnr == pytest.approx(10 * math.log10((gt.max() - gt.min()) ** 2 / mse))


def test_identical_frames_ssim_one_psnr_inf():
    vol = np.random.default_rng(0).normal(size=(9, 10, 11)).astype(np.float32)
    psnr, ssim = frame_metrics(vol, vol.copy())
    assert math.isinf(psnr) and psnr > 0
    assert ssim == pytest.approx(1.0)


def test_ssim_is_3d_for_volumes_and_matches_skimage():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(9, 10, 11))
    pred = gt + rng.normal(scale=0.3, size=gt.shape)
    _, ssim = frame_metrics(gt, pred)
    ref = structural_similarity(gt, pred, data_range=gt.max() - gt.min())
    assert ssim == pytest.approx(ref)
    # slice-wise 2-D SSIM differs: we really used 3-D windows
    ref2d = np.mean(
        [
            structural_similarity(g, p, data_range=gt.max() - gt.min())
            for g, p in zip(gt, pred, strict=True)
        ]
    )
    assert abs(ssim - ref2d) > 1e-4


def test_rgb_channel_axis():
    rng = np.random.default_rng(3)
    gt = rng.uniform(size=(16, 16, 3))
    pred = np.clip(gt + rng.normal(scale=0.1, size=gt.shape), 0, 1)
    _, ssim = frame_metrics(gt, pred, channel_axis=-1)
    ref = structural_similarity(gt, pred, data_range=gt.max() - gt.min(), channel_axis=-1)
    assert ssim == pytest.approx(ref)


@pytest.mark.parametrize("channels", [None, -1])
def test_slabbed_volume_equals_whole(channels):
    rng = np.random.default_rng(4)
    shape = (20, 11, 12) + ((2,) if channels else ())
    gt = rng.normal(size=shape)
    pred = gt + rng.normal(scale=0.5, size=shape)
    whole = frame_metrics(gt, pred, channel_axis=channels)
    slabbed = frame_metrics(gt, pred, channel_axis=channels, max_voxels=3 * 11 * 12)
    assert slabbed[0] == pytest.approx(whole[0], rel=1e-12)
    assert slabbed[1] == pytest.approx(whole[1], rel=1e-10)


def test_constant_ground_truth_gives_nan_and_warns():
    gt = np.full((8, 8, 8), 3.0)
    with pytest.warns(RuntimeWarning, match="constant"):
        psnr, ssim = frame_metrics(gt, gt + 1.0)
    assert math.isnan(psnr) and math.isnan(ssim)


def test_small_frames_shrink_ssim_window():
    rng = np.random.default_rng(5)
    gt = rng.normal(size=(4, 5, 6))
    _, ssim = frame_metrics(gt, gt)
    assert ssim == pytest.approx(1.0)


def test_evaluate_writes_metrics_csv(tmp_path):
    ds, preds = synthetic_case(
        tmp_path,
        n_frames=9,
        shape=(8, 9, 10),
        train_every=4,
        noise={"teacher": 0.02, "hyperinr": 0.05, "other": 0.1},
    )
    out = tmp_path / "metrics.csv"
    rows = evaluate(ds, preds, out, progress=False)
    with open(out, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["frame", "t", "split", "method", "psnr", "ssim"]
        raw = list(reader)
    assert len(raw) == len(rows) == 9 * 3
    assert [r["method"] for r in raw[:3]] == ["hyperinr", "teacher", "other"]
    train = {0, 4, 8}
    for r in raw:
        assert r["split"] == ("train" if int(r["frame"]) in train else "unseen")
        assert float(r["t"]) == pytest.approx(int(r["frame"]) / 8)
    back = read_metrics(out)
    assert [(r["frame"], r["method"], r["psnr"], r["ssim"]) for r in back] == [
        (r["frame"], r["method"], r["psnr"], r["ssim"]) for r in rows
    ]
    mean = {m: np.mean([r["psnr"] for r in rows if r["method"] == m]) for m in preds}
    assert mean["teacher"] > mean["hyperinr"] > mean["other"]
    assert not list(tmp_path.glob(".metrics.csv.tmp-*"))


def test_evaluate_exact_prediction_is_inf(tmp_path):
    ds, _ = synthetic_case(tmp_path, n_frames=5, shape=(8, 8, 8), noise={})
    grp = zarr.open_group(str(ds), mode="r")
    lo, hi = grp.attrs["value_range"]
    exact = lo + grp["frames"][...].astype(np.float64) * (hi - lo)
    p = write_prediction(tmp_path / "exact.zarr", exact, "exact", (lo, hi))
    rows = evaluate(ds, {"exact": p}, tmp_path / "m.csv", progress=False)
    assert all(math.isinf(r["psnr"]) and r["ssim"] == pytest.approx(1.0) for r in rows)


def test_evaluate_rejects_mismatched_store(tmp_path):
    ds, _ = synthetic_case(tmp_path, n_frames=5, shape=(8, 8, 8), noise={})
    bad = write_prediction(tmp_path / "bad.zarr", np.zeros((4, 8, 8, 8)), "bad", (0, 1))
    with pytest.raises(ValueError, match="bad.zarr") as info:
        evaluate(ds, {"bad": bad}, tmp_path / "m.csv", progress=False)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "m.csv").exists()
