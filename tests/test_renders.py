"""The report's renders of unseen TSR frames: which frames, every method, timed, compared."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from hyperinr.config import Config
from hyperinr.data.store import open_dataset
from hyperinr.evaluate.renders import interval_midpoints, render_methods
from hyperinr.models.coordnet import CoordNet, save_teacher
from hyperinr.models.hyperinr import HyperINR, save_hyperinr
from hyperinr.param_space.positions import encoder_positions
from tests._synthetic import smooth_field, write_dataset, write_prediction

ENCODING = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
            "log2_hashmap_size": 12, "base_resolution": 4, "per_level_scale": 2.0}  # fmt: skip
NETWORK = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
           "n_neurons": 32, "n_hidden_layers": 2}  # fmt: skip


def _dataset(tmp_path, n=9, train=(0, 2, 4, 8)):
    params = np.linspace(0.0, 1.0, n)[:, None]
    physical = smooth_field(params, (8, 8, 8))
    return write_dataset(tmp_path / "d.zarr", physical, params, list(train)), physical


def test_interval_midpoints(tmp_path):
    path, _ = _dataset(tmp_path, n=13, train=(0, 4, 6, 12))
    # intervals (0,4), (4,6), (6,12): first, middle, last
    assert interval_midpoints(open_dataset(path)) == [2, 5, 9]


def test_render_methods(tmp_path):
    path, physical = _dataset(tmp_path)
    vr = (float(physical.min()), float(physical.max()))
    noisy = physical + np.random.default_rng(0).normal(0, 0.3, physical.shape)
    lerp = write_prediction(tmp_path / "lerp.zarr", noisy, "lerp", vr)
    exact = write_prediction(tmp_path / "exact.zarr", physical, "exact", vr)
    save_teacher(tmp_path / "t.pt", CoordNet(4, 1, (8,), 0), {"dims": [8, 8, 8]})
    hyper = HyperINR(encoder_positions(3, 1), 3, 1, ENCODING, NETWORK, 2)
    save_hyperinr(tmp_path / "h.pt", hyper, {})
    cfg = Config.from_dict({"render": {"image_size": 12, "n_steps": 16}, "runtime": {"threads": 1}})
    rows = render_methods(
        cfg, path, {"hyperinr": tmp_path / "h.pt", "teacher": tmp_path / "t.pt"},
        {"lerp": lerp, "exact": exact}, tmp_path / "r.png", tmp_path / "r.csv", tmp_path / "r.md",
    )  # fmt: skip
    frames = sorted({r["frame"] for r in rows})
    assert frames == [1, 3, 6]
    methods = {r["method"] for r in rows}
    assert methods == {"ground truth", "hyperinr", "teacher", "lerp", "exact"}
    by = {(r["method"], r["frame"]): r for r in rows}
    for f in frames:
        assert by[("exact", f)]["psnr_vs_ground_truth"] > 60  # the same volume renders the same
        assert by[("hyperinr", f)]["source"] == "network along the rays"
        assert by[("hyperinr", f)]["psnr_vs_ground_truth"] < 40  # untrained: visibly different
    with open(tmp_path / "r.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows) == 15
    assert "renders.png" in (tmp_path / "r.md").read_text()
    assert (tmp_path / "r.png").stat().st_size > 5000


def test_render_frames_outside_the_dataset(tmp_path):
    """A bad render.frames is named before any model is loaded (these do not exist) or any
    frame rendered, and nothing is written. (The config schema already refuses negatives.)"""
    path, _ = _dataset(tmp_path)
    cfg = Config.from_dict({"render": {"frames": [1, 99]}})
    missing = {"hyperinr": tmp_path / "no_hyperinr.pt", "teacher": tmp_path / "no_teacher.pt"}
    outs = [tmp_path / "r.png", tmp_path / "r.csv", tmp_path / "r.md"]
    with pytest.raises(ValueError, match="render.frames: 99 outside the 9 frames"):
        render_methods(cfg, path, missing, {"lerp": tmp_path / "no_lerp.zarr"}, *outs)
    assert not any(out.exists() for out in outs)
