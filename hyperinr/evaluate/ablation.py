"""Tables and plots of a finished ablation sweep (rules/ablation.smk; which runs a sweep is,
is hyperinr/sweeps.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from hyperinr.evaluate.figures import save_png, write_rows
from hyperinr.evaluate.metrics import read_metrics
from hyperinr.evaluate.report import method_means
from hyperinr.sweeps import LABELS, MODEL_LABELS, MODEL_SWEEPS, parse


def summarise(
    sweep: str,
    names: Sequence[str],
    metrics_csv: str | Path,
    infos: Sequence[str | Path],
    reference_csv: str | Path,
    out_csv: str | Path,
    out_png: str | Path,
) -> list[dict[str, Any]]:
    """One row per variant (mean unseen PSNR/SSIM, trainable parameters, distill wall time),
    the teacher's and LERP's unseen means from the pipeline's metrics.csv as references, a
    plot per swept key."""
    unseen = method_means(read_metrics(metrics_csv), "unseen")
    reference = method_means(read_metrics(reference_csv), "unseen")
    info_by = {}
    for p in map(Path, infos):
        info_by[p.parent.name] = json.loads(p.read_text())
    rows = []
    for name in names:
        key, value = parse(name)
        info = info_by.get(name, {})
        m = unseen.get(name, {"psnr": math.nan, "ssim": math.nan, "n": 0})
        rows.append({
            "sweep": sweep, "variant": name, "key": key, "value": value,
            "unseen_psnr": m["psnr"], "unseen_ssim": m["ssim"], "frames": m["n"],
            "parameters": info.get("parameters", ""),
            "distill_seconds": round(float(info.get("wall_seconds", math.nan)), 1),
            "steps": info.get("steps", ""),
        })  # fmt: skip
    for ref in ("teacher", "lerp", "hyperinr"):
        if ref in reference:
            rows.append({
                "sweep": sweep, "variant": f"reference {ref}", "key": "", "value": "",
                "unseen_psnr": reference[ref]["psnr"], "unseen_ssim": reference[ref]["ssim"],
                "frames": reference[ref]["n"], "parameters": "", "distill_seconds": "",
                "steps": "",
            })  # fmt: skip
    write_rows(out_csv, rows)
    _plot(Path(out_png), sweep, rows, reference)
    return rows


def _plot(path: Path, sweep: str, rows: list[dict[str, Any]], reference: dict) -> None:
    keys = list(dict.fromkeys(r["key"] for r in rows if r["key"]))
    fig = Figure(figsize=(4.2 * len(keys), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys), squeeze=False)[0])
    for ax, key in zip(axes, keys, strict=True):
        sel = sorted((r for r in rows if r["key"] == key), key=lambda r: r["value"])
        ax.plot([r["value"] for r in sel], [r["unseen_psnr"] for r in sel], "-o", color="C0",
                label="HyperINR variant")  # fmt: skip
        for ref, color in (("teacher", "C1"), ("lerp", "C2")):
            if ref in reference:
                ax.axhline(reference[ref]["psnr"], color=color, ls="--", lw=1, label=ref)
        if key in ("n_levels", "n_features_per_level"):  # log2 T is a log already
            ax.set_xscale("log", base=2)
        ax.set_xlabel(LABELS[key])
        ax.set_ylabel("mean PSNR, unseen frames (dB)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"ablation {sweep}: one HyperINR key varied, same teacher and set", fontsize=10)
    save_png(fig, path)


def summarise_models(
    sweep: str,
    names: Sequence[str],
    metrics_csv: str | Path,
    infos: Sequence[str | Path],
    reference_csv: str | Path,
    out_csv: str | Path,
    out_png: str | Path,
) -> list[dict[str, Any]]:
    """One row per model of a MODEL_SWEEPS sweep (mean unseen and training-frame PSNR/SSIM,
    trainable parameters, steps, training wall time), the pipeline's teacher, HyperINR and
    LERP as reference rows; the plot shows PSNR per frame (1-D) and the unseen means."""
    if sweep not in MODEL_SWEEPS:
        raise ValueError(f"unknown model ablation '{sweep}' (one of {', '.join(MODEL_SWEEPS)})")
    rows_in = read_metrics(metrics_csv)
    unseen, train = method_means(rows_in, "unseen"), method_means(rows_in, "train")
    reference = method_means(read_metrics(reference_csv), "unseen")
    info_by = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in infos}
    nan = {"psnr": math.nan, "ssim": math.nan, "n": 0}
    rows = []
    for name in names:
        info = info_by.get(name, {})
        u, t = unseen.get(name, nan), train.get(name, nan)
        rows.append({
            "sweep": sweep, "model": name, "label": MODEL_LABELS.get(name, name),
            "unseen_psnr": u["psnr"], "unseen_ssim": u["ssim"], "frames": u["n"],
            "train_psnr": t["psnr"], "train_ssim": t["ssim"],
            "parameters": info.get("parameters", ""), "budget": info.get("budget", ""),
            "steps": info.get("steps", ""),
            "train_seconds": round(float(info.get("wall_seconds", math.nan)), 1),
        })  # fmt: skip
    for ref in ("teacher", "hyperinr", "lerp"):
        if ref in reference:
            rows.append({
                "sweep": sweep, "model": f"reference {ref}", "label": f"pipeline {ref}",
                "unseen_psnr": reference[ref]["psnr"], "unseen_ssim": reference[ref]["ssim"],
                "frames": reference[ref]["n"], "train_psnr": "", "train_ssim": "",
                "parameters": "", "budget": "", "steps": "", "train_seconds": "",
            })  # fmt: skip
    write_rows(out_csv, rows)
    _plot_models(Path(out_png), sweep, names, rows_in, rows)
    return rows


def _plot_models(path: Path, sweep: str, names, frame_rows, rows) -> None:
    param_cols = [k for k in frame_rows[0] if k not in ("frame", "split", "method", "psnr", "ssim")]
    one_d = len(param_cols) == 1
    fig = Figure(figsize=(10.5 if one_d else 5.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if one_d else 1, squeeze=False)[0]
    if one_d:
        ax = axes[0]
        for c, name in enumerate(names):
            sel = sorted((r for r in frame_rows if r["method"] == name), key=lambda r: r["frame"])
            ax.plot([r[param_cols[0]] for r in sel], [r["psnr"] for r in sel], "-", lw=1.2,
                    color=f"C{c}", label=MODEL_LABELS.get(name, name))  # fmt: skip
        seen = sorted({r[param_cols[0]] for r in frame_rows if r["split"] == "train"})
        for x in seen:
            ax.axvline(x, color="0.85", lw=0.8, zorder=0)
        ax.set_xlabel(f"{param_cols[0]} (grey: training frames)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[-1]
    sel = [r for r in rows if not math.isnan(float(r["unseen_psnr"]))]
    colors = [f"C{names.index(r['model'])}" if r["model"] in names else "0.6" for r in sel]
    ax.barh([r["label"] for r in sel], [r["unseen_psnr"] for r in sel], color=colors)
    for y, r in enumerate(sel):
        count = f"  {int(r['parameters']):,} params" if r["parameters"] != "" else ""
        ax.text(r["unseen_psnr"], y, f" {r['unseen_psnr']:.2f}{count}", va="center", fontsize=7)
    lo = min(r["unseen_psnr"] for r in sel) if sel else 0.0
    hi = max(r["unseen_psnr"] for r in sel) if sel else 1.0
    ax.set_xlim(max(0.0, lo - 3), hi + 0.45 * (hi - lo + 3))
    ax.invert_yaxis()
    ax.set_xlabel("mean PSNR, unseen frames (dB)")
    ax.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"ablation {sweep}: models trained on the training frames", fontsize=10)
    save_png(fig, path)
