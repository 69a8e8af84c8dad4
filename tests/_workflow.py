"""The real workflow from the tests: copies of the workflow files, Snakemake in a subprocess,
and finished runs that many tests read but none changes.

A run shared by several tests (built once by a fixture) is a read-only template: a test that
runs Snakemake for real, or writes anything, first clones it into its own directory
(`clone_run`). Otherwise one test's rerun or retrained teacher becomes the next test's
starting point and the results depend on the order the tests ran in. `unchanged` makes that
mistake fail loudly instead of silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow", "config", "envs")
# a plain local run: no cluster profile's node shape (HYPERINR_NODE_GPUS & co.) leaks in
LOCAL_ENV = {k: v for k, v in os.environ.items() if not k.startswith("HYPERINR_")}


def copy_workflow(dest: Path) -> Path:
    """The workflow (not the package: that is installed) in `dest`, ready to run."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def clone_run(template: Path, dest: Path) -> Path:
    """A finished run copied whole: outputs with their mtimes and Snakemake's own records
    (.snakemake/), so Snakemake in the clone sees what it saw in the template (nothing to do)
    and a test's changes stay in the clone."""
    shutil.copytree(template, dest, symlinks=True)  # copy2: mtimes kept
    return dest


def snakemake(
    workdir: Path,
    *args: str,
    config: str = "config/test.yaml",
    targets: tuple[str, ...] = (),
    check: bool = True,
    timeout: int = 900,
) -> subprocess.CompletedProcess:
    """Snakemake on a tiny config; `targets` go first and `args` right after the config file,
    so a further config file there extends it (--configfile takes every word after it that
    is not an option)."""
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--configfile", config,
           *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env=LOCAL_ENV)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def planned(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The job counts of Snakemake's "Job stats" table (a dry run's plan)."""
    out = proc.stdout + proc.stderr
    if "Job stats:" not in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0].splitlines()[3:]
    return {line.split()[0]: int(line.split()[1]) for line in table if line.strip()}


# what a dry run writes, and nothing reads unless asked to (--trust-io-cache)
_SNAKEMAKE_SCRATCH = (".snakemake/iocache", ".snakemake/locks")


def _state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mtime: what Snakemake decides by, and what a test reads."""
    state = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if not p.is_dir() and not rel.startswith(_SNAKEMAKE_SCRATCH):
            state[rel] = (p.lstat().st_size, p.lstat().st_mtime_ns)
    return state


@contextmanager
def unchanged(root: Path) -> Iterator[None]:
    """Fails on leaving if anything under `root` was written, added or removed meanwhile."""
    before = _state(root)
    yield
    after = _state(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, (
        f"a test changed the shared run {root} (clone it with clone_run first): {changed[:10]}"
    )
