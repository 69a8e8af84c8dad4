"""Helpers for the cluster-profile tests: paths, Snakemake runner, local Slurm, fake PBS."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROFILES = REPO / "workflow" / "profiles"
POLARIS = PROFILES / "polaris"
TOY_SNAKEFILE = HERE / "toy" / "Snakefile"
FAKE_PBS_BIN = HERE / "fake_pbs"
FIXTURES = HERE / "fixtures"
# The real workflow through a scheduler checks orchestration, not quality: config/test.yaml
# with fewer training steps (written beside it as short_training.yaml; keeps CI inside 30 min)
SHORT_TRAINING = "teacher:\n  train: {steps: 300}\nhyperinr:\n  train: {steps: 100}\n"
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def base_env(**extra: str) -> dict:
    """os.environ with this interpreter's bin dir first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for key in list(env):
        if key.startswith(
            ("HYPERINR_PBS_", "HYPERINR_SLURM_", "FAKE_PBS_", "SLURM_", "SNAKEMAKE_PROFILE")
        ):
            del env[key]
    env.update(extra)
    return env


# --------------------------------------------------------------- snakemake ---
class SnakemakeRun:
    def __init__(self, returncode: int, log: Path, elapsed: float):
        self.returncode = returncode
        self.log = log
        self.elapsed = elapsed

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-n:])


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def start_snakemake(args: list[str], cwd: Path, env: dict, log: Path) -> subprocess.Popen:
    out = open(log, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_snakemake(proc: subprocess.Popen, log: Path, timeout: float, t0: float) -> SnakemakeRun:
    try:
        rc = proc.wait(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:])
        pytest.fail(f"snakemake did not finish within {timeout:.0f} s; log tail:\n{tail}")
    return SnakemakeRun(rc, log, time.monotonic() - t0)


def toy_workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


# ----------------------------------------------------------------- fake PBS ---
def fake_pbs_jobs(state: Path) -> list[dict]:
    jobs = []
    for path in sorted((state / "jobs").glob("*.json")):
        try:
            jobs.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            pass
    return jobs


def _kill_pid_group(pid) -> None:
    if not pid:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(int(pid), sig)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.2)


def kill_local_jobs(workdir: Path) -> None:
    """Kill jobs pbs_submit.py started on 'the login node' (pbs_local) in workdir."""
    for meta in (Path(workdir) / ".snakemake" / "hyperinr-pbs-local").glob("*.json"):
        try:
            pid = json.loads(meta.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            continue
        _kill_pid_group(pid)


# -------------------------------------------------------------------- Slurm ---
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_missing_reason() -> str | None:
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "srun"):
        if not shutil.which(tool, path=SBIN_PATH):
            return (
                f"{tool} is not installed: run tests/install_system_packages.sh "
                "(Debian: slurmctld slurmd slurm-client munge)"
            )
    if os.geteuid() != 0:
        return "a local Slurm needs root (slurmd launches jobs as their user)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "user 'munge' missing (install the munge package)"
    return None


class SlurmCluster:
    """One node `localhost` (16 CPUs, 64 GB, 2 fake A100 gres via config_overrides),
    partitions `debug` (default) and `gpu`; munge auth on a private socket."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: list[subprocess.Popen] = []
        self.conf = root / "slurm.conf"
        self.env: dict = {}

    def write_config(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "run", "bin"):
            (r / sub).mkdir()
        munge = r / "munge"
        munge.mkdir(mode=0o755)  # munged wants the socket dir world-executable
        key = munge / "munge.key"
        key.write_bytes(os.urandom(128))
        pw = pwd.getpwnam("munge")
        for p in (munge, key):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        os.chmod(key, 0o400)
        self.munge_socket = munge / "munge.socket"
        self.conf.write_text(
            f"""# written by tests/cluster/conftest.py
ClusterName=hyperinr-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
MinJobAge=300
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
GresTypes=gpu
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:a100:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
"""
        )
        (r / "gres.conf").write_text(
            "NodeName=localhost Name=gpu Type=a100 File=/dev/null\n"
            "NodeName=localhost Name=gpu Type=a100 File=/dev/zero\n"
        )
        # snakemake-executor-plugin-slurm-jobstep strips every SLURM_* variable,
        # SLURM_CONF included, before its nested srun; a real cluster has its
        # config in /etc/slurm, ours does not, so srun gets it from a wrapper.
        srun = r / "bin" / "srun"
        real_srun = shutil.which("srun", path=SBIN_PATH)
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {real_srun} "$@"\n')
        srun.chmod(0o755)
        self.env = base_env(SLURM_CONF=str(self.conf))
        self.env["PATH"] = os.pathsep.join([str(r / "bin"), self.env["PATH"]])

    def _spawn(self, argv, name, **kw) -> subprocess.Popen:
        err = open(self.root / "log" / f"{name}.stderr", "w")
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **kw,
        )
        self.procs.append(proc)
        return proc

    def start(self, timeout: float = 30) -> None:
        self.write_config()
        m = self.root / "munge"
        sbin = lambda tool: shutil.which(tool, path=SBIN_PATH)  # noqa: E731
        self._spawn(
            [
                sbin("munged"),
                "--foreground",
                f"--socket={self.munge_socket}",
                f"--key-file={m / 'munge.key'}",
                f"--log-file={m / 'munged.log'}",
                f"--pid-file={m / 'munged.pid'}",
                f"--seed-file={m / 'munged.seed'}",
            ],
            "munged",
            user="munge",
            group="munge",
            extra_groups=[],
        )
        deadline = time.monotonic() + timeout
        while not self.munge_socket.exists():
            self._check_alive(deadline, "munged")
        conf = str(self.conf)
        self._spawn([sbin("slurmctld"), "-D", "-i", "-f", conf], "slurmctld", env=self.env)
        self._spawn([sbin("slurmd"), "-D", "-N", "localhost", "-f", conf], "slurmd", env=self.env)
        while True:
            self._check_alive(deadline, "slurm")
            res = self.run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
            if res.returncode == 0 and set(res.stdout.split()) == {"idle"}:
                return

    def _check_alive(self, deadline: float, what: str) -> None:
        dead = [p for p in self.procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-15:])
                for f in sorted((self.root / "log").glob("*"))
                if f.is_file()
            )
            raise RuntimeError(f"local Slurm did not come up ({what}):\n{logs}")
        time.sleep(0.1)

    def run(self, argv, check=True, timeout=20) -> subprocess.CompletedProcess:
        argv = [shutil.which(argv[0], path=SBIN_PATH) or argv[0], *argv[1:]]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=check
        )

    def stop(self) -> None:
        """Cancel jobs, then stop slurmd, slurmctld, munged by PID (reaped)."""
        if self.procs and self.procs[-1].poll() is None:
            try:
                self.run(
                    ["scancel", "--quiet", "--user", pwd.getpwuid(os.getuid()).pw_name],
                    check=False,
                    timeout=10,
                )
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    res = self.run(
                        ["squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i"], check=False, timeout=10
                    )
                    if res.returncode != 0 or not res.stdout.strip():
                        break
                    time.sleep(0.5)
            except (subprocess.SubprocessError, OSError):
                pass
        for proc in reversed(self.procs):  # slurmd, slurmctld, munged
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
