"""The stage record (`info.json` and friends): what a stage measured, on which machine, and
what produced its output. Every stage writes one and the report reads them all, so it lives
below both the training stages and the evaluation package."""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from hyperinr.infra.atomic import atomic_path


def _torch_version() -> str:
    """torch's version without importing it: LERP and evaluation run no network, and torch's
    import alone is ~220 MB of their runtime.memory_mb."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.__version__
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def write_info(path: str | Path, stage: str, wall_seconds: float, **extra: Any) -> Path:
    """Stage record read by the report: wall time, machine, and what the stage measured."""
    info = {
        "stage": stage,
        "wall_seconds": round(float(wall_seconds), 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "torch": _torch_version(),
        "device": extra.pop("device", "cpu"),
        **extra,
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
    return path
