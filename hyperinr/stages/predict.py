"""Stage `predict`: every frame reconstructed by a model, in physical units, for evaluation.

HyperINR predictions go through the path a user's renderer takes: `generate(theta)` builds a
standalone INR (timed: the paper's generation latency), which is then evaluated on the grid
(timed: inference bandwidth); so do the independent INRs of the shared-MLP ablation, whose
`generate` blends every weight. The teacher and the baselines (NeurComp, HashINR; Sec. 6.3) are
single networks over (theta, x): evaluated on the whole grid per frame, timed the same way.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hyperinr.infra import provenance
from hyperinr.config import Config
from hyperinr.data.store import write_frames_store
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.grid import grid_coords, n_voxels
from hyperinr.models.baselines import BASELINES, baseline_volume, load_baseline
from hyperinr.models.coordnet import load_teacher, teacher_values
from hyperinr.models.hyperinr import load_hyperinr
from hyperinr.models.independent import load_independent
from hyperinr.models.inr import INR
from hyperinr.infra.stage_info import write_info
from hyperinr.stages.common import DatasetTensors, load_dataset_meta

METHODS = ("teacher", "hyperinr", *BASELINES, "independent")


@torch.inference_mode()
def inr_volume(inr: INR, dims: tuple[int, ...], batch: int, device: torch.device) -> np.ndarray:
    """A standalone INR on the full grid: [n_voxels, C] float32 in [0, 1]."""
    total = n_voxels(dims)
    out = np.empty((total, inr.network.n_outputs), dtype=np.float32)
    for start in range(0, total, batch):
        x = grid_coords(dims, start, start + batch, device=device)
        out[start : start + len(x)] = inr(x).float().cpu().numpy()
    return out


def _shape(meta: DatasetTensors) -> tuple[int, ...]:
    return (*meta.dims, meta.n_channels) if meta.n_channels > 1 else tuple(meta.dims)


def _check_layout(path: Path, state: dict, meta: DatasetTensors) -> None:
    """A model file made for another dataset layout fails here, naming the file, rather than
    as a shape error deep inside the network."""
    arch = state.get("arch", {})
    got = (arch.get("n_params"), arch.get("n_spatial"), arch.get("n_outputs"))
    need = (meta.n_params, meta.n_spatial, meta.n_channels)
    if got != need or list(state.get("dims", [])) != list(meta.dims):
        raise ValueError(
            f"{path}: model was trained for another dataset layout (parameters, spatial dims, "
            f"channels {got}, dims {state.get('dims')}; dataset has {need}, {list(meta.dims)})"
        )


def predict(cfg: Config, method: str, dataset: Path, model_path: Path, out: Path) -> Path:
    """Writes the prediction store `out` and `out` with suffix .json (timings)."""
    if method not in METHODS:
        raise ValueError(f"predict: unknown method '{method}' (one of {', '.join(METHODS)})")
    configure_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    meta, store = load_dataset_meta(dataset)
    lo, hi = meta.value_range
    batch = cfg.evaluate.batch_size
    inputs = {"dataset": store.content_hash, "model": provenance.sha256_file(model_path)}
    produced_by = provenance.record(f"predict_{method}", cfg, inputs)
    timings: dict[str, list[float]] = {"generate_ms": [], "infer_seconds": []}

    if method == "teacher":
        teacher, _ = load_teacher(model_path, device)

        def volume(i: int) -> np.ndarray:
            return teacher_values(teacher, meta.params01[i], meta.dims, batch, device)

    elif method in BASELINES:
        baseline, state = load_baseline(model_path, method, device)
        _check_layout(model_path, state, meta)

        def volume(i: int) -> np.ndarray:
            return baseline_volume(baseline, meta.params01[i], meta.dims, batch, device)

    else:
        load = load_independent if method == "independent" else load_hyperinr
        hyper, _ = load(model_path, device)

        def volume(i: int) -> np.ndarray:
            t0 = time.perf_counter()
            inr = hyper.generate(meta.params01[i].double().numpy())
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings["generate_ms"].append((time.perf_counter() - t0) * 1e3)
            return inr_volume(inr, meta.dims, batch, device)

    # the store's attrs are written after the last frame, so the generator can still add to them
    attrs = {"method": method, "value_range": [lo, hi], "produced_by": produced_by}
    start = time.perf_counter()

    def frames() -> Iterator[np.ndarray]:
        for i in tqdm(range(len(meta.params01)), desc=f"predict {method}", mininterval=2.0):
            t0 = time.perf_counter()
            vol01 = volume(i)
            timings["infer_seconds"].append(time.perf_counter() - t0)
            yield (lo + vol01 * (hi - lo)).reshape(_shape(meta)).astype(np.float32)
        attrs["wall_seconds"] = round(time.perf_counter() - start, 3)

    write_frames_store(
        out, frames(), (len(meta.params01), *_shape(meta)), attrs, n_channels=meta.n_channels
    )
    wall = time.perf_counter() - start
    n_vox = n_voxels(meta.dims)
    extra = {
        "method": method,
        "frames": len(meta.params01),
        "voxels_per_second": round(
            n_vox * len(timings["infer_seconds"]) / sum(timings["infer_seconds"])
        ),
    }
    if timings["generate_ms"]:
        extra["generate_ms_median"] = round(float(np.median(timings["generate_ms"])), 4)
    write_info(
        out.with_suffix(".json"),
        f"predict_{method}",
        wall,
        device=str(device),
        produced_by=produced_by,
        **extra,
    )
    return out
