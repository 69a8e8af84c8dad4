"""Speed figures of a trained pipeline, measured side by side in one process (Fig. 12, Table 2).

This machine (and a shared node) is noisy: absolute times drift with the load, ratios measured
in one run do not. So every figure here comes from `side_by_side`: warm-up calls first (JIT,
allocator, caches), then interleaved rounds, every case once per round, medians over rounds;
a ratio is always two medians of the same run.

Measured on the pipeline's own models and device:
- inference bandwidth (samples/s) of the INR HyperINR generates vs the CoordNet teacher, at
  batch 2^16 and 2^18, and their ratio (paper: ~100x on an A100);
- INR generation latency (the KD-tree / bracket lookup + blending K tables + the frozen MLP
  handed out) next to the time to copy the same number of bytes (one table): the
  memory-bound floor that any blend must pay;
- the wall time of each training stage from its info.json (the paper's Table 2).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.evaluate.figures import write_rows
from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.infra.timing import synchronize, timer
from hyperinr.models.coordnet import load_teacher, to_teacher_range
from hyperinr.models.hyperinr import load_hyperinr

BATCHES = (2**16, 2**18)


def side_by_side(
    cases: Mapping[str, Callable[[], Any]],
    rounds: int = 5,
    warmup: int = 1,
    device: torch.device | None = None,
) -> dict[str, float]:
    """Median seconds per call of every case: `warmup` untimed calls each, then `rounds`
    interleaved rounds (case order rotates per round so no case always runs first)."""
    if rounds < 1:
        raise ValueError("side_by_side: rounds must be >= 1")
    names = list(cases)
    for name in names:
        for _ in range(warmup):
            cases[name]()
    synchronize(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            with timer(device) as elapsed:
                cases[name]()
            times[name].append(elapsed.seconds)
    return {n: statistics.median(ts) for n, ts in times.items()}


def _stage_walls(infos: Sequence[str | Path]) -> list[dict[str, Any]]:
    rows = []
    for path in map(Path, infos):
        info = json.loads(path.read_text())
        if info.get("stage") in ("teacher", "distill_set", "distill"):
            rows.append(
                {"figure": "stage wall time", "case": info["stage"], "batch": "",
                 "value": round(float(info["wall_seconds"]), 3), "unit": "s", "ratio": ""}
            )  # fmt: skip
    return rows


def measure_speed(
    dataset_params01: np.ndarray,
    teacher_path: str | Path,
    model_path: str | Path,
    infos: Sequence[str | Path],
    device_name: str = "auto",
    threads: int = 2,
    rounds: int = 5,
    batches: Sequence[int] = BATCHES,
) -> list[dict[str, Any]]:
    """The rows of speed.csv: {figure, case, batch, value, unit, ratio}."""
    configure_threads(threads)
    device = resolve_device(device_name)
    teacher, _ = load_teacher(teacher_path, device)
    hyper, _ = load_hyperinr(model_path, device)
    n_spatial = hyper.encoding.n_input_dims
    theta = np.asarray(dataset_params01[len(dataset_params01) // 2], dtype=np.float64)
    inr = hyper.generate(theta)
    rows: list[dict[str, Any]] = []
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in batches:
            x01 = torch.rand(batch, n_spatial, generator=gen).to(device)
            theta_t = torch.as_tensor(theta, dtype=torch.float32, device=device)
            x_teacher = torch.cat(
                [to_teacher_range(theta_t).expand(batch, -1), to_teacher_range(x01)], dim=1
            )
            med = side_by_side(
                {"inr": lambda x=x01: inr(x), "teacher": lambda x=x_teacher: teacher(x)},
                rounds=rounds,
                device=device,
            )
            for case in ("inr", "teacher"):
                rows.append(
                    {"figure": "inference bandwidth", "case": case, "batch": batch,
                     "value": round(batch / med[case]), "unit": "samples/s",
                     "ratio": round(med["teacher"] / med[case], 3)}
                )  # fmt: skip
        table = hyper.tables[0].detach()
        thetas = np.random.default_rng(0).random((64, dataset_params01.shape[1]))
        counter = iter(range(10**9))

        def generate() -> None:
            hyper.generate(thetas[next(counter) % len(thetas)])

        med = side_by_side(
            {"generate": generate, "copy": lambda: table.clone()},
            rounds=max(rounds, 50),
            device=device,
        )
    kind = "1-D bracket" if dataset_params01.shape[1] == 1 else "n-D KD-tree"
    rows.append(
        {"figure": "generation latency", "case": f"generate ({kind} + blend)", "batch": "",
         "value": round(med["generate"] * 1e3, 4), "unit": "ms",
         "ratio": round(med["generate"] / med["copy"], 3)}
    )  # fmt: skip
    rows.append(
        {"figure": "generation latency", "case": f"copy {table.numel() * 4:,} bytes (floor)",
         "batch": "", "value": round(med["copy"] * 1e3, 4), "unit": "ms", "ratio": 1.0}
    )  # fmt: skip
    rows.extend(_stage_walls(infos))
    for r in rows:
        r["device"] = str(device)
    return rows


def write_speed(rows: list[dict[str, Any]], out_csv: str | Path, out_md: str | Path) -> None:
    """speed.csv and the summary's section (ratios: inference = teacher time / INR time,
    generation = generate time / copy time)."""
    write_rows(out_csv, rows)
    device = rows[0]["device"]
    lines = [
        f"## Speed (measured side by side in one process on {device})",
        "",
        "| figure | case | batch | value | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "" if r["ratio"] == "" else f"{r['ratio']}x"
        value = f"{r['value']:,}" if isinstance(r["value"], int) else f"{r['value']}"
        lines.append(
            f"| {r['figure']} | {r['case']} | {r['batch']} | {value} {r['unit']} | {ratio} |"
        )
    lines += [
        "",
        "- inference ratio = the teacher's time / the generated INR's time for the same batch;",
        "  generation ratio = generation time / the time to copy one table's bytes (the floor).",
        "",
    ]
    with atomic_path(Path(out_md)) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
