"""Every rule's job shape under the `slurm` profile, from dry runs of the real workflow.

A rule that asks for a GPU but has no `set-resources` entry in workflow/profiles/slurm would be
sent to the CPU partition with a GPU request (sbatch refuses it, or it waits forever). The dry
runs below plan every rule of the workflow (the report, the optional targets, the four sweeps,
the baselines, the NVS and DGS tasks), and each job's resources are read from Snakemake's own
plan, so a new rule that none of them reaches fails the coverage check instead of going unseen.
No scheduler is needed: a dry run submits nothing.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from clusterlib import PROFILES, REPO, base_env

SLURM = PROFILES / "slurm"
TINY = "results/tgv16_test"
pytestmark = pytest.mark.slow  # the dry runs take ~10 s on 2 cores
PLANS = {
    "config/test.yaml": [
        "all", "target_modes", "explore_snapshots", "ablation_encoders", "ablation_hash",
        "ablation_architectures", "ablation_shared_mlp",
        f"{TINY}/predictions/neurcomp.zarr", f"{TINY}/predictions/hashinr.zarr",
    ],
    "config/test_nvs.yaml": ["all"],  # scene, view_gain
    "config/test_dgs.yaml": ["all"],  # scene, shadows
}  # fmt: skip
# rules that compute on a GPU (rules/common.smk DEFAULT_RESOURCES); predict too, but not for lerp
GPU_RULES = {
    "scene", "teacher", "teacher_validation", "baseline", "distill_set_shard", "distill",
    "predict", "shadows", "speed", "renders", "explore_snapshots", "ablation_model",
    "ablation_shared_mlp_render",
}  # fmt: skip
LOCAL_RULES = {"distill_set", "view_gain", "report"}  # Snakefile: localrules


def planned_jobs(configfile: str, targets: list[str]) -> list[tuple[str, dict, dict]]:
    """(rule, wildcards, resources) of every job `snakemake -n --profile slurm` plans."""
    env = base_env(HYPERINR_SLURM_GPU_PARTITION="gpu", HYPERINR_SLURM_PARTITION="cpu")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "--profile", str(SLURM),
         *targets, "--configfile", configfile],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", out)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        fields = {}
        for key in ("wildcards", "resources"):
            m = re.search(rf"^    {key}: (.*)$", block, re.M)
            fields[key] = dict(kv.split("=", 1) for kv in m.group(1).split(", ")) if m else {}
        jobs.append((rule, fields["wildcards"], fields["resources"]))
    return jobs


@pytest.fixture(scope="module")
def jobs():
    pytest.importorskip(
        "snakemake_executor_plugin_slurm", reason="pip install snakemake-executor-plugin-slurm"
    )
    return [job for cfg, targets in PLANS.items() for job in planned_jobs(cfg, targets)]


def test_the_dry_runs_reach_every_rule(jobs):
    listed = subprocess.run(
        [sys.executable, "-m", "snakemake", "--list-rules"],
        cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr[-2000:]
    rules = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()} - {"all"}
    assert rules and rules <= {rule for rule, _, _ in jobs}, rules - {r for r, _, _ in jobs}


def test_every_gpu_job_goes_to_the_gpu_partition_and_no_cpu_job_does(jobs):
    """GPU jobs: slurm_partition gpu, --gpus=a100:1, 8 CPUs (the profile's gpu_stage); CPU jobs:
    the CPU partition and no GPU. Local rules run in Snakemake (never submitted), CPU-only."""
    seen = set()
    for rule, wildcards, res in jobs:
        if rule == "all":
            continue
        gpu = int(res["gpu"])
        lerp = rule == "predict" and wildcards.get("method") == "lerp"
        if rule in GPU_RULES and not lerp:
            assert gpu == 1 and res.get("slurm_partition") == "gpu", (rule, wildcards, res)
            assert res.get("gpu_model") == "a100" and res.get("cpus_per_task") == "8", (rule, res)
        else:
            assert gpu == 0 and res.get("slurm_partition") == "cpu", (rule, wildcards, res)
            assert not res.get("gpu_model"), (rule, res)
        seen.add(rule)
    assert GPU_RULES | LOCAL_RULES <= seen, (GPU_RULES | LOCAL_RULES) - seen


def test_sweep_models_share_the_pipelines_distill_and_predict_rules(jobs):
    """One distill rule makes the pipeline's HyperINR and the sweeps' variants, one predict rule
    every model's frames (the sweeps' under ablation/): same resources, same partition."""
    distill = {w["model"] for rule, w, _ in jobs if rule == "distill"}
    assert {"hyperinr", "ablation/encoders-2", "ablation/n_levels-4"} <= distill, distill
    predicted = {(w["prefix"], w["method"]) for rule, w, _ in jobs if rule == "predict"}
    expected = {("", "teacher"), ("", "lerp"), ("ablation/", "encoders-5"),
                ("ablation/", "hyperinr_large"), ("ablation/", "independent_mlps")}  # fmt: skip
    assert expected <= predicted, predicted
