"""The real workflow, run by Snakemake on the tiny config (16^3 x 9 frames), end to end.

One session-wide run to the report (`tiny_run`, ~1.5 min on 2 cores) is read by the checks
that only look; every test that reruns or changes something works in its own clone of it
(`tiny_clone`), so no test depends on another having run before it.
"""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests._workflow import LOCAL_ENV, ROOT, copy_workflow, planned, snakemake

RESULTS = "results/tgv16_test"
# what depends on HyperINR's model: its prediction, the metrics and report, speed and renders
DOWNSTREAM_OF_DISTILL = {"distill": 1, "predict": 1, "evaluate": 1, "report": 1, "all": 1,
                         "speed": 1, "renders": 1}  # fmt: skip

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


def _rows(workdir: Path) -> list[dict[str, str]]:
    with open(workdir / RESULTS / "report/metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_report_has_finite_metrics_for_every_frame_and_method(tiny_run):
    rows = _rows(tiny_run)
    methods = {r["method"] for r in rows}
    assert methods == {"hyperinr", "teacher", "lerp"}
    assert len(rows) == 9 * 3
    for r in rows:
        if r["method"] == "lerp" and r["split"] == "train":
            assert float(r["psnr"]) == math.inf  # LERP is exact on its own training frames
            continue
        assert math.isfinite(float(r["psnr"])) and math.isfinite(float(r["ssim"])), r
    summary = (tiny_run / RESULTS / "report/summary.md").read_text()
    assert "hyperinr" in summary and "teacher" in summary and "lerp" in summary
    assert "| held-out MSE |" in summary and "teacher_validation" in summary  # a's curve, cost
    for png in ("psnr_ssim.png", "slices.png"):
        assert (tiny_run / RESULTS / "report" / png).stat().st_size > 1000


def test_hyperinr_beats_a_constant_predictor(tiny_run):
    """A constant field (the training frames' mean) is the floor any learned model must clear."""
    data = zarr.open_group(tiny_run / RESULTS / "dataset.zarr", mode="r")
    lo, hi = data.attrs["value_range"]
    train = data.attrs["split"]["train"]
    frames = lo + np.asarray(data["frames"][...], dtype=np.float64) * (hi - lo)
    constant = frames[train].mean()
    rows = [r for r in _rows(tiny_run) if r["method"] == "hyperinr" and r["split"] == "unseen"]
    assert rows
    for r in rows:
        gt = frames[int(r["frame"])]
        mse = np.mean((gt - constant) ** 2)
        psnr_constant = 10 * np.log10((gt.max() - gt.min()) ** 2 / mse)
        assert float(r["psnr"]) > psnr_constant + 3.0, r


def test_exported_inr_reproduces_the_prediction(tiny_run, tmp_path):
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
            str(tiny_run / RESULTS / "hyperinr/model.pt"),
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
    data = zarr.open_group(tiny_run / RESULTS / "dataset.zarr", mode="r")
    frame = int(np.argmin(np.abs(np.asarray(data["params"][:, 0]) - 1.5)))  # t = 1.5 is a frame
    pred = zarr.open_group(tiny_run / RESULTS / "predictions/hyperinr.zarr", mode="r")["frames"]
    lo, hi = data.attrs["value_range"]
    from hyperinr.grid import grid_coords

    with torch.no_grad():
        values = inr(grid_coords(tuple(data.attrs["dims"]))).numpy().reshape(pred.shape[1:])
    assert np.allclose(lo + values * (hi - lo), pred[frame], atol=1e-4 * (hi - lo))


def _info(workdir: Path, stage: str) -> dict:
    return json.loads((workdir / RESULTS / stage / "info.json").read_text())


def _weights(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _overlay(directory: Path, name: str, text: str) -> str:
    """A config overlay written beside (not into) the run it changes."""
    (directory / name).write_text(text)
    return str(directory / name)


def test_finished_stages_leave_nothing_to_resume(tiny_run):
    for stage in ("teacher", "hyperinr"):
        assert not (tiny_run / RESULTS / stage / "checkpoint.pt").exists()
        assert _info(tiny_run, stage)["resumed_from"] == 0
    assert _info(tiny_run, "teacher")["produced_by"]["inputs"]["dataset"]
    summary = (tiny_run / RESULTS / "report/summary.md").read_text()
    assert "## Provenance" in summary
    assert _info(tiny_run, "hyperinr")["produced_by"]["hash"] in summary


def test_forcerun_distill_reruns_only_distill_and_downstream_from_step_0(tiny_clone):
    teacher = tiny_clone / RESULTS / "teacher/model.pt"
    before = teacher.stat().st_mtime_ns
    old = _info(tiny_clone, "hyperinr")
    dry = snakemake(tiny_clone, "-n", "--forcerun", "distill")
    assert planned(dry) == DOWNSTREAM_OF_DISTILL
    assert "method=hyperinr" in dry.stdout + dry.stderr
    snakemake(tiny_clone, "--forcerun", "distill")
    assert teacher.stat().st_mtime_ns == before
    new = _info(tiny_clone, "hyperinr")
    log = (tiny_clone / "logs/tgv16_test/distill_hyperinr.log").read_text()
    assert new["resumed_from"] == 0 and "resuming" not in log, log
    assert new["finished"] != old["finished"] or new["run_seconds"] != old["run_seconds"]
    assert new["wall_seconds"] <= new["run_seconds"]  # this run's training, nothing inherited
    assert new["produced_by"] == old["produced_by"]  # same inputs and settings: same identity


def test_unrelated_keys_rerun_nothing_they_do_not_read(tiny_run, tmp_path):
    """Dry runs only: the shared run itself is the finished state they are planned against."""
    lr = _overlay(tmp_path, "lr.yaml", "hyperinr: {train: {lr: 0.005}}\n")
    plan = planned(snakemake(tiny_run, lr, "-n"))
    assert plan == DOWNSTREAM_OF_DISTILL, plan
    threads = _overlay(tmp_path, "threads.yaml", "runtime: {threads: 2}\n")
    plan = snakemake(tiny_run, threads, "-n")
    assert "Nothing to be done" in plan.stdout + plan.stderr


def test_killed_distill_resumes_exactly(tiny_clone):
    """SIGKILL the whole Snakemake run mid-distill; the same command again resumes from the
    checkpoint (it is unfinished and of the same provenance) and ends with the weights of the
    uninterrupted run that made the clone's model (same inputs and settings)."""
    import os
    import signal
    import time

    import torch

    model = tiny_clone / RESULTS / "hyperinr/model.pt"
    checkpoint = tiny_clone / RESULTS / "hyperinr/checkpoint.pt"
    reference = _weights(model)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/test.yaml",
           "--forcerun", "distill"]
    proc = subprocess.Popen(cmd, cwd=tiny_clone, stdout=subprocess.DEVNULL, env=LOCAL_ENV,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if checkpoint.exists():
                try:
                    if torch.load(checkpoint, weights_only=False)["step"] >= 200:
                        break
                except Exception:  # being replaced right now
                    pass
            time.sleep(0.2)
        assert proc.poll() is None, "distill finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed_at = torch.load(checkpoint, weights_only=False)["step"]
    snakemake(tiny_clone, "--unlock")  # what Snakemake asks for after a kill
    snakemake(tiny_clone, "--forcerun", "distill")  # the same command again: it continues
    log = (tiny_clone / "logs/tgv16_test/distill_hyperinr.log").read_text()
    assert f"resuming from step {killed_at}" in log, log
    assert _info(tiny_clone, "hyperinr")["resumed_from"] == killed_at
    assert _same_weights(_weights(model), reference)
    assert not checkpoint.exists()


def test_target_modes_compare_every_mode_from_one_teacher_and_set(tiny_clone):
    teacher = tiny_clone / RESULTS / "teacher/model.pt"
    dataset_set = tiny_clone / RESULTS / "distill_set.zarr"
    before = (teacher.stat().st_mtime_ns, dataset_set.stat().st_mtime_ns)
    snakemake(tiny_clone, targets=("target_modes",))
    assert (teacher.stat().st_mtime_ns, dataset_set.stat().st_mtime_ns) == before
    with open(tiny_clone / RESULTS / "report/target_modes.csv") as fh:
        rows = list(csv.DictReader(fh))
    methods = {r["method"] for r in rows}
    assert methods == {"hyperinr_teacher", "hyperinr_corrected", "hyperinr_hybrid", "teacher",
                       "lerp"}
    table = (tiny_clone / RESULTS / "report/target_modes.md").read_text()
    assert all(f"| {m} |" in table for m in methods), table
    corrected = _info(tiny_clone, "hyperinr_corrected")
    assert corrected["targets_mode"] == "corrected"
    choice = corrected["shrinkage_choice"]
    assert corrected["shrinkage"] == choice["chosen"]
    validation = _info(tiny_clone, "teacher_validation")
    # scored only on training frames the validation teacher never trained on
    assert choice["scored"] == validation["held_out_frames"] == [2, 6]
    assert choice["validation_teacher_frames"] == validation["trained_frames"] == [0, 4, 8]
    assert validation["steps"] == 150  # a tenth of config/test.yaml's 1500 teacher steps
    assert corrected["produced_by"]["inputs"]["validation_teacher"]
    assert "corrected" in table and "never saw" in table

    def train_psnr(method):
        vals = [float(r["psnr"]) for r in rows if r["method"] == method and r["split"] == "train"]
        return sum(vals) / len(vals)

    # exact ground truth at the training frames: the corrected student gets closer there
    assert train_psnr("hyperinr_corrected") > train_psnr("hyperinr_teacher")


def test_retrained_teacher_recomputes_the_set_and_hyperinr(tiny_clone, tmp_path):
    old_teacher = _weights(tiny_clone / RESULTS / "teacher/model.pt")
    old_hyper = _weights(tiny_clone / RESULTS / "hyperinr/model.pt")
    old_inputs = _info(tiny_clone, "hyperinr")["produced_by"]["inputs"]
    old_set = old_inputs["distill_set"]
    steps = _overlay(tmp_path, "steps.yaml", "teacher: {train: {steps: 1300}}\n")
    snakemake(tiny_clone, steps)
    teacher = _info(tiny_clone, "teacher")
    assert teacher["steps"] == 1300 and teacher["resumed_from"] == 0
    assert not _same_weights(_weights(tiny_clone / RESULTS / "teacher/model.pt"), old_teacher)
    set_info = json.loads((tiny_clone / RESULTS / "distill_set_info.json").read_text())
    assert set_info["recomputed_by_gather"] == []  # the shard jobs recomputed every shard
    hyper = _info(tiny_clone, "hyperinr")
    assert hyper["resumed_from"] == 0 and hyper["produced_by"]["inputs"]["distill_set"] != old_set
    assert hyper["produced_by"]["inputs"]["teacher"] != old_inputs["teacher"]
    # corrected targets C = a T + IDW(GT_k - a T_k): the teacher shapes the student only when
    # the shrinkage is above 0 (the tiny run's 150-step validation teacher may well choose 0)
    same = _same_weights(_weights(tiny_clone / RESULTS / "hyperinr/model.pt"), old_hyper)
    assert same == (hyper["shrinkage"] == 0.0), hyper["shrinkage"]


def test_changed_simulation_retrains_the_teacher(tiny_clone, tmp_path):
    """Only the simulation changes: the teacher retrains on the new data, its own settings
    (the config it records) untouched."""
    old = _info(tiny_clone, "teacher")
    old_weights = _weights(tiny_clone / RESULTS / "teacher/model.pt")
    sim = _overlay(tmp_path, "sim.yaml", "simulate: {reynolds: 800.0}\n")
    snakemake(tiny_clone, sim, "--until", "teacher")
    new = _info(tiny_clone, "teacher")
    assert new["resumed_from"] == 0
    assert new["produced_by"]["inputs"]["dataset"] != old["produced_by"]["inputs"]["dataset"]
    assert new["produced_by"]["config"] == old["produced_by"]["config"]
    assert not _same_weights(_weights(tiny_clone / RESULTS / "teacher/model.pt"), old_weights)


def test_lint_is_clean():
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "Congratulations" in proc.stdout + proc.stderr


def test_pressure_config_is_the_default_run_on_the_other_field():
    """config/tgv64_pressure.yaml overlays config/config.yaml: same settings, field pressure."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile",
         "config/tgv64_pressure.yaml", "--until", "teacher", "--forceall", "--printshellcmds"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "results/tgv64_pressure/teacher/model.pt" in out
    assert '\\"hdf5_dataset\\": \\"pressure\\"' in out or '"hdf5_dataset": "pressure"' in out, out


def test_the_forced_field_runs_through_the_shrinkage_rule(tmp_path):
    """config/test_forced.yaml (the weakly correlated field, tiny): simulated, ingested, and
    distilled with a shrinkage chosen by its own validation teacher."""
    work = copy_workflow(tmp_path / "wf")
    snakemake(work, "config/test_forced.yaml", "--until", "distill")
    results = work / "results/forced16_test"
    info = json.loads((results / "hyperinr/info.json").read_text())
    validation = json.loads((results / "teacher_validation/info.json").read_text())
    choice = info["shrinkage_choice"]
    assert choice["scored"] == validation["held_out_frames"] == [2, 6]
    assert info["shrinkage"] == choice["chosen"] and 0.0 <= choice["chosen"] <= 1.0
    data = zarr.open_group(results / "dataset.zarr", mode="r")
    assert data.attrs["provenance"]["files"][0]["path"] == "resources/forced16/turbulence.h5"


def test_ablation_targets_reuse_the_teacher_and_set(tiny_clone):
    """ablation_encoders and ablation_hash on the tiny grids: one distill run per variant from
    the pipeline's own teacher and set, a row and a point each."""
    plan = planned(snakemake(tiny_clone, targets=("ablation_encoders", "ablation_hash")))
    # nothing upstream is remade: all 4 variants distil from the run's teacher and set (rule
    # distill makes the variants as it made the pipeline's HyperINR, which it does not redo)
    upstream = {"simulate", "ingest", "teacher", "teacher_validation", "distill_set_shard",
                "distill_set"}  # fmt: skip
    assert not upstream & plan.keys(), plan
    assert plan["distill"] == 4 and plan["predict"] == 4, plan
    set_hash = zarr.open_group(str(tiny_clone / RESULTS / "distill_set.zarr"), mode="r").attrs[
        "content_sha256"
    ]
    teacher_sha = _info(tiny_clone, "hyperinr")["produced_by"]["inputs"].get("teacher")
    report = tiny_clone / RESULTS / "report"
    for sweep, names in (("encoders", ["encoders-2", "encoders-5"]),
                         ("hash", ["n_levels-2", "n_levels-4"])):  # fmt: skip
        with open(report / f"ablation_{sweep}.csv") as fh:
            rows = {r["variant"]: r for r in csv.DictReader(fh)}
        for name in names:
            assert math.isfinite(float(rows[name]["unseen_psnr"])), (sweep, name)
            info = json.loads((tiny_clone / RESULTS / "ablation" / name / "info.json").read_text())
            assert info["steps"] == 100 and int(rows[name]["parameters"]) == info["parameters"]
            inputs = info["produced_by"]["inputs"]
            assert inputs["distill_set"] == set_hash and inputs.get("teacher") == teacher_sha
        assert {"reference teacher", "reference lerp"} <= set(rows)
        assert (report / f"ablation_{sweep}.png").stat().st_size > 10_000
    params = {n: int(rows[n]["parameters"]) for n in ("n_levels-2", "n_levels-4")}
    assert params["n_levels-4"] > params["n_levels-2"]  # the variant really changed the model


def test_model_ablations_train_on_the_frames_alone(tiny_clone):
    """ablation_architectures and ablation_shared_mlp on the tiny config: every model trained
    once on the training frames (no teacher or set among its inputs), the budget models sized
    near the teacher's count, a finite row each, the Fig. 8B render; a rerun does nothing."""
    proc = snakemake(tiny_clone, targets=("ablation_architectures", "ablation_shared_mlp"))
    plan = planned(proc)
    assert plan["ablation_model"] == 8 and plan["predict"] == 8, plan  # the sweep's models only
    teacher_params = _info(tiny_clone, "teacher")["parameters"]
    report = tiny_clone / RESULTS / "report"
    for sweep, names in (("architectures", ["coordnet", "neurcomp", "hashinr", "hyperinr",
                                            "hashinr_large", "hyperinr_large"]),
                         ("shared_mlp", ["shared_mlp", "independent_mlps"])):  # fmt: skip
        with open(report / f"ablation_{sweep}.csv") as fh:
            rows = {r["model"]: r for r in csv.DictReader(fh)}
        for name in names:
            info = json.loads((tiny_clone / RESULTS / "ablation" / name / "info.json").read_text())
            assert math.isfinite(float(rows[name]["unseen_psnr"])), (sweep, name)
            assert info["steps"] == 100 and int(rows[name]["parameters"]) == info["parameters"]
            assert set(info["produced_by"]["inputs"]) == {"dataset"}, name
            if name in ("coordnet", "neurcomp", "hashinr", "hyperinr"):
                assert info["budget"] == teacher_params
            if name in ("coordnet", "neurcomp", "hyperinr"):
                assert abs(info["parameters"] - teacher_params) < 0.25 * teacher_params, name
            if name == "hashinr":  # its default MLP alone outgrows the tiny teacher: least T
                assert info["arch"]["encoding"]["log2_hashmap_size"] == 4, info["arch"]
        assert {"reference teacher", "reference lerp"} <= set(rows)
        assert (report / f"ablation_{sweep}.png").stat().st_size > 10_000
    assert _info(tiny_clone, "ablation/independent_mlps")["n_inrs"] == 5
    render = report / "ablation_shared_mlp_render.png"
    assert render.stat().st_size > 10_000
    with open(report / "ablation_shared_mlp_render.csv") as fh:
        methods = {r["method"] for r in csv.DictReader(fh)}
    assert methods == {"ground truth", "shared_mlp", "independent_mlps"}
    again = snakemake(tiny_clone, "-n", targets=("ablation_architectures", "ablation_shared_mlp"))
    assert "Nothing to be done" in again.stdout + again.stderr


def test_baselines_train_and_predict_through_the_workflow(tiny_clone):
    """NeurComp and HashINR (Sec. 6.3) through rules baseline and predict: trained on the
    training frames with the one loop, every frame predicted, finite metrics."""
    targets = tuple(f"{RESULTS}/predictions/{m}.zarr" for m in ("neurcomp", "hashinr"))
    snakemake(tiny_clone, targets=targets)
    dataset = tiny_clone / RESULTS / "dataset.zarr"
    for m in ("neurcomp", "hashinr"):
        info = json.loads((tiny_clone / RESULTS / m / "info.json").read_text())
        assert info["steps"] == 200 and info["resumed_from"] == 0, info
        store = zarr.open_group(str(tiny_clone / RESULTS / f"predictions/{m}.zarr"), mode="r")
        assert store["frames"].shape == zarr.open_group(str(dataset), mode="r")["frames"].shape
        assert np.isfinite(store["frames"][...]).all()
