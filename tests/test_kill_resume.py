"""A killed ingest or evaluate publishes nothing, and running it again completes.

Each stage runs as a real `hyperinr` process that is SIGKILLed (no handler, no cleanup runs).
A kill is only evidence when it lands while the output is being built: the tests wait for the
stage's temporary sibling (or its progress bar) and check after the kill that the temporary
is still there, i.e. the process died before it could publish. Where the temporary exists
too briefly to hit (evaluate's csv, its provenance file), a driver process slows exactly that
write down (the `_SLOW_*` preambles below) and runs the same CLI entry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hyperinr.data.store import open_dataset
from hyperinr.evaluate.metrics import provenance_path, read_metrics
from tests._synthetic import synthetic_case

CLI = [sys.executable, "-m", "hyperinr.cli"]

# Run the CLI with one write slowed down, so a kill can land while its temporary exists.
_DRIVER = "import sys\n{patch}\nfrom hyperinr.cli import main\nsys.exit(main(sys.argv[1:]))\n"
_SLOW_CSV_ROWS = """
import csv, time
class _SlowWriter(csv.DictWriter):
    def writerow(self, row):
        time.sleep(0.25)
        return super().writerow(row)
csv.DictWriter = _SlowWriter
"""
_SLOW_PROVENANCE = """
import pathlib, time
_write_text = pathlib.Path.write_text
def _slow_write_text(self, *args, **kwargs):
    if self.name.startswith(".metrics.provenance.json.tmp-"):
        time.sleep(5.0)
    return _write_text(self, *args, **kwargs)
pathlib.Path.write_text = _slow_write_text
"""


class Stage:
    """A `hyperinr` process with its output in files (a pipe could fill up and block it)."""

    def __init__(self, argv: list[str], log_dir: Path, name: str):
        self.out = log_dir / f"{name}.stdout"
        self.err = log_dir / f"{name}.stderr"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def wait_for(self, found: Callable[[], object], what: str, timeout: float = 120.0):
        """found()'s first true value; fails if the process ends (or time runs out) first,
        since then the kill could not land where the test needs it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = found()
            if value:
                return value
            if self.proc.poll() is not None:
                pytest.fail(
                    f"exited ({self.proc.returncode}) before {what}; stderr:\n{self.stderr()}"
                )
            time.sleep(0.005)
        pytest.fail(f"no {what} within {timeout} s; stderr:\n{self.stderr()}")

    def kill(self) -> None:
        """SIGKILL, asserting the process was still running (it had not finished)."""
        assert self.proc.poll() is None, f"finished before the kill:\n{self.stderr()}"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def stages(tmp_path):
    """start(argv, name) -> Stage; every process still running at the end is killed."""
    started: list[Stage] = []
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(argv: list[str], name: str) -> Stage:
        stage = Stage(argv, logs, name)
        started.append(stage)
        return stage

    yield start
    for stage in started:
        stage.stop()


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return res


def _others(directory: Path, *final: str) -> list[Path]:
    """Entries of `directory` other than the final outputs: temporaries of the stage."""
    return sorted(p for p in directory.iterdir() if p.name not in final)


# --------------------------------------------------------------------------- ingest


@pytest.mark.slow
def test_killed_ingest_leaves_no_store_and_the_rerun_completes(tmp_path, stages):
    n = 24
    rng = np.random.default_rng(0)
    frames = (rng.random((n, 64, 64, 64), dtype=np.float32) * 4.0 - 1.0).astype(np.float32)
    src = tmp_path / "src"
    src.mkdir()
    for i, frame in enumerate(frames):
        np.save(src / f"f{i:02d}.npy", frame)
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    out = out_dir / "dataset.zarr"
    # 8^3 chunks (sharded): ~4 s of writing after the temporary appears, on 2 shared cores
    cfg = {
        "dataset": {
            "format": "npy",
            "files": [str(src / "f*.npy")],
            "params": {"names": ["t"], "values": [[0.5 * i] for i in range(n)]},
        },
        "store": {"chunk": 8},
    }
    argv = [*CLI, "ingest", "--config-json", json.dumps(cfg), "--out", str(out)]

    stage = stages(argv, "ingest-killed")
    (tmp,) = stage.wait_for(lambda: _others(out_dir, out.name), "the temporary store")
    assert tmp.name.startswith(".dataset.zarr.tmp-")
    stage.kill()
    assert not out.exists()
    assert tmp.is_dir(), "killed after the store was published: the kill proves nothing"

    _run(argv)
    ds = open_dataset(out)
    assert ds.n_frames == n and ds.frames.shape == (n, 64, 64, 64)
    np.testing.assert_array_equal(ds.params[:, 0], 0.5 * np.arange(n))
    for i in (0, 5, n - 1):  # a training frame, an unseen one, the last one written
        np.testing.assert_allclose(ds.to_physical(ds.frames[i]), frames[i], atol=1e-5)
    assert _others(out_dir, out.name) == [], "the rerun left the killed run's temporary"


# --------------------------------------------------------------------------- evaluate


def _evaluate_argv(case: Path, preds: dict[str, Path], out: Path, driver: str | None = None):
    head = [sys.executable, "-c", _DRIVER.format(patch=driver)] if driver else CLI
    pred_args = [a for m, p in preds.items() for a in ("--pred", f"{m}={p}")]
    return [*head, "evaluate", "--threads", "1", "--dataset", str(case), *pred_args,
            "--out", str(out)]  # fmt: skip


def _check_metrics(out: Path, n_frames: int, methods: list[str]) -> None:
    rows = read_metrics(out)
    assert [(r["frame"], r["method"]) for r in rows] == [
        (i, m) for i in range(n_frames) for m in methods
    ]
    assert all(np.isfinite(r["psnr"]) and 0 < r["ssim"] <= 1 for r in rows)
    record = json.loads(provenance_path(out).read_text())
    assert record["stage"] == "evaluate"
    assert sorted(record["produced_by"]["inputs"]) == sorted(
        ["dataset", *(f"prediction_{m}" for m in methods)]
    )


@pytest.mark.slow
def test_evaluate_killed_while_computing_publishes_nothing_and_the_rerun_completes(
    tmp_path, stages
):
    n = 16
    case, preds = synthetic_case(
        tmp_path / "case", n_frames=n, shape=(64, 64, 64), noise={"hyperinr": 0.05, "lerp": 0.1}
    )
    out_dir = tmp_path / "report"
    out = out_dir / "metrics.csv"
    argv = _evaluate_argv(case, preds, out)

    stage = stages(argv, "evaluate-killed")
    # the bar appears once the per-frame ranges are known, as the frame x method pairs start
    stage.wait_for(lambda: "metrics:" in stage.stderr(), "the metrics progress bar")
    time.sleep(0.5)  # well inside the pairs (several seconds on one thread)
    stage.kill()
    assert not out.exists() and not provenance_path(out).exists()
    assert not out_dir.exists() or _others(out_dir) == []  # nothing written before the end

    _run(argv)
    _check_metrics(out, n, ["hyperinr", "lerp"])
    assert _others(out_dir, out.name, provenance_path(out).name) == []


@pytest.mark.slow
def test_evaluate_killed_while_writing_its_csv_publishes_nothing(tmp_path, stages):
    n = 6
    case, preds = synthetic_case(
        tmp_path / "case", n_frames=n, shape=(12, 10, 8), noise={"hyperinr": 0.05, "lerp": 0.1}
    )
    out_dir = tmp_path / "report"
    out = out_dir / "metrics.csv"

    # 13 csv rows at 0.25 s: the temporary csv exists for ~3 s
    stage = stages(_evaluate_argv(case, preds, out, _SLOW_CSV_ROWS), "evaluate-killed")
    (tmp,) = stage.wait_for(lambda: _others(out_dir) if out_dir.exists() else [], "the csv")
    assert tmp.name.startswith(".metrics.csv.tmp-")
    stage.kill()
    assert tmp.is_file(), "killed after the csv was published: the kill proves nothing"
    assert not out.exists() and not provenance_path(out).exists()

    _run(_evaluate_argv(case, preds, out))
    _check_metrics(out, n, ["hyperinr", "lerp"])


def test_evaluate_removes_a_killed_runs_temporaries(tmp_path):
    case, preds = synthetic_case(tmp_path / "case", n_frames=3, shape=(9, 8, 7))
    out_dir = tmp_path / "report"
    out_dir.mkdir()
    out = out_dir / "metrics.csv"
    # what the kill in the test above leaves (tmp.is_file() there)
    (out_dir / ".metrics.csv.tmp-k1ll3d").write_text("frame,t\n0,")
    (out_dir / ".metrics.provenance.json.tmp-k1ll3d").write_text("")
    _run(_evaluate_argv(case, preds, out))
    assert _others(out_dir, out.name, provenance_path(out).name) == []


@pytest.mark.slow
def test_evaluate_killed_between_csv_and_provenance_leaves_no_mismatched_pair(tmp_path, stages):
    n = 4
    case, preds = synthetic_case(
        tmp_path / "case", n_frames=n, shape=(12, 10, 8), noise={"hyperinr": 0.05, "lerp": 0.1}
    )
    out_dir = tmp_path / "report"
    out = out_dir / "metrics.csv"
    _run(_evaluate_argv(case, {"hyperinr": preds["hyperinr"]}, out))  # a finished earlier run

    stage = stages(_evaluate_argv(case, preds, out, _SLOW_PROVENANCE), "evaluate-killed")
    prov_tmp = ".metrics.provenance.json.tmp-"
    (tmp,) = stage.wait_for(
        lambda: [p for p in _others(out_dir) if p.name.startswith(prov_tmp)], "the provenance"
    )
    stage.kill()
    assert tmp.exists(), "killed after the provenance was published: the kill proves nothing"
    # The earlier run's pair, the new one, or a table with no record (the old record is
    # removed before the new table is published): never a table beside another's record.
    methods = sorted({r["method"] for r in read_metrics(out)})
    assert methods == ["hyperinr", "lerp"]  # killed after the new table was published
    if provenance_path(out).exists():
        inputs = json.loads(provenance_path(out).read_text())["produced_by"]["inputs"]
        assert sorted(k.removeprefix("prediction_") for k in inputs if k != "dataset") == methods
    _run(_evaluate_argv(case, preds, out))  # the rerun publishes both
    inputs = json.loads(provenance_path(out).read_text())["produced_by"]["inputs"]
    assert sorted(k.removeprefix("prediction_") for k in inputs if k != "dataset") == methods
