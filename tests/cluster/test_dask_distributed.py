"""`hyperinr evaluate` on a real dask.distributed cluster, and the Polaris start script.

The cluster is the venv's own `dask scheduler` / `dask worker` processes on localhost, met
through a scheduler file as on Polaris; the worker runs in another directory than evaluate, as
a worker on another node would. The start script
(workflow/profiles/polaris-allocation/start_dask_cluster.sh) runs with a stand-in `mpiexec`
that starts its -n copies here (the PBS double's mpiexec models -n 1 --hosts only).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clusterlib import REPO

from hyperinr.evaluate.metrics import provenance_path, read_metrics
from tests._synthetic import synthetic_case

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
DASK = str(BIN / "dask")
CLI = [sys.executable, "-m", "hyperinr.cli"]
START = REPO / "workflow" / "profiles" / "polaris-allocation" / "start_dask_cluster.sh"
METHODS = ["hyperinr", "lerp"]


def _wait_for_file(path: Path, procs: list[subprocess.Popen], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.is_file() and path.stat().st_size):
        for proc in procs:
            assert proc.poll() is None, f"{proc.args[:2]} exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (dask closes at once), then SIGKILL, to the process's whole group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _cluster_facts(scheduler_file: Path, n_workers: int) -> dict:
    """Workers (their thread counts) and the task kinds the scheduler has run, once
    `n_workers` have joined."""
    from distributed import Client

    with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
        client.wait_for_workers(n_workers, timeout=60)
        return {
            "nthreads": sorted(client.nthreads().values()),
            "prefixes": client.run_on_scheduler(
                lambda dask_scheduler: sorted(dask_scheduler.task_prefixes)
            ),
        }


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and one 2-thread worker (cwd tmp/dask); its scheduler file. Both are
    killed at the end whatever happened."""
    root = tmp_path / "dask"
    root.mkdir()
    scheduler_file = root / "scheduler.json"
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], name: str) -> None:
        with open(root / f"{name}.log", "w") as log:
            procs.append(subprocess.Popen(
                argv, cwd=root, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            ))  # fmt: skip

    try:
        start([DASK, "scheduler", "--scheduler-file", str(scheduler_file), "--port", "0",
               "--dashboard-address", ":0"], "scheduler")  # fmt: skip
        _wait_for_file(scheduler_file, procs)
        start([DASK, "worker", "--scheduler-file", str(scheduler_file), "--nthreads", "2",
               "--no-dashboard", "--local-directory", str(root / "worker"),
               "--death-timeout", "30"], "worker")  # fmt: skip
        assert _cluster_facts(scheduler_file, 1)["nthreads"] == [2]
        yield scheduler_file
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _case(root: Path) -> tuple[Path, dict[str, Path]]:
    """5 frames of 76 x 12 x 10: two blocks along z (64 + 12), so SSIM windows cross a block
    edge and the pairs' tasks spread over the workers' threads."""
    return synthetic_case(
        root, n_frames=5, shape=(76, 12, 10), noise={"hyperinr": 0.05, "lerp": 0.1}
    )


def _evaluate(case: Path, preds: dict[str, Path], out: Path, *extra: str, cwd: Path, env=None):
    pred_args = [a for m in METHODS for a in ("--pred", f"{m}={preds[m]}")]
    return subprocess.run(
        [*CLI, "evaluate", "--threads", "2", *extra, "--dataset", str(case), *pred_args,
         "--out", str(out)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _assert_same_metrics(got: Path, want: Path) -> None:
    a, b = read_metrics(got), read_metrics(want)
    key = ("frame", "t", "split", "method")
    assert [tuple(r[k] for k in key) for r in a] == [tuple(r[k] for k in key) for r in b]
    for col in ("psnr", "ssim"):
        x = np.array([r[col] for r in a])
        y = np.array([r[col] for r in b])
        assert np.isfinite(x).all(), f"{got}: {col} not finite: {x}"
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=col)


# --------------------------------------------------------------------------- evaluate


@pytest.mark.slow
@pytest.mark.parametrize(
    "paths",
    [
        "absolute",
        "relative",
    ],
)  # fmt: skip
def test_evaluate_on_a_cluster_equals_the_threaded_run(tmp_path, dask_cluster, paths):
    case, preds = _case(tmp_path / "case")
    cwd = tmp_path / "case"
    if paths == "relative":  # as the Snakemake rules pass them (relative to the workdir)
        case = case.relative_to(cwd)
        preds = {m: p.relative_to(cwd) for m, p in preds.items()}
    want, got = tmp_path / "threaded" / "metrics.csv", tmp_path / "cluster" / "metrics.csv"
    threaded = _evaluate(case, preds, want, cwd=cwd)
    assert threaded.returncode == 0, threaded.stderr

    cfg = json.dumps({"runtime": {"dask_scheduler": str(dask_cluster)}})
    res = _evaluate(case, preds, got, "--config-json", cfg, cwd=cwd)
    assert res.returncode == 0, res.stderr
    _assert_same_metrics(got, want)
    # the stores were read and the blocks' halos built on the cluster, not by a threaded
    # fallback in the client (fused task names: "physical" is evaluate's own map_blocks for
    # the ranges, "read_pair" its read of a slab's rows from both stores)
    prefixes = set(_cluster_facts(dask_cluster, 1)["prefixes"])
    assert {"original-from-zarr", "read_pair", "physical", "overlap"} <= prefixes, prefixes
    record = json.loads(provenance_path(got).read_text())
    assert record["produced_by"]["config"]["runtime"]["dask_scheduler"] == str(dask_cluster)


def test_a_missing_scheduler_file_is_one_line(tmp_path):
    case, preds = synthetic_case(tmp_path / "case", n_frames=3, shape=(9, 8, 7),
                                 noise={m: 0.1 for m in METHODS})  # fmt: skip
    missing = tmp_path / "no-cluster" / "scheduler.json"
    out = tmp_path / "report" / "metrics.csv"
    cfg = json.dumps({"runtime": {"dask_scheduler": str(missing)}})
    res = _evaluate(case, preds, out, "--config-json", cfg, cwd=tmp_path)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], res.stderr
    assert lines[0].startswith("hyperinr evaluate: error: ")
    assert not out.parent.exists()


# --------------------------------------------------------------------------- start script

# Stand-in for PALS mpiexec: the flags the script passes, -n copies of the command here; each
# call's arguments go to $FAKE_MPIEXEC_LOG. SIGTERM is passed on to the copies.
FAKE_MPIEXEC = """#!{python}
import os, signal, subprocess, sys
argv, n = sys.argv[1:], None
while argv and argv[0].startswith("-"):
    flag = argv.pop(0)
    if flag in ("-n", "--np"):
        n = int(argv.pop(0))
    elif flag in ("--ppn", "--depth", "--cpu-bind"):
        argv.pop(0)
    else:
        sys.exit(f"mpiexec: unknown option {{flag}}")
with open(os.environ["FAKE_MPIEXEC_LOG"], "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
procs = [subprocess.Popen(argv) for _ in range(n)]
signal.signal(signal.SIGTERM, lambda *_: [p.terminate() for p in procs])
sys.exit(max(abs(p.wait()) for p in procs))
"""


def _script_env(tmp_path: Path, **extra: str) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    mpiexec = bin_dir / "mpiexec"
    mpiexec.write_text(FAKE_MPIEXEC.format(python=sys.executable))
    mpiexec.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PBS_", "DASK_"))}
    env["PATH"] = os.pathsep.join([str(bin_dir), str(BIN), env.get("PATH", "")])
    env.update(
        FAKE_MPIEXEC_LOG=str(tmp_path / "mpiexec.log"), DASK_THREADS="1",
        DASK_MEMORY_LIMIT="1GB", DASK_DASHBOARD=":0", DASK_LOCAL_DIR=str(tmp_path / "scratch"),
        DASK_START_TIMEOUT="120", **extra,
    )  # fmt: skip
    return env


def _script(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(START), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_script_parses():
    res = subprocess.run(["bash", "-n", str(START)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert os.access(START, os.X_OK)


def test_start_script_outside_a_pbs_job_is_one_line(tmp_path):
    res = _script([str(tmp_path / "s.json")], _script_env(tmp_path), tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "start_dask_cluster.sh: error: $PBS_NODEFILE is unset: run inside a PBS job "
        "(qsub or qsub -I)"
    ]
    assert res.stdout == "" and not (tmp_path / "s.json").exists()
    assert not (tmp_path / "mpiexec.log").exists()


@pytest.mark.slow
def test_start_script_runs_one_worker_per_node_and_stops(tmp_path):
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("x3001c0s7b0n0\nx3001c0s7b0n0\nx3001c0s7b1n0\n")  # 2 distinct nodes
    env = _script_env(tmp_path, PBS_NODEFILE=str(nodefile), PBS_JOBID="4242.polaris-pbs-01",
                      PBS_O_WORKDIR=str(tmp_path))  # fmt: skip
    scheduler_file = tmp_path / "dask-scheduler.json"  # the default: in $PBS_O_WORKDIR
    pids_file = tmp_path / "dask-scheduler.pids"
    scheduler_file.write_text('{"address": "tcp://127.0.0.1:9"}')  # a dead run's leftover
    try:
        res = _script([], env, tmp_path)
        assert res.returncode == 0, res.stderr
        (line,) = res.stdout.splitlines()
        flag, cfg = shlex.split(line)
        assert flag == "--config-json"
        assert json.loads(cfg) == {"runtime": {"dask_scheduler": str(scheduler_file)}}
        assert "2 worker(s) x 1 threads" in res.stderr

        (launch,) = (tmp_path / "mpiexec.log").read_text().splitlines()
        assert launch.startswith("-n 2 --ppn 1 --depth 1 --cpu-bind depth dask worker ")
        assert f"--scheduler-file {scheduler_file} --nthreads 1 --memory-limit 1GB" in launch
        assert _cluster_facts(scheduler_file, 2)["nthreads"] == [1, 1]

        # what a user does with the printed flags
        case, preds = _case(tmp_path / "case")
        ref = _evaluate(case, preds, tmp_path / "threaded.csv", cwd=tmp_path)
        assert ref.returncode == 0, ref.stderr
        got = _evaluate(case, preds, tmp_path / "cluster.csv", *shlex.split(line), cwd=tmp_path)
        assert got.returncode == 0, got.stderr
        _assert_same_metrics(tmp_path / "cluster.csv", tmp_path / "threaded.csv")

        pids = [int(p) for p in pids_file.read_text().splitlines()[1].split()]
        again = _script([], env, tmp_path)  # a second cluster on the same file is refused
        assert again.returncode == 1 and "still running" in again.stderr
        stop = _script(["--stop", str(scheduler_file)], env, tmp_path)
        assert stop.returncode == 0, stop.stderr
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in pids)
        assert not scheduler_file.exists() and not pids_file.exists()
    finally:
        if pids_file.exists():
            for pid in pids_file.read_text().splitlines()[1].split():
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(int(pid), sig)
                    except ProcessLookupError:
                        break
                    time.sleep(0.5)
