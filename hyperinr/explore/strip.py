"""A strip of explorer snapshots across the parameter range, for the report (rule
explore_snapshots): what a user would see dragging the slider, frozen at a few parameters.

The sweep runs along the last parameter (t for TSR; the azimuth phi for NVS and DGS) with the
others at the middle of their ranges, so the strip crosses training and unseen parameters
alike; each row is one method, rendered by the explorer's own `render_frame`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hyperinr.evaluate.figures import save_png, write_rows
from hyperinr.explore.frames import Explorer, FrameRequest
from hyperinr.render import Camera

STRIP_CAMERA = Camera(60.0, 35.0, 2.2, 40.0, 128, 128)  # the report's view, a small frame


def sweep_params(explorer: Explorer, count: int) -> list[tuple[float, ...]]:
    """`count` parameters evenly across the last parameter's range (others at mid-range)."""
    if count < 1:
        raise ValueError(f"explore-snapshots: --count must be >= 1, got {count}")
    ranges = explorer.space.ranges
    mids = [0.5 * (lo + hi) for lo, hi in ranges]
    lo, hi = ranges[-1]
    end = hi if not explorer.space.periodic[-1] else hi - (hi - lo) / count  # no duplicate seam
    return [(*mids[:-1], float(f"{v:.12g}")) for v in np.linspace(lo, end, count)]


def snapshot_strip(
    explorer: Explorer,
    out_png: str | Path,
    out_csv: str | Path,
    *,
    methods: list[str] | None = None,
    count: int = 6,
    camera: Camera = STRIP_CAMERA,
    n_steps: int = 96,
) -> list[dict[str, Any]]:
    """Render every (method, parameter) and write the grid PNG and a CSV of the timings."""
    methods = methods or [m for m in explorer.method_names if m != "ground truth"]
    params = sweep_params(explorer, count)
    names = explorer.space.names
    rows: list[dict[str, Any]] = []
    images: dict[tuple[int, int], np.ndarray] = {}
    for r, method in enumerate(methods):
        for c, p in enumerate(params):
            res = explorer.render_frame(FrameRequest(method, p, camera, n_steps=n_steps))
            images[(r, c)] = res.image
            rows.append({
                "method": method, **dict(zip(names, p, strict=True)),
                "frame": "" if res.frame is None else res.frame,
                "generate_ms": round(res.generate_ms, 4), "render_ms": round(res.render_ms, 1),
                "network_evaluations": res.field_evals,
                "psnr_vs_ground_truth": "" if res.psnr_db is None else round(res.psnr_db, 3),
            })  # fmt: skip
    write_rows(out_csv, rows)
    fig = Figure(figsize=(1.9 * len(params), 2.0 * len(methods) + 0.3))
    axes = fig.subplots(len(methods), len(params), squeeze=False)
    for (r, c), img in images.items():
        ax = axes[r][c]
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(", ".join(f"{n} = {v:.3g}" for n, v in zip(names, params[c], strict=True)),
                         fontsize=8)  # fmt: skip
        if c == 0:
            ax.set_ylabel(methods[r], fontsize=9)
    fig.tight_layout()
    save_png(fig, out_png)
    return rows
