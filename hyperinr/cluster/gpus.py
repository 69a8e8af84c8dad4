"""GPU slots of one node, so that jobs packed onto a node never share a GPU.

A Polaris job gets whole nodes (4 A100 each). The polaris profile packs up to four one-GPU jobs
into one PBS job (a Snakemake group job); Snakemake starts them side by side but assigns no
GPUs. Each stage therefore takes its own where its CLI verb starts (hyperinr.cli.main, through
hyperinr.infra.device.claim_gpus): `claim()` locks a free slot file per GPU (flock, in the
job's node-local $TMPDIR) and sets CUDA_VISIBLE_DEVICES before torch initialises CUDA. The
kernel drops the lock when the process ends, however it ends (exit, SIGKILL, preemption), so a
slot is never leaked and no bookkeeping survives a job.

Active only where the profile declares the node's GPUs (HYPERINR_NODE_GPUS, set by the polaris
profiles): elsewhere `claim()` does nothing. A process that already has CUDA_VISIBLE_DEVICES
(set by a launcher such as the polaris-allocation profile's, or by the user) keeps it, and
torchrun's ranks (WORLD_SIZE > 1) use what their launcher claimed for all of them:
`python -m hyperinr.cluster.gpus exec -n N -- torchrun ...` (rules/common.smk, trainer()).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

ENV_NODE_GPUS = "HYPERINR_NODE_GPUS"
ENV_JOB_GPUS = "HYPERINR_JOB_GPUS"  # GPUs the scheduler job asked for (polaris: qsub -v)
# rules that train (trainer() in rules/common.smk): a whole node where the profile declares one
TRAINING_RULES = ("teacher", "teacher_validation", "distill", "baseline", "ablation_model")
SLOT_DIR_PREFIX = "hyperinr-gpus."
_held: list[int] = []  # open, locked slot files of this process (kept until it exits)


class SlotError(RuntimeError):
    """No GPU slot can be had: one line for the job's log."""


def node_gpus(env: MutableMapping[str, str] | None = None) -> int:
    """GPUs of this node as the profile declares them (0: not a packed-node cluster)."""
    env = os.environ if env is None else env
    text = env.get(ENV_NODE_GPUS, "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise SlotError(f"{ENV_NODE_GPUS}={text!r} is not a number of GPUs")
    return int(text)


def job_gpus(env: MutableMapping[str, str] | None = None) -> int | None:
    """GPUs the scheduler job asked for (its resources.gpu, a group job's sum), as the polaris
    profile's submit script passes them (qsub -v HYPERINR_JOB_GPUS); None when not told."""
    env = os.environ if env is None else env
    text = env.get(ENV_JOB_GPUS, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise SlotError(f"{ENV_JOB_GPUS}={text!r} is not a number of GPUs")
    return int(text)


def slot_dir(env: MutableMapping[str, str] | None = None) -> Path:
    """The node-local lock directory of this PBS job ($TMPDIR is per job and per node)."""
    env = os.environ if env is None else env
    tmp = env.get("TMPDIR") or "/tmp"
    return Path(tmp) / f"{SLOT_DIR_PREFIX}{env.get('PBS_JOBID') or 'node'}"


def try_lock(path: Path) -> int | None:
    """An exclusive, non-blocking flock on `path` (the fd), or None when someone holds it: the
    kernel drops it however the holder dies, so a slot is never left taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def claim(
    n: int = 1, env: MutableMapping[str, str] | None = None, wait_s: float = 600.0
) -> str | None:
    """Take `n` free GPUs of this node for this process; returns CUDA_VISIBLE_DEVICES.

    Returns None (and changes nothing) when the node's GPUs are not declared or when this is a
    torchrun rank. A job that asked for no GPU (HYPERINR_JOB_GPUS=0: a CPU rule, resources gpu
    0) takes no slot: CUDA is hidden from it (CUDA_VISIBLE_DEVICES="", so device `auto` is the
    CPU) and "" is returned. Waits up to `wait_s` for slots held by other jobs, then raises
    SlotError.
    """
    env = os.environ if env is None else env
    total = node_gpus(env)
    if total == 0 or int(env.get("WORLD_SIZE", "1")) > 1:
        return None
    if env.get("CUDA_VISIBLE_DEVICES") is not None:
        visible = env["CUDA_VISIBLE_DEVICES"]
        _say(f"CUDA_VISIBLE_DEVICES={visible} on {socket.gethostname()} (set by the launcher)")
        return visible
    if job_gpus(env) == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
        _say(f"no GPU slot: the job asked for none ({ENV_JOB_GPUS}=0); CUDA hidden, CPU only")
        return ""
    if not 1 <= n <= total:
        raise SlotError(f"asked for {n} GPU slot(s) on a node of {total} GPU(s)")
    directory = slot_dir(env)
    directory.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        fds: list[tuple[int, int]] = []
        for i in range(total):
            fd = try_lock(directory / f"gpu{i}.lock")
            if fd is not None:
                fds.append((i, fd))
                if len(fds) == n:
                    break
        if len(fds) == n:
            break
        for _, fd in fds:
            os.close(fd)
        if time.monotonic() > deadline:
            raise SlotError(
                f"no {n} free GPU slot(s) of {total} in {directory} after {wait_s:.0f} s: "
                "more GPU jobs on this node than GPUs"
            )
        time.sleep(0.5)
    _held.extend(fd for _, fd in fds)
    visible = ",".join(str(i) for i, _ in fds)
    env["CUDA_VISIBLE_DEVICES"] = visible
    _say(
        f"GPU slot {visible} of {total} on {socket.gethostname()} "
        f"(CUDA_VISIBLE_DEVICES={visible}, job {env.get('PBS_JOBID', '-')}, pid {os.getpid()})"
    )
    return visible


def training_gpus(
    gpus_per_job: int, configured_gpu: int | None, env: MutableMapping[str, str] | None = None
) -> int:
    """GPUs of a training job (teacher, distill): the config's if it says, else a whole node.

    runtime.gpus_per_job above 1 wins; else resources.<rule>.gpu when the config sets it (so
    `resources: {teacher: {gpu: 1}}` keeps one GPU); else every GPU of a node where the profile
    declares them (HYPERINR_NODE_GPUS, the polaris profiles: 4); else 1.
    """
    if gpus_per_job > 1:
        return gpus_per_job
    if configured_gpu is not None:
        return int(configured_gpu)
    return node_gpus(env) or 1


def workflow_training_gpus(
    config: Mapping[str, Any], rule: str, env: MutableMapping[str, str] | None = None
) -> int:
    """`training_gpus` of training rule `rule` (teacher, distill, baseline) from the plain
    workflow config: what trainer() in rules/common.smk requests and launches, and the process
    count (at least 1) the rule passes to hyperinr.infra.provenance.stage_slice, whose slice
    records it as runtime.gpus_per_job, so a change of it reruns the training and is recorded."""
    runtime = config.get("runtime") or {}
    configured = ((config.get("resources") or {}).get(rule) or {}).get("gpu")
    return training_gpus(int(runtime.get("gpus_per_job", 1)), configured, env)


def training_launcher(gpus: int) -> str:
    """The command a training stage starts with: `hyperinr`, or torchrun over `gpus` GPUs of one
    node behind the slot picker (which claims all of them for the ranks)."""
    if gpus <= 1:
        return "hyperinr"
    return (
        f"python -m hyperinr.cluster.gpus exec -n {gpus} -- "
        f"torchrun --standalone --nproc_per_node {gpus} -m hyperinr.cli"
    )


def _say(text: str) -> None:
    print(f"hyperinr: {text}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    """`python -m hyperinr.cluster.gpus exec -n N -- CMD ...`: claim N slots, exec CMD.

    The locks stay held across exec (inheritable descriptors) and by CMD's children, e.g. the
    N ranks torchrun starts, until the last of them exits.
    """
    if len(argv) < 4 or argv[0] != "exec" or argv[1] != "-n" or "--" not in argv:
        print("usage: python -m hyperinr.cluster.gpus exec -n N -- CMD [ARGS...]", file=sys.stderr)
        return 2
    cmd = argv[argv.index("--") + 1 :]
    try:
        claim(int(argv[2]))
    except (SlotError, ValueError) as err:
        print(f"hyperinr: error: {err}", file=sys.stderr)
        return 1
    for fd in _held:
        os.set_inheritable(fd, True)
    os.execvp(cmd[0], cmd)
    return 127  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
