"""The real workflow, run by Snakemake on the tiny config (16^3 x 9 frames), end to end.

One module-scoped run feeds several checks; it takes a few minutes on 2 cores.
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "results/tgv16_test"

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/test.yaml"]
    proc = subprocess.run(
        [*cmd, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow (not the package: that is installed) run once, to the report."""
    work = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "rules", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    snakemake(work)
    return work


def _rows(workdir: Path) -> list[dict[str, str]]:
    with open(workdir / RESULTS / "report/metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_report_has_finite_metrics_for_every_frame_and_method(workdir):
    rows = _rows(workdir)
    methods = {r["method"] for r in rows}
    assert methods == {"hyperinr", "teacher", "lerp"}
    assert len(rows) == 9 * 3
    for r in rows:
        if r["method"] == "lerp" and r["split"] == "train":
            assert float(r["psnr"]) == math.inf  # LERP is exact on its own training frames
            continue
        assert math.isfinite(float(r["psnr"])) and math.isfinite(float(r["ssim"])), r
    summary = (workdir / RESULTS / "report/summary.md").read_text()
    assert "hyperinr" in summary and "teacher" in summary and "lerp" in summary
    for png in ("psnr_ssim.png", "slices.png"):
        assert (workdir / RESULTS / "report" / png).stat().st_size > 1000


def test_hyperinr_beats_a_constant_predictor(workdir):
    """A constant field (the training frames' mean) is the floor any learned model must clear."""
    data = zarr.open_group(workdir / RESULTS / "dataset.zarr", mode="r")
    lo, hi = data.attrs["value_range"]
    train = data.attrs["split"]["train"]
    frames = lo + np.asarray(data["frames"][...], dtype=np.float64) * (hi - lo)
    constant = frames[train].mean()
    rows = [r for r in _rows(workdir) if r["method"] == "hyperinr" and r["split"] == "unseen"]
    assert rows
    for r in rows:
        gt = frames[int(r["frame"])]
        mse = np.mean((gt - constant) ** 2)
        psnr_constant = 10 * np.log10((gt.max() - gt.min()) ** 2 / mse)
        assert float(r["psnr"]) > psnr_constant + 3.0, r


def test_exported_inr_reproduces_the_prediction(workdir, tmp_path):
    import torch

    from hyperinr.models.inr import INR

    out = tmp_path / "inr.npz"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hyperinr.cli",
            "export",
            "--model",
            str(workdir / RESULTS / "hyperinr/model.pt"),
            "--param",
            "1.5",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    inr = INR.load(out)
    assert inr.metadata["param"] == [1.5]
    data = zarr.open_group(workdir / RESULTS / "dataset.zarr", mode="r")
    frame = int(np.argmin(np.abs(np.asarray(data["params"][:, 0]) - 1.5)))  # t = 1.5 is a frame
    pred = zarr.open_group(workdir / RESULTS / "predictions/hyperinr.zarr", mode="r")["frames"]
    lo, hi = data.attrs["value_range"]
    from hyperinr.grid import grid_coords

    with torch.no_grad():
        values = inr(grid_coords(tuple(data.attrs["dims"]))).numpy().reshape(pred.shape[1:])
    assert np.allclose(lo + values * (hi - lo), pred[frame], atol=1e-4 * (hi - lo))


def test_forcerun_distill_reruns_only_distill_and_downstream(workdir):
    teacher = workdir / RESULTS / "teacher/model.pt"
    before = teacher.stat().st_mtime_ns
    dry = snakemake(workdir, "-n", "--forcerun", "distill")
    out = dry.stdout + dry.stderr
    table = out.split("Job stats:")[1].split("total")[0].splitlines()[3:]
    planned = {line.split()[0]: int(line.split()[1]) for line in table if line.strip()}
    assert planned == {"distill": 1, "predict": 1, "evaluate": 1, "report": 1, "all": 1}, out
    assert "method=hyperinr" in out
    snakemake(workdir, "--forcerun", "distill")
    assert teacher.stat().st_mtime_ns == before


def test_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr
