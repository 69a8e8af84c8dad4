"""Tiny synthetic dataset and prediction stores for the evaluation tests.

Written through `hyperinr.data.store` (`write_dataset`, `write_frames_store`), so the tests
read exactly the layout the pipeline writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hyperinr.data.store import open_dataset, write_frames_store
from hyperinr.data.store import write_dataset as _write_dataset


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
) -> Path:
    """A dataset store of `physical` [n, *frame], value range = its min/max over all frames."""
    physical = np.asarray(physical, dtype=np.float64)
    params = np.asarray(params, dtype=np.float64).reshape(len(physical), -1)
    return _write_dataset(
        path,
        physical,
        shape=physical.shape,
        value_range=(float(physical.min()), float(physical.max())),
        params=params,
        param_names=param_names or [f"p{j}" for j in range(params.shape[1])],
        train_indices=train,
        source_dtype="float64",
        provenance={"format": "synthetic"},
        n_channels=n_channels,
    )


def write_prediction(
    path: str | Path,
    physical: np.ndarray,
    method: str,
    value_range: tuple[float, float] | list[float],
    wall_seconds: float | None = None,
) -> Path:
    """A prediction store of `physical` [n, *frame] (float32), as the predict stage writes."""
    physical = np.asarray(physical, dtype=np.float32)
    attrs = {"method": method, "value_range": [float(v) for v in value_range]}
    if wall_seconds is not None:
        attrs["wall_seconds"] = float(wall_seconds)
    return write_frames_store(path, physical, physical.shape, attrs)


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
    store = open_dataset(ds)
    lo, hi = store.value_range
    stored = lo + store.frames[...].astype(np.float64) * (hi - lo)
    rng = np.random.default_rng(seed)
    preds = {}
    for m, std in (noise or {"hyperinr": 0.05, "teacher": 0.04}).items():
        pred = stored + rng.normal(0.0, std, size=stored.shape)
        preds[m] = write_prediction(
            root / "predictions" / f"{m}.zarr", pred, m, (lo, hi), wall_seconds=1.5
        )
    return ds, preds


# A tiny HyperINR over a 1-D time parameter: small enough to build in milliseconds, real enough
# to run every loader, predict and the API (tests/test_api.py, tests/test_chunked_stores.py)
TINY_ENC = {"otype": "HashGrid", "n_levels": 2, "n_features_per_level": 2,
            "log2_hashmap_size": 8, "base_resolution": 2, "per_level_scale": 2.0}  # fmt: skip
TINY_NET = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
            "n_neurons": 16, "n_hidden_layers": 1}  # fmt: skip
TINY_DIMS = (6, 7, 8)
TINY_TIMES = np.array([0.0, 1.0, 2.0, 3.0, 4.0])


def tiny_hyperinr_run(root: Path, *, zero_based: bool = False) -> np.ndarray:
    """`root`/dataset.zarr (5 times, frames 0, 2, 4 train) and `root`/hyperinr/model.pt, as the
    pipeline lays them out; returns the physical frames. `zero_based`: the value range starts
    at 0, so physical = unit * hi keeps every float32 difference of the untrained network's
    tiny outputs (with lo near 3 they would round away)."""
    import torch

    from hyperinr.models.hyperinr import HyperINR, save_hyperinr

    physical = smooth_field(TINY_TIMES[:, None] / 4.0, TINY_DIMS)
    if zero_based:
        physical -= physical.min()
    write_dataset(root / "dataset.zarr", physical, TINY_TIMES[:, None], [0, 2, 4],
                  param_names=["t"])  # fmt: skip
    torch.manual_seed(0)
    model = HyperINR(np.array([[0.0], [0.5], [1.0]]), 3, 1, TINY_ENC, TINY_NET, k_nearest=2)
    meta = {"dims": list(TINY_DIMS), "param_names": ["t"], "param_range": [[0.0, 4.0]],
            "value_range": [float(physical.min()), float(physical.max())]}  # fmt: skip
    save_hyperinr(root / "hyperinr" / "model.pt", model, meta)
    return physical
