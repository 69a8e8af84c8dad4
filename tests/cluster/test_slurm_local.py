"""Workflows through a real Slurm (slurmctld + slurmd + munge) on 127.0.0.1.

The ``slurm_cluster`` fixture (conftest.py) starts the daemons under a temp dir
and stops them by PID; without slurmctld installed these tests are skipped
(tests/cluster/install_slurm.sh installs it).  Status comes from squeue: the
test cluster has no slurmdbd, and MinJobAge=300 keeps finished jobs visible.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from clusterlib import PROFILES, REPO, TOY_SNAKEFILE

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


def test_toy_workflow_on_local_slurm(slurm_cluster, tmp_path, run_snakemake):
    work = tmp_path / "work"
    work.mkdir()
    res = run_snakemake(
        ["-s", str(TOY_SNAKEFILE), "--profile", str(SLURM_LOCAL), "--config", "names=a,b"],
        work, slurm_cluster.env, timeout=180,
    )
    assert res.returncode == 0, res.tail()
    for f in ("sim.txt", "teacher_a.txt", "teacher_b.txt", "eval_a.txt", "eval_b.txt"):
        assert (work / "results" / f).exists(), f
    ids = slurm_job_ids(res.output)
    assert {k: len(v) for k, v in ids.items()} == {"simulate": 1, "teacher": 2, "evaluate": 2}
    for rule, jobids in ids.items():
        for jobid in jobids:
            info = scontrol_job(slurm_cluster, jobid)
            assert "JobState=COMPLETED" in info and "Partition=debug" in info, info
            assert "gres" not in info  # slurm-local forces gpu=0


def test_a100_profile_requests_gpus_on_local_slurm(slurm_cluster, tmp_path, run_snakemake):
    """The real `slurm` profile against the same cluster, whose node advertises
    two (fake) a100 GRES in partition `gpu`: teacher must get --gpus=a100:1."""
    work = tmp_path / "work"
    work.mkdir()
    env = {**slurm_cluster.env, "HYPERINR_SLURM_GPU_PARTITION": "gpu",
           "HYPERINR_SLURM_PARTITION": "debug"}
    res = run_snakemake(
        ["-s", str(TOY_SNAKEFILE), "--profile", str(SLURM_A100), "results/teacher_a.txt",
         "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
         "--seconds-between-status-checks", "2", "--latency-wait", "5"],
        work, env, timeout=150,
    )
    assert res.returncode == 0, res.tail()
    ids = slurm_job_ids(res.output)
    teacher = scontrol_job(slurm_cluster, ids["teacher"][0])
    assert "Partition=gpu" in teacher and re.search(r"gpu:a100[:=]1", teacher), teacher
    assert "NumCPUs=8" in teacher and "mem=32000M" in teacher, teacher
    simulate = scontrol_job(slurm_cluster, ids["simulate"][0])
    assert "Partition=debug" in simulate and "gres" not in simulate, simulate


IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "results", "logs", "resources", ".snakemake", "__pycache__",
    "*.egg-info", ".pytest_cache", ".ruff_cache", ".hypothesis", "build", "report.html",
)


def test_real_tiny_workflow_on_local_slurm(slurm_cluster, tmp_path, run_snakemake):
    """The hyperinr workflow itself (config/test.yaml) through slurm-local."""
    if not (REPO / "Snakefile").exists() or not (REPO / "config" / "test.yaml").exists():
        pytest.skip("real workflow not runnable yet: no Snakefile or config/test.yaml")
    work = tmp_path / "repo"
    shutil.copytree(REPO, work, ignore=IGNORE, symlinks=True)
    dry = run_snakemake(["-n", "--configfile", "config/test.yaml"], work, slurm_cluster.env,
                        timeout=120, log_name="dryrun.out")
    if dry.returncode != 0:
        pytest.skip("real workflow not runnable yet: `snakemake -n --configfile "
                    f"config/test.yaml` fails:\n{dry.tail(15)}")
    res = run_snakemake(
        ["--configfile", "config/test.yaml", "--profile", str(SLURM_LOCAL), "--jobs", "4"],
        work, slurm_cluster.env, timeout=420,
    )
    assert res.returncode == 0, res.tail(80)
    ids = slurm_job_ids(res.output)
    for rule in ("simulate", "teacher", "distill", "evaluate", "report"):
        assert rule in ids, f"{rule} did not go through Slurm: {sorted(ids)}"
    assert list(Path(work, "results").rglob("*"))
