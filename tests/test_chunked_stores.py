"""Spatially chunked stores (issue 19): the layout rule, slab-by-slab writing, and every writer
(ingest, LERP, predict) giving exactly the same frames and content hash whatever the layout."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import zarr
from _synthetic import TINY_DIMS, TINY_TIMES, smooth_field, tiny_hyperinr_run, write_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperinr.config import Config, DatasetConfig, ParamsConfig, SplitConfig, StoreConfig
from hyperinr.data import ingest
from hyperinr.data.store import (
    FrameLayout,
    frame_layout,
    open_dataset,
    open_frames_store,
    write_frames_store,
)
from hyperinr.grid import field_values, n_voxels
from hyperinr.infra.memory import MB, MemoryBudgetError, process_rss_bytes
from hyperinr.models.hyperinr import load_hyperinr
from hyperinr.models.lerp import lerp_predict, lerp_weights
from hyperinr.stages.predict import predict

# --------------------------------------------------------------------------- frame_layout


def test_small_frames_are_one_chunk():
    for chunk in (None, 6, 64):
        lay = frame_layout((4, 5, 6), 1, chunk)
        assert lay.chunks == (4, 5, 6) and lay.shards is None
        assert lay.slabs() == [(0, 4)] and lay.slab_voxels() == 120
    # channels ride along, never split
    lay = frame_layout((4, 5, 3), 3, 64)
    assert lay.chunks == (4, 5, 3) and lay.shards is None


def test_chunks_capped_by_the_frame_and_shards_cover_a_slab():
    lay = frame_layout((4, 5, 6), 1, 3)
    assert lay.chunks == (3, 3, 3) and lay.shards == (3, 6, 6)
    assert lay.slabs() == [(0, 3), (3, 4)] and lay.slab_voxels() == 3 * 5 * 6
    assert frame_layout((4, 5, 6), 1, 3, shard=False).shards is None
    # only the first axis is cut: several chunks per frame, but one per slab -> no shard
    lay = frame_layout((10, 3, 2), 1, 3)
    assert lay.chunks == (3, 3, 2) and lay.shards is None
    assert lay.slabs() == [(0, 3), (3, 6), (6, 9), (9, 10)]
    # a thin first axis: the chunk is capped there, the others still cut
    lay = frame_layout((2, 100, 3), 1, 3)
    assert lay.chunks == (2, 3, 3) and lay.shards == (2, 102, 3)
    # images with channels: (y, x, c)
    lay = frame_layout((7, 9, 3), 3, 4)
    assert lay.chunks == (4, 4, 3) and lay.shards == (4, 12, 3)
    assert lay.slabs() == [(0, 4), (4, 7)] and lay.slab_voxels() == 4 * 9 * 3


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=3),
    st.sampled_from([1, 2, 3, 4]),
    st.one_of(st.none(), st.integers(1, 50)),
    st.booleans(),
)
def test_layout_properties(spatial, n_channels, chunk, shard):
    frame = (*spatial, n_channels) if n_channels > 1 else tuple(spatial)
    lay = frame_layout(frame, n_channels, chunk, shard)
    assert lay.frame_shape == frame and len(lay.chunks) == len(frame)
    want = [n if chunk is None else min(chunk, n) for n in spatial]
    assert list(lay.chunks[: len(spatial)]) == want
    assert lay.chunks[len(spatial) :] == frame[len(spatial) :]  # channels whole
    if chunk is None or all(n <= chunk for n in spatial):
        assert lay.chunks == frame and lay.shards is None
    per_slab = math.prod(math.ceil(n / c) for n, c in zip(spatial[1:], want[1:], strict=True))
    if not shard or per_slab == 1:
        assert lay.shards is None
    else:
        sh = lay.shards
        assert len(sh) == len(frame) and sh[0] == lay.chunks[0]
        assert all(s % c == 0 for s, c in zip(sh, lay.chunks, strict=True))
        for s, c, n in zip(sh[1:], lay.chunks[1:], frame[1:], strict=True):
            assert n <= s < n + c  # the smallest multiple covering the frame
        assert sh[len(spatial) :] == frame[len(spatial) :]
    slabs = lay.slabs()
    assert slabs[0][0] == 0 and slabs[-1][1] == frame[0]
    for (a, b), (c, _) in zip(slabs, slabs[1:], strict=False):
        assert b == c and b - a == lay.slab_depth
    assert all(0 < b - a <= lay.slab_depth for a, b in slabs)
    assert lay.slab_voxels() == max(b - a for a, b in slabs) * math.prod(frame[1:])


# --------------------------------------------------------------------------- write_frames_store

SHAPES = [
    ((2, 7, 5, 9), 1),
    ((3, 4, 5, 6), 1),
    ((2, 7, 9), 1),  # images
    ((2, 7, 5, 3), 3),  # images with channels
]
LAYOUTS = [None, (3, True), (3, False), (2, True), (64, True)]


def _frames(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _layout(frame_shape, n_channels, spec) -> FrameLayout | None:
    return None if spec is None else frame_layout(frame_shape, n_channels, *spec)


def _as_slabs(frame, lay: FrameLayout | None, container=iter):
    lay = lay or frame_layout(frame.shape, 1)
    return container(frame[a:b].copy() for a, b in lay.slabs())


def _hash(path) -> str:
    return open_frames_store(path).raw_attrs["content_sha256"]


@pytest.mark.parametrize(("shape", "n_channels"), SHAPES)
def test_every_layout_stores_the_same_values_and_hash(tmp_path, shape, n_channels):
    frames = _frames(shape)
    attrs = {"method": "x", "k": 3}
    ref = write_frames_store(
        tmp_path / "ref.zarr", frames, shape, attrs, n_channels=n_channels, hashed_attrs=("k",)
    )
    other = write_frames_store(
        tmp_path / "other.zarr", frames + 1, shape, attrs, n_channels=n_channels,
        hashed_attrs=("k",),
    )  # fmt: skip
    assert _hash(other) != _hash(ref)  # the hash does see the values
    for j, spec in enumerate(LAYOUTS):
        lay = _layout(shape[1:], n_channels, spec)
        items = {
            "whole": list(frames),
            "slab generators": [_as_slabs(f, lay) for f in frames],
            "slab lists": [_as_slabs(f, lay, list) for f in frames],
            "mixed": [frames[0], *[_as_slabs(f, lay) for f in frames[1:]]],
        }
        for k, (how, stream) in enumerate(items.items()):
            path = write_frames_store(
                tmp_path / f"s{j}_{k}.zarr", iter(stream), shape, attrs, n_channels=n_channels,
                hashed_attrs=("k",), layout=lay,
            )  # fmt: skip
            store = open_frames_store(path)
            assert np.array_equal(store.frames[...], frames), (spec, how)
            assert _hash(path) == _hash(ref), (spec, how)
            want = lay or frame_layout(shape[1:], n_channels)
            assert store.frames.chunks == (1, *want.chunks)
            assert store.frames.shards == (None if want.shards is None else (1, *want.shards))
            assert store.layout == want
            for a, b in want.slabs():
                assert np.array_equal(store.read_slab(1, a, b), frames[1, a:b])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda f, lay: [f[0:3], f[3:5], f[6:7]], r"slab \[3, 6\) has shape \(2, 5, 9\)"),
        (lambda f, lay: [f[0:3], f[3:6]], "has 2 of 3 slabs"),
        (lambda f, lay: [f[0:3], f[3:6], f[6:7], f[6:7]], "more than 3 slabs"),
        (lambda f, lay: [f[0:3], f[3:6], f[6:7, :4]], r"slab \[6, 7\) has shape \(1, 4, 9\)"),
        (lambda f, lay: [f[0:3, None], f[3:6], f[6:7]], r"slab \[0, 3\)"),
        (lambda f, lay: [], "has 0 of 3 slabs"),
    ],
    ids=["short", "missing", "extra", "narrow", "ndim", "empty"],
)
def test_bad_slabs_fail_and_leave_nothing(tmp_path, make, match):
    shape = (2, 7, 5, 9)
    frames = _frames(shape)
    lay = frame_layout(shape[1:], 1, 3)
    path = tmp_path / "out" / "p.zarr"
    path.parent.mkdir()
    stream = [_as_slabs(frames[0], lay), iter(make(frames[1], lay))]
    with pytest.raises(ValueError, match=match) as info:
        write_frames_store(path, iter(stream), shape, {}, layout=lay)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert list(path.parent.iterdir()) == []


def test_wrong_frame_count_or_layout_fails(tmp_path):
    shape = (2, 7, 5, 9)
    frames = _frames(shape)
    lay = frame_layout(shape[1:], 1, 3)
    with pytest.raises(ValueError, match="more than the 2 frames"):
        write_frames_store(tmp_path / "a.zarr", [*frames, frames[0]], shape, layout=lay)
    with pytest.raises(ValueError, match="got 1 frames, expected 2"):
        write_frames_store(tmp_path / "a.zarr", frames[:1], shape, layout=lay)
    with pytest.raises(ValueError, match="layout for frames"):
        write_frames_store(tmp_path / "a.zarr", frames, shape, layout=frame_layout((7, 5, 8)))
    assert list(tmp_path.iterdir()) == []


def test_xarray_opens_a_sharded_store(tmp_path):
    xr = pytest.importorskip("xarray")
    frames = _frames((2, 7, 5, 9))
    lay = frame_layout(frames.shape[1:], 1, 3)
    assert lay.shards is not None
    path = write_frames_store(tmp_path / "p.zarr", frames, frames.shape, {"m": 1}, layout=lay)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(path)
    assert ds["frames"].dims == ("frame", "z", "y", "x")
    assert ds["frames"].shape == frames.shape
    np.testing.assert_array_equal(ds["frames"].values, frames)
    assert ds.attrs["m"] == 1


def test_store_of_an_existing_array_reads_its_layout(tmp_path):
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w", zarr_format=3)
    arr = group.create_array("a", shape=(3, 10, 7, 4), chunks=(1, 5, 7, 2), shards=(1, 5, 7, 4),
                             dtype="f4")  # fmt: skip
    assert FrameLayout.of(arr) == FrameLayout((10, 7, 4), (5, 7, 2), (5, 7, 4))
    arr = group.create_array("b", shape=(3, 10, 7), chunks=(1, 10, 7), dtype="f4")
    assert FrameLayout.of(arr) == FrameLayout((10, 7), (10, 7), None)


# --------------------------------------------------------------------------- ingest


def _npy_cfg(tmp: Path, frames: np.ndarray, **kw) -> DatasetConfig:
    for i, f in enumerate(frames):
        np.save(tmp / f"f{i:02d}.npy", f)
    values = tuple((0.5 * i,) for i in range(len(frames)))
    return DatasetConfig(
        format="npy", files=(str(tmp / "f*.npy"),), params=ParamsConfig(values=values), **kw
    )


def _h5_cfg(tmp: Path, frames: np.ndarray) -> DatasetConfig:
    with h5py.File(tmp / "all.h5", "w") as f:
        f.create_dataset("v", data=frames, chunks=(1, 2, *frames.shape[2:]))
    values = tuple((0.5 * i,) for i in range(len(frames)))
    return DatasetConfig(
        format="hdf5", files=(str(tmp / "all.h5"),), hdf5_dataset="v",
        params=ParamsConfig(values=values), split=SplitConfig(train_every=2),
    )  # fmt: skip


@pytest.mark.parametrize("source", ["npy", "hdf5", "nvs"])
def test_ingest_chunked_equals_unchunked(tmp_path, source):
    rng = np.random.default_rng(7)
    if source == "nvs":  # images with 3 channels (y, x, c)
        frames = rng.normal(size=(5, 11, 9, 3)).astype(np.float32)
        cfg = _npy_cfg(tmp_path, frames, task="nvs")
    else:
        frames = rng.normal(size=(5, 11, 9, 7)).astype(np.float32) * 4 + 1
        cfg = _npy_cfg(tmp_path, frames) if source == "npy" else _h5_cfg(tmp_path, frames)
    plain = open_dataset(ingest(cfg, tmp_path / "plain.zarr"))
    chunked = open_dataset(ingest(cfg, tmp_path / "chunked.zarr", store=StoreConfig(chunk=4)))
    flat = open_dataset(
        ingest(cfg, tmp_path / "flat.zarr", store=StoreConfig(chunk=4, shard=False))
    )
    assert plain.frames.chunks == (1, *frames.shape[1:]) and plain.frames.shards is None
    assert chunked.frames.chunks == (1, 4, 4, frames.shape[-1] if source == "nvs" else 4)
    assert chunked.frames.shards == (1, 4, 12, 3 if source == "nvs" else 8)
    assert flat.frames.chunks == chunked.frames.chunks and flat.frames.shards is None
    ref = plain.frames[...]
    # the values themselves: the training frames' range, applied in float64
    lo, hi = (float(v) for v in plain.value_range)
    train = list(plain.train_indices)
    assert (lo, hi) == (float(frames[train].min()), float(frames[train].max()))
    want = ((frames.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    assert np.array_equal(ref, want)
    for ds in (chunked, flat):
        assert np.array_equal(ds.frames[...], ref)
        assert ds.value_range == plain.value_range
        assert ds.content_hash == plain.content_hash


def test_ingest_memory_budget_follows_the_chunk(tmp_path):
    """A budget that holds a 16-row slab (~4.5 MB of working set) but not the whole 64-row
    frame (~18 MB): chunk 16 ingests, the default (chunk 64: one slab = the frame) is refused
    before anything is read."""
    frames = np.random.default_rng(1).random((2, 64, 128, 128)).astype(np.float32)
    cfg = _npy_cfg(tmp_path, frames, split=SplitConfig(train_every=1))
    # warm up: the process's peak RSS now includes one chunk-16 ingest of this data
    ingest(cfg, tmp_path / "warm.zarr", store=StoreConfig(chunk=16), memory_mb=1 << 20)
    budget = math.ceil(process_rss_bytes() / MB) + 10
    ok = ingest(cfg, tmp_path / "ok.zarr", store=StoreConfig(chunk=16), memory_mb=budget)
    warm = open_dataset(tmp_path / "warm.zarr")
    assert np.array_equal(open_dataset(ok).frames[...], warm.frames[...])
    out = tmp_path / "sub" / "big.zarr"
    out.parent.mkdir()
    with pytest.raises(MemoryBudgetError) as info:
        ingest(cfg, out, memory_mb=budget)
    msg = str(info.value)
    assert f"runtime.memory_mb={budget}" in msg and "store.chunk" in msg and "\n" not in msg
    assert list(out.parent.iterdir()) == []


def test_ingest_memory_mb_below_the_process_fails(tmp_path):
    frames = np.random.default_rng(2).random((3, 6, 5, 4)).astype(np.float32)
    cfg = _npy_cfg(tmp_path, frames)
    assert process_rss_bytes() > 64 * MB  # the premise: this process alone is bigger
    out = tmp_path / "o.zarr"
    with pytest.raises(MemoryBudgetError, match=r"^ingest: runtime\.memory_mb=64 ") as info:
        ingest(cfg, out, store=StoreConfig(chunk=64), memory_mb=64)
    assert "\n" not in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("*.zarr*"))


# --------------------------------------------------------------------------- LERP


def _lerp_case_1d(tmp: Path) -> Path:
    t = np.linspace(0.0, 1.0, 7)[:, None]
    return write_dataset(tmp / "d1.zarr", smooth_field(t, (7, 5, 6)), t, [0, 3, 6])


def _lerp_case_2d(tmp: Path) -> Path:
    a, b = np.meshgrid(np.linspace(0, 1, 3), np.linspace(0, 2, 3), indexing="ij")
    p = np.stack([a.ravel(), b.ravel()], 1)
    return write_dataset(tmp / "d2.zarr", smooth_field(p, (5, 7, 6)), p, [0, 2, 4, 6, 8])


def _lerp_case_rgb(tmp: Path) -> Path:
    a, b = np.meshgrid(np.linspace(0, 1, 3), np.linspace(0, 1, 2), indexing="ij")
    p = np.stack([a.ravel(), b.ravel()], 1)
    rgb = np.stack([smooth_field(p + k, (9, 7)) for k in range(3)], -1)
    return write_dataset(tmp / "d3.zarr", rgb, p, [0, 1, 4, 5], n_channels=3)


@pytest.mark.parametrize("case", [_lerp_case_1d, _lerp_case_2d, _lerp_case_rgb])
def test_lerp_chunked_equals_unchunked_and_the_whole_frame_blend(tmp_path, case):
    ds_path = case(tmp_path)
    ds = open_dataset(ds_path)
    k = 2 if ds.params.shape[1] == 1 else 3
    stores = {}
    for name, store in {
        "default": None,
        "c3": StoreConfig(chunk=3),
        "c3flat": StoreConfig(chunk=3, shard=False),
        "c4": StoreConfig(chunk=4),
    }.items():
        lerp_predict(ds_path, tmp_path / f"{name}.zarr", k=k, progress=False, store=store)
        stores[name] = open_frames_store(tmp_path / f"{name}.zarr")
    assert stores["c3"].frames.chunks[1] == 3 and stores["c3"].frames.shards is not None
    assert stores["default"].frames.chunks == (1, *ds.frame_shape)
    # independent reference: whole frames blended with the weights, in float64
    idx, w = lerp_weights(ds_path, k=k)
    ref = np.stack(
        [
            ds.to_physical(
                sum(wj * ds.read_frame(int(j)).astype(np.float64)
                    for j, wj in zip(idx[i], w[i], strict=True) if wj != 0.0)
            ).astype(np.float32)
            for i in range(ds.n_frames)
        ]
    )  # fmt: skip
    for name, s in stores.items():
        assert np.array_equal(s.frames[...], ref), name
        assert s.raw_attrs["content_sha256"] == stores["default"].raw_attrs["content_sha256"]


def test_lerp_memory_budget(tmp_path):
    ds_path = _lerp_case_1d(tmp_path)
    with pytest.raises(MemoryBudgetError, match=r"runtime\.memory_mb=64 ") as info:
        lerp_predict(ds_path, tmp_path / "l.zarr", progress=False, memory_mb=64)
    assert "\n" not in str(info.value) and not (tmp_path / "l.zarr").exists()


# --------------------------------------------------------------------------- predict stage

DIMS, TIMES = TINY_DIMS, TINY_TIMES


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """dataset.zarr and a tiny hyperinr/model.pt, as tests/test_api.py builds them. The value
    range starts at 0, so physical = unit * hi keeps every float32 difference of the untrained
    network's tiny outputs (with lo = 3 they would round away)."""
    root = tmp_path_factory.mktemp("chunked_run")
    tiny_hyperinr_run(root, zero_based=True)
    return root


def _predict(run: Path, out: Path, typed: StoreConfig | None = None, **sections):
    """The predict stage with the brief's config; `store` set on the typed config (the schema's
    minimum chunk is 4, the layout's is 1) as `typed`, or as a config section."""
    cfg = Config.from_dict(
        {"runtime": {"device": "cpu"}, "predict": {"batch_size": 50}, **sections}
    )
    if typed is not None:
        cfg = dataclasses.replace(cfg, store=typed)
    predict(cfg, None, run / "dataset.zarr", run / "hyperinr" / "model.pt", out)
    return open_frames_store(out)


def test_predict_chunked_equals_unchunked(run, tmp_path):
    """Batch = one (y, x) plane: every slab edge is a batch edge, so each network call sees
    the same points whatever the layout and the frames must be bitwise equal."""
    plane = {"batch_size": DIMS[1] * DIMS[2]}
    plain = _predict(run, tmp_path / "plain.zarr", predict=plane)
    c3 = _predict(run, tmp_path / "c3.zarr", StoreConfig(chunk=3), predict=plane)
    c4 = _predict(run, tmp_path / "c4.zarr", predict=plane, store={"chunk": 4})  # the schema's
    flat = _predict(run, tmp_path / "flat.zarr", StoreConfig(chunk=5, shard=False), predict=plane)
    assert plain.frames.chunks == (1, *DIMS) and plain.frames.shards is None
    assert c3.frames.chunks == (1, 3, 3, 3) and c3.frames.shards == (1, 3, 9, 9)
    assert c4.frames.chunks == (1, 4, 4, 4) and c4.frames.shards == (1, 4, 8, 8)
    assert flat.frames.chunks == (1, 5, 5, 5) and flat.frames.shards is None
    ref = plain.frames[...]
    for s in (c3, c4, flat):
        assert np.array_equal(s.frames[...], ref)
        assert s.raw_attrs["content_sha256"] == plain.raw_attrs["content_sha256"]
    # and the whole-grid evaluation the stage stands for (physical units, float32)
    model, _ = load_hyperinr(run / "hyperinr" / "model.pt", "cpu")
    lo, hi = open_dataset(run / "dataset.zarr").value_range
    for i, t in enumerate(TIMES / 4.0):
        vol01 = field_values(model.generate(np.array([t])), DIMS, 1, plane["batch_size"],
                             torch.device("cpu"))  # fmt: skip
        want = (lo + vol01 * (hi - lo)).reshape(DIMS).astype(np.float32)
        np.testing.assert_allclose(ref[i], want, rtol=1e-6, atol=1e-7)


def test_predict_memory_budget(run, tmp_path):
    out = tmp_path / "p.zarr"
    with pytest.raises(MemoryBudgetError, match=r"^predict: runtime\.memory_mb=64 ") as info:
        _predict(run, out, runtime={"device": "cpu", "memory_mb": 64})
    assert "\n" not in str(info.value) and not out.exists()


CUTS = [0, 1, 37, 50, 168, 169, 300, n_voxels(DIMS)]


def _tiles(field) -> tuple[np.ndarray, list[np.ndarray]]:
    cpu = torch.device("cpu")
    whole = field_values(field, DIMS, 1, 50, cpu)
    pieces = [
        field_values(field, DIMS, 1, 50, cpu, flat_range=(a, b))
        for a, b in zip(CUTS, CUTS[1:], strict=False)
    ]
    return whole, pieces


def test_field_values_flat_ranges_cover_the_grid():
    """Ranges select the right grid points (a pointwise field: no batch effects)."""
    weights = torch.tensor([[1.0], [3.0], [7.0]])
    whole, pieces = _tiles(lambda x: x @ weights)
    assert whole.shape == (n_voxels(DIMS), 1)
    assert [len(p) for p in pieces] == np.diff(CUTS).tolist()
    assert np.array_equal(np.concatenate(pieces), whole)
    cpu = torch.device("cpu")
    assert field_values(lambda x: x @ weights, DIMS, 1, 50, cpu, flat_range=(5, 5)).shape == (0, 1)


def test_field_values_flat_ranges_equal_the_whole_grid_for_a_network(run):
    model, _ = load_hyperinr(run / "hyperinr" / "model.pt", "cpu")
    whole, pieces = _tiles(model.generate(np.array([0.6])))
    assert np.array_equal(np.concatenate(pieces), whole)


def test_predict_chunked_equals_unchunked_when_slabs_split_a_batch(run, tmp_path):
    """The brief's config: batch 50 against slab edges at multiples of 56 (chunk 3: 168 =
    3 * 50 + 18, so the batch [150, 200) is evaluated as 18 + 32 points)."""
    plain = _predict(run, tmp_path / "plain.zarr")
    differ = []
    for chunk in (3, 1, 2, 5):
        s = _predict(run, tmp_path / f"c{chunk}.zarr", StoreConfig(chunk=chunk))
        if not np.array_equal(s.frames[...], plain.frames[...]):
            differ.append(chunk)
    assert differ == []
