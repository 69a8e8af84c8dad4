"""Per-frame PSNR and SSIM of every prediction store against the dataset (scikit-image).

Conventions (the paper's Sec. 7.2 evaluation, made explicit):
- Both frames are compared in PHYSICAL units. The ground truth is mapped from the dataset's
  [0, 1] values to physical float32 exactly as prediction stores are written, so a prediction
  that reproduces a frame exactly scores PSNR = inf (MSE 0) rather than float32 rounding noise.
- `data_range` is the ground-truth frame's own range (max - min over the whole frame, all
  channels), for both PSNR and SSIM.
- SSIM: scikit-image's default (7-wide uniform window, sample covariance), 3-D windows for
  volumes, 2-D for images, channels averaged (`channel_axis`) for multi-channel frames. The
  window shrinks to the largest odd size that fits a tiny frame. Large volumes are processed
  in z-slabs with a halo; the result equals the whole-volume computation.
- A constant ground-truth frame (range 0) has no defined PSNR/SSIM: both are NaN and a
  RuntimeWarning names the frame. The report averages with NaNs left out and says so.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from tqdm.auto import tqdm

from hyperinr.data.store import open_dataset, open_prediction
from hyperinr.infra import provenance
from hyperinr.infra.atomic import atomic_path

#: Frames with more elements than this are processed in z-slabs (bounded temporaries).
MAX_VOXELS = 1 << 21
SSIM_WIN = 7

#: Methods listed first, in this order; any other method follows in the order it was given.
METHOD_ORDER = ("hyperinr", "teacher", "lerp")


def order_methods(methods) -> list[str]:
    methods = list(dict.fromkeys(methods))
    first = [m for m in METHOD_ORDER if m in methods]
    return first + [m for m in methods if m not in METHOD_ORDER]


def _win_size(spatial_shape: tuple[int, ...]) -> int | None:
    smallest = min(spatial_shape)
    win = min(SSIM_WIN, smallest if smallest % 2 else smallest - 1)
    return win if win >= 3 else None


def _mse_slabbed(gt: np.ndarray, pred: np.ndarray, step: int) -> float:
    total = 0.0
    for z0 in range(0, gt.shape[0], step):
        d = gt[z0 : z0 + step].astype(np.float64) - pred[z0 : z0 + step].astype(np.float64)
        total += float(np.sum(d * d))
    return total / gt.size


def _ssim_slabbed(
    gt: np.ndarray, pred: np.ndarray, data_range: float, win: int, max_voxels: int
) -> float:
    """Mean SSIM of one channel, z-slab by z-slab; equals skimage's whole-array mean.

    skimage averages the SSIM map cropped by pad = win // 2 on every side. A map value depends
    only on inputs within pad of it, so each output slab is computed from its input slab plus a
    pad-deep halo and only the halo-free part is kept.
    """
    pad = (win - 1) // 2
    nz = gt.shape[0]
    plane = int(np.prod(gt.shape[1:]))
    step = max(1, max_voxels // max(plane, 1) - 2 * pad)
    inner = tuple(slice(pad, s - pad) for s in gt.shape[1:])
    total, count = 0.0, 0
    for a in range(pad, nz - pad, step):
        b = min(a + step, nz - pad)
        lo, hi = a - pad, b + pad
        _, smap = structural_similarity(
            gt[lo:hi].astype(np.float64),
            pred[lo:hi].astype(np.float64),
            data_range=data_range,
            win_size=win,
            full=True,
        )
        kept = smap[(slice(pad, pad + (b - a)), *inner)]
        total += float(kept.sum(dtype=np.float64))
        count += kept.size
    return total / count


def frame_metrics(
    gt: np.ndarray,
    pred: np.ndarray,
    *,
    channel_axis: int | None = None,
    max_voxels: int = MAX_VOXELS,
    label: str = "frame",
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one predicted frame against its ground truth (physical units).

    `gt`/`pred`: [z, y, x] volumes or [y, x] images, with a trailing channel axis when
    `channel_axis` is given. Returns (nan, nan) with a RuntimeWarning for a constant `gt`, and
    PSNR = inf for an exact prediction.
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"{label}: prediction shape {pred.shape} != ground truth {gt.shape}")
    gt_min, gt_max = float(np.min(gt)), float(np.max(gt))
    data_range = gt_max - gt_min
    if not (np.isfinite(data_range) and data_range > 0):
        warnings.warn(
            f"{label}: ground truth is constant (range {data_range}); PSNR/SSIM set to NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return math.nan, math.nan
    if not np.all(np.isfinite(pred)):
        warnings.warn(
            f"{label}: prediction holds NaN/inf; PSNR/SSIM set to NaN", RuntimeWarning, stacklevel=2
        )
        return math.nan, math.nan

    if channel_axis is not None:
        gt = np.moveaxis(gt, channel_axis, -1)
        pred = np.moveaxis(pred, channel_axis, -1)
        spatial = gt.shape[:-1]
    else:
        spatial = gt.shape
    slabbed = gt.size > max_voxels and len(spatial) == 3

    # PSNR
    if slabbed:
        plane = gt.size // gt.shape[0]
        mse = _mse_slabbed(gt, pred, max(1, max_voxels // plane))
    else:
        mse = float(np.mean((gt.astype(np.float64) - pred.astype(np.float64)) ** 2))
    if mse == 0.0:
        psnr = math.inf
    elif slabbed:
        psnr = float(10.0 * np.log10(data_range**2 / mse))
    else:
        psnr = float(
            peak_signal_noise_ratio(
                gt.astype(np.float64), pred.astype(np.float64), data_range=data_range
            )
        )

    # SSIM
    win = _win_size(spatial)
    if win is None:
        warnings.warn(
            f"{label}: frame {spatial} too small for an SSIM window; SSIM set to NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        return psnr, math.nan
    if slabbed:
        chans = (
            [(gt, pred)]
            if channel_axis is None
            else [(gt[..., c], pred[..., c]) for c in range(gt.shape[-1])]
        )
        ssim = float(np.mean([_ssim_slabbed(g, p, data_range, win, max_voxels) for g, p in chans]))
    else:
        ssim = float(
            structural_similarity(
                gt.astype(np.float64),
                pred.astype(np.float64),
                data_range=data_range,
                win_size=win,
                channel_axis=None if channel_axis is None else -1,
            )
        )
    return psnr, ssim


def metric_columns(param_names: list[str]) -> list[str]:
    """metrics.csv header: frame, one column per parameter, split, method, psnr, ssim."""
    fixed = {"frame", "split", "method", "psnr", "ssim"}
    params = [f"param_{n}" if n in fixed else n for n in param_names]
    return ["frame", *params, "split", "method", "psnr", "ssim"]


def evaluate(
    dataset_path: str | Path,
    predictions: Mapping[str, str | Path],
    out_csv: str | Path,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """PSNR/SSIM of every frame x method; writes `out_csv` atomically and returns its rows.

    Rows are ordered by frame, then method (hyperinr, teacher, lerp, then the rest). `split` is
    "train" for frames in the dataset's split.train and "unseen" otherwise. Only one ground
    truth frame and one predicted frame are held in memory at a time.
    """
    ds = open_dataset(dataset_path)
    methods = order_methods(predictions)
    stores = {m: open_prediction(predictions[m], ds) for m in methods}
    columns = metric_columns(ds.param_names)
    param_cols = columns[1 : 1 + len(ds.param_names)]
    is_train = ds.is_train()

    rows: list[dict[str, Any]] = []
    for i in tqdm(range(ds.n_frames), desc="metrics", unit="frame", disable=not progress):
        gt = ds.physical_frame(i)
        base: dict[str, Any] = {"frame": i}
        base.update({c: float(v) for c, v in zip(param_cols, ds.params[i], strict=True)})
        base["split"] = "train" if is_train[i] else "unseen"
        for m in methods:
            pred = np.asarray(stores[m].frames[i], dtype=np.float32)
            psnr, ssim = frame_metrics(
                gt, pred, channel_axis=ds.channel_axis, label=f"frame {i} ({m})"
            )
            rows.append({**base, "method": m, "psnr": psnr, "ssim": ssim})

    out_csv = Path(out_csv)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    inputs = {"dataset": ds.content_hash}
    for m in methods:
        inputs[f"prediction_{m}"] = provenance.require(
            stores[m].raw_attrs.get("content_sha256"), str(stores[m].path)
        )
    record = provenance.record("evaluate", {}, inputs)
    with atomic_path(provenance_path(out_csv)) as tmp:
        tmp.write_text(json.dumps({"stage": "evaluate", "produced_by": record}, indent=2) + "\n")
    return rows


def provenance_path(metrics_csv: str | Path) -> Path:
    """`metrics.csv` -> `metrics.provenance.json`: what the table was computed from."""
    return Path(metrics_csv).with_suffix(".provenance.json")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """metrics.csv back as rows: frame int, params/psnr/ssim float, split/method str."""
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in raw.items():
                if k == "frame":
                    row[k] = int(v)
                elif k in ("split", "method"):
                    row[k] = v
                else:
                    row[k] = float(v)
            rows.append(row)
    return rows
