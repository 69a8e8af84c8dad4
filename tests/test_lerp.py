"""The LERP baseline: weights (1-D linear, n-D IDW) and the prediction store."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from _synthetic import write_dataset
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperinr.data.store import write_dataset as write_store
from hyperinr.models.lerp import interpolation_weights, lerp_predict, lerp_weights


def _blend(values, idx, w):
    return np.einsum("qk,qk...->q...", w, values[idx])


# ----------------------------------------------------------------------------- 1-D


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=12, unique=True),
    st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=10),
    st.floats(-3, 3),
    st.floats(-3, 3),
)
def test_1d_exact_for_linear_data_and_clamped(train, query, a, b):
    pos = np.array(train)[:, None]
    q = np.array(query)[:, None]
    idx, w = interpolation_weights(pos, q, k=4)
    assert idx.shape == w.shape == (len(query), 2)
    assert np.allclose(w.sum(1), 1.0) and (w >= -1e-12).all()
    values = a * pos[:, 0] + b  # data linear in t
    qc = np.clip(q[:, 0], pos.min(), pos.max())  # clamps outside
    assert np.allclose(_blend(values, idx, w), a * qc + b, atol=1e-9 * (1 + abs(a) * 20))
    # exact on the training positions themselves
    idx_t, w_t = interpolation_weights(pos, pos, k=4)
    assert np.allclose(_blend(values, idx_t, w_t), values, atol=1e-12 * (1 + abs(a) * 20))


def test_1d_brackets_nearest_training_positions():
    pos = np.array([[0.8], [0.0], [0.4]])  # unsorted on purpose
    idx, w = interpolation_weights(pos, np.array([[0.1], [0.6], [0.4]]), k=4)
    assert sorted(idx[0].tolist()) == [1, 2] and np.isclose(w[0][idx[0] == 2][0], 0.25)
    assert sorted(idx[1].tolist()) == [0, 2] and np.allclose(w[1], 0.5)
    assert np.isclose(w[2][idx[2] == 2].sum(), 1.0)


# ----------------------------------------------------------------------------- n-D


def test_idw_weights_sum_to_one_and_use_k_nearest():
    rng = np.random.default_rng(0)
    pos = rng.uniform(size=(30, 2))
    q = rng.uniform(size=(50, 2))
    idx, w = interpolation_weights(pos, q, k=4)
    assert idx.shape == w.shape == (50, 4)
    assert np.allclose(w.sum(1), 1.0) and (w > 0).all()
    d = np.linalg.norm(pos[None] - q[:, None], axis=-1)
    for r in range(50):
        assert set(idx[r]) == set(np.argsort(d[r])[:4])
        dq = d[r, idx[r]]
        assert np.allclose(w[r], (1 / dq) / (1 / dq).sum())  # p = 1


def test_idw_exact_hit_takes_that_position():
    pos = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    idx, w = interpolation_weights(pos, pos[[2]], k=3)
    assert idx[0, 0] == 2 and w[0, 0] == 1.0 and np.all(w[0, 1:] == 0)


def test_idw_k_larger_than_positions_raises():
    pos = np.array([[0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="k_nearest=8 exceeds the 2 positions"):
        interpolation_weights(pos, np.array([[0.2, 0.3]]), k=8)
    idx, w = interpolation_weights(pos, np.array([[0.2, 0.3]]), k=2)
    assert idx.shape[1] == 2 and np.isclose(w.sum(), 1.0)


# ----------------------------------------------------------------------------- store


def test_lerp_predict_exact_on_train_and_linear_data(tmp_path):
    n, shape = 9, (4, 5, 6)
    t = np.linspace(0.0, 2.0, n)
    base = np.random.default_rng(1).normal(size=shape)
    slope = np.random.default_rng(2).normal(size=shape)
    physical = base[None] + t[:, None, None, None] * slope[None]  # linear in t
    ds = write_dataset(tmp_path / "dataset.zarr", physical, t, [0, 4, 8], param_names=["t"])
    info = lerp_predict(
        ds,
        tmp_path / "predictions" / "lerp.zarr",
        k=4,
        progress=False,
        info_path=tmp_path / "predictions" / "lerp.json",
    )
    assert info["stage"] == "predict_lerp" and info["wall_seconds"] >= 0
    out = zarr.open_group(str(tmp_path / "predictions" / "lerp.zarr"), mode="r")
    assert out.attrs["method"] == "lerp" and "wall_seconds" in out.attrs
    assert list(out.attrs["value_range"]) == list(zarr.open_group(str(ds)).attrs["value_range"])
    frames = out["frames"]
    assert frames.shape == physical.shape and frames.dtype == np.float32
    assert frames.chunks == (1, *shape)
    src = zarr.open_group(str(ds), mode="r")
    lo, hi = src.attrs["value_range"]
    stored = (lo + src["frames"][...].astype(np.float64) * (hi - lo)).astype(np.float32)
    for i in (0, 4, 8):  # bit-exact on training frames
        assert np.array_equal(frames[i], stored[i])
    assert np.allclose(frames[...], physical, atol=1e-5 * (hi - lo))
    assert (tmp_path / "predictions" / "lerp.json").exists()
    assert not list((tmp_path / "predictions").glob(".lerp.zarr.tmp-*"))


def test_lerp_predict_nd_idw(tmp_path):
    rng = np.random.default_rng(3)
    params = rng.uniform(size=(10, 2)) * [1.0, 100.0]  # very different units
    physical = rng.normal(size=(10, 6, 7))
    ds = write_dataset(
        tmp_path / "d.zarr", physical, params, [0, 2, 4, 6, 8], param_names=["theta", "phi"]
    )
    lerp_predict(ds, tmp_path / "lerp.zarr", k=3, progress=False)
    frames = zarr.open_group(str(tmp_path / "lerp.zarr"), mode="r")["frames"][...]
    assert np.allclose(frames[[0, 2, 4, 6, 8]], physical[[0, 2, 4, 6, 8]], atol=1e-5)
    # unseen frames: IDW over the 3 nearest training frames in [0, 1]-scaled params
    scaled = (params - params.min(0)) / (params.max(0) - params.min(0))
    train = np.array([0, 2, 4, 6, 8])
    for i in (1, 3, 5, 7, 9):
        d = np.linalg.norm(scaled[train] - scaled[i], axis=1)
        near = np.argsort(d)[:3]
        w = (1 / d[near]) / (1 / d[near]).sum()
        expected = np.einsum("k,k...->...", w, physical[train[near]])
        assert np.allclose(frames[i], expected, atol=1e-5)


def test_lerp_rejects_empty_training_split(tmp_path):
    ds = write_dataset(
        tmp_path / "d.zarr", np.random.default_rng(0).normal(size=(3, 4, 4)), np.arange(3.0), [0]
    )
    # write_dataset refuses an empty split; empty it by hand as a damaged store would be
    zarr.open_group(str(ds), mode="r+").attrs["split"] = {"train": [], "eval": [0, 1, 2]}
    with pytest.raises(ValueError, match="empty"):
        lerp_predict(ds, tmp_path / "lerp.zarr", progress=False)
    assert not (tmp_path / "lerp.zarr").exists()


def _azimuth_dataset(path, physical, params, train):
    """(azimuth in degrees on [0, 360), elevation): the azimuth periodic, declared ranges."""
    return write_store(
        path,
        physical,
        shape=physical.shape,
        value_range=(float(physical.min()), float(physical.max())),
        params=params,
        param_names=["azimuth", "elevation"],
        train_indices=train,
        source_dtype="float64",
        provenance={"format": "synthetic"},
        param_range=[(0.0, 360.0), (0.0, 90.0)],
        param_periodic=[True, False],
    )


def test_lerp_nd_periodic_parameter_wraps(tmp_path):
    params = np.array([[5.0, 45.0], [180.0, 45.0], [300.0, 45.0], [355.0, 45.0]])
    physical = np.random.default_rng(5).normal(size=(4, 3, 3))
    ds = _azimuth_dataset(tmp_path / "d.zarr", physical, params, [0, 1, 2])
    idx, w = lerp_weights(ds, k=1)
    assert idx[3, 0] == 0  # 355 deg is 10 deg from 5 deg, not 55 deg from 300 deg
    idx, w = lerp_weights(ds, k=2, power=2.0)
    # 355: 10 deg to frame 0, 55 deg to frame 2 -> weights 1/10^2 : 1/55^2
    assert idx[3].tolist() == [0, 2]
    assert np.allclose(w[3], np.array([55.0**2, 10.0**2]) / (55.0**2 + 10.0**2))


def test_lerp_k_larger_than_training_frames_raises_nd_only(tmp_path):
    rng = np.random.default_rng(6)
    ds = write_dataset(
        tmp_path / "d.zarr", rng.normal(size=(5, 3, 3)), rng.uniform(size=(5, 2)), [0, 1, 2]
    )
    with pytest.raises(ValueError, match="hyperinr.k_nearest=4 exceeds the 3 training frames"):
        lerp_weights(ds, k=4)
    with pytest.raises(ValueError, match="hyperinr.k_nearest=4 exceeds the 3 training frames"):
        lerp_predict(ds, tmp_path / "lerp.zarr", k=4, progress=False)
    assert not (tmp_path / "lerp.zarr").exists()
    one_d = write_dataset(
        tmp_path / "t.zarr", rng.normal(size=(5, 3, 3)), np.arange(5.0), [0, 2, 4]
    )
    assert lerp_weights(one_d, k=4)[0].shape == (5, 2)  # 1-D: always the bracketing pair


def test_lerp_records_k_and_power(tmp_path):
    rng = np.random.default_rng(7)
    ds = write_dataset(
        tmp_path / "d.zarr", rng.normal(size=(6, 3, 3)), rng.uniform(size=(6, 2)), [0, 2, 4]
    )
    info = lerp_predict(ds, tmp_path / "lerp.zarr", k=2, power=2.0, progress=False)
    assert info["produced_by"]["config"]["hyperinr"] == {"k_nearest": 2, "idw_power": 2.0}
    assert info["produced_by"]["config"]["store"] == {"chunk": 64, "shard": True}
    out = zarr.open_group(str(tmp_path / "lerp.zarr"), mode="r")
    assert out.attrs["produced_by"] == info["produced_by"]
    idx, w = lerp_weights(ds, k=2, power=2.0)
    frames = zarr.open_group(str(ds), mode="r")["frames"][...].astype(np.float64)
    lo, hi = zarr.open_group(str(ds), mode="r").attrs["value_range"]
    expected = lo + _blend(frames, idx, w) * (hi - lo)
    assert np.allclose(out["frames"][...], expected, atol=1e-5 * (hi - lo))
    assert not np.allclose(lerp_weights(ds, k=2, power=1.0)[1], w)
