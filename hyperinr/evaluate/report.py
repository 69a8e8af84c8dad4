"""The evaluation report: summary.md, psnr_ssim.png and slices.png.

Numbers in summary.md are means of metrics.csv (NaN frames left out, counted), so the tables
can always be recomputed from the csv. Plots use matplotlib's Agg canvas directly (no pyplot,
no global backend switch), colours fixed per method across figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hyperinr.data.store import DatasetStore, open_dataset, open_frames_store, open_prediction
from hyperinr.evaluate.figures import save_png
from hyperinr.evaluate.metrics import order_methods, read_metrics
from hyperinr.infra.atomic import atomic_path

_COLOURS = {"hyperinr": "C0", "teacher": "C1", "lerp": "C2"}
_OTHER_COLOURS = ["C3", "C4", "C5", "C6", "C7", "C8", "C9"]


def _colour(method: str, methods: list[str]) -> str:
    if method in _COLOURS:
        return _COLOURS[method]
    others = [m for m in methods if m not in _COLOURS]
    return _OTHER_COLOURS[others.index(method) % len(_OTHER_COLOURS)]


# ----------------------------------------------------------------------------- numbers


def method_means(rows: list[dict[str, Any]], split: str) -> dict[str, dict[str, float]]:
    """{method: {"psnr", "ssim", "n", "n_nan"}} over rows of one split (NaNs left out)."""
    out: dict[str, dict[str, float]] = {}
    for m in order_methods(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == m and r["split"] == split]
        entry: dict[str, float] = {"n": len(sel)}
        for key in ("psnr", "ssim"):
            vals = np.array([r[key] for r in sel], dtype=np.float64)
            good = vals[~np.isnan(vals)]
            entry[key] = float(np.mean(good)) if good.size else math.nan
            entry[f"n_nan_{key}"] = int(vals.size - good.size)
        out[m] = entry
    return out


def fmt_psnr(v: float) -> str:
    return "—" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:.2f}")


def fmt_ssim(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.4f}"


def fmt_duration(seconds: float) -> str:
    """h:mm:ss.s"""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    h, rem = divmod(float(seconds), 3600.0)
    m, s = divmod(rem, 60.0)
    return f"{int(h)}:{int(m):02d}:{s:04.1f}"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        text = f"{v:.4g}"
    elif isinstance(v, (list, dict)):
        text = json.dumps(v, separators=(",", ":"))
    else:
        text = str(v)
    if len(text) > 60:
        text = text[:57] + "..."
    return text.replace("|", "\\|").replace("\n", " ")


def _best(means: dict[str, dict[str, float]], key: str) -> tuple[list[str], float]:
    vals = {m: e[key] for m, e in means.items() if not math.isnan(e[key])}
    if not vals:
        return [], math.nan
    top = max(vals.values())
    return [m for m, v in vals.items() if v == top], top


def _means_table(means: dict[str, dict[str, float]], store_walls: dict[str, float]) -> list[str]:
    lines = [
        "| method | mean PSNR (dB) | mean SSIM | frames | prediction wall time |",
        "|---|---:|---:|---:|---:|",
    ]
    for m, e in means.items():
        n_nan = max(e["n_nan_psnr"], e["n_nan_ssim"])
        frames = f"{int(e['n'])}" + (f" ({n_nan} NaN left out)" if n_nan else "")
        wall = fmt_duration(store_walls[m]) if m in store_walls else "—"
        lines.append(f"| {m} | {fmt_psnr(e['psnr'])} | {fmt_ssim(e['ssim'])} | {frames} | {wall} |")
    return lines


def _verdict(means: dict[str, dict[str, float]], what: str) -> list[str]:
    lines = []
    for key, unit, fmt in (("psnr", " dB", fmt_psnr), ("ssim", "", fmt_ssim)):
        winners, top = _best(means, key)
        if winners:
            who = ", ".join(f"**{w}**" for w in winners)
            tie = " (tie)" if len(winners) > 1 else ""
            lines.append(f"- Best mean {key.upper()} on {what}: {who}{tie} ({fmt(top)}{unit}).")
    students = [m for m in means if m.startswith("hyperinr")]
    for a, b in ((s, ref) for s in students for ref in ("teacher", "lerp")):
        if a in means and b in means:
            dp = means[a]["psnr"] - means[b]["psnr"]
            ds = means[a]["ssim"] - means[b]["ssim"]
            if math.isinf(dp):
                exact = b if dp < 0 else a
                lines.append(f"- {a} − {b} on {what}: not finite ({exact} is exact, PSNR = inf).")
            elif math.isfinite(dp):
                lines.append(
                    f"- {a} − {b} on {what}: {dp:+.2f} dB PSNR, {ds:+.4f} SSIM "
                    f"({'better' if dp > 0 else 'worse' if dp < 0 else 'equal'} in PSNR)."
                )
    return lines


def _stage_rows(stage_infos: Sequence[str | Path]) -> list[str]:
    lines = ["| stage | wall time (h:mm:ss) | details |", "|---|---:|---|"]
    total = 0.0
    for p in stage_infos:
        p = Path(p)
        if not p.exists():
            lines.append(f"| {p.parent.name}/{p.name} | — | (missing) |")
            continue
        info = json.loads(p.read_text())
        stage = str(info.get("stage") or p.parent.name)
        wall = info.get("wall_seconds")
        if isinstance(wall, (int, float)):
            total += float(wall)
        extras = ", ".join(
            f"{k}={_cell(v)}"
            for k, v in info.items()
            if k not in ("stage", "wall_seconds", "produced_by", "shrinkage_choice")
        )
        lines.append(f"| {_cell(stage)} | {fmt_duration(wall)} | {extras} |")
    lines.append(f"| **total** | {fmt_duration(total)} | |")
    return lines


def _targets_line(info: dict[str, Any]) -> str:
    """How the HyperINR model was taught, from its info.json (distill stage)."""
    mode = info.get("targets_mode", "teacher")
    text = f"`{mode}`"
    if mode == "corrected":
        choice = info.get("shrinkage_choice")
        if isinstance(choice, dict):
            text += (
                f", shrinkage a = {info.get('shrinkage'):g} chosen by the rule "
                f'"{choice.get("rule")}": scored on frames {choice.get("scored")}, which the '
                f"validation teacher (trained on frames {choice.get('validation_teacher_frames')})"
                " never saw"
            )
        else:
            text += f", shrinkage a = {info.get('shrinkage'):g} (set in the config)"
    elif mode == "hybrid":
        text += f", ground-truth share of each batch {info.get('hybrid_fraction'):g}"
    return text


def shrinkage_curve_rows(choice: dict[str, Any], every: float = 0.1) -> list[str]:
    """The held-out MSE the shrinkage was chosen from, as a Markdown table (every `every` in a,
    the chosen a always shown and in bold): the reader sees how flat or sharp the choice was."""
    pairs = list(zip(choice["a"], choice["mse"]))
    chosen = choice.get("chosen")
    step = max(1, round(every / max(pairs[1][0] - pairs[0][0], 1e-12))) if len(pairs) > 1 else 1
    shown = [(a, m) for i, (a, m) in enumerate(pairs) if i % step == 0 or a == chosen]

    def mark(text: str, a: float) -> str:
        return f"**{text}**" if a == chosen else text

    return [
        "| a | " + " | ".join(mark(f"{a:g}", a) for a, _ in shown) + " |",
        "|---|" + "---:|" * len(shown),
        "| held-out MSE | " + " | ".join(mark(f"{m:.3g}", a) for a, m in shown) + " |",
    ]


def _provenance_rows(stage_infos: Sequence[str | Path]) -> list[str]:
    """Each stage's provenance hash and the content hashes it was made from (first 12 hex)."""
    lines = ["| stage | produced_by | from |", "|---|---|---|"]
    for p in map(Path, stage_infos):
        if not p.exists():
            continue
        info = json.loads(p.read_text())
        record = info.get("produced_by")
        if not isinstance(record, dict):
            continue
        inputs = ", ".join(f"{k} `{str(v)[:12]}`" for k, v in record.get("inputs", {}).items())
        lines.append(f"| {_cell(info.get('stage', p.stem))} | `{record.get('hash')}` | {inputs} |")
    return lines


def _dataset_facts(ds: DatasetStore) -> list[str]:
    n_train = int(ds.is_train().sum())
    ranges = ", ".join(
        f"{n} ∈ [{lo:.6g}, {hi:.6g}]"
        for n, (lo, hi) in zip(ds.param_names, ds.param_range, strict=True)
    )
    lo, hi = ds.value_range
    return [
        f"- name: `{ds.name}`",
        f"- dims: {' × '.join(str(s) for s in ds.frame_shape[: ds.n_spatial])}"
        + (f" ({'z, y, x' if ds.n_spatial == 3 else 'y, x'})" if ds.n_spatial in (2, 3) else "")
        + (f", {ds.n_channels} channels" if ds.n_channels > 1 else ""),
        f"- frames: {ds.n_frames} ({n_train} training, {ds.n_frames - n_train} unseen)",
        f"- parameters: {ranges}",
        f"- value range (physical): [{lo:.6g}, {hi:.6g}]",
    ]


def _write_summary(
    path: Path,
    ds: DatasetStore,
    rows: list[dict[str, Any]],
    predictions: Mapping[str, str | Path],
    stage_infos: Sequence[str | Path],
    sections: Sequence[str | Path] = (),
) -> None:
    store_walls = {}
    for m, p in predictions.items():
        wall = open_frames_store(p).raw_attrs.get("wall_seconds")
        if isinstance(wall, (int, float)):
            store_walls[m] = float(wall)
    unseen = method_means(rows, "unseen")
    train = method_means(rows, "train")
    lines = [f"# HyperINR evaluation: `{ds.name}`", "", "## Dataset", "", *_dataset_facts(ds)]
    for p in map(Path, stage_infos):
        info = json.loads(p.read_text()) if p.exists() else {}
        if info.get("stage") == "distill":
            lines.append(f"- HyperINR distillation targets: {_targets_line(info)}")
            if isinstance(info.get("shrinkage_choice"), dict):
                lines += ["", *shrinkage_curve_rows(info["shrinkage_choice"]), ""]
    lines += ["", "## Unseen frames (never shown to the teacher)", ""]
    if any(e["n"] for e in unseen.values()):
        lines += [*_means_table(unseen, store_walls), "", *_verdict(unseen, "unseen frames")]
    else:
        lines.append("No unseen frames in this dataset.")
    lines += ["", "## Training frames", ""]
    if any(e["n"] for e in train.values()):
        lines += [*_means_table(train, store_walls), "", *_verdict(train, "training frames")]
        if "lerp" in train:
            lines.append(
                "- LERP returns training frames unchanged, so its PSNR there is inf by "
                "construction; only the unseen table compares methods fairly."
            )
    else:
        lines.append("No training frames in this dataset.")
    for section in map(Path, sections):  # task figures (view_gain.md, shadows.md), verbatim
        lines += ["", section.read_text(encoding="utf-8").rstrip()]
    lines += [
        "",
        "PSNR/SSIM per frame in physical units, data range = the ground-truth frame's "
        "max − min; means leave out frames whose metric is undefined (constant ground truth).",
        "",
        "## Wall times",
        "",
        *_stage_rows(stage_infos),
        "",
        "## Provenance",
        "",
        "Every result records the hash of its settings and of the content of its inputs "
        "(`produced_by`): equal hashes here mean these numbers come from these exact inputs.",
        "",
        f"- dataset content: `{ds.content_hash[:12]}`",
        "",
        *_provenance_rows(stage_infos),
        "",
        "Figures: `psnr_ssim.png` (metrics per frame), `slices.png` ("
        + ("images" if ds.n_spatial == 2 else "mid-z slices")
        + ").",
        "",
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")


# ----------------------------------------------------------------------------- figures


def _x_axis(ds: DatasetStore) -> tuple[np.ndarray, str]:
    if ds.params.shape[1] == 1:
        return ds.params[:, 0], ds.param_names[0]
    return np.arange(ds.n_frames, dtype=np.float64), "frame index"


def _plot_metrics(path: Path, ds: DatasetStore, rows: list[dict[str, Any]]) -> None:
    x_all, xlabel = _x_axis(ds)
    methods = order_methods(r["method"] for r in rows)
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    exact: dict[str, np.ndarray] = {}
    train = ds.is_train()
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        for t in x_all[train]:
            ax.axvline(t, color="0.85", lw=0.8, zorder=0)
        for m in methods:
            sel = sorted((r for r in rows if r["method"] == m), key=lambda r: x_all[r["frame"]])
            xs = np.array([x_all[r["frame"]] for r in sel])
            ys = np.array([r[key] for r in sel], dtype=np.float64)
            if key == "psnr" and np.isinf(ys).any():
                exact[m] = xs[np.isinf(ys)]
            ys[~np.isfinite(ys)] = np.nan
            ax.plot(xs, ys, "-o", ms=2.5, lw=1.2, color=_colour(m, methods), label=m)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[1].set_xlabel(xlabel)
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.85", lw=2))
    labels.append("training frames")
    if exact:  # PSNR = inf cannot be drawn: mark those frames on the top edge instead
        lo, hi = axes[0].get_ylim()
        for m, xs in exact.items():
            axes[0].plot(
                xs,
                np.full(len(xs), hi),
                "^",
                ms=6,
                color=_colour(m, methods),
                clip_on=False,
                zorder=5,
            )
        axes[0].set_ylim(lo, hi)
        handles.append(Line2D([], [], ls="", marker="^", color="0.4"))
        labels.append("exact (PSNR = inf)")
    axes[0].legend(handles, labels, loc="best", fontsize=8, ncols=min(3, len(labels)))
    fig.suptitle(f"{ds.name}: per-frame quality")
    save_png(fig, path, dpi=120)


def default_slice_frames(ds: DatasetStore) -> list[int]:
    """1-D: the unseen frame nearest the middle of the first and of the last training
    interval. n-D (views, lights): four unseen frames spread through the unseen ones."""
    is_train = ds.is_train()
    unseen = np.flatnonzero(~is_train)
    if unseen.size == 0:
        return [int(ds.n_frames // 2)]
    if ds.params.shape[1] > 1:
        picks = unseen[np.round(np.linspace(0, unseen.size - 1, min(4, unseen.size))).astype(int)]
        return list(dict.fromkeys(int(i) for i in picks))
    train = np.flatnonzero(is_train)
    picks = []
    intervals = list(zip(train[:-1], train[1:], strict=True))
    for a, b in intervals:
        inside = unseen[(unseen > a) & (unseen < b)]
        if inside.size:
            picks.append(int(inside[np.argmin(np.abs(inside - (a + b) / 2))]))
            break
    for a, b in reversed(intervals):
        inside = unseen[(unseen > a) & (unseen < b)]
        if inside.size:
            picks.append(int(inside[np.argmin(np.abs(inside - (a + b) / 2))]))
            break
    if not picks:  # unseen frames only outside the training range
        picks = [int(unseen[0]), int(unseen[-1])]
    return list(dict.fromkeys(picks))


def _view(read_rows: Callable[[int, int], np.ndarray], ds: DatasetStore) -> np.ndarray:
    """The 2-D picture of a physical frame: mid-z slice of a volume (only that row is read:
    a 1024^3 frame is 4 GiB); RGB kept for images. `read_rows(a, b)`: the frame's rows a..b-1."""
    if ds.n_spatial == 3:
        mid = ds.dims[0] // 2
        frame = read_rows(mid, mid + 1)[0]
    else:
        frame = read_rows(0, ds.dims[0])
    if ds.n_channels > 1 and not (ds.n_spatial == 2 and ds.n_channels in (3, 4)):
        frame = frame[..., 0]
    return frame


def _plot_slices(
    path: Path,
    ds: DatasetStore,
    rows: list[dict[str, Any]],
    predictions: Mapping[str, str | Path],
    frames: list[int],
) -> None:
    methods = order_methods(predictions)
    stores = {m: open_prediction(predictions[m], ds) for m in methods}
    psnr = {(r["frame"], r["method"]): r["psnr"] for r in rows}
    ncols = 1 + len(methods)
    rgb = ds.n_spatial == 2 and ds.n_channels in (3, 4)
    h, w = _view(partial(ds.physical_slab, frames[0]), ds).shape[:2]
    panel = 2.6
    fig = Figure(
        figsize=(panel * ncols * max(w / h, 0.5) + 0.8, panel * len(frames) + 0.5),
        layout="constrained",
    )
    axes = np.atleast_2d(fig.subplots(len(frames), ncols, squeeze=False))
    is_train = ds.is_train()
    for r, i in enumerate(frames):
        gt = _view(partial(ds.physical_slab, i), ds).astype(np.float64)
        vmin, vmax = float(gt.min()), float(gt.max())
        if vmax <= vmin:
            vmax = vmin + 1.0
        pics = [("ground truth", gt)] + [
            (m, _view(partial(stores[m].read_slab, i), ds).astype(np.float64))
            for m in methods
        ]
        param = ", ".join(f"{n}={v:.4g}" for n, v in zip(ds.param_names, ds.params[i], strict=True))
        im = None
        for c, (label, pic) in enumerate(pics):
            ax = axes[r, c]
            if rgb:
                ax.imshow(np.clip((pic - vmin) / (vmax - vmin), 0.0, 1.0), interpolation="nearest")
            else:
                im = ax.imshow(pic, cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                split = "train" if is_train[i] else "unseen"
                ax.set_title(f"ground truth\nframe {i} ({split})", fontsize=9)
                ax.set_ylabel(param, fontsize=8)
            else:
                ax.set_title(
                    f"{label}\nPSNR {fmt_psnr(psnr.get((i, label), math.nan))} dB", fontsize=9
                )
        if im is not None:
            fig.colorbar(im, ax=list(axes[r, :]), shrink=0.85, pad=0.01)
    where = "mid-z slice" if ds.n_spatial == 3 else "image"
    fig.suptitle(f"{ds.name}: {where} of unseen frames (shared colour scale per row)", fontsize=10)
    save_png(fig, path, dpi=120)


# ----------------------------------------------------------------------------- entry point


def write_report(
    dataset_path: str | Path,
    metrics_csv: str | Path,
    predictions: Mapping[str, str | Path],
    stage_infos: Sequence[str | Path],
    out_dir: str | Path,
    slice_frames: Sequence[int] | None = None,
    sections: Sequence[str | Path] = (),
) -> dict[str, Path]:
    """Write summary.md, psnr_ssim.png and slices.png into `out_dir` (each atomically).

    Returns {"summary": ..., "psnr_ssim": ..., "slices": ...}.
    """
    ds = open_dataset(dataset_path)
    rows = read_metrics(metrics_csv)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = list(slice_frames) if slice_frames else default_slice_frames(ds)
    for i in frames:
        if not 0 <= int(i) < ds.n_frames:
            raise ValueError(f"slice frame {i} outside [0, {ds.n_frames}) of {ds.path}")
    frames = [int(i) for i in frames]
    paths = {
        "summary": out_dir / "summary.md",
        "psnr_ssim": out_dir / "psnr_ssim.png",
        "slices": out_dir / "slices.png",
    }
    _write_summary(paths["summary"], ds, rows, predictions, stage_infos, sections)
    _plot_metrics(paths["psnr_ssim"], ds, rows)
    _plot_slices(paths["slices"], ds, rows, predictions, frames)
    return paths


def write_modes_summary(
    metrics: str | Path, stage_infos: Sequence[str | Path], out: str | Path
) -> Path:
    """target_modes.md: every distillation-target mode side by side (rule target_modes).

    One row per method of `metrics` (hyperinr_<mode>, teacher, lerp): unseen and training
    means, and for the HyperINR rows the distillation's wall time and its mode's settings.
    """
    rows = read_metrics(metrics)
    unseen, train = method_means(rows, "unseen"), method_means(rows, "train")
    infos: dict[str, dict[str, Any]] = {}
    for p in map(Path, stage_infos):
        infos[p.parent.name] = json.loads(p.read_text())
    lines = [
        "# Distillation targets side by side",
        "",
        "All modes distil from one teacher and one distillation set; PSNR/SSIM means per split.",
        "",
        "| method | unseen PSNR (dB) | unseen SSIM | training PSNR (dB) | training SSIM |"
        " distill wall time | targets |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for m in unseen:
        info = infos.get(m, {})
        wall = fmt_duration(info["wall_seconds"]) if "wall_seconds" in info else "—"
        how = _targets_line(info) if info else "—"
        u, t = unseen[m], train.get(m, {"psnr": math.nan, "ssim": math.nan})
        lines.append(
            f"| {m} | {fmt_psnr(u['psnr'])} | {fmt_ssim(u['ssim'])} | {fmt_psnr(t['psnr'])} | "
            f"{fmt_ssim(t['ssim'])} | {wall} | {how} |"
        )
    lines += ["", *_verdict(unseen, "unseen frames"), ""]
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return out
