"""Fixtures for the cluster-profile tests (all marked ``cluster``).

* ``slurm_cluster``: a real single-node Slurm (slurmctld + slurmd + munged) on
  127.0.0.1, everything under a temp dir, stopped by PID at the end.
* ``fake_pbs``: environment with the PBS Pro test double (fake_pbs/) first on
  PATH and a private state dir; leftover jobs are killed at the end.
* ``run_snakemake``: run Snakemake in its own process group with a hard
  timeout (no test may hang; pytest-timeout is not used).
Helpers live in clusterlib.py beside this file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clusterlib import (  # noqa: E402
    FAKE_PBS_BIN,
    HERE,
    SlurmCluster,
    _kill_group,
    _kill_pid_group,
    base_env,
    fake_pbs_jobs,
    slurm_missing_reason,
    start_snakemake,
    wait_snakemake,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cluster: cluster-profile tests (PBS Pro double, local Slurm); "
        "deselect with -m 'not cluster'",
    )


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture
def run_snakemake():
    """run_snakemake(args, cwd, env, timeout) -> SnakemakeRun (log in cwd/snakemake.out)."""
    procs: list[subprocess.Popen] = []

    def run(args, cwd: Path, env: dict, timeout: float = 150, log_name: str = "snakemake.out"):
        log = Path(cwd) / log_name
        t0 = time.monotonic()
        proc = start_snakemake(list(args), Path(cwd), env, log)
        procs.append(proc)
        return wait_snakemake(proc, log, timeout, t0)

    yield run
    for proc in procs:
        if proc.poll() is None:
            _kill_group(proc)


@pytest.fixture
def fake_pbs(tmp_path):
    """Environment with the PBS Pro double on PATH and a private state dir."""
    state = tmp_path / "fake_pbs_state"
    state.mkdir()
    home = tmp_path / "home"  # PBS starts jobs in $HOME
    home.mkdir()
    env = base_env(FAKE_PBS_STATE=str(state), HOME=str(home))
    env["PATH"] = os.pathsep.join([str(FAKE_PBS_BIN), env["PATH"]])
    yield env
    # Kill whatever a failed or timed-out test left running (by recorded PID).
    for job in fake_pbs_jobs(state):
        if job.get("job_state") != "F":
            _kill_pid_group(job.get("pid"))
            _kill_pid_group(job.get("runner_pid"))


@pytest.fixture(scope="session")
def slurm_cluster():
    reason = slurm_missing_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="hyperinr-slurm-"))
    os.chmod(root, 0o755)  # the munge user must reach its socket
    cluster = SlurmCluster(root)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        if not os.environ.get("HYPERINR_KEEP_SLURM_DIR"):
            shutil.rmtree(root, ignore_errors=True)
