"""The NVS and DGS tasks through the real workflow on their tiny configs, end to end.

Each config runs once (module-scoped, ~1-2 min each on 2 cores): rule scene renders the
dataset, the same rules as TSR train and evaluate, and the task's own figures (Fig. 13 for NVS,
Fig. 16 for DGS) land in the report. Those runs are only read; a test that runs Snakemake
again works in its own clone.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from hyperinr.data.distill_store import DistillSet
from hyperinr.data.store import open_dataset
from hyperinr.models.hyperinr import load_hyperinr
from tests._workflow import clone_run, copy_workflow, snakemake, unchanged

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


@pytest.fixture(scope="module")
def nvs(tmp_path_factory) -> Iterator[Path]:
    work = copy_workflow(tmp_path_factory.mktemp("nvs"))
    snakemake(work, config="config/test_nvs.yaml")
    with unchanged(work):
        yield work / "results/nvs_test"


@pytest.fixture(scope="module")
def dgs(tmp_path_factory) -> Iterator[Path]:
    work = copy_workflow(tmp_path_factory.mktemp("dgs"))
    snakemake(work, config="config/test_dgs.yaml")
    with unchanged(work):
        yield work / "results/dgs_test"


def _metrics(results: Path) -> list[dict[str, str]]:
    with open(results / "report/metrics.csv") as fh:
        return list(csv.DictReader(fh))


def _check_metrics(results: Path, n_frames: int, n_train: int) -> None:
    rows = _metrics(results)
    assert {r["method"] for r in rows} == {"hyperinr", "teacher", "lerp"}
    assert len(rows) == 3 * n_frames
    assert sum(r["split"] == "train" for r in rows) == 3 * n_train
    for r in rows:
        if not (r["method"] == "lerp" and r["split"] == "train"):
            assert math.isfinite(float(r["psnr"])) and math.isfinite(float(r["ssim"])), r


def test_nvs_runs_to_the_report_with_the_t_test(nvs):
    ds = open_dataset(nvs / "dataset.zarr")
    assert ds.frames.shape == (30, 24, 24, 3) and ds.n_channels == 3
    assert ds.param_names == ("theta", "phi") and ds.param_periodic == (False, True)
    _check_metrics(nvs, 30, 20)
    gain = json.loads((nvs / "report/view_gain.json").read_text())
    diffs = []
    by = {(r["frame"], r["method"]): float(r["psnr"]) for r in _metrics(nvs)}
    for r in _metrics(nvs):
        if r["split"] == "unseen" and r["method"] == "hyperinr":
            diffs.append(by[(r["frame"], "hyperinr")] - by[(r["frame"], "lerp")])
    assert gain["n"] == 10 and gain["mean"] == pytest.approx(np.mean(diffs))
    assert 0.0 <= gain["p"] <= 1.0
    summary = (nvs / "report/summary.md").read_text()
    assert "Fig. 13" in summary and f"{gain['p']:.3g}" in summary
    # the teacher's PSNR on its own training views stands beside the test (issue 21)
    train = [float(r["psnr"]) for r in _metrics(nvs)
             if r["method"] == "teacher" and r["split"] == "train"]  # fmt: skip
    assert gain["psnr_by_split"]["teacher"]["train"] == pytest.approx(np.mean(train))
    assert f"| teacher | {np.mean(train):.2f} |" in summary
    assert (nvs / "report/view_gain.png").stat().st_size > 10_000


def test_nvs_hyperinr_interpolates_periodic_encoders(nvs):
    model, meta = load_hyperinr(nvs / "hyperinr/model.pt", torch.device("cpu"))
    assert model.n_encoders == 20 and meta["param_names"] == ["theta", "phi"]
    # an azimuth just below 360 deg blends encoders next to ones just above 0 deg
    idx_hi, _ = model.lookup(np.array([[0.5, 0.999]]))
    idx_lo, _ = model.lookup(np.array([[0.5, 0.001]]))
    assert set(idx_hi[0].tolist()) == set(idx_lo[0].tolist())


def test_nvs_distillation_set_is_poisson_plus_gaussians(nvs):
    """config/test_nvs.yaml: 40 parameters, the last 16 Gaussian (sigma 0.03) around the 20
    training views, the first 24 Poisson-disk: spread, not clustered on the training views."""
    params = DistillSet(nvs / "distill_set.zarr").params01
    assert params.shape == (40, 2) and len(np.unique(params, axis=0)) == 40
    assert ((params >= 0) & (params <= 1)).all()
    train = open_dataset(nvs / "dataset.zarr").normalised_params()[:20]
    near = cKDTree(train, boxsize=[3.0, 1.0]).query(params)[0]
    assert near[24:].max() < 0.15  # every Gaussian sample is near a training view
    assert np.median(near[:24]) > 2 * np.median(near[24:])
    assert pdist(params[:24]).min() > 0.05  # the Poisson-disk part keeps its radius


def test_dgs_runs_to_the_report_with_shadow_renders(dgs):
    ds = open_dataset(dgs / "dataset.zarr")
    assert ds.frames.shape == (24, 16, 16, 16) and ds.param_periodic == (False, True)
    _check_metrics(dgs, 24, 9)
    with open(dgs / "report/shadow_renders.csv") as fh:
        renders = list(csv.DictReader(fh))
    methods = {r["method"] for r in renders}
    assert methods == {"secondary rays", "hyperinr", "teacher", "lerp"}
    sweep = sorted({int(r["frame"]) for r in renders})
    splits = {int(r["frame"]): r["split"] for r in renders}
    assert len(sweep) >= 3 and [splits[f] for f in sweep].count("train") == 2
    for r in renders:
        assert float(r["render_seconds"]) > 0
        if r["method"] != "secondary rays":
            assert math.isfinite(float(r["psnr_vs_reference"]))
    summary = (dgs / "report/summary.md").read_text()
    assert "Fig. 16" in summary and "speed-up over secondary rays" in summary
    teacher_train = [float(r["psnr_vs_reference"]) for r in renders
                     if r["method"] == "teacher" and r["split"] == "train"]  # fmt: skip
    assert "mean PSNR of training lights" in summary
    section = summary[summary.index("## Shadow renders"):]
    teacher_row = next(line for line in section.splitlines() if line.startswith("| teacher |"))
    assert teacher_row.rstrip(" |").endswith(f"{np.mean(teacher_train):.2f}")


def test_impossible_config_fails_before_any_job(tmp_path):
    work = copy_workflow(tmp_path / "bad")
    (work / "config/bad.yaml").write_text("hyperinr:\n  k_nearest: 50\n")
    proc = snakemake(work, "-n", config="config/test_dgs.yaml", check=False)
    assert proc.returncode == 0
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile",
           "config/test_dgs.yaml", "config/bad.yaml"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "hyperinr.k_nearest: 50 exceeds the 15 encoders" in out
    assert not (work / "results").exists() and not (work / "resources").exists()


def test_explorer_shows_the_predicted_view_and_the_shadowed_scene(nvs, dgs, tmp_path):
    """The explorer on n-D tasks: NVS shows the predicted image itself (equal to the predict
    stage's output at a test view), DGS renders the base volume lit by the predicted shadows;
    rule explore_snapshots sweeps the azimuth for both."""
    from hyperinr.data.store import open_prediction
    from hyperinr.explore import open_explorer
    from hyperinr.explore.frames import FrameRequest, to_uint8
    from hyperinr.render import Camera

    ex = open_explorer(nvs / "hyperinr/model.pt", device="cpu")
    assert ex.task == "nvs" and not ex.needs_camera
    ds = open_dataset(nvs / "dataset.zarr")
    i = int(ds.eval_indices[0])
    res = ex.render_frame(FrameRequest("hyperinr", tuple(float(v) for v in ds.params[i])))
    pred = open_prediction(nvs / "predictions/hyperinr.zarr", ds)
    expected = to_uint8(np.clip(ds.to_unit(np.asarray(pred.frames[i])), 0.0, 1.0))
    assert np.abs(res.image.astype(int) - expected.astype(int)).max() <= 1
    assert res.frame == i and res.psnr_db is not None

    ex = open_explorer(dgs / "hyperinr/model.pt", device="cpu")
    assert ex.task == "dgs" and ex.base_volume is not None
    cam = Camera(60.0, 35.0, 2.2, 40.0, 24, 24)
    lights = [tuple(float(v) for v in open_dataset(dgs / "dataset.zarr").params[j]) for j in (0, 1)]
    a, b = (ex.render_frame(FrameRequest("hyperinr", p, cam, n_steps=24)) for p in lights)
    assert a.image.shape == (24, 24, 3) and not np.array_equal(a.image, b.image)  # light moved

    for results, config in ((nvs, "config/test_nvs.yaml"), (dgs, "config/test_dgs.yaml")):
        work = clone_run(results.parents[1], tmp_path / results.name)
        results = work / "results" / results.name
        snakemake(work, config=config, targets=("explore_snapshots",))
        with open(results / "report/explore_snapshots.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert {r["method"] for r in rows} == {"hyperinr", "teacher", "lerp"}
        assert len(rows) == 3 * 6
        assert (results / "report/explore_snapshots.png").stat().st_size > 1000
