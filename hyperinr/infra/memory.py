"""`runtime.memory_mb`: what ingest, predict and evaluate may hold, checked before they start.

Each of those stages works in units whose size it knows in advance (one chunk-deep slab of a
frame; one evaluation block per thread), so whether the bound can be met is decided before any
work: a bound that cannot be met is one line naming the key and what to change, not an
out-of-memory kill an hour in. The process's own footprint (interpreter, numpy, zarr, torch
for the stages that run networks) counts: it is measured, not guessed, at the check.
"""

from __future__ import annotations

import resource
import sys

MB = 1 << 20


class MemoryBudgetError(ValueError):
    """A stage's smallest unit of work does not fit `runtime.memory_mb` (a config value the
    CLI reports in one line, as every other bad value)."""


def process_rss_bytes() -> int:
    """Peak resident set of this process so far: after imports it is what the stage starts
    with. On Linux VmHWM, not ru_maxrss: the kernel carries a forking parent's peak over exec
    into ru_maxrss, so a stage started by Snakemake would report Snakemake's. (ru_maxrss
    elsewhere: KiB, bytes on macOS.)"""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def check_budget(stage: str, memory_mb: int, work_bytes: int, what: str, advice: str) -> int:
    """Raise MemoryBudgetError unless the process's footprint plus `work_bytes` (the stage's
    working set, estimated from its unit of work) fits `memory_mb`; returns the bytes left
    over, which a stage may spend on parallelism."""
    base = process_rss_bytes()
    limit = int(memory_mb) * MB
    if base + work_bytes > limit:
        raise MemoryBudgetError(
            f"{stage}: runtime.memory_mb={memory_mb} cannot hold {what} "
            f"({work_bytes / MB:.0f} MB on top of the process's {base / MB:.0f} MB); {advice}"
        )
    return limit - base - work_bytes
