"""A PBS Pro test double shaped like ALCF Polaris: qsub / qstat / qdel.

Not a scheduler: every accepted job starts at once on this machine.  What it
does check is what a real Polaris PBS Pro server rejects, so the profile's qsub
lines are validated for real:

* ``-A`` is required; ``-l walltime`` and ``-l filesystems`` are required;
* queue must be a Polaris queue and the job must fit its node/walltime limits;
* ``-l select`` must be well formed (``N:res=val:...[+...]``), name known
  resources, ask ``system=polaris`` and fit a node (4 GPUs, 64 ncpus);
* walltime ``[[HH:]MM:]SS`` with MM, SS < 60; ``place``, ``-k``, ``-j``, ``-r``,
  ``-N`` (<= 15 chars, starting with a letter) are checked;
* ``#PBS`` directives in the script are read, the command line wins.

State lives in ``$FAKE_PBS_STATE`` (one JSON file per job, written atomically).
Each job is run by a detached runner process: in ``$HOME`` (PBS starts jobs
there), with the submitter's environment only for ``-V`` (plus ``-v``), and
output spooled then delivered at the end, or written in place for ``-k d``.
Walltime is enforced: past ``walltime * $FAKE_PBS_WALLTIME_SCALE`` seconds the
job gets SIGTERM, then SIGKILL, and ``Exit_status`` -29 (JOB_EXEC_KILL_WALLTIME).
``qdel`` of a running job: SIGTERM/SIGKILL, ``Exit_status`` 256+signal (271).
``qdel`` of a queued job: finished without ``Exit_status``.

Whole nodes: a job of N nodes is charged N x 4 GPUs for its wall time whatever it asks
(``gpu_seconds_allocated``); ``gpu_seconds_used`` is measured by sampling, every 0.1 s, which
of the node's GPU slots are held (the flock'ed ``$TMPDIR/hyperinr-gpus.*/gpu<i>.lock`` files of
hyperinr.cluster.gpus, seen in /proc/locks the way nvidia-smi sees GPU processes); each job gets
its own ``$TMPDIR`` (node-local, as PBS makes one per job).  Preemption: ``qrerun <id>`` (what
the scheduler does to a preempted ``-r y`` job) kills the running job and requeues it under the
same id; it starts again (``run_count`` + 1, output appended); a job submitted with ``-r n``
cannot be rerun.  At most 20 queued or running ``preemptable`` jobs per project.

Knobs: FAKE_PBS_STATE (required), FAKE_PBS_SERVER (polaris-pbs-01),
FAKE_PBS_WALLTIME_SCALE (1.0), FAKE_PBS_QUEUE_SECONDS (0: time spent in Q),
FAKE_PBS_KILL_DELAY (2 s between SIGTERM and SIGKILL), FAKE_PBS_QSTAT_FAIL
(N: the next N qstat calls fail as if the server were down).
"""

from __future__ import annotations

import fcntl
import getopt
import json
import os
import pwd
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SERVER = os.environ.get("FAKE_PBS_SERVER", "polaris-pbs-01")
PBS_VERSION = "2022.1.4.20230614134139"
MIN_WALLTIME_S = 300  # 5 minutes, every Polaris queue
PREEMPTABLE_PER_PROJECT = 20
# queue: (min nodes, max nodes, max walltime seconds)
QUEUES = {
    "debug": (1, 2, 3600),
    "debug-scaling": (1, 10, 3600),
    "prod": (10, 496, 24 * 3600),
    "preemptable": (1, 10, 72 * 3600),
    "demand": (1, 56, 3600),
}
NODE_NGPUS, NODE_NCPUS = 4, 64
CHUNK_RESOURCES = {"system", "ngpus", "ncpus", "mem", "mpiprocs", "ompthreads", "host", "vnode"}
JOB_RESOURCES = {"select", "walltime", "place", "filesystems"}
FILESYSTEMS = {"home", "eagle", "grand", "swift", "flare"}
QSUB_OPTS = "a:A:e:hj:k:l:m:M:N:o:q:r:S:v:VW:z"
E_UNKNOWN_JOB = 153  # PBSE_UNKJOBID 15001 & 0xff
E_JOB_FINISHED = 35


class Reject(Exception):
    pass


# ----------------------------------------------------------------- state ---
def state_dir() -> Path:
    d = os.environ.get("FAKE_PBS_STATE")
    if not d:
        sys.stderr.write("fake PBS: FAKE_PBS_STATE is not set\n")
        sys.exit(2)
    p = Path(d)
    (p / "jobs").mkdir(parents=True, exist_ok=True)
    return p


def job_path(seq: int) -> Path:
    return state_dir() / "jobs" / f"{seq}.json"


def load(seq: int) -> dict | None:
    try:
        return json.loads(job_path(seq).read_text())
    except (OSError, ValueError):
        return None


def save(job: dict) -> None:
    path = job_path(job["seq"])
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(job, indent=1))
    os.replace(tmp, path)


def update(seq: int, **changes) -> dict:
    with open(state_dir() / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        job = load(seq)
        job.update(changes)
        job["mtime"] = time.time()
        save(job)
        return job


def next_seq() -> int:
    with open(state_dir() / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = state_dir() / "seq"
        seq = int(counter.read_text()) + 1 if counter.exists() else 1000
        counter.write_text(str(seq))
        return seq


def parse_id(text: str) -> int | None:
    m = re.fullmatch(r"(\d+)(\..*)?", text.strip())
    return int(m.group(1)) if m else None


def all_seqs() -> list[int]:
    return sorted(int(p.stem) for p in (state_dir() / "jobs").glob("*.json"))


# ------------------------------------------------------------ validation ---
def parse_duration(text: str) -> int:
    """PBS duration [[hours:]minutes:]seconds[.fraction] -> seconds."""
    bad = Reject("qsub: Illegal attribute or resource value Resource_List.walltime")
    m = re.fullmatch(r"(\d+)(?::(\d+))?(?::(\d+))?(?:\.\d+)?", text)
    if not m:
        raise bad
    parts = [int(x) for x in m.groups() if x is not None]
    if any(p >= 60 for p in parts[1:]):
        raise bad
    h, mi, s = [0] * (3 - len(parts)) + parts
    return h * 3600 + mi * 60 + s


def valid_place(text: str) -> bool:
    kinds = {
        "free": "a",
        "pack": "a",
        "scatter": "a",
        "vscatter": "a",
        "excl": "s",
        "shared": "s",
        "exclhost": "s",
    }
    seen = set()
    for token in text.split(":"):
        kind = "g" if re.fullmatch(r"group=\w+", token) else kinds.get(token)
        if kind is None or kind in seen:
            return False
        seen.add(kind)
    return bool(seen)


def parse_select(text: str) -> list[dict]:
    chunks = []
    for raw in text.split("+"):
        items = raw.split(":")
        count = 1
        if items and re.fullmatch(r"\d+", items[0]):
            count = int(items.pop(0))
            if count < 1:
                raise Reject("qsub: Illegal attribute or resource value Resource_List.select")
        chunk = {"count": count}
        if not items:
            raise Reject("qsub: Illegal attribute or resource value Resource_List.select")
        for item in items:
            m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=([^:=+\s]+)", item)
            if not m:
                raise Reject("qsub: Illegal attribute or resource value Resource_List.select")
            name, value = m.groups()
            if name not in CHUNK_RESOURCES:
                raise Reject(f"qsub: Unknown resource: {name}")
            if name in ("ngpus", "ncpus", "mpiprocs", "ompthreads") and not value.isdigit():
                raise Reject("qsub: Illegal attribute or resource value Resource_List.select")
            if name == "mem" and not re.fullmatch(
                r"\d+(b|kb|mb|gb|tb|w|kw|mw|gw|tw)?", value, re.I
            ):
                raise Reject("qsub: Illegal attribute or resource value Resource_List.select")
            chunk[name] = value
        if chunk.get("system") != "polaris":
            raise Reject("qsub: Job rejected: select must request system=polaris on Polaris")
        if int(chunk.get("ngpus", 0)) > NODE_NGPUS or int(chunk.get("ncpus", 1)) > NODE_NCPUS:
            raise Reject(
                "qsub: Job can never run: a Polaris node has "
                f"{NODE_NGPUS} ngpus and {NODE_NCPUS} ncpus"
            )
        chunks.append(chunk)
    return chunks


def validate(opts: dict, script: str) -> dict:
    """Return the job's Resource_List etc., or raise Reject with qsub's message."""
    if not opts.get("A"):
        raise Reject("qsub: Account_Name is required: specify a project with -A <project>")
    res = {}
    for spec in opts.get("l", []):
        for item in split_resources(spec):
            if "=" not in item:
                raise Reject(f"qsub: illegal -l value {item}")
            name, value = item.split("=", 1)
            if name not in JOB_RESOURCES:
                if name in CHUNK_RESOURCES:
                    raise Reject(
                        'qsub: "-lresource=" cannot be used with "select" or "place", '
                        f"resource is: {name}"
                    )
                raise Reject(f"qsub: Unknown resource: Resource_List.{name}")
            res[name] = value
    if "walltime" not in res:
        raise Reject("qsub: Job rejected: walltime is required (-l walltime=HH:MM:SS)")
    wall = parse_duration(res["walltime"])
    if wall <= 0:
        raise Reject("qsub: Illegal attribute or resource value Resource_List.walltime")
    if "filesystems" not in res:
        raise Reject("qsub: Resource: filesystems is required to be set.")
    fs = res["filesystems"].split(":")
    if not fs or any(f not in FILESYSTEMS for f in fs):
        raise Reject(
            f"qsub: Illegal filesystems value {res['filesystems']} (known: {sorted(FILESYSTEMS)})"
        )
    if "select" not in res:
        raise Reject("qsub: Job rejected: -l select=N:system=polaris is required")
    chunks = parse_select(res["select"])
    nodes = sum(c["count"] for c in chunks)
    if "place" in res and not valid_place(res["place"]):
        raise Reject("qsub: Illegal attribute or resource value Resource_List.place")
    queue = opts.get("q", "prod")
    if queue.split("@")[0] not in QUEUES:
        raise Reject("qsub: Unknown queue")
    lo, hi, max_wall = QUEUES[queue.split("@")[0]]
    if not lo <= nodes <= hi or wall > max_wall or wall < MIN_WALLTIME_S:
        raise Reject("qsub: Job violates queue and/or server resource limits")
    if queue.split("@")[0] == "preemptable":
        active = [
            j
            for j in map(load, all_seqs())
            if j
            and j["queue"] == queue
            and j["job_state"] != "F"
            and j["Account_Name"] == opts["A"]
        ]
        if len(active) >= PREEMPTABLE_PER_PROJECT:
            raise Reject(
                "qsub: would exceed queue preemptable's per-project limit of "
                f"{PREEMPTABLE_PER_PROJECT} jobs (running, accruing or queued)"
            )
    keep = opts.get("k", "n")
    if not (keep == "n" or re.fullmatch(r"(?!.*(.).*\1)[oed]+", keep)) or keep == "d":
        raise Reject("qsub: illegal -k value")
    if opts.get("j", "n") not in ("oe", "eo", "n"):
        raise Reject("qsub: illegal -j value")
    if opts.get("r", "y") not in ("y", "n"):
        raise Reject("qsub: illegal -r value")
    name = opts.get("N", Path(script).name)
    if not re.fullmatch(r"[A-Za-z][^\s@#:/\\]{0,14}", name):
        raise Reject("qsub: illegal -N value")
    ngpus = sum(c["count"] * int(c.get("ngpus", 0)) for c in chunks)
    ncpus = sum(c["count"] * int(c.get("ncpus", 1)) for c in chunks)
    return {
        "name": name,
        "queue": queue,
        "walltime_s": wall,
        "Resource_List": {
            "filesystems": res["filesystems"],
            "ncpus": ncpus,
            "ngpus": ngpus,
            "nodect": nodes,
            "place": res.get("place", "free"),
            "select": res["select"],
            "walltime": fmt_duration(wall),
        },
    }


def split_resources(spec: str) -> list[str]:
    return [s for s in spec.split(",") if s]


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def directives(script: str) -> list[str]:
    """#PBS lines before the first command, as qsub reads them."""
    args: list[str] = []
    for line in Path(script).read_text().splitlines():
        s = line.strip()
        if not s or (s.startswith("#") and not s.startswith("#PBS")):
            continue
        if s.startswith("#PBS"):
            args += shlex.split(s[4:], comments=True)
            continue
        break
    return args


def parse_opts(argv: list[str]) -> tuple[dict, list[str]]:
    try:
        pairs, rest = getopt.getopt(argv, QSUB_OPTS)
    except getopt.GetoptError as e:
        raise Reject(f"qsub: {e}\nusage: qsub [-A account] [-l resource_list] ... script") from None
    opts: dict = {}
    for flag, value in pairs:
        key = flag[1:]
        if key == "l":
            opts.setdefault("l", []).append(value)
        elif key in ("V", "h", "z"):
            opts[key] = True
        else:
            opts[key] = value
    return opts, rest


# ------------------------------------------------------------------ qsub ---
def qsub(argv: list[str]) -> int:
    try:
        cli, rest = parse_opts(argv)
        if len(rest) != 1:
            raise Reject("qsub: the fake needs exactly one job script argument (no stdin, no '--')")
        script = rest[0]
        if not os.path.isfile(script):
            raise Reject("qsub: script file:: No such file or directory")
        file_opts, _ = parse_opts(directives(script))
        opts = {**file_opts, **cli}
        if "l" in file_opts and "l" in cli:  # -l lists merge; command line wins per resource
            opts["l"] = file_opts["l"] + cli["l"]
        if opts.get("h"):
            raise Reject("qsub: the fake does not implement held jobs (-h)")
        info = validate(opts, script)
    except Reject as e:
        sys.stderr.write(f"{e}\n")
        return 1
    seq = next_seq()
    jobid = f"{seq}.{SERVER}"
    sd = state_dir()
    (sd / "scripts").mkdir(exist_ok=True)
    saved_script = sd / "scripts" / f"{seq}.SC"
    shutil.copyfile(script, saved_script)  # PBS copies the script at submission
    cwd = os.getcwd()
    host = socket.gethostname()
    join = opts.get("j", "n")
    default_out = os.path.join(cwd, f"{info['name']}.o{seq}")
    default_err = os.path.join(cwd, f"{info['name']}.e{seq}")
    env = dict(os.environ) if opts.get("V") else {}
    for item in (opts.get("v") or "").split(","):
        if item:
            k, _, v = item.partition("=")
            env[k] = v if _ else os.environ.get(k, "")
    now = time.time()
    job = {
        "seq": seq,
        "id": jobid,
        "Job_Name": info["name"],
        "Job_Owner": f"{pwd.getpwuid(os.getuid()).pw_name}@{host}",
        "job_state": "Q",
        "substate": 10,
        "queue": info["queue"],
        "Account_Name": opts["A"],
        "Resource_List": info["Resource_List"],
        "walltime_s": info["walltime_s"],
        "Join_Path": join,
        "Keep_Files": opts.get("k", "n"),
        "Rerunable": "True" if opts.get("r", "y") == "y" else "False",
        "Output_Path": absolute(opts.get("o", default_out), cwd),
        "Error_Path": absolute(opts.get("e", default_err), cwd),
        "Shell_Path_List": opts.get("S"),
        "Submit_arguments": shlex.join(argv),
        "Submit_Host": host,
        "PBS_O_WORKDIR": cwd,
        "env": env,
        "export_all": bool(opts.get("V")),
        "script": str(saved_script),
        "ctime": now,
        "qtime": now,
        "mtime": now,
        "comment": "Not Running: Not enough free nodes available",
    }
    save(job)
    runner = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "run", str(seq)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(sd / f"runner-{seq}.err", "w"),
        start_new_session=True,
        close_fds=True,
        env={**os.environ},
    )
    update(seq, runner_pid=runner.pid)
    if not opts.get("z"):
        print(jobid)
    return 0


def absolute(path: str, cwd: str) -> str:
    path = path.split(":", 1)[1] if re.match(r"^[\w.-]+:/", path) else path
    return path if os.path.isabs(path) else os.path.join(cwd, path)


# ---------------------------------------------------------------- runner ---
def run(seq: int) -> int:
    job = load(seq)
    delay = float(os.environ.get("FAKE_PBS_QUEUE_SECONDS", "0"))
    deadline = time.time() + delay
    qdel_flag = state_dir() / "jobs" / f"{seq}.qdel"
    while time.time() < deadline and not qdel_flag.exists():
        time.sleep(0.1)
    if qdel_flag.exists():
        update(
            seq,
            job_state="F",
            substate=91,
            comment="Job deleted before it ran",
            obittime=time.time(),
        )
        return 0
    home = os.environ.get("HOME") or "/"
    env = dict(job["env"])  # all of qsub's environment for -V, else only -v variables
    if not job["export_all"]:
        env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        {
            "HOME": home,
            "PBS_JOBID": job["id"],
            "PBS_JOBNAME": job["Job_Name"],
            "PBS_QUEUE": job["queue"],
            "PBS_O_WORKDIR": job["PBS_O_WORKDIR"],
            "PBS_O_HOST": job["Submit_Host"],
            "PBS_ENVIRONMENT": "PBS_BATCH",
            "PBS_ACCOUNT": job["Account_Name"],
        }
    )
    nodefile = state_dir() / "jobs" / f"{seq}.nodes"
    nodefile.write_text("localhost\n" * int(job["Resource_List"]["nodect"]))
    env["PBS_NODEFILE"] = str(nodefile)
    shell = job.get("Shell_Path_List") or pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    if not os.path.exists(shell) or shell.endswith("nologin"):
        shell = "/bin/sh"
    keep = job["Keep_Files"]
    direct = "d" in keep
    spool = state_dir() / "spool"
    spool.mkdir(exist_ok=True)
    out_final, err_final = job["Output_Path"], job["Error_Path"]
    out_path = out_final if direct and "o" in keep else str(spool / f"{seq}.OU")
    err_path = err_final if direct and "e" in keep else str(spool / f"{seq}.ER")
    undelivered = []

    def open_out(path, mode="w"):
        try:
            return open(path, mode)
        except OSError:
            undelivered.append(path)
            return open(spool / f"{seq}.undelivered", "a")

    limit = job["walltime_s"] * float(os.environ.get("FAKE_PBS_WALLTIME_SCALE", "1"))
    kill_delay = float(os.environ.get("FAKE_PBS_KILL_DELAY", "2"))
    nodes = int(job["Resource_List"]["nodect"])
    hosts = [f"x3004c0s{(seq + i) % 8}b0n{i % 2}" for i in range(nodes)]
    exec_host = "+".join(f"{h}/0*64" for h in hosts)
    on = "+".join(f"{h}:ncpus=64:ngpus={NODE_NGPUS}" for h in hosts)
    tmpdir = state_dir() / "jobs" / f"{seq}.tmp"  # PBS's per-job, node-local TMPDIR
    tmpdir.mkdir(exist_ok=True)
    env["TMPDIR"] = str(tmpdir)
    rerun_flag = state_dir() / "jobs" / f"{seq}.rerun"
    alloc_s = used_s = 0.0
    slots_used: set[str] = set()
    run_count = 0
    exit_status = None
    reason = ""
    first_start = None
    while True:
        run_count += 1
        mode = "w" if run_count == 1 else "a"
        out = open_out(out_path, mode)
        err = out if job["Join_Path"] == "oe" else open_out(err_path, mode)
        start = time.time()
        first_start = first_start or start
        proc = subprocess.Popen(
            [shell, job["script"]],
            cwd=home if os.path.isdir(home) else "/",
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        update(
            seq,
            job_state="R",
            substate=42,
            stime=start,
            pid=proc.pid,
            run_count=run_count,
            exec_host=exec_host,
            comment=f"Job run at {time.ctime(start)} on ({on})",
        )
        requeued = False
        last = start
        while True:
            try:
                rc = proc.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            now = time.time()
            held = held_gpu_slots(tmpdir)
            used_s += (now - last) * len(held)
            slots_used |= held
            last = now
            elapsed = now - start
            if rerun_flag.exists():
                requeued = True
                out.write(f"=>> PBS: job {job['id']} preempted: killed and requeued (-r y)\n")
                out.flush()
                update(seq, job_state="E", substate=51)
                terminate(proc, kill_delay)
                rc = proc.wait()
                rerun_flag.unlink()
                break
            if qdel_flag.exists() or elapsed > limit:
                if not qdel_flag.exists():
                    exit_status = -29
                    limit_s = job["walltime_s"]
                    used = max(limit_s + 1, int(elapsed * limit_s / max(limit, 1e-9)))
                    reason = f"=>> PBS: job killed: walltime {used} exceeded limit {limit_s}\n"
                    out.write(reason)
                    out.flush()
                update(seq, job_state="E", substate=51)
                terminate(proc, kill_delay)
                rc = proc.wait()
                break
        end = time.time()
        alloc_s += (end - start) * nodes * NODE_NGPUS
        out.close()
        if err is not out:
            err.close()
        if not requeued:
            break
        update(
            seq,
            job_state="Q",
            substate=10,
            comment=f"Job requeued after preemption at {time.ctime(end)} (run {run_count})",
            gpu_seconds_allocated=round(alloc_s, 3),
            gpu_seconds_used=round(used_s, 3),
        )
    start = first_start
    if exit_status is None:
        exit_status = rc if rc >= 0 else 256 + (-rc)
    for src, dst in ((out_path, out_final), (err_path, err_final)):
        if (
            src != dst
            and os.path.exists(src)
            and not (job["Join_Path"] == "oe" and dst == err_final)
        ):
            try:
                shutil.move(src, dst)
            except OSError:
                undelivered.append(dst)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cput = usage.ru_utime + usage.ru_stime
    wall = end - start
    comment = f"Job run at {time.ctime(start)} on ({on}) and finished"
    if qdel_flag.exists():
        comment = f"Job run at {time.ctime(start)} and deleted by user"
    elif exit_status == -29:
        comment = f"Job run at {time.ctime(start)} and killed: walltime exceeded"
    if undelivered:
        comment += f"; output undeliverable: {', '.join(undelivered)}"
    update(
        seq,
        job_state="F",
        substate=92 if not qdel_flag.exists() else 91,
        Exit_status=exit_status,
        obittime=end,
        comment=comment,
        gpu_seconds_allocated=round(alloc_s, 3),
        gpu_seconds_used=round(used_s, 3),
        gpu_slots_used=sorted(slots_used),
        resources_used={
            "cpupercent": int(100 * cput / wall) if wall > 0 else 0,
            "cput": fmt_duration(cput),
            "mem": f"{usage.ru_maxrss}kb",
            "ncpus": job["Resource_List"]["ncpus"],
            "vmem": f"{usage.ru_maxrss}kb",
            "walltime": fmt_duration(wall),
        },
    )
    return 0


def held_gpu_slots(tmpdir: Path) -> set[str]:
    """GPU slot files of this job that some process holds locked right now (/proc/locks)."""
    slots = list(tmpdir.glob("hyperinr-gpus.*/gpu*.lock"))
    if not slots:
        return set()
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return set()
    locked = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] != "->":
            locked.add(fields[5].rsplit(":", 1)[-1])
    held = set()
    for path in slots:
        try:
            if str(path.stat().st_ino) in locked:
                held.add(path.stem)
        except OSError:
            pass
    return held


def terminate(proc: subprocess.Popen, delay: float) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ----------------------------------------------------------------- qstat ---
def render(job: dict) -> dict:
    """A job the way `qstat -f -F json` shows it."""
    out = {
        "Job_Name": job["Job_Name"],
        "Job_Owner": job["Job_Owner"],
        "job_state": job["job_state"],
        "queue": job["queue"],
        "server": SERVER,
        "Account_Name": job["Account_Name"],
        "Checkpoint": "u",
        "ctime": time.ctime(job["ctime"]),
        "Error_Path": f"{job['Submit_Host']}:{job['Error_Path']}",
        "Hold_Types": "n",
        "Join_Path": job["Join_Path"],
        "Keep_Files": job["Keep_Files"],
        "Mail_Points": "a",
        "mtime": time.ctime(job["mtime"]),
        "Output_Path": f"{job['Submit_Host']}:{job['Output_Path']}",
        "Priority": 0,
        "qtime": time.ctime(job["qtime"]),
        "Rerunable": job["Rerunable"],
        "Resource_List": job["Resource_List"],
        "substate": job["substate"],
        "Variable_List": {"PBS_O_WORKDIR": job["PBS_O_WORKDIR"], "PBS_O_HOST": job["Submit_Host"]},
        "comment": job.get("comment", ""),
        "Submit_arguments": job["Submit_arguments"],
        "project": "_pbs_project_default",
        "Submit_Host": job["Submit_Host"],
    }
    if "stime" in job:
        out["stime"] = time.ctime(job["stime"])
        out["exec_host"] = job["exec_host"]
        out["run_count"] = job["run_count"]
    if "resources_used" in job:
        out["resources_used"] = job["resources_used"]
    elif job["job_state"] in ("R", "E") and "stime" in job:
        out["resources_used"] = {"walltime": fmt_duration(time.time() - job["stime"])}
    if "Exit_status" in job:
        out["Exit_status"] = job["Exit_status"]
    if job["job_state"] == "F":
        out["history_timestamp"] = int(job.get("obittime", job["mtime"]))
    return out


def qstat_server_down() -> bool:
    """FAKE_PBS_QSTAT_FAIL=N: the next N qstat calls fail (counted in state)."""
    n = int(os.environ.get("FAKE_PBS_QSTAT_FAIL", "0") or 0)
    if n <= 0:
        return False
    with open(state_dir() / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counter = state_dir() / "qstat_failures"
        done = int(counter.read_text()) if counter.exists() else 0
        if done >= n:
            return False
        counter.write_text(str(done + 1))
        return True


def qstat(argv: list[str]) -> int:
    try:
        pairs, ids = getopt.getopt(argv, "fxF:H")
    except getopt.GetoptError as e:
        sys.stderr.write(f"qstat: {e}\n")
        return 2
    flags = dict(pairs)
    full, history, fmt = "-f" in flags, "-x" in flags or "-H" in flags, flags.get("-F", "")
    if qstat_server_down():
        sys.stderr.write(
            f"Connection refused\nqstat: cannot connect to server {SERVER} (errno=15010)\n"
        )
        return 2
    rc = 0
    jobs = {}
    targets = ids or [str(s) for s in all_seqs()]
    for text in targets:
        seq = parse_id(text)
        job = load(seq) if seq is not None else None
        if job is None:
            sys.stderr.write(f"qstat: Unknown Job Id {text}\n")
            rc = E_UNKNOWN_JOB
            continue
        if job["job_state"] == "F" and not history:
            if ids:
                sys.stderr.write(
                    f"qstat: {job['id']} Job has finished, use -x or -H to obtain "
                    "historical job information\n"
                )
                rc = E_JOB_FINISHED
            continue
        jobs[job["id"]] = render(job)
    if fmt == "json":
        doc = {"timestamp": int(time.time()), "pbs_version": PBS_VERSION, "pbs_server": SERVER}
        if jobs:
            doc["Jobs"] = jobs
        print(json.dumps(doc, indent=4))
    elif full:
        for jobid, attrs in jobs.items():
            print(f"Job Id: {jobid}")
            for k, v in attrs.items():
                if isinstance(v, dict):
                    for k2, v2 in v.items():
                        print(f"    {k}.{k2} = {v2}")
                else:
                    print(f"    {k} = {v}")
            print()
    elif jobs:
        print("Job id            Name             User              Time Use S Queue")
        print("----------------  ---------------- ----------------  -------- - -----")
        for jobid, a in jobs.items():
            used = a.get("resources_used", {}).get("cput", "0")
            print(
                f"{jobid[:16]:<17} {a['Job_Name'][:16]:<16} {a['Job_Owner'].split('@')[0][:16]:<16}"
                f"  {used:>8} {a['job_state']} {a['queue']}"
            )
    return rc


# ------------------------------------------------------------------ qdel ---
def qdel(argv: list[str]) -> int:
    try:
        _, ids = getopt.getopt(argv, "xW:")
    except getopt.GetoptError as e:
        sys.stderr.write(f"qdel: {e}\n")
        return 2
    rc = 0
    for text in ids:
        seq = parse_id(text)
        job = load(seq) if seq is not None else None
        if job is None:
            sys.stderr.write(f"qdel: Unknown Job Id {text}\n")
            rc = E_UNKNOWN_JOB
            continue
        if job["job_state"] == "F":
            sys.stderr.write(f"qdel: Job has finished {job['id']}\n")
            rc = E_JOB_FINISHED
            continue
        (state_dir() / "jobs" / f"{seq}.qdel").write_text(str(time.time()))
    return rc


# ---------------------------------------------------------------- qrerun ---
def qrerun(argv: list[str]) -> int:
    """Requeue running jobs, as the scheduler does to preempted rerunnable jobs."""
    try:
        _, ids = getopt.getopt(argv, "fW:")
    except getopt.GetoptError as e:
        sys.stderr.write(f"qrerun: {e}\n")
        return 2
    rc = 0
    for text in ids:
        seq = parse_id(text)
        job = load(seq) if seq is not None else None
        if job is None:
            sys.stderr.write(f"qrerun: Unknown Job Id {text}\n")
            rc = E_UNKNOWN_JOB
        elif job["Rerunable"] != "True":
            sys.stderr.write(f"qrerun: Job is not rerunnable {job['id']}\n")
            rc = 1
        elif job["job_state"] != "R":
            sys.stderr.write(f"qrerun: Request invalid for state of job {job['id']}\n")
            rc = 1
        else:
            (state_dir() / "jobs" / f"{seq}.rerun").write_text(str(time.time()))
    return rc


def main() -> int:
    prog = Path(sys.argv[0]).name
    if prog == "_fakepbs.py" and len(sys.argv) == 3 and sys.argv[1] == "run":
        return run(int(sys.argv[2]))
    return {"qsub": qsub, "qstat": qstat, "qdel": qdel, "qrerun": qrerun}[prog](sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
