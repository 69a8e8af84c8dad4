"""Is HyperINR better than interpolating the data? The paper's Fig. 13 for n-D parameters.

A mean PSNR hides where in parameter space a method wins; the paper shows the per-view PSNR
difference HyperINR - LERP as a scatter over (theta, phi), its kernel density, and a
one-sample t-test of "the difference is positive". Computed from metrics.csv over the unseen
frames only (LERP is exact on training frames by construction).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from hyperinr.data.store import open_dataset
from hyperinr.evaluate.figures import save_png
from hyperinr.evaluate.metrics import metric_columns, read_metrics
from hyperinr.infra.atomic import atomic_path


def psnr_differences(
    rows: list[dict[str, Any]], method: str, baseline: str
) -> tuple[np.ndarray, np.ndarray]:
    """(frames, PSNR(method) - PSNR(baseline)) over the unseen frames where both are finite."""
    by = {(r["frame"], r["method"]): r["psnr"] for r in rows if r["split"] == "unseen"}
    frames = sorted({f for f, m in by if m == method} & {f for f, m in by if m == baseline})
    diff = np.array([by[(f, method)] - by[(f, baseline)] for f in frames], dtype=np.float64)
    keep = np.isfinite(diff)
    return np.asarray(frames, dtype=np.int64)[keep], diff[keep]


def split_means(rows: list[dict[str, Any]], method: str) -> dict[str, float]:
    """Mean finite PSNR of `method` on the training and on the unseen views: a teacher far
    below the data on the very views it trained on is the limit of everything distilled."""
    out: dict[str, float] = {}
    for split in ("train", "unseen"):
        vals = [r["psnr"] for r in rows if r["method"] == method and r["split"] == split]
        vals = [v for v in vals if math.isfinite(v)]
        out[split] = float(np.mean(vals)) if vals else math.nan
    return out


def gain_test(diff: np.ndarray) -> dict[str, float]:
    """Mean, spread and the one-sample t-test (H1: mean difference > 0) of `diff`."""
    n = len(diff)
    out: dict[str, float] = {
        "n": n,
        "mean": float(np.mean(diff)) if n else math.nan,
        "std": float(np.std(diff, ddof=1)) if n > 1 else math.nan,
        "median": float(np.median(diff)) if n else math.nan,
        "share_positive": float(np.mean(diff > 0)) if n else math.nan,
    }
    if n > 1 and np.std(diff) > 0:
        test = stats.ttest_1samp(diff, 0.0, alternative="greater")
        out["t"], out["p"] = float(test.statistic), float(test.pvalue)
    else:
        out["t"], out["p"] = math.nan, math.nan
    return out


def _plot(
    path: Path,
    params: np.ndarray,
    train: np.ndarray,
    names: list[str],
    diff: np.ndarray,
    title: str,
) -> None:
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax_s, ax_k = fig.subplots(1, 2, width_ratios=[1.4, 1])
    lim = float(np.max(np.abs(diff))) if len(diff) else 1.0
    ax_s.scatter(train[:, 1], train[:, 0], marker="+", s=18, c="0.6", lw=0.8, label="training")
    sc = ax_s.scatter(
        params[:, 1],
        params[:, 0],
        c=diff,
        cmap="RdBu",
        vmin=-lim,
        vmax=lim,
        s=28,
        edgecolors="k",
        linewidths=0.3,
    )
    ax_s.set_xlabel(names[1])
    ax_s.set_ylabel(names[0])
    ax_s.set_title("PSNR difference per unseen view (dB)")
    ax_s.legend(loc="upper right", fontsize=7, framealpha=0.8)
    fig.colorbar(sc, ax=ax_s, label="HyperINR − LERP (dB)")
    if len(diff) > 1 and np.std(diff) > 0:
        grid = np.linspace(diff.min() - 0.5, diff.max() + 0.5, 256)
        density = stats.gaussian_kde(diff)(grid)
        ax_k.fill_between(grid, density, alpha=0.35)
        ax_k.plot(grid, density)
    ax_k.axvline(0.0, color="0.3", lw=1, ls="--")
    if len(diff):
        ax_k.axvline(
            float(np.mean(diff)), color="C3", lw=1.2, label=f"mean {np.mean(diff):+.2f} dB"
        )
        ax_k.legend(fontsize=8)
    ax_k.set_xlabel("HyperINR − LERP PSNR (dB)")
    ax_k.set_ylabel("density")
    ax_k.set_title("kernel density estimate")
    fig.suptitle(title, fontsize=10)
    save_png(fig, path, dpi=120)


def write_view_gain(
    dataset_path: str | Path,
    metrics_csv: str | Path,
    out_png: str | Path,
    out_md: str | Path,
    method: str = "hyperinr",
    baseline: str = "lerp",
) -> dict[str, Any]:
    """Fig. 13 (`out_png`) and a Markdown section with the t-test (`out_md`, for summary.md);
    returns the numbers (also in `out_md` with suffix .json)."""
    ds = open_dataset(dataset_path)
    if len(ds.param_names) < 2:
        raise ValueError(f"{ds.path}: view_gain needs 2 parameters, has {list(ds.param_names)}")
    rows = read_metrics(metrics_csv)
    methods = {r["method"] for r in rows}
    for m in (method, baseline):
        if m not in methods:
            raise ValueError(f"{metrics_csv}: no rows of method '{m}' (has {sorted(methods)})")
    frames, diff = psnr_differences(rows, method, baseline)
    result = {"method": method, "baseline": baseline, **gain_test(diff)}
    teacher = psnr_differences(rows, "teacher", baseline)[1] if "teacher" in methods else None
    if teacher is not None:
        result["teacher"] = gain_test(teacher)
    shown = [m for m in (method, "teacher", baseline) if m in methods]
    result["psnr_by_split"] = {m: split_means(rows, m) for m in shown}
    names = metric_columns(list(ds.param_names))[1:3]
    _plot(
        Path(out_png),
        ds.params[frames] if len(frames) else np.zeros((0, 2)),
        ds.params[ds.is_train()],
        names,
        diff,
        f"{ds.name}: {method} − {baseline} on {len(diff)} unseen views; one-sample t-test "
        f"(greater) p = {result['p']:.3g}",
    )
    lines = [
        f"## {method} vs {baseline} per unseen view (the paper's Fig. 13)",
        "",
        "| difference | views | mean (dB) | std | median | share > 0 | t | p (one-sided) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in [(f"{method} − {baseline}", result)] + (
        [(f"teacher − {baseline}", result["teacher"])] if teacher is not None else []
    ):
        lines.append(
            f"| {label} | {r['n']} | {r['mean']:+.2f} | {r['std']:.2f} | {r['median']:+.2f} | "
            f"{r['share_positive']:.0%} | {r['t']:.2f} | {r['p']:.3g} |"
        )
    verdict = (
        f"significantly better than {baseline} (p = {result['p']:.3g} < 0.05)"
        if result["p"] < 0.05
        else f"not shown better than {baseline} (p = {result['p']:.3g})"
    )
    lines += [
        "",
        f"- {method} is {verdict}; figure `view_gain.png`.",
        "",
        "Mean PSNR on the views each network trained on and on the unseen ones (the student "
        "cannot be better than its teacher where the teacher is the limit):",
        "",
        "| method | training views (dB) | unseen views (dB) |",
        "|---|---|---|",
    ]
    for m, by_split in result["psnr_by_split"].items():
        train = "exact" if m == baseline else f"{by_split['train']:.2f}"
        lines.append(f"| {m} | {train} | {by_split['unseen']:.2f} |")
    lines.append("")
    out_md = Path(out_md)
    with atomic_path(out_md) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    with atomic_path(out_md.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    return result
