"""Blockwise PSNR/SSIM (dask) against whole-array references, and `evaluate` on chunked stores.

The reference is scikit-image's `structural_similarity` of the whole arrays and a numpy PSNR:
every blocking (z-slabs, dask chunks with 1-voxel tails, chunks smaller than the window, other
layouts in the stores, threads, a dask.distributed cluster) must give the same numbers.
"""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pytest
from _synthetic import smooth_field
from skimage.metrics import structural_similarity

from hyperinr.data.store import (
    frame_layout,
    open_dataset,
    open_frames_store,
    write_dataset,
    write_frames_store,
)
from hyperinr.evaluate import metrics
from hyperinr.evaluate.metrics import evaluate, frame_metrics, provenance_path, ssim_mean
from hyperinr.infra.memory import MemoryBudgetError

SSIM_TOL = 1e-12
PSNR_TOL = 1e-9


def _pair(shape, seed=0, noise=0.3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    gt = rng.normal(size=shape)
    pred = gt + rng.normal(scale=noise, size=shape)
    return gt.astype(dtype), pred.astype(dtype)


def _ref(gt, pred, channel_axis=None, win=7):
    """Whole-array scikit-image SSIM and numpy PSNR, data range = the ground truth's."""
    gt64, pred64 = gt.astype(np.float64), pred.astype(np.float64)
    rng = float(gt64.max() - gt64.min())
    ssim = structural_similarity(
        gt64, pred64, data_range=rng, win_size=win, channel_axis=channel_axis
    )
    mse = np.mean((gt64 - pred64) ** 2)
    return 10.0 * np.log10(rng**2 / mse), ssim


# --------------------------------------------------------------------------- ssim_mean


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [
        ((23, 17, 19), (5, 6, 7)),
        ((21, 13, 15), ((5, 5, 5, 5, 1), (6, 6, 1), (7, 7, 1))),  # trailing 1-voxel chunks
        ((21, 13, 15), ((1, 20), (1, 11, 1), (7, 1, 7))),  # leading and inner 1-voxel chunks
        ((23, 17, 19), (3, 4, 2)),  # every chunk thinner than the window
        ((23, 17, 19), (8, 9, 10)),
        ((23, 17, 19), (23, 17, 19)),  # one block
        ((37, 41), (5, 6)),  # an image
        ((37, 41), ((36, 1), (1, 40))),
    ],
)
def test_ssim_mean_equals_whole_array_skimage(shape, chunks):
    gt, pred = _pair(shape, seed=len(shape))
    rng = float(gt.max() - gt.min())
    got = ssim_mean(da.from_array(gt, chunks=chunks), da.from_array(pred, chunks=chunks), rng, 7)
    want = structural_similarity(gt, pred, data_range=rng, win_size=7)
    assert abs(float(got.compute()) - want) <= SSIM_TOL


@pytest.mark.parametrize(("shape", "win"), [((5, 9, 11), 5), ((9, 3, 12), 3), ((4, 30), 3)])
def test_ssim_mean_smaller_windows(shape, win):
    gt, pred = _pair(shape, seed=3)
    rng = float(gt.max() - gt.min())
    got = ssim_mean(da.from_array(gt, chunks=2), da.from_array(pred, chunks=2), rng, win)
    want = structural_similarity(gt, pred, data_range=rng, win_size=win)
    assert abs(float(got.compute()) - want) <= SSIM_TOL


def test_ssim_mean_sees_every_voxel():
    """A change deep inside one block, and one on a block edge, both move the mean."""
    gt, pred = _pair((23, 17, 19), seed=5)
    rng = float(gt.max() - gt.min())

    def mean(p):
        return float(ssim_mean(da.from_array(gt, chunks=(5, 6, 7)),
                               da.from_array(p, chunks=(5, 6, 7)), rng, 7).compute())  # fmt: skip

    base = mean(pred)
    for where in [(12, 8, 9), (5, 6, 7), (4, 5, 6)]:
        p = pred.copy()
        p[where] += 3.0
        want = structural_similarity(gt, p, data_range=rng)
        assert mean(p) != base and abs(mean(p) - want) <= SSIM_TOL


# --------------------------------------------------------------------------- frame_metrics


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, None])
def test_frame_metrics_z_slabs_equal_whole(depth):
    shape = (23, 17, 19)
    gt, pred = _pair(shape, seed=11)
    kw = {} if depth is None else {"max_voxels": depth * 17 * 19}
    psnr, ssim = frame_metrics(gt, pred, **kw)
    want_psnr, want_ssim = _ref(gt, pred)
    assert abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL


@pytest.mark.parametrize(
    ("gt_chunks", "pred_chunks"),
    [((5, 6, 7), (5, 6, 7)), ((5, 6, 7), (4, 4, 4)), (((11, 11, 1), (16, 1), (18, 1)), None)],
)
def test_frame_metrics_dask_inputs(gt_chunks, pred_chunks):
    gt, pred = _pair((23, 17, 19), seed=12)
    gt_d = da.from_array(gt, chunks=gt_chunks)
    pred_d = pred if pred_chunks is None else da.from_array(pred, chunks=pred_chunks)
    psnr, ssim = frame_metrics(gt_d, pred_d)
    want_psnr, want_ssim = _ref(gt, pred)
    assert abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL


def test_frame_metrics_float32_frames():
    gt, pred = _pair((21, 13, 15), seed=13, dtype=np.float32)
    psnr, ssim = frame_metrics(gt, pred, max_voxels=3 * 13 * 15)
    want_psnr, want_ssim = _ref(gt, pred)
    assert abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL


@pytest.mark.parametrize("rows", [1, 3, 5, None])
def test_frame_metrics_images(rows):
    gt, pred = _pair((37, 41), seed=14)
    kw = {} if rows is None else {"max_voxels": rows * 41}
    psnr, ssim = frame_metrics(gt, pred, **kw)
    want_psnr, want_ssim = _ref(gt, pred)
    assert abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL
    psnr, ssim = frame_metrics(da.from_array(gt, chunks=(5, 6)), da.from_array(pred, chunks=7))
    assert abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL


@pytest.mark.parametrize(
    ("shape", "max_voxels", "chunks"),
    [
        ((31, 29, 3), 4 * 29 * 3, (5, 6, 3)),  # RGB images
        ((31, 29, 3), 1 * 29 * 3, ((30, 1), (28, 1), (1, 1, 1))),  # channels split too
        ((13, 11, 12, 2), 3 * 11 * 12 * 2, (5, 6, 7, 1)),  # 2-channel volumes
    ],
)
def test_frame_metrics_channels(shape, max_voxels, chunks):
    gt, pred = _pair(shape, seed=15)
    want_psnr, want_ssim = _ref(gt, pred, channel_axis=-1)
    # a mean over channels that differ: a test that one channel's SSIM would not pass
    one = structural_similarity(gt[..., 0], pred[..., 0], data_range=np.ptp(gt))
    assert abs(want_ssim - one) > 1e-6
    for got in (
        frame_metrics(gt, pred, channel_axis=-1, max_voxels=max_voxels),
        frame_metrics(
            da.from_array(gt, chunks=chunks), da.from_array(pred, chunks=chunks), channel_axis=-1
        ),
    ):
        assert abs(got[0] - want_psnr) <= PSNR_TOL and abs(got[1] - want_ssim) <= SSIM_TOL


def test_frame_metrics_small_frame_window():
    gt, pred = _pair((5, 9, 11), seed=16)
    psnr, ssim = frame_metrics(gt, pred, max_voxels=2 * 9 * 11)
    want_psnr, want_ssim = _ref(gt, pred, win=5)
    assert abs(psnr - want_psnr) <= PSNR_TOL and abs(ssim - want_ssim) <= SSIM_TOL


@pytest.mark.parametrize("sizes", [(4, 4, 4, 4, 4, 3), (5,) * 20, (6, 6, 6, 6, 1)])
def test_blocks_smaller_than_the_window_merge_only_as_needed(sizes):
    """Merged blocks hold a window (>= 7) yet stay near it: the memory bound is per block."""
    blocks = metrics._at_least(sizes, 7)
    assert sum(blocks) == sum(sizes) and min(blocks) >= 7
    assert max(blocks) <= 2 * 7 - 2 + max(sizes)


# --------------------------------------------------------------------------- evaluate

SHAPE = (15, 17, 19)
N = 3


def _dataset(path, physical, chunk, n_channels=1):
    lay = None if chunk is None else frame_layout(physical.shape[1:], n_channels, chunk)
    t = np.linspace(0.0, 1.0, len(physical))[:, None]
    return write_dataset(
        path,
        iter(physical),
        shape=physical.shape,
        value_range=(float(physical.min()), float(physical.max())),
        params=t,
        param_names=["t"],
        train_indices=[0, len(physical) - 1],
        source_dtype="float64",
        provenance={"format": "synthetic"},
        n_channels=n_channels,
        layout=lay,
    )


def _prediction(path, physical, chunk, n_channels=1, shard=True):
    lay = None if chunk is None else frame_layout(physical.shape[1:], n_channels, chunk, shard)
    return write_frames_store(
        path, physical.astype(np.float32), physical.shape, {"method": path.stem},
        n_channels=n_channels, layout=lay,
    )  # fmt: skip


@pytest.fixture(scope="module")
def physical():
    t = np.linspace(0.0, 1.0, N)[:, None]
    gt = smooth_field(t, SHAPE)
    rng = np.random.default_rng(21)
    return {
        "gt": gt,
        "hyperinr": gt + rng.normal(0.0, 0.05, size=gt.shape),
        "lerp": gt + rng.normal(0.0, 0.2, size=gt.shape),
    }


@pytest.fixture(scope="module")
def stores(tmp_path_factory, physical):
    """The same values as an unchunked dataset/predictions and as chunked ones (chunk 8,
    sharded; chunk 5, whose 5-deep blocks are thinner than the window; predictions in a
    layout of their own)."""
    root = tmp_path_factory.mktemp("eval_stores")
    out = {}
    for name, ds_chunk, pred_chunks in [
        ("plain", None, {"hyperinr": None, "lerp": None}),
        ("c8", 8, {"hyperinr": 8, "lerp": 8}),
        ("mixed", 8, {"hyperinr": 6, "lerp": None}),
        ("c5", 5, {"hyperinr": 5, "lerp": 7}),
    ]:
        d = root / name
        ds = _dataset(d / "dataset.zarr", physical["gt"], ds_chunk)
        preds = {
            m: _prediction(d / f"{m}.zarr", physical[m], c, shard=m == "hyperinr")
            for m, c in pred_chunks.items()
        }
        out[name] = (ds, preds)
    assert open_dataset(out["c8"][0]).frames.shards == (1, 8, 24, 24)
    assert open_frames_store(out["mixed"][1]["hyperinr"]).frames.chunks == (1, 6, 6, 6)
    return out


def _same_rows(a, b, ssim_tol=SSIM_TOL, psnr_tol=SSIM_TOL):
    assert len(a) == len(b) > 0
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        assert {k: v for k, v in ra.items() if k not in ("psnr", "ssim")} == {
            k: v for k, v in rb.items() if k not in ("psnr", "ssim")
        }
        assert abs(ra["psnr"] - rb["psnr"]) <= psnr_tol, (ra, rb)
        assert abs(ra["ssim"] - rb["ssim"]) <= ssim_tol, (ra, rb)


def test_evaluate_chunked_equals_unchunked_and_the_reference(stores, tmp_path):
    rows = {
        name: evaluate(ds, preds, tmp_path / f"{name}.csv", progress=False)
        for name, (ds, preds) in stores.items()
    }
    for name in ("c8", "mixed", "c5"):
        _same_rows(rows[name], rows["plain"])
    # independent reference: whole frames, physical units as stored
    ds_path, preds = stores["plain"]
    ds = open_dataset(ds_path)
    for row in rows["c8"]:
        gt = ds.physical_frame(row["frame"])
        pred = open_frames_store(preds[row["method"]]).read_frame(row["frame"])
        want_psnr, want_ssim = _ref(gt, pred)
        assert abs(row["psnr"] - want_psnr) <= PSNR_TOL
        assert abs(row["ssim"] - want_ssim) <= SSIM_TOL
    assert [r["method"] for r in rows["c8"][:2]] == ["hyperinr", "lerp"]
    assert [r["split"] for r in rows["c8"][::2]] == ["train", "unseen", "train"]


@pytest.mark.parametrize("name", ["c8", "c5"])
def test_evaluate_threads_do_not_change_the_numbers(stores, tmp_path, name):
    ds, preds = stores[name]
    one = evaluate(ds, preds, tmp_path / "one.csv", progress=False, threads=1)
    two = evaluate(ds, preds, tmp_path / "two.csv", progress=False, threads=2)
    assert one == two
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "two.csv").read_text()


def test_evaluate_chunked_channels(tmp_path):
    t = np.linspace(0.0, 1.0, 3)[:, None]
    gt = np.stack([smooth_field(t + k, (23, 19)) for k in range(3)], -1)
    pred = gt + np.random.default_rng(22).normal(0.0, 0.1, size=gt.shape)
    plain = evaluate(
        _dataset(tmp_path / "p.zarr", gt, None, 3),
        {"hyperinr": _prediction(tmp_path / "hyperinr.zarr", pred, None, 3)},
        tmp_path / "p.csv", progress=False,
    )  # fmt: skip
    ds_path = _dataset(tmp_path / "c.zarr", gt, 8, 3)
    assert open_dataset(ds_path).frames.chunks == (1, 8, 8, 3)
    chunked = evaluate(
        ds_path, {"hyperinr": _prediction(tmp_path / "hyperinr8.zarr", pred, 6, 3)},
        tmp_path / "c.csv", progress=False, threads=2,
    )  # fmt: skip
    _same_rows(chunked, plain)
    ds = open_dataset(ds_path)
    for row in chunked:
        stored = open_frames_store(tmp_path / "hyperinr8.zarr").read_frame(row["frame"])
        want_psnr, want_ssim = _ref(ds.physical_frame(row["frame"]), stored, channel_axis=-1)
        assert abs(row["psnr"] - want_psnr) <= PSNR_TOL
        assert abs(row["ssim"] - want_ssim) <= SSIM_TOL


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["inproc", "tcp"])
def test_evaluate_on_a_distributed_cluster(stores, tmp_path, protocol):
    distributed = pytest.importorskip("distributed")
    ds, preds = stores["c8"]
    local = evaluate(ds, preds, tmp_path / "local.csv", progress=False, threads=2)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol=protocol,
        dashboard_address=":0",
    ) as cluster:  # fmt: skip
        assert cluster.scheduler_address.startswith(protocol)
        rows = evaluate(
            ds, preds, tmp_path / "dist.csv", progress=False, threads=2,
            dask_scheduler=cluster.scheduler_address,
        )  # fmt: skip
    _same_rows(rows, local)
    assert (tmp_path / "dist.csv").exists()


@pytest.mark.slow
def test_evaluate_with_a_scheduler_file(stores, tmp_path):
    distributed = pytest.importorskip("distributed")
    ds, preds = stores["c8"]
    local = evaluate(ds, preds, tmp_path / "local.csv", progress=False)
    sched = tmp_path / "scheduler.json"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0",
        scheduler_kwargs={"scheduler_file": str(sched)},
    ):  # fmt: skip
        assert sched.is_file()
        rows = evaluate(ds, preds, tmp_path / "f.csv", progress=False, dask_scheduler=str(sched))
    _same_rows(rows, local)


def test_evaluate_missing_scheduler_file(stores, tmp_path):
    ds, preds = stores["c8"]
    missing = tmp_path / "nowhere" / "scheduler.json"
    out = tmp_path / "m.csv"
    with pytest.raises(FileNotFoundError) as info:
        evaluate(ds, preds, out, progress=False, dask_scheduler=str(missing))
    assert str(missing) in str(info.value) and "\n" not in str(info.value)
    assert not out.exists() and not provenance_path(out).exists()


def test_evaluate_memory_budget(stores, tmp_path):
    ds, preds = stores["c8"]
    out = tmp_path / "m.csv"
    with pytest.raises(MemoryBudgetError, match=r"^evaluate: runtime\.memory_mb=64 ") as info:
        evaluate(ds, preds, out, progress=False, memory_mb=64)
    assert "\n" not in str(info.value)
    assert not out.exists() and not provenance_path(out).exists()
    assert list(tmp_path.iterdir()) == []
    rows = evaluate(ds, preds, out, progress=False, memory_mb=1 << 20)
    assert len(rows) == 2 * N and all(math.isfinite(r["ssim"]) for r in rows)
