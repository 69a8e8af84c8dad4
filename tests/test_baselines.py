"""The Sec. 6.3 baselines: NeurComp and HashINR learn, match the paper's budget, round-trip
through their model files and predict every frame like the teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _synthetic import smooth_field, write_dataset

from hyperinr.config import Config
from hyperinr.data.store import open_dataset, open_prediction
from hyperinr.grid import grid_coords
from hyperinr.models.baselines import (
    HashINR,
    NeurComp,
    neurcomp_parameter_count,
    neurcomp_width_for_budget,
)
from hyperinr.models.coordnet import CoordNet
from hyperinr.models.direct import evaluate_direct
from hyperinr.models.model_file import parameter_count
from hyperinr.stages.baseline import baseline_kind, train_baseline
from hyperinr.stages.common import load_dataset_meta
from hyperinr.stages.predict import predict

TINY_HASH = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
             "log2_hashmap_size": 12, "base_resolution": 2, "per_level_scale": 2.0}
TINY_NET = {"n_neurons": 32, "n_hidden_layers": 2}
PAPER_HASH = {**TINY_HASH, "n_levels": 8, "n_features_per_level": 4, "log2_hashmap_size": 17,
              "base_resolution": 4}


#: hash tables want a larger step than sines (the package's HyperINR uses 1e-3 to 1e-2)
TINY_LR = {"neurcomp": 2e-3, "hashinr": 1e-2}


def _tiny_config(steps: int = 400, lr: float = 2e-3) -> Config:
    return Config.from_dict({
        "baselines": {
            "neurcomp": {"n_blocks": 2, "width": 48},
            "hashinr": {"encoding": TINY_HASH, "n_bins": 4, "network": TINY_NET},
            "train": {"steps": steps, "batch_size": 1024, "lr": lr, "lr_decay": 0.1,
                      "checkpoint_every": 100},
        },
        "predict": {"batch_size": 200},
        "runtime": {"device": "cpu", "threads": 1, "seed": 0},
    })


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """8^3 voxels x 3 frames, all of them training frames."""
    root = tmp_path_factory.mktemp("baselines")
    t = np.array([[0.0], [0.5], [1.0]])
    return write_dataset(root / "dataset.zarr", smooth_field(t, (8, 8, 8)), t, [0, 1, 2],
                         param_names=["t"])


def _psnr01(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(-10.0 * np.log10(np.mean((pred.astype(np.float64) - truth) ** 2)))


@pytest.mark.parametrize("name", ["neurcomp", "hashinr"])
def test_baseline_overfits_the_training_frames(tiny_dataset, tmp_path, name):
    """A few hundred CPU steps on the ground truth must fit the training frames well (a model
    that ignores theta or x, or a broken value mapping, stays far below)."""
    cfg = _tiny_config(lr=TINY_LR[name])
    out = train_baseline(cfg, name, tiny_dataset, tmp_path / name)
    info = json.loads((tmp_path / name / "info.json").read_text())
    assert info["stage"] == f"baseline_{name}" and info["steps"] == 400
    assert not (tmp_path / name / "checkpoint.pt").exists()  # discarded after publishing
    model, state = baseline_kind(name).load(out, torch.device("cpu"))
    assert state["produced_by"]["stage"] == f"baseline_{name}"
    meta, store = load_dataset_meta(tiny_dataset)
    truth = store.frames[...].reshape(3, -1).astype(np.float64)
    x = grid_coords(meta.dims)
    pred = np.stack([evaluate_direct(model, meta.params01[i], x)[:, 0].numpy()
                     for i in range(3)])
    # the mean scores 16 dB here, the per-voxel mean over frames (theta ignored) 18 dB; the
    # fitted models reach 45-48 dB (seeds 0 and 1)
    assert _psnr01(pred, truth) > 35.0, name


def test_neurcomp_budget_helper_matches_the_paper():
    """Sec. 6.3: 10 resblocks of 327 is ~2.1-2.2 M parameters; the helper inverts that."""
    count = parameter_count(NeurComp(1, 3, 1, 327, 10))
    assert count == neurcomp_parameter_count(327, 10) == 2_147_083
    assert 2.1e6 <= count <= 2.2e6
    assert neurcomp_width_for_budget(2_150_000, 10) == 327
    for budget in (50_000, 1_486_148, 2_150_000, 10_000_000):
        for blocks in (2, 10):
            width = neurcomp_width_for_budget(budget, blocks)
            got = neurcomp_parameter_count(width, blocks)
            if width >= 100:  # one width step is ~2/width of the count: within 1% from here
                assert abs(got - budget) / budget < 0.01, (budget, blocks, width, got)
            for other in (width - 1, width + 1):  # nearest: neither neighbour is closer
                assert abs(neurcomp_parameter_count(other, blocks) - budget) >= abs(got - budget)
    with pytest.raises(ValueError, match="budget"):
        neurcomp_width_for_budget(0, 10)


def test_budget_defaults_to_the_teacher_count(tiny_dataset):
    meta, _ = load_dataset_meta(tiny_dataset)
    cfg = Config.from_dict({"teacher": {"widths": [64, 128, 256], "hidden_blocks": 10}})
    teacher = parameter_count(CoordNet(4, 1, (64, 128, 256), 10))
    model = baseline_kind("neurcomp").build(cfg, meta)
    assert abs(parameter_count(model) - teacher) / teacher < 0.01
    paper = Config.from_dict({"baselines": {"neurcomp": {"budget": 2_150_000}}})
    assert baseline_kind("neurcomp").build(paper, meta).width == 327


def test_hashinr_budget_at_the_papers_table_size():
    """T = 2^17 (L 8, F 4, R1 4, b 2) lands at the paper's ~2.2 M; the table dominates."""
    model = HashINR(1, 3, 1, PAPER_HASH, 16, {"n_neurons": 64, "n_hidden_layers": 4})
    assert 2.1e6 <= parameter_count(model) <= 2.3e6
    assert model.grid.n_params / parameter_count(model) > 0.99


def test_hashinr_first_and_last_frame_encode_apart():
    """OneBlob wraps around [0, 1): a non-periodic parameter must not alias t = 0 with t = 1;
    a periodic one must."""
    x = torch.full((1, 3), 0.5)
    for periodic, same in ((False, False), (True, True)):
        model = HashINR(1, 3, 1, TINY_HASH, 4, TINY_NET, periodic=(periodic,))
        theta = model._margin + torch.tensor([[0.0], [1.0]]) * (1 - 2 * model._margin)
        blobs = model.blob(theta)
        assert torch.allclose(blobs[0], blobs[1]) is same
        a = model(torch.zeros(1, 1), x)
        b = model(torch.ones(1, 1), x)
        assert torch.allclose(a, b) is same


@pytest.mark.parametrize("name", ["neurcomp", "hashinr"])
def test_save_load_round_trip(tmp_path, name):
    torch.manual_seed(0)
    model = (NeurComp(2, 3, 2, 16, 2) if name == "neurcomp"
             else HashINR(2, 3, 2, TINY_HASH, 8, TINY_NET, periodic=(False, True)))
    with torch.no_grad():  # tables start at ~1e-4: make them matter
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "model.pt"
    baseline_kind(model.kind).save(path, model, {"dims": [4, 4, 4]})
    loaded, state = baseline_kind(name).load(path, torch.device("cpu"))
    assert state["dims"] == [4, 4, 4] and loaded.arch() == model.arch()
    theta, x = torch.rand(64, 2), torch.rand(64, 3)
    expected = evaluate_direct(model.eval(), theta, x)
    assert torch.equal(evaluate_direct(loaded, theta, x), expected)
    other = "hashinr" if name == "neurcomp" else "neurcomp"
    with pytest.raises(ValueError, match=str(path)):
        baseline_kind(other).load(path, torch.device("cpu"))


def test_predict_writes_every_frame(tiny_dataset, tmp_path):
    """predict runs a baseline on the whole grid per frame: the dataset's frames shape, the
    physical range, timings, and a one-line error for a model of another layout."""
    cfg = _tiny_config(steps=2)
    model = train_baseline(cfg, "hashinr", tiny_dataset, tmp_path / "hashinr")
    out = predict(cfg, "hashinr", tiny_dataset, model, tmp_path / "predictions" / "hashinr.zarr")
    ds = open_dataset(tiny_dataset)
    store = open_prediction(out, ds)  # checks the shape equals the dataset's
    assert tuple(store.frames.shape) == (3, 8, 8, 8)
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["stage"] == "predict_hashinr" and info["frames"] == 3
    assert info["voxels_per_second"] > 0
    wrong = tmp_path / "wrong.pt"
    wrong_model = HashINR(2, 3, 1, TINY_HASH, 4, TINY_NET)
    baseline_kind("hashinr").save(wrong, wrong_model, {"dims": [8, 8, 8]})
    with pytest.raises(ValueError, match="another dataset layout"):
        predict(cfg, "hashinr", tiny_dataset, wrong, tmp_path / "w.zarr")


def test_cli_verb_trains_and_names_bad_models(tiny_dataset, tmp_path, capsys):
    from hyperinr.cli import main

    cfg = json.dumps(_tiny_config(steps=3).to_dict())
    rc = main(["baseline", "--model", "neurcomp", "--config-json", cfg,
               "--dataset", str(tiny_dataset), "--out-dir", str(tmp_path / "nc")])
    assert rc == 0 and (tmp_path / "nc" / "model.pt").exists()
    with pytest.raises(SystemExit):
        main(["baseline", "--model", "siren", "--dataset", str(tiny_dataset),
              "--out-dir", str(tmp_path)])
