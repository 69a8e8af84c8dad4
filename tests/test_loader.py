"""The distillation-set loader: in memory, streamed through a bounded ring, or on demand."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from hyperinr.config import Config
from hyperinr.data.store import open_dataset, write_dataset
from hyperinr.grid import flat_to_coords
from hyperinr.models.coordnet import CoordNet, from_teacher_range, save_teacher
from hyperinr.stages.distill_set import build_distill_set
from hyperinr.training.loader import (
    DistillSet,
    InMemoryTargets,
    StreamingTargets,
    TeacherTargets,
    open_targets,
)

CPU = torch.device("cpu")
TEACHER = {"widths": [8, 8], "hidden_blocks": 0}


def make_set(root: Path, dims=(8, 8, 8), n_params=16, dtype="float16", **extra) -> Path:
    """A dataset, an untrained teacher for it and the distillation set it makes."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    dataset = write_dataset(
        root / "dataset.zarr",
        [rng.random(dims).astype(np.float32) for _ in range(3)],
        shape=(3, *dims),
        value_range=(0.0, 1.0),
        params=np.array([[0.0], [1.0], [2.0]]),
        param_names=["t"],
        train_indices=[0, 2],
        source_dtype="float32",
        provenance={},
        config_hash="ds",
    )
    torch.manual_seed(0)
    model = CoordNet(4, 1, (8, 8), 0)
    teacher = root / "teacher.pt"
    content = open_dataset(dataset).content_hash
    save_teacher(teacher, model, {"dataset_hash": content, "dims": list(dims)})
    cfg = Config.from_dict({
        "teacher": TEACHER,
        "distill_set": {"n_samples": n_params, "shard_size": 5, "dtype": dtype, **extra},
        "runtime": {"threads": 1, "device": "cpu"},
    })
    return build_distill_set(cfg, dataset, teacher, root / "distill_set.zarr")


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    return make_set(tmp_path_factory.mktemp("small"))  # 16 parameters x 1 KiB


@pytest.fixture(scope="module")
def big_set(tmp_path_factory) -> Path:
    """24 parameters x 128 KiB: 3 MiB, more than the smallest buffer (1 MiB) holds."""
    return make_set(tmp_path_factory.mktemp("big"), dims=(32, 32, 32), n_params=24,
                    dtype="float32")


def _read_all(path: Path) -> np.ndarray:
    ds = DistillSet(path)
    out = np.empty((ds.n_params, ds.n_points, ds.n_channels), ds.values_dtype)
    for j in range(ds.n_params):
        ds.read_into(j, out[j])
    return out


def test_in_memory_when_the_set_fits_and_batches_are_unchanged(small_set):
    """In memory, batches are exactly what distill.py drew before the loader existed."""
    src = open_targets(small_set, CPU, batch=300, buffer_mb=1)
    assert isinstance(src, InMemoryTargets)
    values = torch.from_numpy(_read_all(small_set))
    gen, old = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for step in range(3):
        j, x, y = src.sample(step, gen)
        j0 = torch.randint(16, (300,), generator=old)
        v0 = torch.randint(512, (300,), generator=old)
        assert torch.equal(j, j0) and torch.equal(x, flat_to_coords(v0, (8, 8, 8)))
        assert torch.equal(y, values[j0, v0].float()) and y.dtype == torch.float32


def _streaming(path: Path, slots: int, batch: int = 256, threads: int = 1, seed: int = 0):
    """A loader whose buffer holds `slots` chunks besides its reads in flight."""
    ds = DistillSet(path)
    buffer_bytes = slots * ds.chunk_nbytes + StreamingTargets.reserve_for(ds.chunk_nbytes, threads)
    return StreamingTargets(ds, CPU, batch, buffer_bytes, threads, seed)


def test_streamed_samples_cover_every_parameter_uniformly(small_set):
    """Chi-square (fixed seed) of the parameter counts against the documented distribution,
    which over whole epochs is uniform up to the window's start; and of points within chunks."""
    ds = DistillSet(small_set)
    assert ds.chunk_nbytes == 1024
    src = _streaming(small_set, 6)  # 6 slots for the 16 parameters: 5 resident
    assert (src.resident, src.lookahead) == (5, 1)
    values = torch.from_numpy(_read_all(small_set))
    gen = torch.Generator().manual_seed(0)
    steps = 2 * 16 * 20  # 20 epochs: the window advances one parameter every 2 steps
    counts, expected = np.zeros(16), np.zeros(16)
    point_bins = np.zeros(8)
    try:
        for step in range(steps):
            j, x, y = src.sample(step, gen)
            window = src.window(step)
            assert set(j.tolist()) <= set(window.tolist())
            np.add.at(expected, window, 256 / len(window))
            counts += np.bincount(j.numpy(), minlength=16)
            v = (x[:, 0] * 7).round().long() + 8 * (x[:, 1] * 7).round().long() + 64 * (
                x[:, 2] * 7).round().long()
            assert torch.equal(y, values[j, v].float())  # each sample is its parameter's value
            point_bins += np.bincount(v.numpy() // 64, minlength=8)
    finally:
        src.close()
    assert counts.min() > 0
    assert chisquare(counts, expected).pvalue > 1e-3
    assert expected.min() / expected.max() > 0.9  # 20 epochs: the window's start is ~1/20
    assert chisquare(point_bins).pvalue > 1e-3
    assert src.chunks_read >= 20 * 16  # really streamed: every parameter read once per epoch


def test_streaming_respects_the_memory_bound(big_set):
    path = big_set
    ds = DistillSet(path)
    buffer_bytes = 3 * 2**19  # 1.5 MiB for a 3 MiB set of 128 KiB chunks
    assert ds.nbytes >= 2 * buffer_bytes
    tracemalloc.start()
    try:
        src = StreamingTargets(ds, CPU, 4096, buffer_bytes, threads=2)
        assert src.resident >= 2
        gen = torch.Generator().manual_seed(0)
        for step in range(8 * 24 * 2):  # two epochs
            src.sample(step, gen)
        peak = tracemalloc.get_traced_memory()[1]
        src.close()
    finally:
        tracemalloc.stop()
    assert src.ring_bytes + src.reserve_bytes <= buffer_bytes
    assert peak <= buffer_bytes, f"peak {peak} > buffer {buffer_bytes}"
    with pytest.raises(ValueError, match="too small to stream"):
        StreamingTargets(ds, CPU, 4096, 6 * ds.chunk_nbytes, threads=2)


def test_streamed_batches_replay_exactly_after_resume(small_set):
    """A resumed run (new loader, generator restored) draws the same batches."""
    def run(start: int, stop: int, gen_state=None):
        src = _streaming(small_set, 6, batch=100, threads=2)
        gen = torch.Generator().manual_seed(5)
        if gen_state is not None:
            gen.set_state(gen_state)
        out, state = [], None
        for step in range(start, stop):
            if step == 37:
                state = gen.get_state()
            out.append(src.sample(step, gen))
        src.close()
        return out, state

    ref, state = run(0, 60)
    resumed, _ = run(37, 60, state)
    for a, b in zip(ref[37:], resumed, strict=True):
        assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


def test_streaming_refuses_a_corrupt_chunk(tmp_path):
    path = make_set(tmp_path)
    chunk = path / "values" / "c" / "6" / "0" / "0"
    with open(chunk, "r+b") as fh:
        fh.seek(10)
        b = fh.read(1)
        fh.seek(10)
        fh.write(bytes([b[0] ^ 0x10]))
    src = _streaming(path, 6)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="parameter 6 is corrupt"):
        for step in range(2 * 16):  # one epoch: parameter 6 becomes resident
            src.sample(step, gen)
    src.close()


def test_subset_sets_stream_their_coordinates(tmp_path):
    path = make_set(tmp_path, coverage="subset", points_per_param=64)
    ds = DistillSet(path)
    src = _streaming(path, 12, batch=64)
    gen = torch.Generator().manual_seed(0)
    j, x, y = src.sample(0, gen)
    src.close()
    values, coords = np.empty((64, 1), np.float16), np.empty((64, 3), np.float32)
    for jj, xx, yy in zip(j.tolist()[:10], x[:10], y[:10], strict=True):
        ds.read_into(jj, values, coords)
        row = int(np.flatnonzero((coords == xx.numpy()).all(axis=1))[0])
        assert float(values[row, 0]) == float(yy)


def test_on_demand_targets_are_the_teachers_outputs():
    torch.manual_seed(0)
    model = CoordNet(4, 1, (8, 8), 0)
    params01 = np.linspace(0, 1, 7).reshape(-1, 1)
    src = TeacherTargets(model, params01, (8, 8, 8), CPU, 50)
    j, x, y = src.sample(0, torch.Generator().manual_seed(0))
    theta = torch.from_numpy(params01).float()[j] * 2 - 1
    with torch.no_grad():
        want = from_teacher_range(model(torch.cat([theta, x * 2 - 1], dim=1)))
    assert torch.allclose(y, want)


@pytest.mark.parametrize(
    "targets,which,loader",
    [("precomputed", "small_set", "in_memory"), ("precomputed", "big_set", "streaming"),
     ("on_demand", "small_set", "on_demand")],
)
def test_distill_trains_from_every_source(request, tmp_path, targets, which, loader):
    from hyperinr.stages.distill import distill_hyperinr

    path = request.getfixturevalue(which)
    root = path.parent
    cfg = Config.from_dict({
        "teacher": TEACHER,
        "distill_set": {"n_samples": DistillSet(path).n_params},
        "hyperinr": {
            "n_encoders": 3,
            "encoding": {"otype": "HashGrid", "n_levels": 2, "n_features_per_level": 2,
                         "log2_hashmap_size": 8, "base_resolution": 2, "per_level_scale": 2.0,
                         "interpolation": "Linear"},
            "network": {"otype": "FullyFusedMLP", "activation": "ReLU",
                        "output_activation": "None", "n_neurons": 16, "n_hidden_layers": 1},
            "target_source": targets,
            "buffer_mb": 1,
            "loader_threads": 1,
            "train": {"steps": 30, "batch_size": 128, "checkpoint_every": 10, "log_every": 10},
        },
        "runtime": {"threads": 1, "device": "cpu"},
    })
    out = distill_hyperinr(cfg, root / "dataset.zarr", path if targets == "precomputed" else None,
                           tmp_path / "h", teacher=root / "teacher.pt")
    info = json.loads((tmp_path / "h" / "info.json").read_text())
    assert out.exists() and info["loader"] == loader and np.isfinite(info["final_loss"])
