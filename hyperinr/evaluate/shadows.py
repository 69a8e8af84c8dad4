"""DGS renders: the volume with global shadows from each method, and what they cost (Fig. 16).

The shadow task is judged twice: as data (PSNR/SSIM of the shadow volumes, metrics.csv) and as
pictures, which is what a user sees. Here the base volume is rendered while the light's azimuth
sweeps between two training lights at one polar angle (every light of the dataset's grid in
between, all unseen), with the light factor of every sample taken from

- secondary rays toward the light (the O(n^2) reference of the paper),
- the shadow INR that HyperINR generates for that light (one network query per sample: the
  paper's method; generation is timed with the render),
- the teacher's and LERP's predicted shadow volumes (trilinear look-up).

Each render is timed in the same process, one after the other (ratios, not absolute speeds,
are what this noisy machine can tell), and compared with the reference render by PSNR.
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
from hyperinr.data.scene import read_scene
from hyperinr.data.store import DatasetStore, open_dataset, open_prediction
from hyperinr.evaluate.figures import save_png, timed, write_rows
from hyperinr.infra.atomic import atomic_path
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.models.hyperinr import load_hyperinr
from hyperinr.render import Camera, direction, inr_field, render, volume_field

AMBIENT = 0.25  # light that reaches fully shadowed samples: keeps shadowed structure visible
REFERENCE = "secondary rays"


def sweep_frames(ds: DatasetStore) -> list[int]:
    """Frames of one azimuth sweep: at the polar angle with the most training lights, from a
    training light to the next one in azimuth, every frame between them included."""
    params = ds.params
    train = np.flatnonzero(ds.is_train())
    thetas, counts = np.unique(params[train, 0], return_counts=True)
    if thetas.size == 0:
        raise ValueError(f"{ds.path}: no training lights to sweep between")
    middle = np.median(params[:, 0])
    best = np.flatnonzero(counts == counts.max())
    theta = thetas[best[np.argmin(np.abs(thetas[best] - middle))]]
    phis = np.sort(params[train[params[train, 0] == theta], 1])
    at_theta = np.flatnonzero(params[:, 0] == theta)
    if phis.size < 2:
        return [int(i) for i in at_theta[np.argsort(params[at_theta, 1])][:5]]
    a, b = phis[0], phis[1]
    inside = at_theta[(params[at_theta, 1] >= a) & (params[at_theta, 1] <= b)]
    return [int(i) for i in inside[np.argsort(params[inside, 1])]]


def render_shadows(
    cfg: Config,
    dataset_path: str | Path,
    scene_path: str | Path,
    model_path: str | Path,
    predictions: Mapping[str, str | Path],
    out_png: str | Path,
    out_csv: str | Path,
    out_md: str | Path,
) -> list[dict[str, Any]]:
    """Render the sweep with every method; write the figure, the per-render CSV and the
    summary section. Returns the CSV rows."""
    configure_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    ds = open_dataset(dataset_path)
    volume, tf, _ = read_scene(scene_path)
    base = volume_field(torch.from_numpy(volume).to(device))
    sc = cfg.scene
    cam = Camera(sc.view_deg[0], sc.view_deg[1], sc.camera_distance, sc.fov_deg,
                 sc.image_size, sc.image_size)  # fmt: skip
    hyper, _ = load_hyperinr(model_path, device)
    stores = {m: open_prediction(p, ds) for m, p in predictions.items() if m != "hyperinr"}
    lo, hi = ds.value_range
    params01 = ds.normalised_params()
    frames = sweep_frames(ds)
    is_train = ds.is_train()

    def shade(shadow=None, light=None) -> torch.Tensor:
        return render(base, cam, tf, n_steps=sc.n_steps, shadow=shadow, light_dir=light,
                      shadow_steps=sc.shadow_steps, ambient=AMBIENT)  # fmt: skip

    rows: list[dict[str, Any]] = []
    images: dict[tuple[str, int], np.ndarray] = {}
    # warm-up: first-call costs (allocations, the hash grid's kernel compilation) are no
    # method's render time
    warm = inr_field(hyper.generate(params01[frames[0]]))
    render(base, cam, tf, n_steps=4, shadow=warm)
    render(base, cam, tf, n_steps=4, light_dir=direction(*ds.params[frames[0]]), shadow_steps=2)
    for i in frames:
        light = direction(*ds.params[i])
        ref, t_ref = timed(lambda light=light: shade(light=light), device)
        results = {REFERENCE: (ref, t_ref)}

        def inr_render(i: int = i) -> torch.Tensor:
            inr = hyper.generate(params01[i])
            field = inr_field(inr)
            return shade(shadow=lambda x: lo + (hi - lo) * field(x))

        results["hyperinr"] = timed(inr_render, device)
        for m, store in stores.items():
            vol = torch.from_numpy(np.asarray(store.frames[i], dtype=np.float32)).to(device)
            results[m] = timed(lambda vol=vol: shade(shadow=volume_field(vol)), device)
        ref_np = ref.cpu().numpy()
        for m, (img, seconds) in results.items():
            pic = img.cpu().numpy()
            images[(m, i)] = pic
            psnr = (
                math.inf
                if m == REFERENCE
                else float(peak_signal_noise_ratio(ref_np, pic, data_range=1.0))
            )
            rows.append(
                {
                    "frame": i,
                    "theta": float(ds.params[i, 0]),
                    "phi": float(ds.params[i, 1]),
                    "split": "train" if is_train[i] else "unseen",
                    "method": m,
                    "render_seconds": seconds,
                    "psnr_vs_reference": psnr,
                }
            )
    methods = [REFERENCE, "hyperinr", *stores]
    write_rows(out_csv, rows)
    _plot(Path(out_png), ds, frames, methods, images, rows, cam)
    _write_md(Path(out_md), rows, methods, cam, sc.n_steps, sc.shadow_steps, device)
    return rows


def _plot(path, ds, frames, methods, images, rows, cam) -> None:
    by = {(r["method"], r["frame"]): r for r in rows}
    panel = 2.2
    fig = Figure(figsize=(panel * len(frames) + 0.6, panel * len(methods) + 0.8),
                 layout="constrained")  # fmt: skip
    axes = np.atleast_2d(fig.subplots(len(methods), len(frames), squeeze=False))
    for r, m in enumerate(methods):
        for c, i in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(np.clip(images[(m, i)], 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            row = by[(m, i)]
            psnr = "" if m == REFERENCE else f", {row['psnr_vs_reference']:.1f} dB"
            ax.set_title(f"{row['render_seconds'] * 1e3:.0f} ms{psnr}", fontsize=8)
            if r == 0:
                split = "train" if row["split"] == "train" else "unseen"
                ax.set_title(f"phi={row['phi']:.0f}° ({split})\n" + ax.get_title(), fontsize=8)
            if c == 0:
                ax.set_ylabel(m, fontsize=9)
    theta = by[(methods[0], frames[0])]["theta"]
    fig.suptitle(
        f"{ds.name}: shadows while the light sweeps at theta={theta:.0f}° "
        f"(camera theta={cam.theta_deg:.0f}°, phi={cam.phi_deg:.0f}°)",
        fontsize=10,
    )
    save_png(fig, path)


def _write_md(path, rows, methods, cam, n_steps, shadow_steps, device) -> None:
    def med(m: str) -> float:
        return float(np.median([r["render_seconds"] for r in rows if r["method"] == m]))

    lines = [
        "## Shadow renders (the paper's Fig. 16): `shadow_sweep.png`",
        "",
        f"{cam.width}x{cam.height} px, {n_steps} samples per primary ray, {shadow_steps} per "
        f"secondary ray, on {device}; render times are medians over the "
        f"{len({r['frame'] for r in rows})} lights of the sweep, measured one after another in "
        "one process. PSNR compares each render with the secondary-ray reference.",
        "",
        "The training lights' column shows what each method reaches where it was fitted (the "
        "sweep's two ends): a teacher low there is the limit of the shadow INR distilled from it.",
        "",
        "| light factor from | median render (ms) | speed-up over secondary rays | mean PSNR of "
        "unseen lights (dB) | mean PSNR of training lights (dB) |",
        "|---|---|---|---|---|",
    ]
    ref = med(REFERENCE)

    def mean_psnr(m: str, split: str) -> str:
        vals = [r["psnr_vs_reference"] for r in rows if r["method"] == m and r["split"] == split]
        return "reference" if m == REFERENCE else (f"{np.mean(vals):.2f}" if vals else "–")

    for m in methods:
        label = "shadow INR from HyperINR (incl. generation)" if m == "hyperinr" else m
        lines.append(
            f"| {label} | {med(m) * 1e3:.1f} | {ref / med(m):.2f}x | {mean_psnr(m, 'unseen')} | "
            f"{mean_psnr(m, 'train')} |"
        )
    lines.append("")
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
