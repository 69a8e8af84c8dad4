"""What every report figure and table writer shares: timed renders, row CSVs, PNG output.

One home, so the render grids (renders.py, shadows.py), the speed table and the ablation
tables write their files the same way: atomically, floats at full precision (repr).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.timing import timer


def timed(
    fn: Callable[[], torch.Tensor], device: torch.device | None
) -> tuple[torch.Tensor, float]:
    """(result, seconds), the device's queued work included (hyperinr.infra.timing)."""
    with timer(device) as elapsed:
        out = fn()
    return out, elapsed.seconds


def write_rows(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """rows (dicts with the same keys) as a CSV, floats as repr so nothing is rounded."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi)
