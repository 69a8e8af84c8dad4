"""Stage `predict`: every frame reconstructed by a model, in physical units, for evaluation.

Any kind of model the registry knows (hyperinr.models.registry) predicts the same way: its
field at each frame's parameter is evaluated on the grid (timed: inference bandwidth). For
kinds that generate a standalone INR per parameter (HyperINR, the independent INRs of the
shared-MLP ablation), that generation is timed apart: the paper's generation latency, the
path a user's renderer takes. LERP (no model) is hyperinr.models.lerp.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hyperinr.config import Config
from hyperinr.data.store import SLAB_WRITE_BYTES_PER_VALUE, frame_layout, write_frames_store
from hyperinr.grid import field_values, n_voxels
from hyperinr.infra import provenance
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.infra.memory import check_budget
from hyperinr.infra.stage_info import write_info
from hyperinr.infra.timing import timer
from hyperinr.models import registry
from hyperinr.models.model_file import model_kind
from hyperinr.stages.common import DatasetTensors, load_dataset_meta

#: Bytes per grid point of one inference batch beyond the slab: coordinates, the encodings'
#: features and the MLP's activations (default HyperINR on the CPU: peak RSS grows 57 MB from
#: batch 16384 to 65536, ~1.2 kB a point; rounded up).
PREDICT_BYTES_PER_POINT = 1536


def _shape(meta: DatasetTensors) -> tuple[int, ...]:
    return (*meta.dims, meta.n_channels) if meta.n_channels > 1 else tuple(meta.dims)


def _check_layout(path: Path, state: dict, meta: DatasetTensors) -> None:
    """A model file made for another dataset layout fails here, naming the file, rather than
    as a shape error deep inside the network (files that record their layout: the networks
    trained on the frames)."""
    arch = state.get("arch", {})
    if "n_spatial" not in arch:
        return
    got = (arch.get("n_params"), arch.get("n_spatial"), arch.get("n_outputs"))
    need = (meta.n_params, meta.n_spatial, meta.n_channels)
    if got != need or list(state.get("dims", [])) != list(meta.dims):
        raise ValueError(
            f"{path}: model was trained for another dataset layout (parameters, spatial dims, "
            f"channels {got}, dims {state.get('dims')}; dataset has {need}, {list(meta.dims)})"
        )


def predict(
    cfg: Config, method: str | None, dataset: Path, model_path: Path, out: Path
) -> Path:
    """Writes the prediction store `out` and `out` with suffix .json (timings). `method`
    None: the kind the model file records; else it must be that kind (or one of its names)."""
    file_kind = model_kind(model_path)
    kind = registry.get(file_kind)
    if method is not None and registry.get(method) != kind:
        raise ValueError(f"{model_path}: a {kind.name} model file, not {method}")
    method = kind.name
    impl = kind.impl()
    configure_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    meta, store = load_dataset_meta(dataset)
    lo, hi = meta.value_range
    batch = cfg.predict.batch_size
    inputs = {"dataset": store.content_hash, "model": provenance.sha256_file(model_path)}
    produced_by = provenance.record("predict", cfg, inputs)
    timings: dict[str, list[float]] = {"generate_ms": [], "infer_seconds": []}
    network, state = impl.load(model_path, device)
    _check_layout(model_path, state, meta)
    n_out = impl.n_outputs(network)

    layout = frame_layout(_shape(meta), meta.n_channels, cfg.store.chunk, cfg.store.shard)
    plane = n_voxels(meta.dims[1:])
    # warm up (numba loads its kernels, ~60 MB) so the check measures the process as it runs
    probe = np.zeros((2, len(meta.dims)), dtype=np.float32)
    warm = impl.field(network, meta.params01[0].double().numpy())
    field_values(warm, meta.dims, n_out, 2, device, coords01=probe)
    # the slab and zarr's write of it; the model file is memory-mapped: the pages of the
    # tables the frames blend become resident
    check_budget(
        "predict", cfg.runtime.memory_mb,
        layout.slab_voxels() * (4 + SLAB_WRITE_BYTES_PER_VALUE) + batch * PREDICT_BYTES_PER_POINT
        + model_path.stat().st_size,
        f"one slab of {layout.slab_depth} rows, a batch of {batch} points and the model file",
        "lower store.chunk or predict.batch_size, or raise runtime.memory_mb",
    )

    def slabs(field) -> Iterator[np.ndarray]:
        """The frame slab by slab, each from its own grid points (values as whole-grid)."""
        for a, b in layout.slabs():
            t0 = time.perf_counter()
            flat = (a * plane, b * plane)
            vol01 = field_values(field, meta.dims, n_out, batch, device, flat_range=flat)
            timings["infer_seconds"][-1] += time.perf_counter() - t0
            np.multiply(vol01, hi - lo, out=vol01)  # float32, as `lo + vol01 * (hi - lo)`
            np.add(vol01, lo, out=vol01)  # but in place: the slab is held once
            yield vol01.reshape((b - a, *layout.frame_shape[1:]))

    # the store's attrs are written after the last frame, so the generator can still add to them
    attrs = {"method": method, "value_range": [lo, hi], "produced_by": produced_by}
    start = time.perf_counter()

    def frames() -> Iterator[Iterator[np.ndarray]]:
        for i in tqdm(range(len(meta.params01)), desc=f"predict {method}", mininterval=2.0):
            t0 = time.perf_counter()
            with timer(device) as gen:
                field = impl.field(network, meta.params01[i].double().numpy())
            if impl.generates:
                timings["generate_ms"].append(gen.ms)
            timings["infer_seconds"].append(time.perf_counter() - t0)
            yield slabs(field)
        attrs["wall_seconds"] = round(time.perf_counter() - start, 3)

    write_frames_store(
        out,
        frames(),
        (len(meta.params01), *_shape(meta)),
        attrs,
        n_channels=meta.n_channels,
        layout=layout,
    )
    wall = time.perf_counter() - start
    n_vox = n_voxels(meta.dims)
    extra = {
        "method": method,
        "kind": kind.file_kind,
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
