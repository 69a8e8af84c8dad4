"""What a Snakemake job script says about its job: the one reader of its `# properties = {...}`
line, shared by the polaris profile's qsub wrapper and the polaris-allocation launcher, so the
two cannot disagree about a job (e.g. how many GPUs it asked for). Standard library only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

PREFIX = "# properties = "


def job_properties(jobscript: str | os.PathLike) -> dict:
    """The job's properties (rule, wildcards, threads, resources, ...); ValueError naming the
    script when it has none."""
    for line in Path(jobscript).read_text().splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX) :])
    raise ValueError(f"no '{PREFIX.strip()}' line in job script {jobscript}")


def int_resource(resources: dict, name: str, default: int) -> int:
    """An integer resource, rounded up (a fractional request still needs the whole unit);
    ValueError naming it when it is not a number."""
    value = resources.get(name, default)
    if value is None or value == "":
        return default
    try:
        return int(math.ceil(float(value)))
    except (TypeError, ValueError):
        raise ValueError(f"resource {name}={value!r} is not a number") from None


def requested_gpus(resources: dict) -> int:
    """The GPUs a job asked for (a group job's: the sum Snakemake wrote)."""
    return max(0, int_resource(resources, "gpu", 0))
