"""Volume renderings of unseen TSR frames per method, timed (the paper's Fig. 1).

PSNR on voxels is not what a scientist looks at; a rendering is. Each selected frame (by
default the middle of the first, the middle and the last training interval: the frames
farthest from anything the models saw) is rendered with one camera and transfer function on
the dataset's [0, 1] values from

- the ground truth and LERP: their volumes, trilinearly;
- HyperINR: the INR it generates for that parameter, queried along the rays (generation
  included in the time): what an interactive renderer does;
- the teacher: CoordNet queried along the rays, for the same reason.

Render times are measured one after another in one process, so their ratios are what this
machine can tell; PSNR compares each render with the ground truth's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from skimage.metrics import peak_signal_noise_ratio

from hyperinr.config import Config
from hyperinr.data.store import DatasetStore, open_dataset, open_prediction
from hyperinr.evaluate.figures import save_png, timed, write_rows
from hyperinr.evaluate.metrics import order_methods
from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.models.coordnet import evaluate_teacher, load_teacher
from hyperinr.models.hyperinr import load_hyperinr
from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    TransferFunction,
    inr_field,
    render,
    volume_field,
)

GROUND_TRUTH = "ground truth"


def interval_midpoints(ds: DatasetStore) -> list[int]:
    """The unseen frame nearest the middle of the first, the middle and the last training
    interval (1-D parameter); fewer when there are fewer intervals with unseen frames."""
    train = np.flatnonzero(ds.is_train())
    t = ds.params[:, 0]
    mids = []
    intervals = [(a, b) for a, b in zip(train[:-1], train[1:], strict=True) if b - a > 1]
    for a, b in [intervals[0], intervals[len(intervals) // 2], intervals[-1]] if intervals else []:
        inside = np.arange(a + 1, b)
        mids.append(int(inside[np.argmin(np.abs(t[inside] - (t[a] + t[b]) / 2))]))
    return list(dict.fromkeys(mids))


def render_methods(
    cfg: Config,
    dataset_path: str | Path,
    models: Mapping[str, str | Path],
    predictions: Mapping[str, str | Path],
    out_png: str | Path,
    out_csv: str | Path,
    out_md: str | Path,
) -> list[dict[str, Any]]:
    """`models`: {"hyperinr": model.pt, "teacher": model.pt} rendered through their networks;
    `predictions`: other methods' stores (LERP), rendered from their volumes."""
    configure_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    ds = open_dataset(dataset_path)
    if ds.n_spatial != 3 or ds.n_channels != 1:
        raise ValueError(f"{ds.path}: renders need scalar volumes, got dims {ds.dims}")
    rc = cfg.render
    tf = (
        DEFAULT_TRANSFER_FUNCTION
        if rc.transfer_function is None
        else TransferFunction.from_mapping(rc.transfer_function, "render.transfer_function")
    )
    frames = list(rc.frames) if rc.frames else interval_midpoints(ds)
    for i in frames:
        if not 0 <= i < ds.n_frames:
            raise ValueError(f"render.frames: {i} outside the {ds.n_frames} frames of {ds.path}")
    cam = Camera(rc.view_deg[0], rc.view_deg[1], rc.camera_distance, rc.fov_deg,
                 rc.image_size, rc.image_size)  # fmt: skip
    params01 = ds.normalised_params()
    fields: dict[str, Any] = {}
    if "hyperinr" in models:
        hyper, _ = load_hyperinr(models["hyperinr"], device)
        fields["hyperinr"] = lambda i: inr_field(hyper.generate(params01[i]))
    if "teacher" in models:
        teacher, _ = load_teacher(models["teacher"], device)

        def teacher_field(i: int):
            theta = torch.as_tensor(params01[i], dtype=torch.float32, device=device)
            return lambda x: evaluate_teacher(teacher, theta.reshape(1, -1), x)[:, 0]

        fields["teacher"] = teacher_field
    stores = {m: open_prediction(p, ds) for m, p in predictions.items() if m not in fields}

    def volume(i: int, m: str | None) -> torch.Tensor:
        vol = ds.read_frame(i) if m is None else ds.to_unit(np.asarray(stores[m].frames[i]))
        return torch.from_numpy(np.asarray(vol, dtype=np.float32)).to(device)

    def shade(field) -> torch.Tensor:
        return render(field, cam, tf, n_steps=rc.n_steps)

    for make in fields.values():  # warm-up: kernel compilation, allocations
        render(make(frames[0]), cam, tf, n_steps=4)
    methods = [GROUND_TRUTH, *order_methods([*fields, *stores])]
    rows: list[dict[str, Any]] = []
    images: dict[tuple[str, int], np.ndarray] = {}
    for i in frames:
        gt, t_gt = timed(lambda i=i: shade(volume_field(volume(i, None))), device)
        results = {GROUND_TRUTH: (gt, t_gt)}
        for m, make in fields.items():
            results[m] = timed(lambda make=make, i=i: shade(make(i)), device)
        for m in stores:
            results[m] = timed(lambda m=m, i=i: shade(volume_field(volume(i, m))), device)
        ref = gt.cpu().numpy()
        for m, (img, seconds) in results.items():
            pic = img.cpu().numpy()
            images[(m, i)] = pic
            psnr = math.inf if m == GROUND_TRUTH else float(
                peak_signal_noise_ratio(ref, pic, data_range=1.0)
            )  # fmt: skip
            source = "network along the rays" if m in fields else "volume"
            rows.append({"frame": i, **{n: float(v) for n, v in zip(ds.param_names, ds.params[i],
                         strict=True)}, "method": m, "source": source, "render_seconds": seconds,
                         "psnr_vs_ground_truth": psnr})  # fmt: skip
    write_rows(out_csv, rows)
    _plot(Path(out_png), ds, frames, methods, images, rows, cam)
    _write_md(Path(out_md), rows, methods, cam, rc.n_steps, device)
    return rows


def _plot(path, ds, frames, methods, images, rows, cam) -> None:
    by = {(r["method"], r["frame"]): r for r in rows}
    panel = 2.4
    fig = Figure(figsize=(panel * len(methods) + 0.4, panel * len(frames) + 0.8),
                 layout="constrained")  # fmt: skip
    axes = np.atleast_2d(fig.subplots(len(frames), len(methods), squeeze=False))
    name = ds.param_names[0]
    for r, i in enumerate(frames):
        for c, m in enumerate(methods):
            ax = axes[r, c]
            ax.imshow(np.clip(images[(m, i)], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            row = by[(m, i)]
            psnr = "" if m == GROUND_TRUTH else f", {row['psnr_vs_ground_truth']:.1f} dB"
            ax.set_title(f"{m}\n{row['render_seconds'] * 1e3:.0f} ms{psnr}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"frame {i} ({name}={ds.params[i, 0]:.3g})", fontsize=8)
    fig.suptitle(
        f"{ds.name}: unseen frames mid-way between training frames (camera theta="
        f"{cam.theta_deg:.0f}°, phi={cam.phi_deg:.0f}°)",
        fontsize=10,
    )
    save_png(fig, path)


def _write_md(path, rows, methods, cam, n_steps, device) -> None:
    lines = [
        "## Volume renderings of unseen frames (the paper's Fig. 1): `renders.png`",
        "",
        f"{cam.width}x{cam.height} px, {n_steps} samples per ray, on {device}; medians over "
        f"{len({r['frame'] for r in rows})} frames mid-way between training frames, rendered "
        "one after another in one process. PSNR compares each render with the ground truth's.",
        "",
        "| method | rendered from | median render (ms) | mean PSNR vs ground truth (dB) |",
        "|---|---|---:|---:|",
    ]
    for m in methods:
        sel = [r for r in rows if r["method"] == m]
        med = float(np.median([r["render_seconds"] for r in sel])) * 1e3
        psnr = (
            "—" if m == GROUND_TRUTH else f"{np.mean([r['psnr_vs_ground_truth'] for r in sel]):.2f}"
        )
        lines.append(f"| {m} | {sel[0]['source']} | {med:.1f} | {psnr} |")
    lines.append("")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
