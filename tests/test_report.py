"""summary.md, psnr_ssim.png and slices.png from a tiny synthetic evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _synthetic import synthetic_case, write_dataset, write_prediction

from hyperinr.data.store import open_dataset
from hyperinr.evaluate.metrics import evaluate, read_metrics
from hyperinr.evaluate.report import default_slice_frames, fmt_duration, write_report
from hyperinr.models.lerp import lerp_predict

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("case")
    ds, preds = synthetic_case(
        root / "tiny",
        n_frames=13,
        shape=(8, 12, 12),
        train_every=4,
        noise={"teacher": 0.03, "hyperinr": 0.05, "neurcomp": 0.2},
    )
    preds["lerp"] = root / "tiny" / "predictions" / "lerp.zarr"
    lerp_info = lerp_predict(
        ds, preds["lerp"], progress=False, info_path=root / "tiny" / "predictions" / "lerp.json"
    )
    assert lerp_info["stage"] == "predict_lerp"
    infos = []
    for stage, wall, extra in (
        ("teacher", 3725.4, {"steps": 20000, "loss": 1.234e-4}),
        ("hyperinr", 61.0, {"steps": 5000}),
    ):
        p = root / "tiny" / stage / "info.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"stage": stage, "wall_seconds": wall, **extra}))
        infos.append(p)
    infos.append(root / "tiny" / "predictions" / "lerp.json")
    csv_path = root / "tiny" / "metrics.csv"
    evaluate(ds, preds, csv_path, progress=False)
    out = write_report(ds, csv_path, preds, infos, root / "tiny" / "report")
    return ds, preds, csv_path, out


def test_report_files_exist(evaluated):
    _, _, _, out = evaluated
    assert set(out) == {"summary", "psnr_ssim", "slices"}
    for key in ("psnr_ssim", "slices"):
        data = out[key].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    assert not list(out["summary"].parent.glob(".*tmp-*"))


def test_summary_numbers_equal_csv_means(evaluated):
    _, preds, csv_path, out = evaluated
    text = out["summary"].read_text()
    rows = read_metrics(csv_path)
    unseen_section = text.split("## Unseen")[1].split("## Training")[0]
    best_psnr, best_m = -np.inf, None
    for m in preds:
        psnr = np.mean([r["psnr"] for r in rows if r["method"] == m and r["split"] == "unseen"])
        ssim = np.mean([r["ssim"] for r in rows if r["method"] == m and r["split"] == "unseen"])
        assert f"| {m} | {psnr:.2f} | {ssim:.4f} |" in unseen_section
        if psnr > best_psnr:
            best_psnr, best_m = psnr, m
    assert f"Best mean PSNR on unseen frames: **{best_m}** ({best_psnr:.2f} dB)" in text
    h = np.mean([r["psnr"] for r in rows if r["method"] == "hyperinr" and r["split"] == "unseen"])
    t = np.mean([r["psnr"] for r in rows if r["method"] == "teacher" and r["split"] == "unseen"])
    assert f"hyperinr − teacher on unseen frames: {h - t:+.2f} dB" in text
    train_section = text.split("## Training frames")[1]
    assert "| lerp | inf |" in train_section


def test_summary_stage_times_and_facts(evaluated):
    _, _, _, out = evaluated
    text = out["summary"].read_text()
    assert "| teacher | 1:02:05.4 | steps=20000, loss=0.0001234 |" in text
    assert "| hyperinr | 0:01:01.0 | steps=5000 |" in text
    assert "| predict_lerp |" in text.split("## Wall times")[1]
    assert "frames: 13 (4 training, 9 unseen)" in text
    assert "dims: 8 × 12 × 12 (z, y, x)" in text
    assert "t ∈ [0, 1]" in text


def test_default_slice_frames_middle_of_first_and_last_interval(evaluated):
    ds = open_dataset(evaluated[0])
    assert default_slice_frames(ds) == [2, 10]


def test_fmt_duration():
    assert fmt_duration(0.42) == "0:00:00.4"
    assert fmt_duration(3 * 3600 + 5 * 60 + 7) == "3:05:07.0"


def test_report_for_rgb_images_with_nd_params(tmp_path):
    rng = np.random.default_rng(0)
    params = rng.uniform(size=(6, 2))
    img = rng.uniform(size=(6, 16, 20, 3))
    ds = write_dataset(
        tmp_path / "dataset.zarr",
        img,
        params,
        [0, 2, 4],
        param_names=["theta", "phi"],
        n_channels=3,
    )
    lo, hi = float(img.min()), float(img.max())
    preds = {"hyperinr": write_prediction(tmp_path / "h.zarr", img + 0.05, "hyperinr", (lo, hi))}
    evaluate(ds, preds, tmp_path / "m.csv", progress=False)
    out = write_report(ds, tmp_path / "m.csv", preds, [], tmp_path / "rep", slice_frames=[1])
    assert out["slices"].read_bytes().startswith(PNG_MAGIC)
    assert "| hyperinr |" in out["summary"].read_text()


def test_the_shrinkage_curve_table_shows_every_tenth_and_the_choice_in_bold():
    from hyperinr.evaluate.report import shrinkage_curve_rows
    from hyperinr.training.targets import SHRINKAGE_GRID

    mse = [(a - 0.35) ** 2 + 1e-3 for a in SHRINKAGE_GRID]
    rows = shrinkage_curve_rows({"a": list(SHRINKAGE_GRID), "mse": mse, "chosen": 0.35})
    cells = [c.strip() for c in rows[0].strip("|").split("|")][1:]
    want = ["0", "0.1", "0.2", "0.3", "**0.35**", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]
    assert cells == want
    values = [c.strip() for c in rows[2].strip("|").split("|")][1:]
    assert values[4] == "**0.001**" and len(values) == len(cells)
    assert rows[1].count("---:") == len(cells)
