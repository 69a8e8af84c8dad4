"""Every Zarr store the product writes opens with a plain `xarray.open_zarr(path)`: each array
carries Zarr v3 dimension_names (consistent within its store) and the group consolidated
metadata, while the contents and content hashes stay what they were."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from _synthetic import smooth_field, write_dataset, write_prediction

from hyperinr.config import Config
from hyperinr.data.store import open_dataset
from hyperinr.data.store import write_dataset as store_write_dataset
from hyperinr.models.coordnet import CoordNet, save_teacher
from hyperinr.stages.distill_set import build_distill_set, default_shards_dir

xr = pytest.importorskip("xarray")


def _open(path: Path):
    """xarray.open_zarr with no arguments; any warning (e.g. the fallback from missing
    consolidated metadata) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return xr.open_zarr(path)


def _check(path: Path, dims: dict[str, tuple[str, ...]]) -> None:
    """Each array's names and shape in xarray as written, its values equal to zarr's, and the
    group attrs carried over."""
    ds = _open(path)
    group = zarr.open_group(str(path), mode="r")
    assert sorted(ds.data_vars) == sorted(dims) == sorted(group.array_keys())
    for name, names in dims.items():
        arr = group[name]
        assert tuple(arr.metadata.dimension_names) == names
        var = ds[name]
        assert var.dims == names and var.shape == arr.shape and var.dtype == arr.dtype
        np.testing.assert_array_equal(var.values, arr[...])
    assert ds.attrs == dict(group.attrs)


def test_dataset_store_opens_in_xarray(tmp_path):
    t = np.linspace(0.0, 1.0, 4)[:, None]
    params = np.hstack([t, t**2])
    path = write_dataset(tmp_path / "dataset.zarr", smooth_field(params, (3, 4, 5)), params,
                         [0, 3], param_names=["t", "s"])  # fmt: skip
    _check(path, {"frames": ("frame", "z", "y", "x"), "params": ("frame", "param")})
    ds = _open(path)
    assert dict(ds.sizes) == {"frame": 4, "z": 3, "y": 4, "x": 5, "param": 2}
    # the product's own reader sees the same store
    store = open_dataset(path)
    np.testing.assert_array_equal(ds["params"].values, store.params)
    assert ds.attrs["content_sha256"] == store.content_hash


def test_image_dataset_with_channels_opens_in_xarray(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.random((3, 4, 6, 3))
    path = write_dataset(tmp_path / "rgb.zarr", frames, np.arange(3.0)[:, None], [0, 2],
                         n_channels=3)  # fmt: skip
    _check(path, {"frames": ("frame", "y", "x", "channel"), "params": ("frame", "param")})


def test_prediction_store_opens_in_xarray(tmp_path):
    physical = np.random.default_rng(1).random((5, 2, 3, 4)).astype(np.float32) * 7
    path = write_prediction(tmp_path / "predictions" / "lerp.zarr", physical, "lerp", (0.0, 7.0))
    _check(path, {"frames": ("frame", "z", "y", "x")})
    ds = _open(path)
    np.testing.assert_array_equal(ds["frames"].values, physical)  # zeros are not masked
    assert ds.attrs["method"] == "lerp"


def test_content_hash_is_unchanged_by_the_xarray_metadata(tmp_path):
    """A fixed dataset has the content hash the layout had before dimension names and
    consolidated metadata: neither is part of what is hashed."""
    frames = np.arange(3 * 2 * 3 * 4, dtype=np.float64).reshape(3, 2, 3, 4) / 8.0
    path = store_write_dataset(
        tmp_path / "golden.zarr", frames, shape=frames.shape, value_range=(0.0, 16.0),
        params=np.array([[0.0, 1.0], [0.5, 2.0], [1.0, 4.0]]), param_names=["t", "s"],
        train_indices=[0, 2], source_dtype="float64", provenance={"format": "golden"},
        config_hash="c",
    )  # fmt: skip
    assert open_dataset(path).content_hash == (
        "e41af6055be03adcde17c6a4edfa55a53ffa767dd2594322e084a2032e9f0963"
    )
    root = json.loads((path / "zarr.json").read_text())
    assert root["consolidated_metadata"]["must_understand"] is False  # other readers may skip it


DIMS = (4, 4, 4)


@pytest.fixture(scope="module")
def distill_case(tmp_path_factory):
    root = tmp_path_factory.mktemp("xr_distill")
    rng = np.random.default_rng(0)
    n = 4
    frames = [rng.random(DIMS).astype(np.float32) for _ in range(n)]
    dataset = store_write_dataset(
        root / "dataset.zarr", frames, shape=(n, *DIMS), value_range=(0.0, 1.0),
        params=np.linspace(0, 2, n).reshape(-1, 1), param_names=["t"], train_indices=[0, 3],
        source_dtype="float32", provenance={"test": True},
    )  # fmt: skip
    torch.manual_seed(0)
    teacher = root / "teacher.pt"
    fields = {"dataset_hash": open_dataset(dataset).content_hash, "dims": list(DIMS)}
    save_teacher(teacher, CoordNet(1 + len(DIMS), 1, (8, 8), 0), fields)
    return dataset, teacher


def _distill_config(**distill_set) -> Config:
    return Config.from_dict({
        "teacher": {"widths": [8, 8], "hidden_blocks": 0},
        "distill_set": {"n_samples": 5, "shard_size": 2, "dtype": "float16", "batch_size": 64,
                        **distill_set},
        "runtime": {"threads": 1, "device": "cpu", "seed": 0},
    })  # fmt: skip


@pytest.mark.parametrize("mode", ["full", "subset"])
def test_distill_set_opens_in_xarray(distill_case, tmp_path, mode):
    dataset, teacher = distill_case
    extra = {"coverage": "subset", "points_per_param": 20} if mode == "subset" else {}
    out = build_distill_set(_distill_config(**extra), dataset, teacher, tmp_path / "ds.zarr")
    names = {"values": ("sample", "point", "channel"), "params01": ("sample", "param")}
    if mode == "subset":
        names["coords"] = ("sample", "point", "axis")
    _check(out, names)
    ds = _open(out)
    n_points = 20 if mode == "subset" else int(np.prod(DIMS))
    assert ds.sizes["sample"] == 5 and ds.sizes["point"] == n_points and ds.sizes["param"] == 1
    assert ds["values"].dtype == np.float16
    # the shards (internal, never consolidated) carry the same names
    shard_path = default_shards_dir(out) / "shard_0.zarr"
    shard = zarr.open_group(str(shard_path), mode="r")
    for name, dims in names.items():
        assert tuple(shard[name].metadata.dimension_names) == dims
    with warnings.catch_warnings():  # zarr notes the shard's timing sidecar info.json
        warnings.filterwarnings("ignore", message="Object at info.json is not recognized")
        assert xr.open_zarr(shard_path, consolidated=False)["values"].dims == names["values"]
