#!/usr/bin/env python3
"""Submit one Snakemake job to PBS Pro on ALCF Polaris (cluster-generic submit-cmd).

Snakemake (snakemake-executor-plugin-cluster-generic) calls this as
``pbs_submit.py <jobscript>``.  The job's rule, wildcards, threads and resources
are read from the ``# properties = {...}`` line Snakemake writes into every job
script, turned into PBS Pro ``qsub`` flags, and the job id printed by qsub is
printed as the first (only) line of stdout, which is what the plugin records.

Mapping (see docs/cluster.md):
  resources.pbs_account | $HYPERINR_PBS_ACCOUNT  -> -A   (required)
  resources.nodes (1), gpu (0), threads          -> -l select=N:system=polaris[:ngpus=G]:ncpus=T
  resources.runtime (minutes)                    -> -l walltime=HH:MM:SS (at least 5 min)
  nodes + runtime (hyperinr.cluster.polaris)     -> -q debug | debug-scaling | prod | preemptable
  resources.pbs_queue | $HYPERINR_PBS_QUEUE      -> -q that queue instead (checked: its limits)
  $HYPERINR_PBS_FILESYSTEMS (home:eagle)         -> -l filesystems=...
  $HYPERINR_PBS_PLACE (scatter)                  -> -l place=...
  always                                         -> -k doe -j oe -V -N <rule|group>
                                                    -o logs/pbs/<...>.log
  queue preemptable                              -> -r y (a preempted job is requeued and resumes)
  resources.gpu                                  -> -v HYPERINR_JOB_GPUS=G (0: no GPU slot taken)
  $HYPERINR_PBS_QSUB_ARGS                        -> appended verbatim (shlex-split)

A job no Polaris queue accepts (e.g. 1 node for more than 72 h, more than 4 GPUs per node)
is refused here with one line, and nothing reaches qsub.  Group jobs (the profile packs four
one-GPU jobs into one) are submitted like any job: their resources are the group's sums.

Jobs whose resources say ``pbs_local=1`` (or every CPU job when
``HYPERINR_PBS_LOCAL=cpu``) are not sent to PBS: they run in the background on
the submitting host (the login node) and get a ``local.<pid>`` job id that
pbs_status.py and pbs_cancel.py understand.

Besides the standard library it needs only the hyperinr package (hyperinr.cluster.polaris,
standard library only too): run Snakemake from the activated venv.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from hyperinr.cluster import gpus, polaris
from hyperinr.cluster.jobscript import int_resource, requested_gpus
from hyperinr.cluster.jobscript import job_properties as jobscript_props

PROG = "hyperinr-pbs-submit"
DEFAULT_FILESYSTEMS = "home:eagle"
DEFAULT_PLACE = "scatter"
DEFAULT_SYSTEM = "polaris"
DEFAULT_RUNTIME_MIN = 60
LOG_DIR = Path("logs") / "pbs"
LOCAL_STATE_DIR = Path(".snakemake") / "hyperinr-pbs-local"
TRANSIENT = re.compile(r"cannot connect|connection refused|timed out|try again|server busy", re.I)


class SubmitError(Exception):
    """A problem with the job or the environment: one line, no traceback."""


def read_job_properties(jobscript: str | os.PathLike) -> dict:
    """The job's properties (hyperinr.cluster.jobscript) and its attempt number."""
    try:
        props = jobscript_props(jobscript)
    except ValueError as err:
        raise SubmitError(str(err)) from None
    m = re.search(r"--attempt (\d+)", Path(jobscript).read_text())
    props["_attempt"] = int(m.group(1)) if m else 1
    return props


def _truthy(value) -> bool:
    return str(value).strip().lower() not in ("", "0", "false", "no", "none", "off")


def _int_resource(resources: dict, name: str, default: int) -> int:
    try:
        return int_resource(resources, name, default)
    except ValueError as err:
        raise SubmitError(str(err)) from None


def job_name(props: dict) -> str:
    """PBS job name: rule (or group) name, <=15 chars, starting with a letter."""
    base = props.get("rule") or props.get("groupid") or "snakejob"
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(base))
    if not name[:1].isalpha():
        name = "j" + name
    return name[:15]


def log_stem(props: dict) -> str:
    """Stable log-file stem: <rule>-<wildcard values> (or -<snakemake jobid>)."""
    base = str(props.get("rule") or f"group-{props.get('groupid', 'job')}")
    wildcards = props.get("wildcards") or {}
    if wildcards:
        tag = "_".join(str(v) for v in wildcards.values())
    else:
        tag = str(props.get("jobid", "0"))
    stem = re.sub(r"[^A-Za-z0-9_.=+-]", "_", f"{base}-{tag}")[:120]
    attempt = props.get("_attempt", 1)
    if attempt and int(attempt) > 1:
        stem += f".attempt{attempt}"
    return stem


def walltime(minutes: int) -> str:
    return polaris.walltime(max(1, int(minutes)))


def placement(resources: dict, env: dict) -> tuple[polaris.Placement, int]:
    """(queue placement, GPUs per node) of a job, or SubmitError saying why no queue takes it."""
    nodes = _int_resource(resources, "nodes", 1)
    gpus = _int_resource(resources, "gpu", 0)
    runtime = _int_resource(resources, "runtime", DEFAULT_RUNTIME_MIN)
    if runtime <= 0:
        runtime = DEFAULT_RUNTIME_MIN
    queue = str(resources.get("pbs_queue") or env.get("HYPERINR_PBS_QUEUE") or "")
    try:  # the same rules as the pre-flight check at parse time (rules/common.smk)
        return polaris.place(gpus, runtime, nodes, queue)
    except polaris.QueueError as err:
        raise SubmitError(f"{err}; nothing was submitted") from None


def job_gpus(resources: dict) -> int:
    """The job's GPUs (a group job's: the sum of its jobs')."""
    try:
        return requested_gpus(resources)
    except ValueError as err:
        raise SubmitError(str(err)) from None


def is_local(props: dict, env: dict) -> bool:
    mode = env.get("HYPERINR_PBS_LOCAL", "auto").strip().lower()
    resources = props.get("resources") or {}
    if mode == "none":
        return False
    if mode == "all":
        return True
    if mode == "cpu" and _int_resource(resources, "gpu", 0) == 0:
        return True
    return _truthy(resources.get("pbs_local", 0))


def account(props: dict, env: dict) -> str:
    acct = (props.get("resources") or {}).get("pbs_account") or env.get("HYPERINR_PBS_ACCOUNT", "")
    acct = str(acct).strip()
    if not acct:
        raise SubmitError(
            "no PBS project: export HYPERINR_PBS_ACCOUNT=<your ALCF project> "
            "(or set resources pbs_account); nothing was submitted"
        )
    return acct


def build_qsub_args(props: dict, env: dict | None = None, workdir: str | None = None) -> list[str]:
    """qsub arguments (without the program name and the job script) for a job."""
    env = dict(os.environ if env is None else env)
    workdir = workdir or os.getcwd()
    resources = props.get("resources") or {}
    where, gpus_per_node = placement(resources, env)
    threads = max(1, int(props.get("threads") or 1))

    chunk = [f"{where.nodes}", f"system={env.get('HYPERINR_PBS_SYSTEM', DEFAULT_SYSTEM)}"]
    if gpus_per_node:
        chunk.append(f"ngpus={gpus_per_node}")
    chunk.append(f"ncpus={min(threads, 64)}")

    args = [
        "-A",
        account(props, env),
        "-q",
        where.queue,
        "-l",
        "select=" + ":".join(chunk),
        "-l",
        f"walltime={polaris.walltime(where.minutes)}",
        "-l",
        f"filesystems={env.get('HYPERINR_PBS_FILESYSTEMS', DEFAULT_FILESYSTEMS)}",
        "-l",
        f"place={env.get('HYPERINR_PBS_PLACE', DEFAULT_PLACE)}",
        "-k",
        "doe",
        "-j",
        "oe",
        "-N",
        job_name(props),
        "-o",
        str(Path(workdir) / LOG_DIR / f"{log_stem(props)}.log"),
    ]
    if _truthy(env.get("HYPERINR_PBS_EXPORT_ENV", "1")):
        args.append("-V")
    # the job's GPU request, for its stages: a CPU job (0) takes no GPU slot (hyperinr.cluster.gpus)
    args += ["-v", f"{gpus.ENV_JOB_GPUS}={job_gpus(resources)}"]
    if where.rerunnable:
        args += ["-r", "y"]
    args += shlex.split(env.get("HYPERINR_PBS_QSUB_ARGS", ""))

    return args


def submit_pbs(jobscript: str, props: dict, env: dict) -> str:
    args = build_qsub_args(props, env)
    (Path.cwd() / LOG_DIR).mkdir(parents=True, exist_ok=True)  # PBS does not create it
    cmd = shlex.split(env.get("HYPERINR_PBS_QSUB", "qsub")) + args + [jobscript]
    print(f"{PROG}: {shlex.join(cmd)}", file=sys.stderr)
    attempts = max(1, int(env.get("HYPERINR_PBS_SUBMIT_ATTEMPTS", "3")))
    for attempt in range(1, attempts + 1):
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            res = None
            err = "qsub timed out after 120 s"
        except FileNotFoundError:
            raise SubmitError(
                f"{cmd[0]} not found on PATH (are you on a Polaris login node?)"
            ) from None
        else:
            err = res.stderr.strip() or res.stdout.strip()
            if res.returncode == 0:
                jobid = next((ln.strip() for ln in res.stdout.splitlines() if ln.strip()), "")
                if jobid:
                    return jobid
                err = "qsub printed no job id"
        if attempt < attempts and (res is None or TRANSIENT.search(err)):
            time.sleep(min(30, 5 * attempt))
            continue
        raise SubmitError(f"qsub failed: {err}")
    raise SubmitError("qsub failed")  # pragma: no cover


def submit_local(jobscript: str, props: dict) -> str:
    """Run the job script on this host, detached; id local.<pid>."""
    state = Path.cwd() / LOCAL_STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    (Path.cwd() / LOG_DIR).mkdir(parents=True, exist_ok=True)
    log = Path.cwd() / LOG_DIR / f"{log_stem(props)}.local.log"
    token = f"{os.getpid()}-{time.time_ns()}"
    rcfile = state / f"{token}.rc"
    # The wrapper writes the script's exit status atomically when it ends.
    wrapper = 'sh "$1"; rc=$?; echo $rc > "$2.tmp"; mv "$2.tmp" "$2"; exit $rc'
    with open(log, "ab") as out:
        job_env = {**os.environ, gpus.ENV_JOB_GPUS: str(job_gpus(props.get("resources") or {}))}
        proc = subprocess.Popen(
            ["/bin/sh", "-c", wrapper, "hyperinr-local-job", jobscript, str(rcfile)],
            env=job_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    (state / f"{proc.pid}.json").write_text(
        json.dumps(
            {
                "pid": proc.pid,
                "rcfile": str(rcfile),
                "log": str(log),
                "rule": props.get("rule"),
                "started": time.time(),
            }
        )
    )
    print(f"{PROG}: running {job_name(props)} locally (pid {proc.pid}, log {log})", file=sys.stderr)
    return f"local.{proc.pid}"


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(f"usage: {Path(argv[0]).name} <snakemake jobscript>", file=sys.stderr)
        return 2
    jobscript = os.path.abspath(argv[-1])
    env = dict(os.environ)
    try:
        props = read_job_properties(jobscript)
        account(props, env)  # fail before anything is started, local or not
        if is_local(props, env):
            jobid = submit_local(jobscript, props)
        else:
            jobid = submit_pbs(jobscript, props, env)
    except SubmitError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    print(jobid)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
