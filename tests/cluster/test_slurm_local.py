"""Workflows through a real Slurm (slurmctld + slurmd + munge) on 127.0.0.1.

The ``slurm_cluster`` fixture (conftest.py) starts the daemons under a temp dir
and stops them by PID; without slurmctld installed these tests are skipped
(tests/cluster/install_slurm.sh installs it).  Status comes from squeue: the
test cluster has no slurmdbd, and MinJobAge=300 keeps finished jobs visible.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from clusterlib import (
    PROFILES,
    REPO,
    SHORT_TRAINING,
    TOY_SNAKEFILE,
    _kill_group,
    start_snakemake,
    wait_snakemake,
)

SLURM_LOCAL = PROFILES / "slurm-local"
SLURM_A100 = PROFILES / "slurm"


def slurm_job_ids(output: str) -> dict[str, list[str]]:
    """rule -> SLURM job ids, from the plugin's 'submitted with SLURM jobid' lines."""
    ids: dict[str, list[str]] = {}
    for m in re.finditer(r"submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+)/", output):
        ids.setdefault(m.group(2), []).append(m.group(1))
    return ids


def scontrol_job(cluster, jobid: str) -> str:
    return cluster.run(["scontrol", "show", "job", jobid]).stdout


class BackgroundRun:
    """A Snakemake run started now and awaited by the test that checks it."""

    def __init__(self, args, cwd: Path, env: dict, timeout: float):
        self.cwd, self.timeout = cwd, timeout
        self.log = cwd / "snakemake.out"
        self.t0 = time.monotonic()
        self.proc = start_snakemake(args, cwd, env, self.log)
        self._result = None

    def wait(self):
        if self._result is None:
            self._result = wait_snakemake(self.proc, self.log, self.timeout, self.t0)
        return self._result


IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "results",
    "logs",
    "resources",
    ".snakemake",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "build",
    "report.html",
)


@pytest.fixture(scope="module")
def slurm_runs(slurm_cluster, tmp_path_factory):
    """Start both toy runs at once on the one-node cluster: they spend most of
    their time waiting on squeue, so this saves half a minute."""
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="pip install snakemake-executor-plugin-slurm"
    )
    runs: dict[str, BackgroundRun] = {}

    def workdir(name):
        return tmp_path_factory.mktemp(name)

    runs["toy"] = BackgroundRun(
        ["-s", str(TOY_SNAKEFILE), "--profile", str(SLURM_LOCAL), "--config", "names=a,b"],
        workdir("toy"),
        slurm_cluster.env,
        timeout=240,
    )
    a100_env = {
        **slurm_cluster.env,
        "HYPERINR_SLURM_GPU_PARTITION": "gpu",
        "HYPERINR_SLURM_PARTITION": "debug",
    }
    runs["a100"] = BackgroundRun(
        [
            "-s",
            str(TOY_SNAKEFILE),
            "--profile",
            str(SLURM_A100),
            "results/teacher_a.txt",
            "--slurm-status-command",
            "squeue",
            "--slurm-init-seconds-before-status-checks",
            "12",
            "--latency-wait",
            "5",
        ],
        workdir("a100"),
        a100_env,
        timeout=240,
    )
    yield runs
    for run in runs.values():
        if isinstance(run, BackgroundRun) and run.proc.poll() is None:
            _kill_group(run.proc)


def start_real_workflow(parent: Path, env: dict) -> BackgroundRun | str:
    """The hyperinr workflow (config/test.yaml) through slurm-local, or why not."""
    if not (REPO / "Snakefile").exists() or not (REPO / "config" / "test.yaml").exists():
        return "real workflow not runnable yet: no Snakefile or config/test.yaml"
    work = parent / "repo"
    shutil.copytree(REPO, work, ignore=IGNORE, symlinks=True)
    dry = BackgroundRun(["-n", "--configfile", "config/test.yaml"], work, env, timeout=120)
    res = dry.wait()
    if res.returncode != 0:
        return (
            "real workflow not runnable yet: `snakemake -n --configfile config/test.yaml` "
            f"fails:\n{res.tail(15)}"
        )
    os.replace(work / "snakemake.out", work / "dryrun.out")
    (work / "short_training.yaml").write_text(SHORT_TRAINING)
    configs = ["config/test.yaml", "short_training.yaml"]
    return BackgroundRun(
        ["--configfile", *configs, "--profile", str(SLURM_LOCAL), "--jobs", "4"],
        work,
        env,
        timeout=480,
    )


@pytest.mark.slow
def test_toy_workflow_on_local_slurm(slurm_cluster, slurm_runs):
    run = slurm_runs["toy"]
    res = run.wait()
    assert res.returncode == 0, res.tail()
    for f in ("sim.txt", "teacher_a.txt", "teacher_b.txt", "eval_a.txt", "eval_b.txt"):
        assert (run.cwd / "results" / f).exists(), f
    ids = slurm_job_ids(res.output)
    assert {k: len(v) for k, v in ids.items()} == {"simulate": 1, "teacher": 2, "evaluate": 2}
    for jobids in ids.values():
        for jobid in jobids:
            info = scontrol_job(slurm_cluster, jobid)
            assert "JobState=COMPLETED" in info and "Partition=debug" in info, info
            assert "gres" not in info  # slurm-local forces gpu=0


@pytest.mark.slow
def test_a100_profile_requests_gpus_on_local_slurm(slurm_cluster, slurm_runs):
    """The real `slurm` profile against the same cluster, whose node advertises
    two (fake) a100 GRES in partition `gpu`: teacher must get --gpus=a100:1."""
    res = slurm_runs["a100"].wait()
    assert res.returncode == 0, res.tail()
    ids = slurm_job_ids(res.output)
    teacher = scontrol_job(slurm_cluster, ids["teacher"][0])
    assert "Partition=gpu" in teacher and re.search(r"gpu:a100[:=]1", teacher), teacher
    assert "NumCPUs=8" in teacher and "mem=1000M" in teacher, teacher  # mem: the rule
    simulate = scontrol_job(slurm_cluster, ids["simulate"][0])
    assert "Partition=debug" in simulate and "gres" not in simulate, simulate


def squeue_running(cluster, rule: str, workdir: Path) -> list[str]:
    """Ids of RUNNING Slurm jobs of `rule` submitted from `workdir` (the plugin puts
    `rule_<rule>[_wildcards_...]` in the job comment; the cluster is shared by tests)."""
    res = cluster.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k|%Z"], check=False)
    ids = []
    for line in res.stdout.splitlines():
        jobid, comment, cwd = (line.split("|") + ["", ""])[:3]
        same_run = cwd and Path(cwd).resolve() == workdir.resolve()
        if same_run and re.fullmatch(rf"rule_{rule}(_wildcards_.*)?", comment):
            ids.append(jobid.strip())
    return ids


def wait_until_sleeping(cluster, run: BackgroundRun, rule: str, log: Path, timeout=90) -> str:
    """The Slurm id of `rule`'s job once squeue shows it RUNNING and its shell
    command has started (`log` says 'start'), i.e. truly mid-run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.proc.poll() is not None:
            pytest.fail(f"snakemake ended before {rule} ran:\n{run.wait().tail()}")
        ids = squeue_running(cluster, rule, run.cwd)
        if ids and log.exists() and "start" in log.read_text(errors="replace"):
            assert len(ids) == 1, ids
            return ids[0]
        time.sleep(0.5)
    tail = "\n".join(run.log.read_text(errors="replace").splitlines()[-40:])
    pytest.fail(f"no running {rule} job within {timeout} s; snakemake log tail:\n{tail}")


@pytest.mark.slow
def test_scancel_mid_run_fails_the_job_and_the_retry_reruns_it(slurm_cluster, tmp_path):
    """The toy's teacher sleeps 120 s on attempt 1 (0 s on later attempts); it is
    scancel'ed while sleeping: the plugin must see CANCELLED, report the job
    failed, and `--retries 1` must resubmit it as a new Slurm job that completes."""
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="pip install snakemake-executor-plugin-slurm"
    )
    work = tmp_path / "work"
    work.mkdir()
    run = BackgroundRun(
        [
            "-s",
            str(TOY_SNAKEFILE),
            "--profile",
            str(SLURM_LOCAL),
            "--retries",
            "1",
            "--config",
            "names=a",
            "sleep=120",
        ],
        work,
        slurm_cluster.env,
        timeout=170,
    )
    try:
        jobid = wait_until_sleeping(slurm_cluster, run, "teacher", work / "logs" / "teacher_a.log")
        slurm_cluster.run(["scancel", jobid], timeout=10)
        t_cancel = time.monotonic() - run.t0
        res = run.wait()
    finally:
        if run.proc.poll() is None:
            _kill_group(run.proc)
    print(f"scancel of job {jobid} at {t_cancel:.0f} s; run finished after {res.elapsed:.0f} s")
    assert res.returncode == 0, res.tail(80)
    out = res.output
    assert f"SLURM-job '{jobid}' failed, SLURM status is: 'CANCELLED'" in out, res.tail(80)
    assert "Trying to restart job" in out
    ids = slurm_job_ids(out)
    assert ids["teacher"][0] == jobid and len(ids["teacher"]) == 2, ids
    assert "JobState=CANCELLED" in scontrol_job(slurm_cluster, jobid)
    assert "JobState=COMPLETED" in scontrol_job(slurm_cluster, ids["teacher"][1])
    assert {k: len(v) for k, v in ids.items()} == {"simulate": 1, "teacher": 2, "evaluate": 1}
    # Attempt 2 is a fresh job (sleep 0) whose output the downstream job consumed.
    assert "attempt 0 start" in (work / "logs" / "teacher_a.log").read_text()
    assert (work / "results" / "eval_a.txt").read_text() == "teacher a\n"
    assert res.elapsed < 170


@pytest.mark.slow
def test_real_tiny_workflow_on_local_slurm(slurm_cluster, tmp_path, slurm_runs):
    """The hyperinr workflow itself (config/test.yaml) through slurm-local; runs
    after the toy runs (sharing two cores with them would only slow all down)."""
    for run in slurm_runs.values():
        run.wait()
    run = start_real_workflow(tmp_path, slurm_cluster.env)
    if isinstance(run, str):
        pytest.skip(run)
    try:
        res = run.wait()
    finally:
        if run.proc.poll() is None:
            _kill_group(run.proc)
    assert res.returncode == 0, res.tail(80)
    ids = slurm_job_ids(res.output)
    for rule in ("simulate", "teacher", "distill", "predict", "evaluate", "speed", "renders"):
        assert rule in ids, f"{rule} did not go through Slurm: {sorted(ids)}"
    assert not {"report", "distill_set"} & set(ids), sorted(ids)  # localrules
    assert (run.cwd / "results/tgv16_test/report/summary.md").exists()
    for jobid in ids["speed"] + ids["renders"]:  # GPU rules, forced to CPU by slurm-local
        info = scontrol_job(slurm_cluster, jobid)
        assert "Partition=debug" in info and "gres" not in info, info
