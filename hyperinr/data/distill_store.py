"""The distillation set on disk: one Zarr v3 layout shared by its shards and the published set.

Store layout (shards and the published set alike):
  values   [n, n_points, C]  stored dtype, chunk (1, n_points, C), zstd + crc32c, fill NaN
  coords   [n, n_points, D]  float32 in [0, 1], x first (mode subset only), same chunking
  params01 [n, P]            float64 normalised distillation parameters
Dimension names (Zarr v3 `dimension_names`, so `xarray.open_zarr` reads the published set):
"sample" is one distillation parameter setting theta_j, "point" one of its points, "channel"
the value channels, "axis" the coordinate axes, "param" the P parameters (as in the dataset).
attrs: identity (kind, layout version, mode, dtype, dims, provenance), per-parameter SHA-256s
(`checksums`) and, on the published set, `content_sha256` (`set_content_hash`).

The writer is `hyperinr.stages.distill_set`; the readers are `DistillSet` here and the training
loaders (`hyperinr.training.loader`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.buffer import cpu as cpu_buffer
from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

from hyperinr.grid import n_voxels
from hyperinr.infra.provenance import require, sha256_json

SET_KIND = "distill_set"
DISTILL_SET_LAYOUT_VERSION = 3  # 3: provenance + content_sha256
VALUES_DIMS = ("sample", "point", "channel")
COORDS_DIMS = ("sample", "point", "axis")
PARAMS01_DIMS = ("sample", "param")


def digest(a: np.ndarray) -> str:
    """SHA-256 of an array's C-order bytes: recorded when a shard is written, checked on read."""
    return hashlib.sha256(np.ascontiguousarray(a).view(np.uint8)).hexdigest()


class DistillSet:
    """Read-only view of a published distillation set (`distill_set.zarr`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            root = zarr.open_group(self.path, mode="r")
            attrs = dict(root.attrs)
            self.values: zarr.Array = root["values"]
            self.params01 = np.asarray(root["params01"][...], dtype=np.float64)
            self.coords: zarr.Array | None = root["coords"] if "coords" in root else None
        except (FileNotFoundError, KeyError, zarr.errors.NodeNotFoundError) as err:
            raise ValueError(f"{self.path}: not a distillation set ({err})") from None
        version = attrs.get("layout_version")
        if attrs.get("kind") != SET_KIND or version != DISTILL_SET_LAYOUT_VERSION:
            raise ValueError(
                f"{self.path}: not a distillation set of layout {DISTILL_SET_LAYOUT_VERSION} "
                f"(kind {attrs.get('kind')!r}, layout {attrs.get('layout_version')!r}); "
                "rerun `hyperinr distill-set`"
            )
        self.attrs = attrs
        self.mode: str = attrs["mode"]
        self.dims = tuple(int(d) for d in attrs["dims"])
        self.n_params, self.n_points, self.n_channels = (int(s) for s in self.values.shape)
        self.checksums: dict[str, list[str]] = attrs["checksums"]
        if (self.mode == "subset") != (self.coords is not None):
            raise ValueError(f"{self.path}: mode {self.mode!r} but coords are {self.coords}")
        if self.mode == "full" and self.n_points != n_voxels(self.dims):
            raise ValueError(f"{self.path}: {self.n_points} points per parameter, dims {self.dims}")

    @property
    def content_hash(self) -> str:
        """What HyperINR records as this set's identity (see hyperinr.infra.provenance)."""
        return require(self.attrs.get("content_sha256"), str(self.path))

    @property
    def n_dims(self) -> int:
        return len(self.dims)

    @property
    def values_dtype(self) -> np.dtype:
        return np.dtype(self.values.dtype)

    @property
    def chunk_nbytes(self) -> int:
        """Bytes one parameter takes in memory (values + coords)."""
        n = self.n_points * self.n_channels * self.values_dtype.itemsize
        if self.coords is not None:
            n += self.n_points * self.n_dims * 4
        return n

    @property
    def nbytes(self) -> int:
        return self.n_params * self.chunk_nbytes

    def read_into(self, j: int, values: np.ndarray, coords: np.ndarray | None = None) -> None:
        """Read parameter j into `values` [n_points, C] (and `coords`), checking its SHA-256.

        Zarr checks each chunk's crc32c as it decodes; the SHA-256 recorded when the shard was
        written also catches a chunk file that went missing (it would read as NaN fill). The
        chunk is decoded straight into `out` (the loaders' preallocated, possibly pinned slots)
        through the public host-memory buffer of `zarr.buffer` (public since zarr 3.1), so a
        read costs no second copy of the parameter.
        """
        pairs = [("values", self.values, values)]
        if self.coords is not None:
            if coords is None:
                raise ValueError("a subset-mode set needs a coords buffer")
            pairs.append(("coords", self.coords, coords))
        for name, arr, out in pairs:
            try:
                nd = cpu_buffer.NDBuffer.from_numpy_array(out[None])
                arr.get_basic_selection(
                    (slice(j, j + 1),), out=nd, prototype=cpu_buffer.buffer_prototype
                )
            except ValueError as err:  # a failed crc32c
                raise ValueError(
                    f"{self.path}: {name} of parameter {j} is corrupt ({err}); rerun "
                    "`hyperinr distill-set` to recompute it"
                ) from None
            if digest(out) != self.checksums[name][j]:
                raise ValueError(
                    f"{self.path}: {name} of parameter {j} fails its SHA-256; rerun "
                    "`hyperinr distill-set` to recompute it"
                )


def create_arrays(
    group: zarr.Group, n: int, n_points: int, n_channels: int, n_dims: int, dtype: Any, mode: str
) -> tuple[zarr.Array, zarr.Array | None]:
    """`values` (and `coords` in subset mode) with one chunk per parameter; shards and the
    published set use this one function so their chunk files are interchangeable."""

    def make(name: str, width: int, dt: Any, dims: tuple[str, ...]) -> zarr.Array:
        return group.create_array(
            name,
            shape=(n, n_points, width),
            chunks=(1, n_points, width),
            dtype=dt,
            fill_value=np.nan,  # a chunk file that went missing reads as NaN, never as data
            serializer=BytesCodec(),
            compressors=[ZstdCodec(level=3), Crc32cCodec()],
            dimension_names=dims,
        )

    values = make("values", n_channels, dtype, VALUES_DIMS)
    coords = make("coords", n_dims, np.float32, COORDS_DIMS) if mode == "subset" else None
    return values, coords


def set_content_hash(checksums: dict[str, list[str]], params01: np.ndarray, identity: dict) -> str:
    """The set's content: every parameter's SHA-256 (values, coords), the parameters and the
    layout facts that give the numbers their meaning; computed at publish from the checksums."""
    return sha256_json({"checksums": checksums, "params01": digest(params01), **identity})
