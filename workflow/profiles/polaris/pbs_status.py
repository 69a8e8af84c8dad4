#!/usr/bin/env python3
"""Report a PBS Pro job's state to Snakemake (cluster-generic status-cmd).

Called as ``pbs_status.py <jobid>``; prints exactly one of ``running``,
``success``, ``failed`` on stdout and always exits 0 (a non-zero exit makes
the cluster-generic plugin abort the whole run).  Explanations go to stderr.

Uses ``qstat -fx -F json <jobid>`` (-x: finished jobs stay visible for the
server's job_history_duration):
  job_state Q/R/H/W/E/B/S/U/T/M/...      -> running
  job_state F/X with Exit_status 0       -> success
  job_state F/X with Exit_status != 0    -> failed   (1.. script exit, >256 killed
                                                      by signal 256+N, e.g. 271 = qdel's
                                                      SIGTERM, <0 PBS JOB_EXEC_* codes,
                                                      e.g. -29 walltime exceeded)
  job_state F/X without Exit_status      -> failed   (deleted before it ran)
  job_state H with a system hold         -> failed   (PBS gave up starting it)
  job unknown to qstat (vanished)        -> failed
  qstat keeps failing (N tries, backoff) -> failed   (never hangs: bounded timeouts)
Ids ``local.<pid>`` are jobs that pbs_submit.py ran on the login node.

Environment: HYPERINR_PBS_QSTAT (qstat command, default ``qstat``),
HYPERINR_PBS_STATUS_ATTEMPTS (4), HYPERINR_PBS_STATUS_RETRY_SLEEP (2 s, doubled
each retry), HYPERINR_PBS_STATUS_TIMEOUT (30 s per qstat call).
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

PROG = "hyperinr-pbs-status"
RUNNING, SUCCESS, FAILED = "running", "success", "failed"
LOCAL_STATE_DIR = Path(".snakemake") / "hyperinr-pbs-local"
UNKNOWN_JOB = re.compile(r"unknown job id|job .* does not exist", re.I)
# PBS Pro special exit values (JOB_EXEC_* in OpenPBS src/include/job.h).
EXIT_REASONS = {
    -1: "JOB_EXEC_FAIL1: job exec failed before files, no retry",
    -2: "JOB_EXEC_FAIL2: job exec failed after files, no retry",
    -3: "JOB_EXEC_RETRY: job execution failed, retry",
    -4: "JOB_EXEC_INITABT: job aborted on MoM initialization",
    -5: "JOB_EXEC_INITRST: job aborted on MoM init (checkpoint, no migrate)",
    -6: "JOB_EXEC_INITRMG: job aborted on MoM init (checkpoint, migrate)",
    -7: "JOB_EXEC_BADRESRT: job restart failed",
    -10: "JOB_EXEC_FAILUID: invalid uid/gid for job",
    -11: "JOB_EXEC_RERUN: job rerun",
    -12: "JOB_EXEC_CHKP: job checkpointed and killed",
    -13: "JOB_EXEC_FAIL_PASSWORD: bad password",
    -14: "JOB_EXEC_RERUN_SIS_FAIL: job rerun (sister MoM failed)",
    -15: "JOB_EXEC_QUERST: requeued for restart from checkpoint",
    -16: "JOB_EXEC_FAILHOOK_RERUN: a hook rejected the job (requeue)",
    -17: "JOB_EXEC_FAILHOOK_DELETE: a hook rejected the job (delete)",
    -18: "JOB_EXEC_HOOK_RERUN: a hook requeued the job",
    -19: "JOB_EXEC_HOOK_DELETE: a hook deleted the job",
    -20: "JOB_EXEC_RERUN_MS_FAIL: mother superior connection failed",
    -21: "JOB_EXEC_FAIL_SECURITY: security breach in PBS directory",
    -22: "JOB_EXEC_HOOKERROR: hook error or hook timeout",
    -23: "JOB_EXEC_FAIL_KRB5: no kerberos credentials",
    -24: "JOB_EXEC_KILL_NCPUS_BURST: ncpus exceeded (burst)",
    -25: "JOB_EXEC_KILL_NCPUS_SUM: ncpus exceeded (sum)",
    -26: "JOB_EXEC_KILL_VMEM: vmem exceeded",
    -27: "JOB_EXEC_KILL_MEM: mem exceeded",
    -28: "JOB_EXEC_KILL_CPUT: cput exceeded",
    -29: "JOB_EXEC_KILL_WALLTIME: walltime exceeded (raise the rule's runtime)",
    -30: "JOB_EXEC_JOINJOB: join job error",
}


def explain_exit(code: int) -> str:
    if code > 256:
        return f"killed by signal {code - 256} (qdel, walltime or preemption)"
    if code < 0:
        return EXIT_REASONS.get(code, "PBS JOB_EXEC_* failure")
    return f"job script exited {code}"


def _find_job(jobs: dict, jobid: str):
    if jobid in jobs:
        return jobs[jobid]
    short = jobid.split(".", 1)[0]
    for key, value in jobs.items():
        if key.split(".", 1)[0] == short:
            return value
    return None


def classify(qstat_stdout: str, jobid: str) -> tuple[str, str]:
    """(status, reason) from the stdout of ``qstat -fx -F json <jobid>``."""
    try:
        data = json.loads(qstat_stdout)
    except ValueError:
        # PBS Pro has emitted invalid JSON (unescaped characters in
        # Variable_List); fall back to the two attributes we need.
        state = re.search(r'"job_state"\s*:\s*"(\w)"', qstat_stdout)
        if not state:
            return FAILED, "qstat output is neither JSON nor has job_state"
        exit_m = re.search(r'"Exit_status"\s*:\s*(-?\d+)', qstat_stdout)
        hold_m = re.search(r'"Hold_Types"\s*:\s*"(\w*)"', qstat_stdout)
        job = {"job_state": state.group(1)}
        if exit_m:
            job["Exit_status"] = int(exit_m.group(1))
        if hold_m:
            job["Hold_Types"] = hold_m.group(1)
    else:
        job = _find_job((data or {}).get("Jobs") or {}, jobid)
        if job is None:
            return FAILED, "job not known to qstat (vanished)"
    state = str(job.get("job_state", "")).strip()
    if state in ("F", "X"):
        if "Exit_status" not in job:
            return FAILED, "job finished without an exit status (deleted before it ran?)"
        code = int(job["Exit_status"])
        if code == 0:
            return SUCCESS, "Exit_status 0"
        log = str(job.get("Output_Path", "")).split(":", 1)[-1]
        return FAILED, f"Exit_status {code}: {explain_exit(code)}" + (
            f" (log: {log})" if log else ""
        )
    if state == "H" and "s" in str(job.get("Hold_Types", "")):
        return FAILED, f"job is on a system hold: {job.get('comment', 'see qstat -f')}"
    if not state:
        return FAILED, "qstat returned no job_state"
    return RUNNING, f"job_state {state}"


def local_status(jobid: str) -> tuple[str, str]:
    try:
        pid = int(jobid.split(".", 1)[1])
    except (IndexError, ValueError):
        return FAILED, f"malformed local job id {jobid}"
    meta_path = Path.cwd() / LOCAL_STATE_DIR / f"{pid}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return FAILED, f"no record of local job {jobid} in {meta_path.parent}"
    rcfile = Path(meta["rcfile"])

    def read_rc():
        try:
            return int(rcfile.read_text().strip())
        except (OSError, ValueError):
            return None

    rc = read_rc()
    if rc is None and _alive(pid):
        return RUNNING, "local process alive"
    rc = read_rc() if rc is None else rc
    if rc is None:
        return FAILED, f"local job {pid} died without an exit status (see {meta.get('log')})"
    if rc == 0:
        return SUCCESS, "local job exited 0"
    return FAILED, f"local job exited {rc} (see {meta.get('log')})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def pbs_status(jobid: str, env: dict) -> tuple[str, str]:
    qstat = shlex.split(env.get("HYPERINR_PBS_QSTAT", "qstat"))
    attempts = max(1, int(env.get("HYPERINR_PBS_STATUS_ATTEMPTS", "4")))
    pause = float(env.get("HYPERINR_PBS_STATUS_RETRY_SLEEP", "2"))
    timeout = float(env.get("HYPERINR_PBS_STATUS_TIMEOUT", "30"))
    err = ""
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause * 2 ** (attempt - 1))
        try:
            res = subprocess.run(
                qstat + ["-fx", "-F", "json", jobid],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            err = f"qstat timed out after {timeout:g} s"
            continue
        except OSError as e:
            err = f"cannot run {qstat[0]}: {e}"
            continue
        if res.returncode == 0:
            return classify(res.stdout, jobid)
        err = res.stderr.strip() or res.stdout.strip() or f"exit {res.returncode}"
        if res.returncode == 153 or UNKNOWN_JOB.search(err):
            return FAILED, f"job not known to qstat (vanished): {err}"
    return (
        FAILED,
        f"qstat failed {attempts} times, giving up: {err.splitlines()[-1] if err else ''}",
    )


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {Path(argv[0]).name} <jobid>", file=sys.stderr)
        print(FAILED)
        return 0
    jobid = argv[1].strip()
    try:
        if jobid.startswith("local."):
            status, reason = local_status(jobid)
        else:
            status, reason = pbs_status(jobid, dict(os.environ))
    except Exception as e:  # never crash: the plugin would abort the run
        status, reason = FAILED, f"status check crashed: {e!r}"
    if status == FAILED:
        print(f"{PROG}: {jobid}: {status}: {reason}", file=sys.stderr)
    print(status)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
