"""The Zarr v3 layout: writing, atomicity, reading, normalisation helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperinr.data.errors import DataError
from hyperinr.data.store import (
    DatasetAttrs,
    open_dataset,
    open_frames_store,
    write_dataset,
    write_frames_store,
)


def _write(out, frames, lo=0.0, hi=2.0, train=(0, 2), **kw):
    frames = np.asarray(frames)
    n = frames.shape[0]
    return write_dataset(
        out,
        iter(frames),
        shape=frames.shape,
        value_range=(lo, hi),
        params=np.linspace(0, 1, n)[:, None],
        param_names=("t",),
        train_indices=train,
        source_dtype=np.dtype(">f4"),
        provenance={"format": "npy", "files": []},
        config_hash="h123",
        **kw,
    )


def test_dataset_layout(tmp_path):
    frames = np.random.default_rng(0).random((3, 4, 5, 6)).astype(np.float32) * 2
    out = _write(tmp_path / "d.zarr", frames)
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    group = zarr.open_group(str(out), mode="r")
    assert group["frames"].dtype == np.float32 and group["frames"].chunks == (1, 4, 5, 6)
    assert group["params"].dtype == np.float64 and group["params"].shape == (3, 1)
    attrs = dict(group.attrs)
    assert attrs["layout_version"] == 2
    assert attrs["dims"] == [4, 5, 6] and attrs["n_channels"] == 1
    assert attrs["source_dtype"] == "float32"
    assert attrs["value_range"] == [0.0, 2.0]
    assert attrs["param_names"] == ["t"] and attrs["param_range"] == [[0.0, 1.0]]
    assert attrs["split"] == {"train": [0, 2], "eval": [0, 1, 2]}
    assert attrs["config_hash"] == "h123" and attrs["provenance"]["format"] == "npy"

    ds = open_dataset(out)
    assert ds.n_frames == 3 and ds.dims == (4, 5, 6)
    assert ds.train_indices == (0, 2) and ds.eval_indices == (0, 1, 2)
    assert ds.param_names == ("t",) and ds.value_range == (0.0, 2.0)
    np.testing.assert_allclose(ds.read_frame(1), frames[1] / 2, rtol=1e-6)
    np.testing.assert_allclose(ds.to_physical(ds.frames[...]), frames, rtol=1e-6)
    with pytest.raises(ValueError):  # read-only view
        ds.frames[0] = 0


def test_channels_layout(tmp_path):
    frames = np.random.default_rng(1).random((2, 4, 5, 3)).astype(np.float32)
    out = _write(tmp_path / "rgb.zarr", frames, lo=0, hi=1, train=(0, 1), n_channels=3)
    ds = open_dataset(out)
    assert ds.dims == (4, 5) and ds.n_channels == 3
    assert ds.frames.shape == (2, 4, 5, 3)
    assert list(ds.frames.metadata.dimension_names) == ["frame", "y", "x", "channel"]


@settings(max_examples=50, deadline=None)
@given(
    lo=st.floats(-1e6, 1e6),
    width=st.floats(1e-3, 1e6),
    x=st.lists(st.floats(-1e7, 1e7), min_size=1, max_size=20),
)
def test_unit_physical_round_trip(lo, width, x):
    attrs = DatasetAttrs(
        dims=(1,),
        n_channels=1,
        source_dtype="float32",
        value_range=(lo, lo + width),
        param_names=("t",),
        param_range=((0.0, 1.0),),
        param_periodic=(False,),
        train_indices=(0,),
        eval_indices=(0,),
        provenance={},
        config_hash="",
        content_sha256="",
        layout_version=2,
        raw={},
    )
    x = np.asarray(x, dtype=np.float64)
    back = attrs.to_physical(attrs.to_unit(x))
    np.testing.assert_allclose(back, x, rtol=1e-9, atol=1e-9 * (abs(lo) + width))
    assert attrs.to_unit(np.float32([lo]))[0].dtype == np.float32
    np.testing.assert_allclose(attrs.to_unit([lo, lo + width]), [0.0, 1.0], atol=1e-9)


def test_write_frames_store_generic(tmp_path):
    frames = [np.full((2, 3), i, np.float32) for i in range(4)]
    out = write_frames_store(
        tmp_path / "pred.zarr",
        frames,
        (4, 2, 3),
        {"method": "lerp", "units": "physical", "t": np.float64(1.5)},
    )
    st_ = open_frames_store(out)
    assert st_.n_frames == 4 and st_.params is None
    content = st_.raw_attrs.pop("content_sha256")
    assert st_.raw_attrs == {"method": "lerp", "units": "physical", "t": 1.5}
    assert len(content) == 64
    np.testing.assert_array_equal(st_.read_frame(3), frames[3])
    with pytest.raises(DataError):  # a predictions store is not a dataset store
        open_dataset(out)


def test_failed_write_keeps_old_store_and_leaves_no_temporaries(tmp_path):
    out = tmp_path / "p.zarr"
    write_frames_store(out, [np.zeros((2, 2))], (1, 2, 2), {"v": 1})
    with pytest.raises(ValueError, match="frame 1 has shape"):
        write_frames_store(out, [np.ones((2, 2)), np.ones((3, 2))], (2, 2, 2), {"v": 2})
    with pytest.raises(ValueError, match="got 1 frames, expected 2"):
        write_frames_store(out, [np.ones((2, 2))], (2, 2, 2), {"v": 2})
    assert open_frames_store(out).raw_attrs["v"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.zarr"]
    with pytest.raises(ValueError, match="got 0 frames"):
        write_frames_store(tmp_path / "new.zarr", iter([]), (1, 2, 2))
    assert not (tmp_path / "new.zarr").exists()


def test_open_dataset_rejects_other_things(tmp_path):
    with pytest.raises(DataError, match="not a frames store"):
        open_dataset(tmp_path / "missing.zarr")
    out = _write(tmp_path / "d.zarr", np.zeros((2, 2, 2), np.float32), train=(0,))
    group = zarr.open_group(str(out), mode="r+")
    group.attrs["layout_version"] = 99
    with pytest.raises(DataError, match="layout_version"):
        open_dataset(out)


def test_content_hash_follows_the_content_and_nothing_else(tmp_path):
    """Equal content -> equal hash (paths, write times do not count); any frame value, the
    split or the value range changes it: what downstream provenance relies on."""
    frames = np.random.default_rng(3).random((3, 4, 5, 6)).astype(np.float32)

    def content(name, frames=frames, **kw):
        return open_dataset(_write(tmp_path / name, frames, **kw)).content_hash

    base = content("a.zarr")
    assert content("b.zarr") == base
    changed = frames.copy()
    changed[1, 0, 0, 0] += 1e-3
    assert content("c.zarr", changed) != base
    assert content("d.zarr", train=(0, 1, 2)) != base
    assert content("e.zarr", lo=-1.0, hi=3.0) != base
