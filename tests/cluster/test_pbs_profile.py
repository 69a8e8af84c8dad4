"""The Polaris (PBS Pro) profile: status/submit scripts, the PBS test double, and
the toy workflow through ``workflow/profiles/polaris`` with the double on PATH."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clusterlib import (
    FAKE_PBS_BIN,
    FIXTURES,
    POLARIS,
    REPO,
    SHORT_TRAINING,
    TOY_SNAKEFILE,
    fake_pbs_jobs,
    kill_local_jobs,
    start_snakemake,
    wait_snakemake,
)


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, POLARIS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


status_mod = load_script("pbs_status")
submit_mod = load_script("pbs_submit")


@pytest.fixture
def cluster_generic():
    """The Snakemake runs below need the cluster-generic executor plugin."""
    pytest.importorskip(
        "snakemake_executor_plugin_cluster_generic",
        reason="pip install snakemake-executor-plugin-cluster-generic",
    )


# Speed knobs for every Snakemake run here (on Polaris the profile's values apply).
FAST = ["--seconds-between-status-checks", "1", "--latency-wait", "3"]


# ------------------------------------------------------------ status script ---
@pytest.mark.parametrize(
    "fixture, expected",
    [
        ("queued", "running"),
        ("running", "running"),
        ("exiting", "running"),
        ("held_user", "running"),
        ("held_system", "failed"),
        ("finished_ok", "success"),
        ("exit_1", "failed"),
        ("walltime_kill", "failed"),
        ("qdel_kill", "failed"),
        ("deleted_queued", "failed"),
        ("unknown_job", "failed"),
        ("invalid_json_finished_ok", "success"),
    ],
)
def test_status_classifies_recorded_qstat_json(fixture, expected):
    text = (FIXTURES / f"{fixture}.json").read_text()
    try:
        jobid = next(iter(json.loads(text).get("Jobs", {"4117299.polaris-pbs-01": 0})))
    except ValueError:  # the invalid-JSON fixture
        jobid = "4117206.polaris-pbs-01.hsn.cm.polaris.alcf.anl.gov"
    assert status_mod.classify(text, jobid)[0] == expected
    # Snakemake may hold the short id only (qsub on Polaris prints the long one).
    assert status_mod.classify(text, jobid.split(".")[0])[0] == expected


@pytest.mark.parametrize(
    "fixture, words",
    [
        ("walltime_kill", ["-29", "JOB_EXEC_KILL_WALLTIME", "logs/pbs/teacher-tgv.log"]),
        ("qdel_kill", ["271", "signal 15"]),
        ("exit_1", ["exited 1"]),
    ],
)
def test_status_explains_failures(fixture, words):
    text = (FIXTURES / f"{fixture}.json").read_text()
    jobid = next(iter(json.loads(text)["Jobs"]))
    status, reason = status_mod.classify(text, jobid)
    assert status == "failed"
    for word in words:
        assert word in reason


def stub_qstat(tmp_path: Path, body: str) -> str:
    """A qstat stand-in that counts its calls in tmp_path/calls."""
    path = tmp_path / "qstat"
    path.write_text(
        f"#!{sys.executable}\nimport sys, time, pathlib\n"
        f"c = pathlib.Path({str(tmp_path / 'calls')!r})\n"
        "c.write_text(str(int(c.read_text()) + 1 if c.exists() else 1))\n" + body
    )
    path.chmod(0o755)
    return str(path)


def run_status(jobid: str, env_extra: dict, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, str(POLARIS / "pbs_status.py"), jobid],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def calls(tmp_path: Path) -> int:
    return int((tmp_path / "calls").read_text())


def test_status_script_prints_one_word_from_qstat(tmp_path):
    fixture = FIXTURES / "walltime_kill.json"
    qstat = stub_qstat(tmp_path, f"print(open({str(fixture)!r}).read())\n")
    res = run_status("4117208.polaris-pbs-01", {"HYPERINR_PBS_QSTAT": qstat})
    assert (res.returncode, res.stdout) == (0, "failed\n")
    assert "JOB_EXEC_KILL_WALLTIME" in res.stderr


def test_status_unknown_job_is_failed_without_retrying(tmp_path):
    qstat = stub_qstat(
        tmp_path,
        f"print(open({str(FIXTURES / 'unknown_job.json')!r}).read())\n"
        "sys.stderr.write('qstat: Unknown Job Id 4117299.polaris-pbs-01\\n'); sys.exit(153)\n",
    )
    res = run_status("4117299.polaris-pbs-01", {"HYPERINR_PBS_QSTAT": qstat})
    assert (res.returncode, res.stdout) == (0, "failed\n")
    assert calls(tmp_path) == 1
    assert "vanished" in res.stderr


def test_status_gives_up_after_bounded_retries(tmp_path):
    qstat = stub_qstat(
        tmp_path,
        "sys.stderr.write('qstat: cannot connect to server polaris-pbs-01 (errno=15010)\\n')\n"
        "sys.exit(2)\n",
    )
    t0 = time.monotonic()
    res = run_status(
        "1.polaris-pbs-01",
        {
            "HYPERINR_PBS_QSTAT": qstat,
            "HYPERINR_PBS_STATUS_ATTEMPTS": "3",
            "HYPERINR_PBS_STATUS_RETRY_SLEEP": "0.1",
        },
    )
    assert (res.returncode, res.stdout) == (0, "failed\n")
    assert calls(tmp_path) == 3
    assert "cannot connect" in res.stderr
    assert time.monotonic() - t0 < 10


def test_status_never_hangs_on_a_stuck_qstat(tmp_path):
    qstat = stub_qstat(tmp_path, "time.sleep(60)\n")
    t0 = time.monotonic()
    res = run_status(
        "1.polaris-pbs-01",
        {
            "HYPERINR_PBS_QSTAT": qstat,
            "HYPERINR_PBS_STATUS_ATTEMPTS": "2",
            "HYPERINR_PBS_STATUS_RETRY_SLEEP": "0.1",
            "HYPERINR_PBS_STATUS_TIMEOUT": "1",
        },
    )
    assert res.stdout == "failed\n"
    assert "timed out" in res.stderr
    assert time.monotonic() - t0 < 10


def test_status_rides_out_a_transient_qstat_failure(tmp_path):
    fixture = FIXTURES / "finished_ok.json"
    qstat = stub_qstat(
        tmp_path,
        "if int(c.read_text()) == 1: sys.stderr.write('qstat: timed out\\n'); sys.exit(2)\n"
        f"print(open({str(fixture)!r}).read())\n",
    )
    res = run_status(
        "4117206", {"HYPERINR_PBS_QSTAT": qstat, "HYPERINR_PBS_STATUS_RETRY_SLEEP": "0.1"}
    )
    assert res.stdout == "success\n"
    assert calls(tmp_path) == 2


# ------------------------------------------------------------ submit script ---
def props(rule, threads, resources, wildcards=None, jobid=7):
    return {
        "type": "single",
        "rule": rule,
        "threads": threads,
        "jobid": jobid,
        "wildcards": wildcards or {},
        "resources": resources,
        "_attempt": 1,
    }


ENV = {"HYPERINR_PBS_ACCOUNT": "MyProject"}


def test_qsub_line_for_a_gpu_rule():
    """90 minutes on one node: too long for debug, so preemptable, rerunnable (-r y)."""
    args = submit_mod.build_qsub_args(
        props("teacher", 8, {"gpu": 1, "runtime": 90, "mem_mb": 4000}, {"dataset": "tgv"}),
        ENV,
        workdir="/eagle/MyProject/hyperinr",
    )
    assert args == [
        "-A",
        "MyProject",
        "-q",
        "preemptable",
        "-l",
        "select=1:system=polaris:ngpus=1:ncpus=8",
        "-l",
        "walltime=01:30:00",
        "-l",
        "filesystems=home:eagle",
        "-l",
        "place=scatter",
        "-k",
        "doe",
        "-j",
        "oe",
        "-N",
        "teacher",
        "-o",
        "/eagle/MyProject/hyperinr/logs/pbs/teacher-tgv.log",
        "-V",
        "-v",
        "HYPERINR_JOB_GPUS=1",
        "-r",
        "y",
    ]


def test_qsub_line_for_a_cpu_rule():
    args = submit_mod.build_qsub_args(
        props("evaluate", 2, {"gpu": 0, "runtime": 5}), ENV, workdir="/w"
    )
    assert "-l" in args and "select=1:system=polaris:ncpus=2" in args
    assert not any("ngpus" in a for a in args)
    assert "walltime=00:05:00" in args and args[args.index("-q") + 1] == "debug"
    assert "-r" not in args  # debug jobs are not preempted
    assert args[args.index("-o") + 1] == "/w/logs/pbs/evaluate-7.log"
    assert args[args.index("-v") + 1] == "HYPERINR_JOB_GPUS=0"  # its stages take no GPU slot


def test_qsub_line_options_from_environment_and_resources():
    env = {
        **ENV,
        "HYPERINR_PBS_QUEUE": "preemptable",
        "HYPERINR_PBS_FILESYSTEMS": "home:grand",
        "HYPERINR_PBS_QSUB_ARGS": "-m n",
        "HYPERINR_PBS_EXPORT_ENV": "0",
    }
    p = props("distill", 32, {"gpu": 8, "nodes": 2, "runtime": 600, "pbs_account": "Other"})
    p["_attempt"] = 2
    args = submit_mod.build_qsub_args(p, env, workdir="/w")
    assert args[:4] == ["-A", "Other", "-q", "preemptable"]
    assert "select=2:system=polaris:ngpus=4:ncpus=32" in args
    assert "walltime=10:00:00" in args and "filesystems=home:grand" in args
    assert args[-4:] == ["-r", "y", "-m", "n"] and "-V" not in args
    assert args[args.index("-o") + 1] == "/w/logs/pbs/distill-7.attempt2.log"


@pytest.mark.parametrize(
    "rule, name",
    [
        ("distill_set", "distill_set"),
        ("a_very_long_rule_name", "a_very_long_rul"),
        ("3d-render", "j3d-render"),
        (None, "j0d4c2e1a-9b7f"),
    ],
)
def test_pbs_job_names_are_legal(rule, name):
    p = props(rule, 1, {})
    if rule is None:
        p = {"type": "group", "groupid": "0d4c2e1a-9b7f", "threads": 1, "resources": {}}
    assert submit_mod.job_name(p) == name


def write_jobscript(path: Path, rule="teacher", resources=None) -> Path:
    p = {
        "type": "single",
        "rule": rule,
        "threads": 8,
        "jobid": 3,
        "wildcards": {},
        "resources": resources or {"gpu": 1, "runtime": 10},
    }
    path.write_text(f"#!/bin/sh\n# properties = {json.dumps(p)}\necho job ran\n")
    return path


def test_missing_account_is_one_clear_line_and_nothing_is_submitted(tmp_path, fake_pbs):
    script = write_jobscript(tmp_path / "snakejob.teacher.3.sh")
    env = {k: v for k, v in fake_pbs.items() if k != "HYPERINR_PBS_ACCOUNT"}
    res = subprocess.run(
        [sys.executable, str(POLARIS / "pbs_submit.py"), str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode != 0 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "HYPERINR_PBS_ACCOUNT" in lines[0], res.stderr
    assert fake_pbs_jobs(Path(env["FAKE_PBS_STATE"])) == []


def test_submit_prints_only_the_job_id(tmp_path, fake_pbs):
    script = write_jobscript(tmp_path / "snakejob.teacher.3.sh")
    res = subprocess.run(
        [sys.executable, str(POLARIS / "pbs_submit.py"), str(script)],
        env={**fake_pbs, **ENV},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(".polaris-pbs-01") and len(res.stdout.splitlines()) == 1
    assert "qsub -A MyProject" in res.stderr


# ------------------------------------------------------------ the PBS double ---
GOOD = [
    "-A",
    "P",
    "-q",
    "debug",
    "-l",
    "select=1:system=polaris:ngpus=1:ncpus=8",
    "-l",
    "walltime=00:10:00",
    "-l",
    "filesystems=home:eagle",
    "-l",
    "place=scatter",
    "-k",
    "doe",
    "-j",
    "oe",
    "-N",
    "job",
]


def qsub(env, args, script, cwd):
    return subprocess.run(
        [str(FAKE_PBS_BIN / "qsub"), *args, str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


def drop(flag):
    i = GOOD.index(flag)
    return GOOD[:i] + GOOD[i + 2 :]


def replace(old, new):
    return [new if a == old else a for a in GOOD]


@pytest.mark.parametrize(
    "args, message",
    [
        (drop("-A"), "Account_Name is required"),
        (replace("walltime=00:10:00", "filesystems=home"), "walltime is required"),
        (replace("walltime=00:10:00", "walltime=10:75:00"), "Resource_List.walltime"),
        (replace("walltime=00:10:00", "walltime=1h"), "Resource_List.walltime"),
        (replace("debug", "gpu"), "Unknown queue"),
        (replace("walltime=00:10:00", "walltime=02:00:00"), "queue and/or server resource limits"),
        (drop("-q"), "queue and/or server resource limits"),  # default prod needs >= 10 nodes
        (
            replace("select=1:system=polaris:ngpus=1:ncpus=8", "select=1:system=polaris:ngpus=5"),
            "can never run",
        ),
        (replace("select=1:system=polaris:ngpus=1:ncpus=8", "select=1:ngpus=1"), "system=polaris"),
        (
            replace("select=1:system=polaris:ngpus=1:ncpus=8", "select=1:system=polaris:gpus=1"),
            "Unknown resource",
        ),
        (
            replace("select=1:system=polaris:ngpus=1:ncpus=8", "select=system=polaris:ngpus=x"),
            "Resource_List.select",
        ),
        (replace("filesystems=home:eagle", "filesystems=home:scratch"), "filesystems"),
        (replace("place=scatter", "place=spread"), "Resource_List.place"),
        (replace("job", "1job"), "illegal -N"),
        (replace("job", "name_longer_than_15"), "illegal -N"),
        (replace("doe", "x"), "illegal -k"),
        (GOOD + ["-I"], "option -I not recognized"),
    ],
)
def test_fake_qsub_rejects_what_polaris_rejects(tmp_path, fake_pbs, args, message):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    res = qsub(fake_pbs, args, script, tmp_path)
    assert res.returncode != 0 and res.stdout == ""
    assert message in res.stderr, res.stderr


def wait_state(env, jobid, states=("F",), timeout=30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        res = subprocess.run(
            [str(FAKE_PBS_BIN / "qstat"), "-fx", "-F", "json", jobid],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
        )
        job = json.loads(res.stdout)["Jobs"][jobid]
        if job["job_state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"{jobid} never reached {states}")


def status_of(env, jobid) -> str:
    return run_status(jobid, env).stdout.strip()


def test_fake_pbs_runs_in_home_with_directives_and_reports_success(tmp_path, fake_pbs):
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/sh\n#PBS -N fromscript\n#PBS -l walltime=00:05:00\npwd\necho job=$PBS_JOBID\n"
    )
    args = [
        "-A",
        "P",
        "-q",
        "debug",
        "-l",
        "select=1:system=polaris",
        "-l",
        "filesystems=home:eagle",
        "-j",
        "oe",
        "-o",
        str(tmp_path / "out.log"),
    ]
    res = qsub(fake_pbs, args, script, tmp_path)
    assert res.returncode == 0, res.stderr
    jobid = res.stdout.strip()
    job = wait_state(fake_pbs, jobid)
    assert job["Exit_status"] == 0 and job["Job_Name"] == "fromscript"
    assert job["Resource_List"]["walltime"] == "00:05:00"
    out = (tmp_path / "out.log").read_text().splitlines()
    assert out == [fake_pbs["HOME"], f"job={jobid}"]
    assert status_of(fake_pbs, jobid) == "success"


def test_fake_pbs_enforces_walltime(tmp_path, fake_pbs):
    env = {**fake_pbs, "FAKE_PBS_WALLTIME_SCALE": str(1.5 / 300), "FAKE_PBS_KILL_DELAY": "0.5"}
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho start\nsleep 30\necho never\n")
    res = qsub(
        env,
        replace("walltime=00:10:00", "walltime=00:05:00") + ["-o", str(tmp_path / "out.log")],
        script,
        tmp_path,
    )
    jobid = res.stdout.strip()
    t0 = time.monotonic()
    job = wait_state(env, jobid, timeout=20)
    assert time.monotonic() - t0 < 10
    assert job["Exit_status"] == -29
    log = (tmp_path / "out.log").read_text()
    assert "start" in log and "never" not in log
    assert "PBS: job killed: walltime" in log and "exceeded limit 300" in log
    assert status_of(env, jobid) == "failed"


def test_fake_qdel_kills_running_and_removes_queued_jobs(tmp_path, fake_pbs):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    running = qsub(fake_pbs, GOOD, script, tmp_path).stdout.strip()
    wait_state(fake_pbs, running, states=("R",))
    queued_env = {**fake_pbs, "FAKE_PBS_QUEUE_SECONDS": "30"}
    queued = qsub(queued_env, GOOD, script, tmp_path).stdout.strip()
    assert wait_state(fake_pbs, queued, states=("Q",))["job_state"] == "Q"
    assert status_of(fake_pbs, queued) == "running"
    subprocess.run(
        [str(FAKE_PBS_BIN / "qdel"), running, queued], env=fake_pbs, check=True, timeout=10
    )
    job = wait_state(fake_pbs, running, timeout=15)
    assert job["Exit_status"] == 271  # 256 + SIGTERM, as PBS Pro reports it
    job = wait_state(fake_pbs, queued, timeout=15)
    assert "Exit_status" not in job
    assert status_of(fake_pbs, running) == status_of(fake_pbs, queued) == "failed"
    res = subprocess.run(
        [str(FAKE_PBS_BIN / "qstat"), "-fx", "-F", "json", "999"],
        env=fake_pbs,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert res.returncode == 153 and "Unknown Job Id" in res.stderr


# ------------------------------------------------------- toy workflow, PBS ---
def toy(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    return work


def profile_args(*extra):
    return ["-s", str(TOY_SNAKEFILE), "--profile", str(POLARIS), *FAST, *extra]


def pbs_jobs_by_rule(env) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for job in fake_pbs_jobs(Path(env["FAKE_PBS_STATE"])):
        out.setdefault(job["Job_Name"], []).append(job)
    return out


def test_dry_run_lists_jobs_with_resources(tmp_path, run_snakemake, cluster_generic):
    res = run_snakemake(
        profile_args("-n"), toy(tmp_path), {**os.environ, "HYPERINR_PBS_ACCOUNT": "P"}, timeout=60
    )
    assert res.returncode == 0, res.tail()
    out = res.output
    for rule in ("simulate", "teacher", "evaluate"):
        assert f"rule {rule}:" in out
    teacher = out[out.index("rule teacher:") : out.index("rule evaluate:")]
    assert "gpu=1" in teacher and "runtime=10" in teacher
    assert "gpu=0" in out[out.index("rule evaluate:") :]


@pytest.mark.slow
def test_toy_workflow_through_polaris_profile(tmp_path, fake_pbs, run_snakemake, cluster_generic):
    work = toy(tmp_path)
    env = {**fake_pbs, **ENV}
    try:
        res = run_snakemake(profile_args("--config", "names=a,b"), work, env, timeout=150)
    finally:
        kill_local_jobs(work)
    assert res.returncode == 0, res.tail()
    for f in ("sim.txt", "teacher_a.txt", "teacher_b.txt", "eval_a.txt", "eval_b.txt"):
        assert (work / "results" / f).exists(), f
    jobs = pbs_jobs_by_rule(env)
    assert {k: len(v) for k, v in jobs.items()} == {"simulate": 1, "teacher": 2, "evaluate": 2}
    assert all(j["Exit_status"] == 0 for js in jobs.values() for j in js)
    teacher = jobs["teacher"][0]
    # the toy's own request (gpu=1, threads 2): the profile no longer overrides GPU rules
    assert teacher["Resource_List"]["select"] == "1:system=polaris:ngpus=1:ncpus=2"
    assert teacher["Resource_List"]["walltime"] == "00:10:00" and teacher["queue"] == "debug"
    assert jobs["evaluate"][0]["Resource_List"]["select"] == "1:system=polaris:ncpus=1"
    for name in ("simulate-", "teacher-a", "teacher-b", "evaluate-a", "evaluate-b"):
        logs = list((work / "logs" / "pbs").glob(f"{name}*.log"))
        assert logs and "Finished jobid" in logs[0].read_text(), name
    # The submitted job script and its qsub line, kept for docs/cluster.md.
    (tmp_path / "example.qsub").write_text("qsub " + teacher["Submit_arguments"] + "\n")


def wait_for_running(env, rule, timeout=60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job in pbs_jobs_by_rule(env).get(rule, []):
            if job["job_state"] == "R":
                return job
        time.sleep(0.2)
    raise AssertionError(f"no running {rule} job within {timeout} s")


@pytest.mark.slow
def test_qdel_mid_run_fails_the_job_and_the_retry_reruns_it(tmp_path, fake_pbs, cluster_generic):
    """CPU rules run 'on the login node' (HYPERINR_PBS_LOCAL=cpu); teacher goes
    to PBS, sleeps on attempt 1, is qdel'ed, fails, and attempt 2 succeeds."""
    work = toy(tmp_path)
    env = {**fake_pbs, **ENV, "HYPERINR_PBS_LOCAL": "cpu"}
    log = work / "snakemake.out"
    t0 = time.monotonic()
    proc = start_snakemake(profile_args("--config", "sleep=120"), work, env, log)
    try:
        job = wait_for_running(env, "teacher")
        time.sleep(1.0)
        subprocess.run([str(FAKE_PBS_BIN / "qdel"), job["id"]], env=env, check=True, timeout=10)
        res = wait_snakemake(proc, log, 150, t0)
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_local_jobs(work)
    assert res.returncode == 0, res.tail()
    out = res.output
    assert f"{job['id']}: failed: Exit_status 271" in out
    assert "Trying to restart job" in out
    teachers = pbs_jobs_by_rule(env)["teacher"]
    assert [t["Exit_status"] for t in teachers] == [271, 0]
    assert "attempt2" in teachers[1]["Submit_arguments"]
    assert set(pbs_jobs_by_rule(env)) == {"teacher"}  # CPU rules stayed local
    assert "external jobid 'local." in out
    assert (work / "results" / "eval_a.txt").exists()


@pytest.mark.slow
def test_walltime_kill_and_failing_job_are_reported_failed(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    """teacher outlives its (scaled) walltime on attempt 1 -> Exit_status -29 ->
    retried and succeeds; evaluate fails on both attempts -> the run fails."""
    work = toy(tmp_path)
    # teacher's 10-minute walltime becomes 12 s; CPU jobs stay local (no walltime).
    env = {
        **fake_pbs,
        **ENV,
        "HYPERINR_PBS_LOCAL": "cpu",
        "FAKE_PBS_WALLTIME_SCALE": str(12 / 600),
        "FAKE_PBS_KILL_DELAY": "1",
    }
    try:
        res = run_snakemake(profile_args("--config", "sleep=120", "fail=1"), work, env, timeout=150)
    finally:
        kill_local_jobs(work)
    assert res.returncode != 0
    out = res.output
    teachers = pbs_jobs_by_rule(env)["teacher"]
    assert [t["Exit_status"] for t in teachers] == [-29, 0]
    assert "JOB_EXEC_KILL_WALLTIME" in out
    assert out.count("Error in rule evaluate") == 2  # attempt 1 and the retry
    assert "local job exited 1" in out
    assert not (work / "results" / "eval_a.txt").exists()


# ------------------------------------------------- real workflow, PBS double ---
REAL_WORKFLOW = ("Snakefile", "rules", "workflow", "config", "envs")
SUMMARY = "results/tgv16_test/report/summary.md"


@pytest.mark.slow
def test_real_tiny_workflow_through_polaris_profile(
    tmp_path, fake_pbs, run_snakemake, cluster_generic
):
    """The hyperinr workflow itself (config/test.yaml) through the real polaris
    profile, every job a PBS job of the double (report: on 'the login node').

    Default queue (debug, 1 h): config/test.yaml sets 30-minute runtimes for
    the GPU stages so the tiny case fits it.  The teacher's qsub line and job
    script are printed and kept in tmp_path for docs/cluster.md."""
    work = tmp_path / "wf"
    work.mkdir()
    for name in REAL_WORKFLOW:
        src = REPO / name
        if not src.exists():
            pytest.skip(f"real workflow not runnable: no {name} in the repository")
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    (work / "short_training.yaml").write_text(SHORT_TRAINING)
    env = {**fake_pbs, **ENV}
    env.pop("HYPERINR_PBS_QUEUE", None)
    args = ["--profile", str(POLARIS), "--configfile", "config/test.yaml", "short_training.yaml"]
    args += FAST
    try:
        res = run_snakemake(args, work, env, timeout=240)
    finally:
        kill_local_jobs(work)
    print(f"real tiny workflow through the polaris profile: {res.elapsed:.0f} s wall")
    assert res.returncode == 0, res.tail(80)
    assert (work / SUMMARY).exists()

    jobs = pbs_jobs_by_rule(env)
    # PBS job names: rule names (15 characters at most), or the group of packed one-GPU jobs
    # (pack_shards, pack_predict).
    rules = {"simulate", "ingest", "teacher", "teacher_validat", "pack_shards", "distill"}
    assert rules <= set(jobs) and "pack_predict" in jobs, sorted(jobs)
    assert {"speed", "renders"} <= set(jobs), sorted(jobs)  # GPU rules of their own
    assert not {"report", "distill_set"} & set(jobs)  # localrules: run inside Snakemake
    assert {k: len(v) for k, v in jobs.items() if k != "pack_shards"} == dict.fromkeys(
        ["simulate", "ingest", "teacher", "teacher_validat", "distill", "pack_predict",
         "evaluate", "speed", "renders"], 1
    )  # fmt: skip
    assert all(j["Exit_status"] == 0 for js in jobs.values() for j in js)
    assert "evaluate" in jobs and len(jobs["pack_predict"]) == 1  # lerp, teacher, hyperinr
    assert "ngpus=2" in jobs["pack_predict"][0]["Resource_List"]["select"]  # lerp needs none

    (teacher,) = jobs["teacher"]
    argv = shlex.split(teacher["Submit_arguments"])
    assert argv[argv.index("-A") + 1] == "MyProject"
    assert argv[argv.index("-q") + 1] == "debug" and "-r" not in argv
    limits = [argv[i + 1] for i, a in enumerate(argv) if a == "-l"]
    assert "walltime=00:30:00" in limits  # config/test.yaml: resources.teacher.runtime 30
    (select,) = [x for x in limits if x.startswith("select=")]
    assert select.startswith("select=1:system=polaris") and ":ngpus=4" in select  # whole node
    assert ":ncpus=4" in select  # 4 ranks x runtime.threads (1 in config/test.yaml)
    for rule in ("simulate", "ingest", "evaluate"):
        assert "ngpus" not in jobs[rule][0]["Resource_List"]["select"], rule
    for rule in ("speed", "renders"):  # their own resources (once predict's)
        assert ":ngpus=1" in jobs[rule][0]["Resource_List"]["select"], rule

    script = Path(teacher["script"]).read_text()
    assert '"rule": "teacher"' in script and f"cd {work}" in script
    qsub_line = "qsub " + teacher["Submit_arguments"]
    (tmp_path / "teacher.qsub").write_text(qsub_line + "\n")
    (tmp_path / "teacher.pbs.sh").write_text(script)
    print(f"teacher qsub line:\n{qsub_line}\nteacher job script:\n{script}")
