"""Whole Polaris nodes (issue 12): queues, GPU slots, packed group jobs, preemption, and the
polaris-allocation profile, against the PBS double in fake_pbs/ (which charges whole nodes and
measures which GPU slots are held)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clusterlib import (
    FAKE_PBS_BIN,
    POLARIS,
    PROFILES,
    REPO,
    SHORT_TRAINING,
    TOY_SNAKEFILE,
    fake_pbs_jobs,
    kill_local_jobs,
    start_snakemake,
    wait_snakemake,
)

from hyperinr.cluster import polaris

ALLOCATION = PROFILES / "polaris-allocation"
ENV = {"HYPERINR_PBS_ACCOUNT": "MyProject"}
FAST = ["--seconds-between-status-checks", "1", "--latency-wait", "3"]
REAL_WORKFLOW = ("Snakefile", "rules", "workflow", "config", "envs")
# 17 parameters in shards of 5: four distill-set shards, one packed PBS job
# 4 shards; shorter training than config/test.yaml: these tests check orchestration, not quality
FOUR_SHARDS = "distill_set:\n  shard_size: 5\n" + SHORT_TRAINING


@pytest.fixture
def cluster_generic():
    pytest.importorskip("snakemake_executor_plugin_cluster_generic")


# ------------------------------------------------------------------ queues ---
@pytest.mark.parametrize(
    "nodes, minutes, queue, rerun",
    [
        (1, 30, "debug", False),
        (2, 60, "debug", False),
        (1, 2, "debug", False),  # padded to the 5-minute minimum
        (4, 60, "debug-scaling", False),
        (1, 61, "preemptable", True),
        (10, 72 * 60, "preemptable", True),
        (12, 120, "prod", False),
    ],
)
def test_queue_follows_nodes_and_runtime(nodes, minutes, queue, rerun):
    where = polaris.choose(nodes, minutes)
    assert (where.queue, where.rerunnable) == (queue, rerun)
    assert where.minutes == max(5, minutes)


def submit(script_props: dict, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    script = cwd / "snakejob.x.sh"
    script.write_text(f"#!/bin/sh\n# properties = {json.dumps(script_props)}\necho ran\n")
    return subprocess.run(
        [sys.executable, str(POLARIS / "pbs_submit.py"), str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "resources, extra_env, words",
    [
        ({"gpu": 1, "runtime": 73 * 60}, {}, "no Polaris queue accepts 1 node(s) x 73:00:00"),
        ({"gpu": 8, "runtime": 30}, {}, "8 GPU(s) on 1 node(s) is 8 per node"),
        ({"gpu": 1, "runtime": 30}, {"HYPERINR_PBS_QUEUE": "prod"}, "queue prod does not accept"),
        ({"gpu": 1, "runtime": 120}, {"HYPERINR_PBS_QUEUE": "debug"}, "queue debug does not"),
        ({"gpu": 4, "runtime": 7 * 60, "nodes": 30}, {}, "accepts 30 node(s) x 07:00:00"),
    ],
)
def test_submit_refuses_what_no_queue_accepts(tmp_path, fake_pbs, resources, extra_env, words):
    props = {"type": "single", "rule": "teacher", "threads": 8, "jobid": 1, "resources": resources}
    res = submit(props, {**fake_pbs, **ENV, **extra_env}, tmp_path)
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "nothing was submitted" in lines[0], lines
    assert fake_pbs_jobs(Path(fake_pbs["FAKE_PBS_STATE"])) == []  # qsub never ran


# ------------------------------------------------- pre-flight at parse time ---
DEFAULTS = {"teacher": {"gpu": 1, "runtime": 240}, "evaluate": {"gpu": 0, "runtime": 60}}
NODE = {"HYPERINR_NODE_GPUS": "4"}


class Res:  # what Snakemake's --set-resources gives the Snakefile: Resource objects with .value
    def __init__(self, value):
        self.value = value


def config(**resources) -> dict:
    return {"runtime": {"gpus_per_job": 1}, "resources": resources}


@pytest.mark.parametrize(
    "cfg, overrides, env, words",
    [
        (config(teacher={"runtime": 73 * 60}), {}, NODE, "rule teacher (gpu=4, runtime=4380 min"),
        (config(), {"evaluate": {"runtime": Res(80 * 60)}}, NODE, "rule evaluate (gpu=0"),
        (config(), {"teacher": {"nodes": Res(30), "runtime": Res(7 * 60)}}, NODE, "30 node(s)"),
        (config(teacher={"gpu": 8}), {}, NODE, "8 GPU(s) on 1 node(s) is 8 per node"),
        (config(), {}, {**NODE, "HYPERINR_PBS_QUEUE": "debug"}, "queue debug does not accept"),
    ],
)
def test_preflight_names_the_rule_no_queue_accepts(cfg, overrides, env, words):
    with pytest.raises(polaris.PreflightError) as err:
        polaris.preflight(cfg, DEFAULTS, overrides, env)
    line = str(err.value)
    assert "\n" not in line and words in line and line.endswith("nothing was submitted"), line


def test_preflight_accepts_the_shipped_configs_and_is_off_without_the_profile():
    polaris.preflight(config(), DEFAULTS, {"report": {"pbs_local": Res(1)}}, NODE)
    polaris.preflight(config(teacher={"runtime": 73 * 60}), DEFAULTS, {}, {})  # not polaris
    req = polaris.workflow_requests(config(distill={"gpu": 1}), DEFAULTS, {}, NODE)
    assert (req["teacher"]["gpu"], req["distill"]["gpu"], req["evaluate"]["gpu"]) == (4, 1, 0)
    assert polaris.place(4, 240)[0].queue == "preemptable"


def dry_run(work: Path, fake_pbs, run_snakemake, *extra: str, files: dict | None = None):
    """`snakemake -n --profile polaris` of config/test.yaml in a copy of the workflow."""
    copy_workflow(work)
    for name, text in (files or {}).items():
        (work / name).write_text(text)
    args = ["-n", "--profile", str(POLARIS), "--configfile", "config/test.yaml", *extra]
    return run_snakemake(args, work, {**fake_pbs, **ENV}, timeout=120)


@pytest.mark.slow
def test_impossible_runtime_fails_the_dry_run_in_one_line(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    """resources.teacher.runtime beyond every queue: `snakemake -n --profile polaris` stops at
    parse time with one error line naming the rule; no job is planned or submitted."""
    bad = {"bad.yaml": "resources:\n  teacher: {runtime: 4400}\n"}
    res = dry_run(tmp_path / "wf", fake_pbs, run_snakemake, "bad.yaml", files=bad)
    assert res.returncode == 1, res.tail()
    errors = [ln for ln in res.output.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, res.output
    assert errors[0].startswith("hyperinr: error: rule teacher (gpu=4, runtime=4400 min")
    assert "no Polaris queue accepts 1 node(s) x 73:20:00" in errors[0]
    assert "Traceback" not in res.output and "rule teacher:" not in res.output  # nothing planned
    assert fake_pbs_jobs(Path(fake_pbs["FAKE_PBS_STATE"])) == []
    # Snakemake's own --set-resources are checked too
    res = dry_run(
        tmp_path / "wf2", fake_pbs, run_snakemake, "--set-resources", "distill:runtime=4400"
    )
    assert res.returncode == 1 and "hyperinr: error: rule distill (gpu=4" in res.output, res.tail()


def test_training_config_records_the_processes_it_runs(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    """On a Polaris node the teacher trains on 4 processes: its rule's config slice (params,
    provenance, checkpoint tag) says runtime.gpus_per_job 4; distill pinned to 1 GPU says 1."""
    one = {"one.yaml": "resources:\n  distill: {gpu: 1}\n"}
    res = dry_run(tmp_path / "wf", fake_pbs, run_snakemake, "one.yaml", files=one)
    assert res.returncode == 0, res.tail()
    lines = res.output.splitlines()
    teacher = next(ln for ln in lines if " teacher --config-json " in ln)
    distill = next(ln for ln in lines if " distill --config-json " in ln)
    assert "torchrun --standalone --nproc_per_node 4" in teacher, teacher
    assert '"gpus_per_job": 4' in teacher, teacher
    assert "torchrun" not in distill and '"gpus_per_job": 1' in distill, distill


# ------------------------------------------------------ CPU jobs, no GPU slot ---
RESOLVE = """
import os, sys, time
from hyperinr.infra.device import claim_gpus, resolve_device
claim_gpus("auto")  # what hyperinr.cli.main does where a device verb starts
print(resolve_device("auto"), repr(os.environ.get("CUDA_VISIBLE_DEVICES")), flush=True)
time.sleep(float(sys.argv[1]))
"""


def test_a_cpu_job_takes_no_gpu_slot(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "WORLD_SIZE")}
    env.update(HYPERINR_NODE_GPUS="4", TMPDIR=str(tmp_path), PBS_JOBID="78.fake")
    cpu = subprocess.Popen(
        [sys.executable, "-c", RESOLVE, "5"],
        env={**env, "HYPERINR_JOB_GPUS": "0"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert cpu.stdout.readline().strip() == "cpu ''"
        # while it runs, all four slots are free: a job of 4 GPUs gets them without waiting
        four = subprocess.run(
            [sys.executable, "-c", HOLD.replace("claim(1", "claim(4"), "0", "0"],
            env={**env, "HYPERINR_JOB_GPUS": "4"}, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert four.returncode == 0 and four.stdout.strip() == "0,1,2,3", four.stderr
    finally:
        cpu.kill()
        _, err = cpu.communicate()
    assert "no GPU slot: the job asked for none" in err
    gpu = subprocess.run(
        [sys.executable, "-c", RESOLVE, "0"],
        env={**env, "HYPERINR_JOB_GPUS": "1"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gpu.stdout.strip() == "cpu '0'" and "GPU slot 0 of 4" in gpu.stderr  # (no CUDA here)


def test_cpu_rule_through_the_submit_script_holds_no_slot(tmp_path, fake_pbs):
    """A gpu=0 job submitted by pbs_submit.py (qsub -v HYPERINR_JOB_GPUS=0) resolves the CPU
    and holds no GPU slot for the double to measure; a gpu=1 job holds one."""
    env = {**fake_pbs, **ENV, **NODE}
    records = {}
    for rule, gpu in (("distill_set", 0), ("predict", 1)):
        script = tmp_path / f"snakejob.{rule}.sh"
        props = {"type": "single", "rule": rule, "threads": 1, "jobid": gpu,
                 "resources": {"gpu": gpu, "runtime": 10}}  # fmt: skip
        body = f"{shlex.quote(sys.executable)} -c {shlex.quote(RESOLVE)} 1\n"
        script.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n{body}")
        res = subprocess.run(
            [sys.executable, str(POLARIS / "pbs_submit.py"), str(script)],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert f"-v HYPERINR_JOB_GPUS={gpu}" in res.stderr
        records[rule] = res.stdout.strip()
    state = Path(fake_pbs["FAKE_PBS_STATE"])
    for rule, jobid in records.items():
        wait_for(lambda j=jobid: job_state(fake_pbs, j)["job_state"] == "F", 60, f"{rule} end")
    jobs = {j["id"]: j for j in fake_pbs_jobs(state)}
    gather, shard = jobs[records["distill_set"]], jobs[records["predict"]]
    assert gather["Exit_status"] == 0 and shard["Exit_status"] == 0
    gather_log = (tmp_path / "logs/pbs/distill_set-0.log").read_text()
    assert "cpu ''" in gather_log and "no GPU slot" in gather_log, gather_log
    assert gather["gpu_seconds_used"] == 0 and not gather.get("gpu_slots_used")
    assert "GPU slot 0 of 4" in (tmp_path / "logs/pbs/predict-1.log").read_text()
    assert shard["gpu_slots_used"] == ["gpu0"]


# ------------------------------------------------------ the double refuses ---
def qsub(env, queue, select, wall, cwd, extra=()) -> subprocess.CompletedProcess:
    script = cwd / "job.sh"
    script.write_text("#!/bin/sh\nsleep 20\n")
    args = ["-A", "P", "-q", queue, "-l", f"select={select}", "-l", f"walltime={wall}"]
    args += ["-l", "filesystems=home:eagle", "-k", "doe", "-j", "oe", "-N", "j", *extra]
    return subprocess.run(
        [str(FAKE_PBS_BIN / "qsub"), *args, str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "queue, select, wall, message",
    [
        ("prod", "1:system=polaris:ngpus=4", "01:00:00", "queue and/or server resource limits"),
        ("prod", "9:system=polaris:ngpus=4", "01:00:00", "queue and/or server resource limits"),
        ("debug", "1:system=polaris:ngpus=5", "00:30:00", "can never run"),
        ("debug", "1:system=polaris:ngpus=1", "01:00:01", "queue and/or server resource limits"),
        ("preemptable", "1:system=polaris", "72:00:01", "queue and/or server resource limits"),
        ("debug", "1:system=polaris", "00:04:00", "queue and/or server resource limits"),
    ],
)
def test_double_refuses_what_polaris_refuses_in_one_line(
    tmp_path, fake_pbs, queue, select, wall, message
):
    res = qsub(fake_pbs, queue, select, wall, tmp_path)
    assert res.returncode != 0 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and message in res.stderr, res.stderr


def test_double_allows_20_preemptable_jobs_per_project(tmp_path, fake_pbs):
    env = {**fake_pbs, "FAKE_PBS_QUEUE_SECONDS": "60"}  # keep them queued
    ids = []
    for _ in range(20):
        res = qsub(env, "preemptable", "1:system=polaris", "02:00:00", tmp_path, ["-r", "y"])
        assert res.returncode == 0, res.stderr
        ids.append(res.stdout.strip())
    res = qsub(env, "preemptable", "1:system=polaris", "02:00:00", tmp_path, ["-r", "y"])
    assert res.returncode != 0 and res.stderr.count("\n") == 1
    assert "per-project limit of 20 jobs" in res.stderr
    subprocess.run([str(FAKE_PBS_BIN / "qdel"), *ids], env=env, timeout=30, check=True)


def job_state(env, jobid):
    res = subprocess.run(
        [str(FAKE_PBS_BIN / "qstat"), "-fx", "-F", "json", jobid],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return json.loads(res.stdout)["Jobs"][jobid]


def wait_for(predicate, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def test_preemption_requeues_a_rerunnable_job_and_refuses_others(tmp_path, fake_pbs):
    out = tmp_path / "out.log"
    script = tmp_path / "run.sh"
    script.write_text('#!/bin/sh\necho "run $PBS_JOBID"\nsleep 2\necho done\n')
    args = ["-A", "P", "-q", "preemptable", "-l", "select=1:system=polaris:ngpus=1"]
    args += ["-l", "walltime=02:00:00", "-l", "filesystems=home:eagle", "-k", "doe", "-j", "oe"]
    jobid = subprocess.run(
        [str(FAKE_PBS_BIN / "qsub"), *args, "-r", "y", "-o", str(out), str(script)],
        env=fake_pbs, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    wait_for(lambda: job_state(fake_pbs, jobid)["job_state"] == "R", what="running job")
    subprocess.run([str(FAKE_PBS_BIN / "qrerun"), jobid], env=fake_pbs, timeout=10, check=True)
    job = wait_for(lambda: (j := job_state(fake_pbs, jobid))["job_state"] == "F" and j, what="end")
    assert job["Exit_status"] == 0 and job["run_count"] == 2
    text = out.read_text()
    assert text.count(f"run {jobid}") == 2 and "preempted: killed and requeued" in text
    assert text.count("done") == 1
    # A whole node is charged for both runs: 4 GPUs x wall, though the job used none.
    (record,) = [j for j in fake_pbs_jobs(Path(fake_pbs["FAKE_PBS_STATE"])) if j["id"] == jobid]
    assert record["gpu_seconds_allocated"] >= 4 * 2 and record["gpu_seconds_used"] == 0

    other = subprocess.run(
        [str(FAKE_PBS_BIN / "qsub"), *args, "-r", "n", "-o", str(tmp_path / "o2"), str(script)],
        env=fake_pbs, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True,
    ).stdout.strip()  # fmt: skip
    wait_for(lambda: job_state(fake_pbs, other)["job_state"] == "R", what="running job")
    res = subprocess.run(
        [str(FAKE_PBS_BIN / "qrerun"), other], env=fake_pbs, capture_output=True, text=True
    )
    assert res.returncode != 0 and "not rerunnable" in res.stderr


# ---------------------------------------------------------------- GPU slots ---
HOLD = """
import sys, time
from hyperinr.cluster.gpus import claim
print(claim(1, wait_s=float(sys.argv[1])), flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_gpu_slots_are_distinct_and_freed_when_a_process_dies(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "WORLD_SIZE")}
    env.update(HYPERINR_NODE_GPUS="4", TMPDIR=str(tmp_path), PBS_JOBID="77.fake")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLD, "0", "3"], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    slots = [p.stdout.readline().strip() for p in procs]
    assert sorted(slots) == ["0", "1", "2", "3"]
    fifth = subprocess.run(
        [sys.executable, "-c", HOLD, "0", "0"], env=env, capture_output=True, text=True
    )
    assert fifth.returncode != 0 and "no 1 free GPU slot(s) of 4" in fifth.stderr
    procs[2].kill()  # SIGKILL: the kernel frees its slot
    procs[2].wait()
    again = subprocess.run(
        [sys.executable, "-c", HOLD, "5", "0"], env=env, capture_output=True, text=True
    )
    assert again.stdout.strip() == slots[2]
    for p in procs:
        p.kill()
        p.wait()


# ------------------------------------------------------- the real workflow ---
def copy_workflow(work: Path) -> None:
    work.mkdir()
    for name in REAL_WORKFLOW:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "four_shards.yaml").write_text(FOUR_SHARDS)


def utilisation(jobs: list[dict]) -> tuple[float, float]:
    alloc = sum(j.get("gpu_seconds_allocated", 0) for j in jobs)
    used = sum(j.get("gpu_seconds_used", 0) for j in jobs)
    return alloc, used


def shard_claims(work: Path) -> list[tuple[str, str]]:
    """(shard log, 'GPU slot ...' line) from the shard jobs' own logs."""
    out = []
    for log in sorted((work / "logs" / "tgv16_test" / "distill_set").glob("shard_*.log")):
        lines = [ln for ln in log.read_text().splitlines() if "hyperinr: GPU slot" in ln]
        out.append((log.name, lines[0] if lines else ""))
    return out


@pytest.mark.slow
def test_tiny_workflow_fills_nodes_through_polaris_profile(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    """config/test.yaml (+ 4 shards) through the polaris profile: shards packed into one PBS
    job on 4 distinct GPUs at once; training on a whole node (4 ranks); utilisation compared
    with the one-GPU-per-job shape of the old profile on the same workflow."""
    results = {}
    for shape, extra in (
        ("packed", []),
        # the old profile: one PBS job per rule, one GPU each (groups of one; training 1 GPU)
        ("one_gpu_per_job", ["--group-components", "pack_shards=1", "pack_predict=1"]),
    ):
        work = tmp_path / shape
        copy_workflow(work)
        state = tmp_path / f"state_{shape}"
        state.mkdir()
        env = {**fake_pbs, **ENV, "FAKE_PBS_STATE": str(state)}
        configs = ["config/test.yaml", "four_shards.yaml"]
        if shape == "one_gpu_per_job":
            (work / "one_gpu.yaml").write_text(
                "resources:\n  teacher: {runtime: 30, gpu: 1}\n  distill: {runtime: 30, gpu: 1}\n"
                "  teacher_validation: {runtime: 30, gpu: 1}\n"
            )
            configs.append("one_gpu.yaml")
        args = ["--profile", str(POLARIS), "--configfile", *configs, *FAST, *extra]
        args += ["--set-threads", "distill_set_shard=1", "predict=1"]  # 2-core test machine
        try:
            res = run_snakemake(args, work, env, timeout=600)
        finally:
            kill_local_jobs(work)
        assert res.returncode == 0, res.tail(80)
        assert (work / "results/tgv16_test/report/summary.md").exists()
        jobs = fake_pbs_jobs(state)
        assert all(j["Exit_status"] == 0 for j in jobs)
        alloc, used = utilisation(jobs)
        results[shape] = (alloc, used, jobs, work, res.elapsed)

    alloc, used, jobs, work, _ = results["packed"]
    shards = [j for j in jobs if j["Job_Name"] == "pack_shards"]
    assert len(shards) == 1, [j["Job_Name"] for j in jobs]
    (pack,) = shards
    assert pack["Resource_List"]["select"] == "1:system=polaris:ngpus=4:ncpus=4"
    assert pack["queue"] == "debug"
    claims = shard_claims(work)
    assert len(claims) == 4 and all(line for _, line in claims), claims
    slots = {line.split("GPU slot ")[1].split()[0] for _, line in claims}
    assert slots == {"0", "1", "2", "3"}, claims
    assert set(pack["gpu_slots_used"]) == {"gpu0", "gpu1", "gpu2", "gpu3"}
    # Concurrent: a claim takes the lowest free slot, so four one-after-another shards would
    # all have had slot 0; slots 0-3 mean each found the others' slots held.
    logs = sorted((work / "logs/tgv16_test/distill_set").glob("shard_*.log"))
    teacher = next(j for j in jobs if j["Job_Name"] == "teacher")
    assert teacher["Resource_List"]["select"].startswith("1:system=polaris:ngpus=4")
    assert "joined the process group" in (work / "logs/tgv16_test/teacher.log").read_text()

    old_alloc, old_used, old_jobs, _, _ = results["one_gpu_per_job"]
    assert len([j for j in old_jobs if j["Job_Name"] == "distill_set_sha"]) == 0
    assert len([j for j in old_jobs if j["Job_Name"] == "pack_shards"]) == 4
    report = (
        f"packed (this profile): {len(jobs)} PBS jobs, GPU-seconds allocated {alloc:.0f}, "
        f"used {used:.0f}, utilisation {used / alloc:.0%}\n"
        f"one GPU per job (old): {len(old_jobs)} PBS jobs, GPU-seconds allocated "
        f"{old_alloc:.0f}, used {old_used:.0f}, utilisation {old_used / old_alloc:.0%}\n"
        f"shard slots: {claims}\nshard logs: {[p.name for p in logs]}\n"
    )
    print(report)
    (tmp_path / "utilisation.txt").write_text(report)
    assert used / alloc > old_used / old_alloc


def model_state(path: Path) -> dict:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def same_model(a: Path, b: Path) -> bool:
    import torch

    sa, sb = model_state(a), model_state(b)

    def flat(x, prefix=""):
        if isinstance(x, dict):
            for k, v in x.items():
                yield from flat(v, f"{prefix}{k}.")
        elif torch.is_tensor(x):
            yield prefix, x

    ta, tb = dict(flat(sa)), dict(flat(sb))
    return ta.keys() == tb.keys() and bool(ta) and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.slow
def test_preempted_training_resumes_to_the_same_model(tmp_path, fake_pbs, cluster_generic):
    """The teacher (2 h runtime: queue preemptable, -r y; the node's 4 GPUs: 4 torchrun ranks)
    is preempted mid-training by the double (qrerun: killed, requeued under the same id); its
    rerun resumes from the checkpoint and ends with exactly the model of an uninterrupted
    4-rank run (bit for bit: hyperinr.training.distributed.ordered_mean_hook)."""
    two_hours = "resources:\n  teacher: {runtime: 120}\nteacher:\n  train: {steps: 600}\n"
    target = "results/tgv16_test/teacher/model.pt"
    work = tmp_path / "preempted"
    copy_workflow(work)
    (work / "long.yaml").write_text(two_hours)
    env = {**fake_pbs, **ENV}
    args = ["--profile", str(POLARIS), "--configfile", "config/test.yaml", "long.yaml", *FAST]
    log = work / "snakemake.out"
    t0 = time.monotonic()
    proc = start_snakemake([*args, target], work, env, log)
    try:
        state = Path(fake_pbs["FAKE_PBS_STATE"])
        ckpt = work / "results/tgv16_test/teacher/checkpoint.pt"
        teacher = wait_for(
            lambda: next(
                (j for j in fake_pbs_jobs(state) if j["Job_Name"] == "teacher" and ckpt.exists()),
                None,
            ),
            timeout=300,
            what="teacher checkpoint",
        )
        time.sleep(2)  # a few more steps past the checkpoint: they are lost and redone
        subprocess.run([str(FAKE_PBS_BIN / "qrerun"), teacher["id"]], env=env, check=True)
        res = wait_snakemake(proc, log, 600, t0)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_local_jobs(work)
    assert res.returncode == 0, res.tail(60)
    (job,) = [j for j in fake_pbs_jobs(state) if j["Job_Name"] == "teacher"]
    argv = job["Submit_arguments"].split()
    assert argv[argv.index("-q") + 1] == "preemptable" and "-r" in argv
    assert job["run_count"] == 2 and job["Exit_status"] == 0
    assert "ngpus=4" in job["Resource_List"]["select"]
    tlog = (work / "logs/tgv16_test/teacher.log").read_text()
    assert "resuming from step" in tlog, tlog[-2000:]
    assert "rank 3 of 4" in tlog, tlog[-2000:]  # trained (and resumed) on 4 ranks

    ref = tmp_path / "uninterrupted"
    copy_workflow(ref)
    (ref / "long.yaml").write_text(two_hours)
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "--cores", "2", "--configfile",
         "config/test.yaml", "long.yaml"],
        cwd=ref, env={**env, "HYPERINR_NODE_GPUS": "4", "TMPDIR": str(tmp_path)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    ref_info = json.loads((ref / "results/tgv16_test/teacher/info.json").read_text())
    info = json.loads((work / "results/tgv16_test/teacher/info.json").read_text())
    assert ref_info["processes"] == info["processes"] == 4
    assert info["produced_by"]["config"]["runtime"]["gpus_per_job"] == 4  # what it ran on
    assert info["resumed_from"] > 0 and ref_info["resumed_from"] == 0
    assert same_model(work / target, ref / target)
    print(f"preempted teacher: {tlog.count('resuming from step')} resume(s); model identical")


# -------------------------------------------------------- inside an allocation ---
def allocation_env(fake_pbs, tmp_path) -> dict:
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("localhost\n127.0.0.1\n")  # 2 nodes: localhost aliases
    return {**fake_pbs, "PBS_NODEFILE": str(nodefile), "PBS_JOBID": "4242.polaris-pbs-01"}


def allocation_launches(work: Path) -> list[dict]:
    state = work / ".snakemake" / "hyperinr-allocation"
    return [json.loads(p.read_text()) for p in sorted(state.glob("*.json"))]


@pytest.mark.slow
def test_allocation_runs_8_gpu_jobs_at_once_on_2_nodes(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    work = tmp_path / "work"
    work.mkdir()
    env = allocation_env(fake_pbs, tmp_path)
    names = ",".join("abcdefghij")  # 10 one-GPU teachers for 8 GPU slots
    args = ["-s", str(TOY_SNAKEFILE), "--profile", str(ALLOCATION), "--config", f"names={names}"]
    args += ["sleep=4", "--seconds-between-status-checks", "1"]
    res = run_snakemake(args, work, env, timeout=240)
    assert res.returncode == 0, res.tail(60)
    gpu_jobs = [m for m in allocation_launches(work) if m["gpus"]]
    assert len(gpu_jobs) == 10
    assert {m["cmd"][m["cmd"].index("--hosts") + 1] for m in gpu_jobs} == {"localhost", "127.0.0.1"}
    slots = {(m["host"], m["gpus"][0]) for m in gpu_jobs}
    assert len(slots) == 8  # every GPU of both nodes was used
    # never two jobs on one GPU at once, and 8 at once at the peak
    events = sorted([(m["start"], 1, m) for m in gpu_jobs] + [(m["end"], -1, m) for m in gpu_jobs])
    running, peak = set(), 0
    for _, kind, m in events:
        key = (m["host"], m["gpus"][0])
        if kind == 1:
            assert key not in running
            running.add(key)
        else:
            running.discard(key)
        peak = max(peak, len(running))
    assert peak == 8, peak
    assert "--env" in gpu_jobs[0]["cmd"]
    print(f"allocation: 10 GPU jobs on {len(slots)} slots, peak {peak} at once")


def test_allocation_outside_a_pbs_job_is_one_line(tmp_path, fake_pbs):
    script = tmp_path / "snakejob.sh"
    props = {"type": "single", "rule": "teacher", "resources": {"gpu": 1}, "jobid": 1}
    script.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\n")
    res = subprocess.run(
        [sys.executable, str(ALLOCATION / "alloc_submit.py"), str(script)],
        env={k: v for k, v in fake_pbs.items() if k != "PBS_NODEFILE"},
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "PBS_NODEFILE is unset" in res.stderr


@pytest.mark.slow
def test_tiny_workflow_inside_a_2_node_allocation(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    work = tmp_path / "wf"
    copy_workflow(work)
    env = allocation_env(fake_pbs, tmp_path)
    args = ["--profile", str(ALLOCATION), "--configfile", "config/test.yaml", "four_shards.yaml"]
    args += ["--seconds-between-status-checks", "1"]
    res = run_snakemake(args, work, env, timeout=600)
    assert res.returncode == 0, res.tail(80)
    assert (work / "results/tgv16_test/report/summary.md").exists()
    # Snakemake's GPU budget: 2 nodes x 4 ("gpu=8", or gpu=Resource("gpu", 8) since 9.2x)
    assert re.search(r'Provided resources: .*gpu=(Resource\("gpu", )?8\b', res.output), res.tail(40)
    launches = allocation_launches(work)
    hosts = {m["host"] for m in launches}
    assert hosts <= {"localhost", "127.0.0.1"}
    teacher = [m for m in launches if len(m["gpus"]) == 4]
    assert len(teacher) == 3  # teacher, teacher_validation and distill: a whole node each
    shard_logs = shard_claims(work)
    assert len(shard_logs) == 4
    print(f"allocation tiny workflow: {len(launches)} launches on {sorted(hosts)}", end="")
    print(f", {res.elapsed:.0f} s")
