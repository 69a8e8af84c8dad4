"""Run Snakemake's jobs on the nodes of the PBS allocation it runs in (polaris-allocation).

ALCF's pattern for many small tasks: one PBS job of N nodes, the workflow manager inside it,
one worker per GPU, tasks started on the nodes with `mpiexec` (hosts from $PBS_NODEFILE). Here
Snakemake is that manager: its global resource `gpu = 4 x N` (the profile) caps the GPU jobs in
flight, and this module is its cluster-generic executor backend:

* `submit JOBSCRIPT` starts a detached runner and prints `alloc.<token>`. The runner takes the
  job's GPUs on one node (flock'ed slot files `<host>.gpu<i>.lock` in
  .snakemake/hyperinr-allocation/, the kernel frees them when the runner dies), then runs
  `mpiexec -n 1 --ppn 1 --hosts HOST --env CUDA_VISIBLE_DEVICES=IDS /bin/sh JOBSCRIPT`, waits,
  frees the slots and only then records the exit status, so Snakemake never sees a job end
  while its GPUs are still held. A job asking 4 GPUs (training, DDP) gets a whole node.
* `status ID` prints running | success | failed; `cancel ID...` kills the runners' groups.

$HYPERINR_ALLOCATION_LAUNCHER replaces `mpiexec` (e.g. an ssh wrapper); the tests use a fake
mpiexec that runs on localhost aliases.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from hyperinr.cluster.gpus import try_lock
from hyperinr.cluster.jobscript import job_properties as read_properties
from hyperinr.cluster.jobscript import requested_gpus
from hyperinr.cluster.polaris import NODE_GPUS

PROG = "hyperinr-allocation"
STATE = Path(".snakemake") / "hyperinr-allocation"


class AllocationError(RuntimeError):
    """Not inside an allocation, or a job that cannot fit a node: one line."""


def allocation_hosts(env: dict[str, str] | None = None) -> list[str]:
    """The allocation's nodes, in $PBS_NODEFILE order, each once ([] outside a PBS job)."""
    env = dict(os.environ if env is None else env)
    path = env.get("PBS_NODEFILE", "")
    if not path or not os.path.isfile(path):
        return []
    hosts: list[str] = []
    for line in Path(path).read_text().split():
        if line not in hosts:
            hosts.append(line)
    return hosts


def job_properties(jobscript: str) -> dict:
    """The job's properties (hyperinr.cluster.jobscript)."""
    try:
        return read_properties(jobscript)
    except ValueError as err:
        raise AllocationError(str(err)) from None


def job_gpus(props: dict) -> int:
    try:
        gpus = requested_gpus(props.get("resources") or {})
    except ValueError as err:
        raise AllocationError(str(err)) from None
    if gpus > NODE_GPUS:
        raise AllocationError(
            f"job {props.get('rule') or props.get('groupid')} asks {gpus} GPUs; a node has "
            f"{NODE_GPUS} and jobs run on one node"
        )
    return gpus


def take_slots(
    hosts: list[str], gpus: int, state: Path, wait_s: float = 600
) -> tuple[str, list[int], list[int]]:
    """(host, GPU ids, locked fds): `gpus` free GPUs of one node; CPU jobs go to the node with
    the most free GPUs (they still run beside the GPU jobs, sharing its 32 cores)."""
    deadline = time.monotonic() + wait_s
    while True:
        if gpus == 0:
            free = []
            for host in hosts:
                fds = [try_lock(state / f"{host}.gpu{i}.lock") for i in range(NODE_GPUS)]
                free.append((sum(fd is not None for fd in fds), host))
                for fd in fds:
                    if fd is not None:
                        os.close(fd)
            return max(free, key=lambda x: x[0])[1], [], []
        for host in hosts:
            got: list[tuple[int, int]] = []
            for i in range(NODE_GPUS):
                fd = try_lock(state / f"{host}.gpu{i}.lock")
                if fd is not None:
                    got.append((i, fd))
                    if len(got) == gpus:
                        return host, [i for i, _ in got], [fd for _, fd in got]
            for _, fd in got:
                os.close(fd)
        if time.monotonic() > deadline:
            raise AllocationError(f"no node with {gpus} free GPU(s) after {wait_s:.0f} s")
        time.sleep(0.5)


def launch_command(host: str, gpu_ids: list[int], jobscript: str, env: dict[str, str]) -> list[str]:
    """mpiexec (Cray PALS on Polaris) starting one process on `host` with its GPUs."""
    launcher = shlex.split(env.get("HYPERINR_ALLOCATION_LAUNCHER", "mpiexec"))
    visible = ",".join(str(i) for i in gpu_ids)
    return [
        *launcher,
        "-n", "1", "--ppn", "1", "--hosts", host,
        "--env", f"CUDA_VISIBLE_DEVICES={visible}",
        "/bin/sh", jobscript,
    ]  # fmt: skip


def run(jobscript: str, token: str) -> int:
    """The detached runner of one job (see the module docstring)."""
    state = Path.cwd() / STATE
    rcfile = state / f"{token}.rc"
    rc = 1
    try:
        props = job_properties(jobscript)
        hosts = allocation_hosts()
        if not hosts:
            raise AllocationError("$PBS_NODEFILE is unset or missing: not inside a PBS job")
        host, ids, fds = take_slots(hosts, job_gpus(props), state)
        cmd = launch_command(host, ids, jobscript, dict(os.environ))
        meta = {"host": host, "gpus": ids, "start": time.time(), "cmd": cmd}
        (state / f"{token}.json").write_text(json.dumps(meta))
        print(f"{PROG}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        rc = subprocess.call(cmd, stdin=subprocess.DEVNULL)
        for fd in fds:  # free the GPUs before Snakemake can learn that the job ended
            os.close(fd)
        meta.update(end=time.time(), rc=rc)
        (state / f"{token}.json").write_text(json.dumps(meta))
    except (AllocationError, OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr, flush=True)
    tmp = rcfile.with_suffix(".tmp")
    tmp.write_text(str(rc))
    os.replace(tmp, rcfile)
    return rc


def submit(jobscript: str) -> str:
    props = job_properties(jobscript)
    job_gpus(props)  # refuse what cannot run before starting anything
    if not allocation_hosts():
        raise AllocationError(
            "$PBS_NODEFILE is unset: run snakemake --profile polaris-allocation inside a PBS job "
            "(workflow/profiles/polaris-allocation/job.pbs, or qsub -I)"
        )
    state = Path.cwd() / STATE
    state.mkdir(parents=True, exist_ok=True)
    logs = Path.cwd() / "logs" / "allocation"
    logs.mkdir(parents=True, exist_ok=True)
    name = props.get("rule") or f"group-{props.get('groupid', 'job')}"
    tag = "_".join(str(v) for v in (props.get("wildcards") or {}).values()) or str(
        props.get("jobid")
    )
    token = f"{time.time_ns()}-{os.getpid()}"
    log = logs / (re.sub(r"[^A-Za-z0-9_.=+-]", "_", f"{name}-{tag}")[:120] + ".log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyperinr.cluster.allocation", "run", jobscript, token],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    (state / f"{token}.pid").write_text(str(proc.pid))
    return f"alloc.{token}"


def status(jobid: str) -> str:
    token = jobid.removeprefix("alloc.")
    state = Path.cwd() / STATE
    rcfile = state / f"{token}.rc"
    if rcfile.exists():
        return "success" if rcfile.read_text().strip() == "0" else "failed"
    try:
        pid = int((state / f"{token}.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return "success" if rcfile.exists() and rcfile.read_text().strip() == "0" else "failed"
    return "running"


def cancel(jobids: list[str]) -> None:
    state = Path.cwd() / STATE
    for jobid in jobids:
        try:
            pid = int((state / f"{jobid.removeprefix('alloc.')}.pid").read_text())
            os.killpg(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass


def main(argv: list[str]) -> int:
    verb, args = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if verb == "submit" and args:
            print(submit(os.path.abspath(args[-1])))
        elif verb == "status" and args:
            print(status(args[0]))
        elif verb == "cancel":
            cancel(args)
        elif verb == "run" and len(args) == 2:
            return run(args[0], args[1])
        else:
            print(f"usage: {PROG} submit JOBSCRIPT | status ID | cancel ID...", file=sys.stderr)
            return 2
    except AllocationError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
