"""Stage `distill_set`: the teacher's outputs at N_D parameters, precomputed once (Sec. 3.1).

Precomputing keeps distillation from being bound by the teacher's inference speed. The work is
a scatter/gather (docs/distill_set.md):

- scatter: shard i holds parameters [i * shard_size, (i + 1) * shard_size) and is its own Zarr
  v3 store `<shards_dir>/shard_{i}.zarr`, written by exactly one job into a temporary sibling and
  renamed when complete. No two jobs ever write the same file.
- gather: every shard is checked (identity attrs, shapes, finite values, the SHA-256 of every
  parameter recorded at write time; each chunk also carries a crc32c that Zarr checks on every
  read). Missing, stale (other config/teacher/dataset) or corrupt shards are recomputed, never
  read. The published set `distill_set.zarr` is one ordinary Zarr array whose chunk files are
  hard links to the shards' chunk files: readers see one array with one chunk per parameter,
  and the data is on disk once. Where links are impossible (another file system, a store that
  is not a local directory, a chunk file not where expected) the chunk is copied through the
  Zarr array API instead, re-encoded by the same codecs into the same bytes.

The store layout is `hyperinr.data.distill_store`. Every shard and the set record their
`produced_by` provenance (this stage's config slice, the teacher file's SHA-256 and the
dataset's content hash): a shard or set with another one is stale and recomputed.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from hyperinr.config import Config
from hyperinr.data.distill_store import (
    DISTILL_SET_LAYOUT_VERSION,
    PARAMS01_DIMS,
    SET_KIND,
    create_arrays,
    digest,
    set_content_hash,
)
from hyperinr.data.store import consolidate
from hyperinr.grid import n_voxels
from hyperinr.infra import provenance
from hyperinr.infra.atomic import atomic_path, clean_stale_temporaries
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.infra.stage_info import write_info
from hyperinr.models.coordnet import CoordNet, load_teacher, teacher_values
from hyperinr.stages.common import (
    DatasetTensors,
    check_teacher,
    distill_parameters,
    load_dataset_meta,
)

log = logging.getLogger(__name__)

SHARD_KIND = "distill_set_shard"
MODES = ("full", "subset")
_DTYPES = {"float16": np.float16, "float32": np.float32}
_SHARD_INFO = "info.json"  # timing sidecar inside a shard directory; not part of the Zarr data


# --------------------------------------------------------------------------- layout helpers


def n_shards(cfg: Config) -> int:
    return math.ceil(cfg.distill_set.n_samples / cfg.distill_set.shard_size)


def shard_range(cfg: Config, shard: int) -> tuple[int, int]:
    """Global parameter indices [lo, hi) of `shard`."""
    if not 0 <= shard < n_shards(cfg):
        raise ValueError(
            f"shard {shard} does not exist: distill_set.n_samples={cfg.distill_set.n_samples} "
            f"and shard_size={cfg.distill_set.shard_size} make {n_shards(cfg)} shards"
        )
    lo = shard * cfg.distill_set.shard_size
    return lo, min(lo + cfg.distill_set.shard_size, cfg.distill_set.n_samples)


def shard_path(shards_dir: Path, shard: int) -> Path:
    return Path(shards_dir) / f"shard_{shard}.zarr"


def default_shards_dir(out: Path) -> Path:
    """`results/<name>/distill_set.zarr` -> `results/<name>/distill_set/shards` (as the rules)."""
    return Path(out).parent / "distill_set" / "shards"


def write_chunk(array: zarr.Array, index: int, data: np.ndarray) -> None:
    """The one place a chunk reaches the disk (tests replace it to simulate a full disk)."""
    array[index : index + 1] = data[None]


def subset_coords(seed: int, param_index: int, n_points: int, n_dims: int) -> np.ndarray:
    """Random coordinates of one parameter in [0, 1]^D (x first), fixed by (seed, index)."""
    rng = np.random.default_rng([seed, param_index])
    return rng.random((n_points, n_dims), dtype=np.float32)


def _disk_full(err: OSError, what: Path) -> OSError:
    if err.errno == errno.ENOSPC:
        return OSError(
            errno.ENOSPC,
            f"{what}: disk full while writing the distillation set; nothing was published "
            "(free space, or lower distill_set.n_samples / use dtype float16 / coverage subset)",
        )
    return err


# --------------------------------------------------------------------------- context


@dataclass
class SetContext:
    """Everything one set's shards share: config, dataset, teacher and what identifies them."""

    cfg: Config
    meta: DatasetTensors
    dataset_hash: str
    model: CoordNet
    teacher_sha256: str
    device: torch.device
    params01: np.ndarray  # [N_D, P]
    produced_by: dict[str, Any]  # hyperinr.infra.provenance.record of this set

    @property
    def mode(self) -> str:
        """distill_set.coverage, stored as the set's `mode` attr (the store's own field)."""
        return self.cfg.distill_set.coverage

    @property
    def dtype(self) -> Any:
        return _DTYPES[self.cfg.distill_set.dtype]

    @property
    def n_points(self) -> int:
        if self.mode == "full":
            return n_voxels(self.meta.dims)
        return self.cfg.distill_set.points_per_param

    def identity(self) -> dict[str, Any]:
        """Attrs a stored shard/set must carry to count as this set (else it is stale)."""
        return {
            "layout_version": DISTILL_SET_LAYOUT_VERSION,
            "mode": self.mode,
            "dtype": self.cfg.distill_set.dtype,
            "dims": list(self.meta.dims),
            "n_channels": self.meta.n_channels,
            "n_points": self.n_points,
            "produced_by": self.produced_by,
            "teacher_sha256": self.teacher_sha256,
            "dataset_hash": self.dataset_hash,
        }

    def shard_identity(self, shard: int) -> dict[str, Any]:
        lo, hi = shard_range(self.cfg, shard)
        return {
            "kind": SHARD_KIND,
            **self.identity(),
            "shard": shard,
            "n_shards": n_shards(self.cfg),
            "lo": lo,
            "hi": hi,
        }


def prepare(cfg: Config, dataset: Path, teacher: Path) -> SetContext:
    configure_threads(cfg.runtime.threads)
    if cfg.distill_set.dtype not in _DTYPES:
        raise ValueError(
            f"distill_set.dtype '{cfg.distill_set.dtype}' is not one of {list(_DTYPES)}"
        )
    if cfg.distill_set.coverage not in MODES:
        raise ValueError(
            f"distill_set.coverage '{cfg.distill_set.coverage}' is not one of {list(MODES)}"
        )
    if cfg.distill_set.shard_size < 1:
        raise ValueError("distill_set.shard_size must be >= 1")
    device = resolve_device(cfg.runtime.device)
    meta, store = load_dataset_meta(dataset)
    model, tstate = load_teacher(Path(teacher), device)
    check_teacher(Path(teacher), tstate, meta, store.content_hash)
    teacher_sha256 = provenance.sha256_file(teacher)
    inputs = {"dataset": store.content_hash, "teacher": teacher_sha256}
    return SetContext(
        cfg=cfg,
        meta=meta,
        dataset_hash=store.content_hash,
        model=model,
        teacher_sha256=teacher_sha256,
        device=device,
        params01=distill_parameters(cfg, meta),
        produced_by=provenance.record("distill_set", cfg, inputs),
    )


# --------------------------------------------------------------------------- scatter


def compute_shard(ctx: SetContext, shard: int, path: Path) -> Path:
    """Compute and write shard `shard` at `path` (temporary sibling, renamed when complete)."""
    path = Path(path)
    lo, hi = shard_range(ctx.cfg, shard)
    clean_stale_temporaries(path)  # only this shard's own leftovers: other jobs' are untouched
    t0 = time.perf_counter()
    batch, seed = ctx.cfg.distill_set.batch_size, ctx.cfg.runtime.seed
    try:
        with atomic_path(path, is_dir=True) as tmp:
            root = zarr.open_group(tmp, mode="w", zarr_format=3)
            values, coords = create_arrays(
                root, hi - lo, ctx.n_points, ctx.meta.n_channels, ctx.meta.n_spatial, ctx.dtype,
                ctx.mode,
            )
            root.create_array(
                "params01", data=ctx.params01[lo:hi], dimension_names=PARAMS01_DIMS
            )
            sums: dict[str, list[str]] = {"values": [], "coords": []}
            for k, j in enumerate(range(lo, hi)):
                theta = torch.from_numpy(ctx.params01[j])
                pts = None
                if ctx.mode == "subset":
                    pts = subset_coords(seed, j, ctx.n_points, ctx.meta.n_spatial)
                vol = teacher_values(ctx.model, theta, ctx.meta.dims, batch, ctx.device, pts)
                if pts is not None:
                    write_chunk(coords, k, pts)
                    sums["coords"].append(digest(pts))
                vol = vol.astype(ctx.dtype)
                write_chunk(values, k, vol)
                sums["values"].append(digest(vol))
            root.attrs.update({**ctx.shard_identity(shard), "checksums": sums})
            seconds = time.perf_counter() - t0
            (tmp / _SHARD_INFO).write_text(
                json.dumps({"compute_seconds": round(seconds, 3), "device": str(ctx.device)}) + "\n"
            )
    except OSError as err:
        raise _disk_full(err, path) from None
    log.info("%s: parameters [%d, %d) in %.1f s", path, lo, hi, time.perf_counter() - t0)
    return path


def verify_shard(ctx: SetContext, shard: int, path: Path) -> str | None:
    """None if `path` is a complete, current, intact shard; else why not (it must be recomputed).

    Reads every chunk once: Zarr checks each chunk's crc32c, then the values are checked to be
    finite and to have the SHA-256 recorded when they were written.
    """
    path = Path(path)
    if not (path / "zarr.json").exists():
        return "missing"
    try:
        root = zarr.open_group(path, mode="r")
        attrs = dict(root.attrs)
        want = ctx.shard_identity(shard)
        for key, value in want.items():
            if attrs.get(key) != value:
                return f"stale ({key} is {attrs.get(key)!r}, current is {value!r})"
        n = want["hi"] - want["lo"]
        sums = attrs.get("checksums", {})
        names = ["values"] + (["coords"] if ctx.mode == "subset" else [])
        widths = {"values": ctx.meta.n_channels, "coords": ctx.meta.n_spatial}
        for name in names:
            arr = root[name]
            if tuple(arr.shape) != (n, ctx.n_points, widths[name]):
                return f"corrupt ({name} has shape {arr.shape})"
            if len(sums.get(name, [])) != n:
                return f"corrupt (no checksums for {name})"
            for k in range(n):
                chunk = np.asarray(arr[k])
                if not np.isfinite(chunk).all():
                    return f"corrupt ({name}[{k}] is not finite)"
                if digest(chunk) != sums[name][k]:
                    return f"corrupt ({name}[{k}] fails its SHA-256)"
        p = np.asarray(root["params01"][...])
        if p.shape != (n, ctx.params01.shape[1]) or not np.array_equal(
            p, ctx.params01[want["lo"] : want["hi"]]
        ):
            return "corrupt (params01)"
    except Exception as err:  # unreadable metadata, failed crc32c, truncated chunk, ...
        first = str(err).splitlines()[0][:120] if str(err) else ""
        return f"corrupt ({type(err).__name__}: {first})"
    return None


def ensure_shard(ctx: SetContext, shard: int, path: Path) -> bool:
    """Compute `shard` unless a current, intact copy is at `path`; True if it was computed."""
    reason = verify_shard(ctx, shard, path)
    if reason is None:
        log.info("%s: up to date", path)
        return False
    if reason != "missing":
        log.warning("%s: %s; recomputing", path, reason)
    compute_shard(ctx, shard, path)
    after = verify_shard(ctx, shard, path)
    if after is not None:
        raise OSError(f"{path}: shard written but does not read back intact ({after})")
    return True


def build_shard(cfg: Config, dataset: Path, teacher: Path, shard: int, out: Path) -> Path:
    """`hyperinr distill-set-shard`: one shard, skipped if a current intact copy exists."""
    ctx = prepare(cfg, dataset, teacher)
    shard_range(cfg, shard)  # a clear error for an index out of range
    ensure_shard(ctx, shard, Path(out))
    return Path(out)


# --------------------------------------------------------------------------- gather


def link_chunk(src: Path, dst: Path) -> None:
    """The one place a chunk file is hard-linked (tests replace it to simulate a file system
    without hard links)."""
    os.link(src, dst)


# what makes two arrays' chunk files interchangeable byte for byte
_ENCODING = ("data_type", "chunk_grid", "chunk_key_encoding", "codecs", "fill_value")


def _linkable(src: zarr.Array, dst: zarr.Array) -> bool:
    """Both in local directory stores and encoded alike, so a chunk file of one is a valid chunk
    file of the other (a shard from another code version would not be)."""
    local = zarr.storage.LocalStore
    if not (isinstance(src.store, local) and isinstance(dst.store, local)):
        return False
    a, b = src.metadata.to_dict(), dst.metadata.to_dict()
    return all(a.get(key) == b.get(key) for key in _ENCODING)


def _chunk_file(arr: zarr.Array, index: int) -> Path:
    """Where a LocalStore keeps chunk `index` of `arr` (its root joined with the store key)."""
    key = f"{arr.path}/{arr.metadata.encode_chunk_key((index, 0, 0))}"
    return Path(arr.store.root, *key.split("/"))


def _place_chunk(src: zarr.Array, k: int, dst: zarr.Array, j: int, linkable: bool) -> str:
    """Make chunk k of `src` chunk j of `dst`; returns how ("hardlink" or "zarr").

    The hard link costs no I/O but relies on LocalStore's key-to-file mapping, so it is used
    only where the source file is verified to be where that mapping puts it; anything else goes
    through the public array API, whose decode/encode with the same codecs yields the same
    bytes (and the same SHA-256 of the values, which is all the content hash depends on).
    """
    if linkable:
        src_file, dst_file = _chunk_file(src, k), _chunk_file(dst, j)
        if src_file.is_file():
            try:
                dst_file.parent.mkdir(parents=True, exist_ok=True)
                link_chunk(src_file, dst_file)
                return "hardlink"
            except OSError as err:
                if err.errno == errno.ENOSPC:  # a copy needs more space, not less
                    raise
    write_chunk(dst, j, np.asarray(src[k]))
    return "zarr"


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def publish(ctx: SetContext, shards_dir: Path, out: Path) -> dict[str, Any]:
    """Assemble `out` from verified shards: fresh metadata, chunk files linked from the shards
    (or copied through the array API where linking is impossible; attr `storage` says which)."""
    out = Path(out)
    cfg = ctx.cfg
    n = len(ctx.params01)
    sums: dict[str, list[str]] = {"values": [], "coords": []}
    storage: set[str] = set()
    try:
        with atomic_path(out, is_dir=True) as tmp:
            root = zarr.open_group(tmp, mode="w", zarr_format=3)
            values, coords = create_arrays(
                root, n, ctx.n_points, ctx.meta.n_channels, ctx.meta.n_spatial, ctx.dtype, ctx.mode
            )
            root.create_array("params01", data=ctx.params01, dimension_names=PARAMS01_DIMS)
            arrays = {"values": values, **({"coords": coords} if coords is not None else {})}
            for shard in range(n_shards(cfg)):
                src_root = zarr.open_group(shard_path(shards_dir, shard), mode="r")
                attrs = src_root.attrs
                lo, hi = attrs["lo"], attrs["hi"]
                for name, arr in arrays.items():
                    sums[name].extend(attrs["checksums"][name])
                    src = src_root[name]
                    linkable = _linkable(src, arr)
                    for k in range(hi - lo):
                        storage.add(_place_chunk(src, k, arr, lo + k, linkable))
            itemsize = np.dtype(ctx.dtype).itemsize
            nbytes = n * ctx.n_points * ctx.meta.n_channels * itemsize
            if ctx.mode == "subset":
                nbytes += n * ctx.n_points * ctx.meta.n_spatial * 4
            facts = {
                "kind": SET_KIND,
                **ctx.identity(),
                "n_params": n,
                "points_per_param": ctx.n_points,
                "shard_size": cfg.distill_set.shard_size,
                "n_shards": n_shards(cfg),
                "checksums": sums,
                "content_sha256": set_content_hash(sums, ctx.params01, ctx.identity()),
                "bytes": int(nbytes),  # in memory, at the stored precision (values + coords)
                "disk_bytes": int(_dir_bytes(tmp)),  # on disk (compressed), links counted once
                "storage": "+".join(sorted(storage)) or "none",
            }
            root.attrs.update(facts)
            consolidate(tmp)  # xarray.open_zarr(out) opens it plainly (docs/data.md)
            # the assembled arrays must decode where it matters: first and last parameter
            check = zarr.open_group(tmp, mode="r")
            for name in arrays:
                for k in {0, n - 1}:
                    if digest(np.asarray(check[name][k])) != sums[name][k]:
                        raise OSError(
                            f"{out}: assembled set does not read back ({name} of parameter {k})"
                        )
    except OSError as err:
        raise _disk_full(err, out) from None
    return facts


def build_distill_set(
    cfg: Config, dataset: Path, teacher: Path, out: Path, shards_dir: Path | None = None
) -> Path:
    """`hyperinr distill-set`: check every shard, compute those missing/stale/corrupt, publish.

    Under Snakemake the shards were made by `distill_set_shard` jobs and this only verifies and
    links; run by hand it computes whatever is missing, one shard after another.
    """
    out = Path(out)
    shards_dir = Path(shards_dir) if shards_dir else default_shards_dir(out)
    t0 = time.perf_counter()
    ctx = prepare(cfg, dataset, teacher)
    clean_stale_temporaries(out)  # a killed gather's half-assembled set (links only)
    recomputed, recompute_seconds = [], 0.0
    for shard in range(n_shards(cfg)):
        t1 = time.perf_counter()
        if ensure_shard(ctx, shard, shard_path(shards_dir, shard)):
            recomputed.append(shard)
            recompute_seconds += time.perf_counter() - t1
    facts = publish(ctx, shards_dir, out)
    gather_seconds = time.perf_counter() - t0
    compute = 0.0
    for shard in range(n_shards(cfg)):
        info = shard_path(shards_dir, shard) / _SHARD_INFO
        if info.exists():
            compute += float(json.loads(info.read_text()).get("compute_seconds", 0.0))
    write_info(
        out.parent / "distill_set_info.json",
        "distill_set",
        compute + gather_seconds - recompute_seconds,  # teacher inference + verify/publish
        device=str(ctx.device),
        n_params=facts["n_params"],
        mode=facts["mode"],
        dtype=facts["dtype"],
        n_shards=facts["n_shards"],
        recomputed_by_gather=recomputed,
        gather_seconds=round(gather_seconds, 3),
        bytes=facts["bytes"],
        disk_bytes=facts["disk_bytes"],
        storage=facts["storage"],
        produced_by=ctx.produced_by,
        content_sha256=facts["content_sha256"],
    )
    log.info("%s: %d parameters, %.1f MB in memory, %.1f MB on disk", out, facts["n_params"],
             facts["bytes"] / 2**20, facts["disk_bytes"] / 2**20)
    return out
