"""Per-frame PSNR and SSIM of every prediction store against the dataset, as dask graphs.

Conventions (the paper's Sec. 7.2 evaluation, made explicit):
- Both frames are compared in PHYSICAL units. The ground truth is mapped from the dataset's
  [0, 1] values to physical float32 exactly as prediction stores are written, so a prediction
  that reproduces a frame exactly scores PSNR = inf (MSE 0) rather than float32 rounding noise.
- `data_range` is the ground-truth frame's own range (max - min over the whole frame, all
  channels), for both PSNR and SSIM.
- SSIM: scikit-image's definition (7-wide uniform window, sample covariance), 3-D windows for
  volumes, 2-D for images, channels averaged for multi-channel frames; the window shrinks to
  the largest odd size that fits a tiny frame.
- A constant ground-truth frame (range 0) has no defined PSNR/SSIM: both are NaN and a
  RuntimeWarning names the frame. The report averages with NaNs left out and says so.

Why dask: a 512^3 frame's SSIM needs ~10 float64 copies in scikit-image (~10 GiB), a 2048^3
one more than a node holds. `evaluate` works in units of one slab of one frame of one method
(the store's chunk-deep slab, read with the window's half-width of rows either side): the
squared error is a dask reduction, the SSIM map is computed block by block with
`map_overlap` (halo = the half-width, no padding at the frame's faces), each block's map with
scikit-image's operations in its order (in place: 64 B a voxel, not ~130), and each unit sums
the map values it owns inside scikit-image's crop. A map value depends only on inputs within
the half-width, so every value summed is the whole-frame value and the sums over a frame's
slabs are scikit-image's crop-and-mean (tests: equal to whole-array scikit-image to 1e-12 on
odd shapes whose windows cross block and slab edges). Memory follows the slab, the block and
the number of threads (`runtime.threads`), never the frame; units of several frames and
methods run together when slabs are small. The graphs run on dask's threaded scheduler, or on
a dask.distributed cluster (`runtime.dask_scheduler`).
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy.ndimage import uniform_filter
from tqdm.auto import tqdm

from hyperinr.config import ConfigError, RuntimeConfig
from hyperinr.data.store import open_dataset, open_prediction
from hyperinr.infra import provenance
from hyperinr.infra.atomic import atomic_path, clean_stale_temporaries
from hyperinr.infra.memory import check_budget

#: frame_metrics on in-memory arrays: blocks of at most this many elements (z-slabs).
MAX_VOXELS = 1 << 21
SSIM_WIN = 7
#: Peak bytes the SSIM map takes per element of its (halo-extended) block (tracemalloc: 64,
#: its 8 float64 buffers), plus the two float32 blocks read from the stores.
SSIM_BYTES_PER_VOXEL = 64 + 8

#: What evaluation holds beyond its units, blocks and imports: dask's scheduler, zarr's event
#: loop and the worker threads' malloc arenas (benchmarks/bench_scale.py: 227 MB at 256^3 and
#: 512^3 alike, from the peaks' fit; rounded up).
EVALUATE_RUNTIME_BYTES = 230 << 20

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


def _at_least(sizes: Sequence[int], minimum: int) -> tuple[int, ...]:
    """Block sizes along one axis with every block >= `minimum` (neighbours merged), so each
    block's halo-extended extent holds a whole SSIM window (a trailing 1-voxel chunk cannot)."""
    out: list[int] = []
    for size in sizes:
        if out and out[-1] < minimum:
            out[-1] += int(size)
        else:
            out.append(int(size))
    if len(out) > 1 and out[-1] < minimum:  # a short trailing block joins its neighbour
        tail = out.pop()
        out[-1] += tail
    return tuple(out)


def _ssim_map_block(gt: np.ndarray, pred: np.ndarray, *, data_range: float, win: int):
    """scikit-image's SSIM map (uniform window, sample covariance, K1 0.01, K2 0.03) with
    its operations in its order, so every value is bit for bit its `full=True` map
    (tests/test_metrics_dask.py), but computed in 8 float64 buffers reused in place instead
    of the ~15 temporaries scikit-image allocates: 40 % less memory per block, and less time
    spent faulting fresh pages in, which two threads would otherwise contend for."""
    x = gt.astype(np.float64)
    y = pred.astype(np.float64)
    cov_norm = win**x.ndim / (win**x.ndim - 1)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ux, uy = uniform_filter(x, size=win), uniform_filter(y, size=win)
    buf = np.multiply(x, x)
    vx = uniform_filter(buf, size=win)  # uxx
    np.multiply(y, y, out=buf)
    vy = uniform_filter(buf, size=win)  # uyy
    np.multiply(x, y, out=buf)
    vxy = uniform_filter(buf, size=win)  # uxy
    del x, y
    for v, a, b in ((vx, ux, ux), (vy, uy, uy), (vxy, ux, uy)):  # v = cov_norm * (u.. - a * b)
        np.multiply(a, b, out=buf)
        np.subtract(v, buf, out=v)
        np.multiply(cov_norm, v, out=v)
    np.multiply(2, ux, out=buf)  # A1 = 2 * ux * uy + C1
    np.multiply(buf, uy, out=buf)
    buf += c1
    np.multiply(2, vxy, out=vxy)  # A2 = 2 * vxy + C2
    vxy += c2
    np.multiply(ux, ux, out=ux)  # B1 = ux ** 2 + uy ** 2 + C1
    np.multiply(uy, uy, out=uy)
    np.add(ux, uy, out=ux)
    ux += c1
    np.add(vx, vy, out=vx)  # B2 = vx + vy + C2
    vx += c2
    np.multiply(ux, vx, out=ux)  # D = B1 * B2
    np.multiply(buf, vxy, out=buf)  # S = (A1 * A2) / D
    np.divide(buf, ux, out=buf)
    return buf


def ssim_mean(gt: da.Array, pred: da.Array, data_range: float, win: int) -> da.Array:
    """Mean SSIM of one channel (dask scalar): scikit-image's `structural_similarity` of the
    whole arrays, block by block."""
    pad = (win - 1) // 2
    chunks = tuple(_at_least(c, win) for c in gt.chunks)
    gt, pred = gt.rechunk(chunks), pred.rechunk(chunks)
    smap = da.map_overlap(
        _ssim_map_block, gt, pred, depth=pad, boundary="none", dtype=np.float64,
        data_range=float(data_range), win=int(win), align_arrays=False,
    )
    inner = smap[tuple(slice(pad, n - pad) for n in gt.shape)]
    return inner.mean(dtype=np.float64)


def _pair_graph(
    gt: da.Array,
    pred: da.Array,
    data_range: float,
    channel_axis: int | None,
    block: tuple[int, ...] | None = None,
) -> dict[str, da.Array]:
    """What one (frame, method) needs, as dask scalars: mean squared error (float64, all
    channels), whether the prediction is finite, and the SSIM (mean over channels), whose
    blocks are `block` (the frame's chunks; None: as the arrays come)."""
    diff = gt.astype(np.float64) - pred.astype(np.float64)
    out = {"mse": (diff * diff).mean(dtype=np.float64), "finite": da.isfinite(pred).all()}
    if block is not None:
        gt, pred = gt.rechunk(block), pred.rechunk(block)
    if channel_axis is not None:
        gt, pred = da.moveaxis(gt, channel_axis, -1), da.moveaxis(pred, channel_axis, -1)
        pairs = [(gt[..., c], pred[..., c]) for c in range(gt.shape[-1])]
    else:
        pairs = [(gt, pred)]
    win = _win_size(pairs[0][0].shape)
    if win is not None:
        out["ssim"] = da.stack([ssim_mean(g, p, data_range, win) for g, p in pairs]).mean()
    return out


def _finish(values: Mapping[str, Any], data_range: float, label: str) -> tuple[float, float]:
    """(PSNR, SSIM) from a pair's computed graph, with scikit-image's PSNR formula."""
    if not bool(values["finite"]):
        warnings.warn(
            f"{label}: prediction holds NaN/inf; PSNR/SSIM set to NaN", RuntimeWarning,
            stacklevel=3,
        )
        return math.nan, math.nan
    mse = float(values["mse"])
    psnr = math.inf if mse == 0.0 else float(10.0 * np.log10(data_range**2 / mse))
    if "ssim" not in values:
        warnings.warn(
            f"{label}: frame too small for an SSIM window; SSIM set to NaN", RuntimeWarning,
            stacklevel=3,
        )
        return psnr, math.nan
    return psnr, float(values["ssim"])


def _data_range(lo: float, hi: float, label: str) -> float | None:
    span = float(hi) - float(lo)
    if not (np.isfinite(span) and span > 0):
        warnings.warn(
            f"{label}: ground truth is constant (range {span}); PSNR/SSIM set to NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return span


def scheduler(address: str = "threads", threads: int = 1) -> AbstractContextManager:
    """Where the graphs run: dask's threaded scheduler with `threads` workers, or the
    dask.distributed cluster at `address` (tcp://... or a scheduler file, e.g. one started
    across a PBS allocation's nodes: docs/cluster.md). The cluster's workers must see the
    same files (a shared file system, as on Polaris)."""
    if address == "threads":
        return dask.config.set(scheduler="threads", num_workers=max(1, int(threads)))
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            f"runtime.dask_scheduler={address!r} needs dask.distributed: "
            "pip install 'hyperinr[distributed]'"
        ) from None
    if address.endswith(".json"):
        if not Path(address).is_file():
            raise FileNotFoundError(f"{address}: dask scheduler file not found")
        return Client(scheduler_file=address, set_as_default=True)
    return Client(address, set_as_default=True)


def frame_metrics(
    gt: Any,
    pred: Any,
    *,
    channel_axis: int | None = None,
    max_voxels: int = MAX_VOXELS,
    label: str = "frame",
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one predicted frame against its ground truth (physical units).

    `gt`/`pred`: [z, y, x] volumes or [y, x] images (numpy or dask), with a trailing channel
    axis when `channel_axis` is given; numpy inputs are cut into z-slabs of at most
    `max_voxels` elements. Returns (nan, nan) with a RuntimeWarning for a constant `gt`, and
    PSNR = inf for an exact prediction. Runs on the current dask scheduler.
    """
    if tuple(np.shape(gt)) != tuple(np.shape(pred)):
        raise ValueError(
            f"{label}: prediction shape {np.shape(pred)} != ground truth {np.shape(gt)}"
        )
    shape = tuple(np.shape(gt))
    depth = max(1, max_voxels // max(1, math.prod(shape[1:])))
    chunks = (depth, *shape[1:])
    gt_d = gt if isinstance(gt, da.Array) else da.from_array(np.asarray(gt), chunks=chunks)
    pred_d = (
        pred.rechunk(gt_d.chunks)
        if isinstance(pred, da.Array)
        else da.from_array(np.asarray(pred), chunks=gt_d.chunks)
    )
    lo, hi = dask.compute(gt_d.min(), gt_d.max())
    data_range = _data_range(lo, hi, label)
    if data_range is None:
        return math.nan, math.nan
    (values,) = dask.compute(_pair_graph(gt_d, pred_d, data_range, channel_axis))
    return _finish(values, data_range, label)


def metric_columns(param_names: list[str]) -> list[str]:
    """metrics.csv header: frame, one column per parameter, split, method, psnr, ssim."""
    fixed = {"frame", "split", "method", "psnr", "ssim"}
    params = [f"param_{n}" if n in fixed else n for n in param_names]
    return ["frame", *params, "split", "method", "psnr", "ssim"]


def _physical(block: np.ndarray, attrs) -> np.ndarray:
    return attrs.to_physical(block).astype(np.float32, copy=False)  # as physical_frame


def _read_pair(dataset, pred, i: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows a..b-1 of frame i: the dataset's in physical float32 (mapped in place, 8 rows at a
    time: the float64 copies stay small) and the prediction's. Read one after the other: zarr
    holds every shard a read touches whole until the read returns."""
    gt = np.asarray(dataset.frames[i, a:b], dtype=np.float32)
    if not gt.flags.writeable:
        gt = gt.copy()
    for r in range(0, len(gt), 8):
        gt[r : r + 8] = _physical(gt[r : r + 8], dataset.attrs)
    return gt, np.asarray(pred.frames[i, a:b]).astype(np.float32, copy=False)


def _slab_graph(
    dataset, pred, i: int, rows: tuple[int, int], data_range: float, block: tuple[int, ...],
    channels: int,
) -> dict[str, Any]:
    """One (frame, method, slab) as dask scalars: its rows' squared error and finiteness, and
    per channel the sum and count of the SSIM map values it owns. The slab's rows are read
    with the window's half-width of rows either side, so every owned map value is the
    whole-frame value; summed over slabs, the sums are scikit-image's crop-and-mean.
    """
    frames = dataset.frames
    shape = tuple(int(s) for s in frames.shape[1:])
    spatial = shape[:-1] if channels > 1 else shape
    win = _win_size(spatial)
    pad = 0 if win is None else (win - 1) // 2
    a, b = rows
    lo, hi = max(0, a - pad), min(shape[0], b + pad)
    region = (hi - lo, *shape[1:])
    pair = dask.delayed(_read_pair, nout=2)(dataset, pred, i, lo, hi)
    gt = da.from_delayed(pair[0], region, np.float32).rechunk((region[0], *block[1:]))
    pr = da.from_delayed(pair[1], region, np.float32).rechunk(gt.chunks)
    own = slice(a - lo, b - lo)
    diff = gt[own].astype(np.float64) - pr[own].astype(np.float64)
    out: dict[str, Any] = {
        "sse": (diff * diff).sum(dtype=np.float64),
        "finite": da.isfinite(pr[own]).all(),
        "ssim_sum": [],
        "count": [],
    }
    kept_rows = slice(max(a, pad) - lo, min(b, shape[0] - pad) - lo)
    if win is None or kept_rows.start >= kept_rows.stop:
        return out
    kept = (kept_rows, *(slice(pad, n - pad) for n in spatial[1:]))
    for c in range(channels):
        g, p = (gt, pr) if channels == 1 else (gt[..., c], pr[..., c])
        g = g.rechunk(tuple(_at_least(ch, win) for ch in g.chunks))
        p = p.rechunk(g.chunks)
        smap = da.map_overlap(
            _ssim_map_block, g, p, depth=pad, boundary="none", dtype=np.float64,
            data_range=float(data_range), win=int(win), align_arrays=False,
        )
        out["ssim_sum"].append(smap[kept].sum(dtype=np.float64))
        out["count"].append(math.prod(len(range(*k.indices(n))) for k, n in zip(kept, region)))
    return out


def _combine(parts: list[Mapping[str, Any]], n_values: int) -> dict[str, Any]:
    """A frame's slab sums -> the whole frame's MSE, finiteness and SSIM (channel mean)."""
    out: dict[str, Any] = {
        "mse": sum(float(p["sse"]) for p in parts) / n_values,
        "finite": all(bool(p["finite"]) for p in parts),
    }
    counts = np.sum([p["count"] for p in parts if p["count"]], axis=0)
    if np.size(counts):
        sums = np.sum([[float(v) for v in p["ssim_sum"]] for p in parts if p["count"]], axis=0)
        out["ssim"] = float(np.mean(sums / counts))
    return out


def evaluate(
    dataset_path: str | Path,
    predictions: Mapping[str, str | Path],
    out_csv: str | Path,
    progress: bool = True,
    *,
    threads: int = 1,
    memory_mb: int = RuntimeConfig.memory_mb,
    dask_scheduler: str = "threads",
) -> list[dict[str, Any]]:
    """PSNR/SSIM of every frame x method; writes `out_csv` atomically and returns its rows.

    Rows are ordered by frame, then method (hyperinr, teacher, lerp, then the rest). `split` is
    "train" for frames in the dataset's split.train and "unseen" otherwise. Work runs in
    blocks of the dataset's chunks on `threads` workers (or the cluster `dask_scheduler`
    names); `memory_mb` (runtime.memory_mb) bounds how many blocks and frames are in flight,
    and a bound too small for one block per worker is an error before any work.
    """
    # absolute: a dask.distributed worker opens the stores from its own working directory
    ds = open_dataset(Path(dataset_path).resolve())
    methods = order_methods(predictions)
    stores = {m: open_prediction(Path(predictions[m]).resolve(), ds) for m in methods}
    out_csv = Path(out_csv)
    for path in (out_csv, provenance_path(out_csv)):
        clean_stale_temporaries(path)  # a killed run's half-written temporaries
    columns = metric_columns(ds.param_names)
    param_cols = columns[1 : 1 + len(ds.param_names)]
    is_train = ds.is_train()

    layout = ds.layout
    gt_all = da.from_zarr(ds.frames, chunks=(1, *layout.chunks)).map_blocks(
        _physical, attrs=ds.attrs, dtype=np.float32
    )
    units_in_flight = _plan(ds, layout, threads, memory_mb)
    channels = ds.n_channels
    axes = tuple(range(1, gt_all.ndim))
    n_values = math.prod(layout.frame_shape)

    with scheduler(dask_scheduler, threads):
        lo, hi = dask.compute(gt_all.min(axis=axes), gt_all.max(axis=axes))
        ranges = [_data_range(a, b, f"frame {i}") for i, (a, b) in enumerate(zip(lo, hi))]
        units = [
            (i, m, rows)
            for i in range(ds.n_frames)
            if ranges[i] is not None
            for m in methods
            for rows in layout.slabs()
        ]
        parts: dict[tuple[int, str], list] = {}
        bar = tqdm(total=len(units), desc="metrics", unit="slab", disable=not progress)
        for start in range(0, len(units), units_in_flight):
            batch = units[start : start + units_in_flight]
            graphs = [
                _slab_graph(ds, stores[m], i, rows, ranges[i], layout.chunks, channels)
                for i, m, rows in batch
            ]
            for (i, m, _), values in zip(batch, dask.compute(*graphs)):
                parts.setdefault((i, m), []).append(values)
            bar.update(len(batch))
        bar.close()
    results = {
        (i, m): _finish(_combine(p, n_values), ranges[i], f"frame {i} ({m})")
        for (i, m), p in parts.items()
    }

    rows: list[dict[str, Any]] = []
    for i in range(ds.n_frames):
        base: dict[str, Any] = {"frame": i}
        base.update({c: float(v) for c, v in zip(param_cols, ds.params[i], strict=True)})
        base["split"] = "train" if is_train[i] else "unseen"
        for m in methods:
            psnr, ssim = results.get((i, m), (math.nan, math.nan))
            rows.append({**base, "method": m, "psnr": psnr, "ssim": ssim})

    # the old provenance goes first: a kill between the two files never leaves a new table
    # beside the record of an old one
    provenance_path(out_csv).unlink(missing_ok=True)
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
    how = {"runtime": {"memory_mb": int(memory_mb), "dask_scheduler": dask_scheduler}}
    record = provenance.record("evaluate", how, inputs)
    with atomic_path(provenance_path(out_csv)) as tmp:
        tmp.write_text(json.dumps({"stage": "evaluate", "produced_by": record}, indent=2) + "\n")
    return rows


def _plan(ds, layout, threads: int, memory_mb: int) -> int:
    """How many (frame, method, slab) units are computed together: enough to keep every
    worker busy when a slab is one block; no more than the memory bound allows, each unit
    counted at its two float32 slabs with halo rows and the shards read for them, and each
    worker at one halo-extended SSIM block (SSIM_BYTES_PER_VOXEL)."""
    pad = (SSIM_WIN - 1) // 2
    spatial = layout.chunks[: len(ds.dims)]
    channels = math.prod(layout.chunks[len(ds.dims) :])
    block = math.prod(c + 2 * pad for c in spatial) * SSIM_BYTES_PER_VOXEL
    plane = math.prod(layout.frame_shape[1:])
    # a slab with its halo rows, per array, and the shards one read holds: zarr reads a shard
    # whole even for a few of its rows, and the halo touches the shards above and below
    # (measured at 512^3: 70 rows cost 262 MB at peak, 64 aligned rows 146 MB)
    shards_touched = 3 if layout.shards is not None else 1
    unit = 4 * plane * (2 * (layout.slab_depth + 2 * pad) + shards_touched * layout.slab_depth)
    blocks = math.prod(math.ceil(n / c) for n, c in zip(layout.frame_shape[1:], layout.chunks[1:]))
    want = max(1, math.ceil(4 * threads / max(1, blocks // channels)))
    left = check_budget(
        "evaluate", memory_mb, EVALUATE_RUNTIME_BYTES + threads * block + unit,
        f"{threads} SSIM block(s) of {'x'.join(map(str, spatial))} and one slab pair",
        "lower store.chunk (new stores) or runtime.threads, or raise runtime.memory_mb",
    )
    return max(1, min(want, 1 + left // unit))


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
