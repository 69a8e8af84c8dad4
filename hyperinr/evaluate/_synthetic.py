"""Tiny synthetic dataset and prediction stores in the pipeline's Zarr layout (tests, demos).

Written with zarr directly, following the dataset contract: `frames` float32 in [0, 1] with
one chunk per frame, `params` float64, attrs dims/value_range/param_names/param_range/split/
n_channels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import zarr


def smooth_field(params: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A smooth, non-linear field of the params over a [0, 1]^d grid: physical units."""
    axes = np.meshgrid(*[np.linspace(0.0, 1.0, s) for s in shape], indexing="ij")
    out = np.zeros((len(params), *shape), dtype=np.float64)
    for i, p in enumerate(np.atleast_2d(params)):
        phase = 3.0 * float(np.sum(p))
        val = np.ones(shape)
        for k, a in enumerate(axes):
            val = val * np.sin(np.pi * (k + 1) * a + phase * (k + 1))
        out[i] = 5.0 + 2.0 * val + float(np.sum(p))
    return out


def write_dataset(
    path: str | Path,
    physical: np.ndarray,
    params: np.ndarray,
    train: list[int] | np.ndarray,
    *,
    param_names: list[str] | None = None,
    n_channels: int = 1,
    dims: list[int] | None = None,
) -> Path:
    """Normalise `physical` [n, *frame] by its min/max and write a dataset store."""
    path = Path(path)
    physical = np.asarray(physical, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64).reshape(len(physical), -1)
    lo, hi = float(physical.min()), float(physical.max())
    frames = ((physical - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)
    root = zarr.open_group(str(path), mode="w")
    arr = root.create_array(
        "frames", shape=frames.shape, chunks=(1, *frames.shape[1:]), dtype="float32"
    )
    arr[...] = frames
    parr = root.create_array("params", shape=params.shape, dtype="float64")
    parr[...] = params
    n_spatial = frames.ndim - 1 - (1 if n_channels > 1 else 0)
    root.attrs.update(
        {
            "dims": list(dims or frames.shape[1 : 1 + n_spatial]),
            "value_range": [lo, hi],
            "param_names": param_names or [f"p{j}" for j in range(params.shape[1])],
            "param_range": [
                [float(a), float(b)] for a, b in zip(params.min(0), params.max(0), strict=True)
            ],
            "split": {"train": [int(i) for i in train], "eval": list(range(len(frames)))},
            "n_channels": n_channels,
        }
    )
    return path


def write_prediction(
    path: str | Path,
    physical: np.ndarray,
    method: str,
    value_range: tuple[float, float] | list[float],
    wall_seconds: float | None = None,
) -> Path:
    path = Path(path)
    physical = np.asarray(physical, dtype=np.float32)
    root = zarr.open_group(str(path), mode="w")
    arr = root.create_array(
        "frames", shape=physical.shape, chunks=(1, *physical.shape[1:]), dtype="float32"
    )
    arr[...] = physical
    attrs = {"method": method, "value_range": [float(v) for v in value_range]}
    if wall_seconds is not None:
        attrs["wall_seconds"] = float(wall_seconds)
    root.attrs.update(attrs)
    return path


def synthetic_case(
    root: str | Path,
    *,
    n_frames: int = 13,
    shape: tuple[int, ...] = (8, 10, 12),
    train_every: int = 4,
    noise: dict[str, float] | None = None,
    field: Callable[[np.ndarray, tuple[int, ...]], np.ndarray] = smooth_field,
    seed: int = 0,
) -> tuple[Path, dict[str, Path]]:
    """A 1-D-parameter (t in [0, 1]) dataset plus noisy "predictions", one per method.

    Returns (dataset path, {method: prediction path}); the ground truth as the store holds it
    (float32 normalised -> physical) plus Gaussian noise of the given std per method.
    """
    root = Path(root)
    t = np.linspace(0.0, 1.0, n_frames)[:, None]
    physical = field(t, shape)
    ds = write_dataset(
        root / "dataset.zarr", physical, t, list(range(0, n_frames, train_every)), param_names=["t"]
    )
    grp = zarr.open_group(str(ds), mode="r")
    lo, hi = grp.attrs["value_range"]
    stored = lo + grp["frames"][...].astype(np.float64) * (hi - lo)
    rng = np.random.default_rng(seed)
    preds = {}
    for m, std in (noise or {"hyperinr": 0.05, "teacher": 0.04}).items():
        pred = stored + rng.normal(0.0, std, size=stored.shape)
        preds[m] = write_prediction(
            root / "predictions" / f"{m}.zarr", pred, m, (lo, hi), wall_seconds=1.5
        )
    return ds, preds
