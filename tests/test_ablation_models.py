"""The Sec. 6.2-6.3 ablation models: independent INRs with blended weights, the ground-truth
batch source, the budget sizing, training on the frames alone and the sweep table."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import smooth_field, write_dataset

from hyperinr.config import Config
from hyperinr.evaluate.ablation import summarise_models
from hyperinr.grid import flat_to_coords, grid_coords
from hyperinr.models.hyperinr import HyperINR, load_hyperinr
from hyperinr.models.independent import IndependentINRs, load_independent, save_independent
from hyperinr.models.model_file import parameter_count
from hyperinr.stages.ablation_models import (
    LOG2_T_RANGE,
    hyperinr_parameter_count,
    log2_size_for_budget,
    model_config,
    train_ablation_model,
)
from hyperinr.stages.baseline import baseline_kind
from hyperinr.stages.common import load_dataset_meta, teacher_parameter_count
from hyperinr.stages.predict import predict
from hyperinr.sweeps import MODEL_SWEEPS
from hyperinr.training.targets import GroundTruthTargets

ENC = {
    "otype": "HashGrid",
    "n_levels": 3,
    "n_features_per_level": 2,
    "log2_hashmap_size": 10,
    "base_resolution": 2,
    "per_level_scale": 2.0,
}
NET = {"n_neurons": 16, "n_hidden_layers": 2}


def _model(n: int = 3, seed: int = 0) -> IndependentINRs:
    positions = np.linspace(0, 1, n).reshape(-1, 1)
    return IndependentINRs(positions, 3, 1, ENC, NET, seed=seed)


def _randomise(model: IndependentINRs) -> None:
    with torch.no_grad():
        model.tables.uniform_(-1, 1)  # the 1e-4 init would make every INR ~0


def test_independent_forward_is_each_inr_on_its_own_samples():
    """Reference: every sample through its own INR, one at a time."""
    torch.manual_seed(1)
    model = _model(3)
    _randomise(model)
    x = torch.rand(50, 3)
    j = torch.randint(3, (50,))
    got = model(x, j)
    ref = torch.stack([
        model.mlps[int(k)](model.encoding(x[b : b + 1], model.tables[int(k)]))[0]
        for b, k in enumerate(j)
    ])  # fmt: skip
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    got.sum().backward()  # gradients reach every table row and MLP that had samples
    assert all(model.mlps[int(k)].layers[0].weight.grad is not None for k in j.unique())


def test_independent_inrs_start_from_different_seeds():
    """Separately trained networks: no two MLPs start alike (the point of the ablation)."""
    model = _model(3)
    w = [m.layers[0].weight for m in model.mlps]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert not torch.equal(model.tables[0], model.tables[1])
    again = _model(3)
    assert torch.equal(again.mlps[2].layers[1].weight, model.mlps[2].layers[1].weight)


def test_generate_blends_tables_and_every_mlp_matrix():
    """At a training position the INR is that frame's own; halfway it is the half-half blend
    of both tables and of every weight matrix (numpy reference)."""
    model = _model(3)
    _randomise(model)
    x = torch.rand(40, 3)
    exact = model.generate(np.array([0.5]))
    torch.testing.assert_close(exact(x), model(x, torch.full((40,), 1)), rtol=1e-5, atol=1e-6)
    mid = model.generate(np.array([0.25]))
    ref_table = 0.5 * (model.tables[0] + model.tables[1]).detach().numpy()
    np.testing.assert_allclose(mid.table.numpy(), ref_table, rtol=1e-6, atol=1e-7)
    for n, layer in enumerate(mid.network.layers):
        a, b = (model.mlps[i].layers[n].weight.detach().numpy() for i in (0, 1))
        np.testing.assert_allclose(layer.weight.numpy(), 0.5 * (a + b), rtol=1e-6, atol=1e-7)
    before = model.mlps[0].layers[0].weight.clone()
    with torch.no_grad():
        mid.network.layers[0].weight.zero_()
    assert torch.equal(model.mlps[0].layers[0].weight, before)  # the INR owns its weights


def test_independent_model_file_round_trip(tmp_path):
    model = _model(2, seed=3)
    _randomise(model)
    save_independent(tmp_path / "m.pt", model, {"dims": [4, 4, 4]})
    back, meta = load_independent(tmp_path / "m.pt", torch.device("cpu"))
    x = torch.rand(30, 3)
    j = torch.tensor([0, 1] * 15)
    torch.testing.assert_close(back(x, j), model(x, j))
    assert meta == {"dims": [4, 4, 4]}
    hyper = HyperINR(np.array([[0.0], [1.0]]), 3, 1, ENC, NET)
    from hyperinr.models.hyperinr import save_hyperinr

    save_hyperinr(tmp_path / "h.pt", hyper, {})
    with pytest.raises(ValueError, match=r"h\.pt: not a independent INRs model file"):
        load_independent(tmp_path / "h.pt", torch.device("cpu"))


def test_ground_truth_targets_draw_training_frames_only():
    dims = (4, 3, 2)
    frames = torch.rand(2, 24, 1)
    src = GroundTruthTargets(frames, np.array([[0.0], [1.0]]), dims, 64)
    j, x, y = src.sample(0, torch.Generator().manual_seed(0))
    assert j.max() <= 1 and len(j) == 64
    # reference: the voxel of each x looked up by hand (dims slowest first, x column 0)
    v = np.rint(x.numpy() * (np.array(dims[::-1]) - 1)).astype(int)
    flat = v[:, 0] + dims[2] * (v[:, 1] + dims[1] * v[:, 2])
    np.testing.assert_array_equal(y.numpy(), frames.numpy()[j.numpy(), flat])
    torch.testing.assert_close(flat_to_coords(torch.from_numpy(flat), dims), x)
    with pytest.raises(ValueError, match="2 training frames for 3 parameters"):
        GroundTruthTargets(frames, np.zeros((3, 1)), dims, 8)


def test_log2_size_for_budget_is_the_nearest_count():
    assert log2_size_for_budget(lambda k: 2**k, 3200) == 12  # 4096 - 3200 < 3200 - 2048
    assert log2_size_for_budget(lambda k: 2**k, 3000) == 11  # 3000 - 2048 < 4096 - 3000
    assert log2_size_for_budget(lambda k: 2**k, 3072) == 11  # a tie: the smaller table
    assert log2_size_for_budget(lambda k: 2**k, 1) == min(LOG2_T_RANGE)


@pytest.fixture(scope="module")
def tiny_tsr(tmp_path_factory):
    """8^3 voxels x 5 frames; frames 0, 2, 4 train, 1 and 3 are unseen."""
    root = tmp_path_factory.mktemp("ablation_models")
    t = np.linspace(0, 1, 5).reshape(-1, 1)
    return write_dataset(
        root / "dataset.zarr", smooth_field(t, (8, 8, 8)), t, [0, 2, 4], param_names=["t"]
    )


def _cfg(steps: int = 300) -> Config:
    train = {
        "steps": steps,
        "batch_size": 1024,
        "lr": 1e-2,
        "lr_decay": 0.1,
        "checkpoint_every": 100,
    }
    return Config.from_dict({
        "teacher": {"widths": [32, 32], "hidden_blocks": 1, "train": {**train, "lr": 1e-3}},
        "hyperinr": {"n_encoders": 3, "encoding": ENC, "network": NET, "train": train},
        "baselines": {"neurcomp": {"n_blocks": 2},
                      "hashinr": {"encoding": ENC, "n_bins": 4, "network": NET},
                      "train": {**train, "lr": 2e-3}},
        "ablation": {"steps": steps, "budget_encoders": 2},
        "predict": {"batch_size": 256},
        "runtime": {"device": "cpu", "threads": 1, "seed": 0},
    })  # fmt: skip


def test_model_config_sizes_every_budget_model_to_the_teacher(tiny_tsr):
    """NeurComp, HashINR and HyperINR land nearest the teacher's count among what their knob
    can reach (brute-force reference over every table size); the steps are the sweep's."""
    cfg = _cfg()
    meta, _ = load_dataset_meta(tiny_tsr)
    budget = teacher_parameter_count(cfg, meta)
    derived = {m: model_config(cfg, m, meta) for s in MODEL_SWEEPS.values() for m in s}
    assert all(derived[m][1] == budget for m in ("coordnet", "neurcomp", "hashinr", "hyperinr"))
    h = derived["hyperinr"][0].hyperinr
    assert h.targets_mode == "ground_truth" and h.n_encoders == 2 and h.train.steps == 300
    counts = {k: hyperinr_parameter_count(2, {**ENC, "log2_hashmap_size": k}, NET, meta)
              for k in LOG2_T_RANGE}  # fmt: skip
    best = min(abs(c - budget) for c in counts.values())
    assert abs(counts[h.encoding["log2_hashmap_size"]] - budget) == best
    with torch.device("meta"):
        nc = parameter_count(baseline_kind("neurcomp").build(derived["neurcomp"][0], meta))
        hs = parameter_count(baseline_kind("hashinr").build(derived["hashinr"][0], meta))
    assert abs(nc - budget) / budget < 0.1, (nc, budget)
    plain = cfg.to_dict()

    def hashinr_count(k):
        plain["baselines"]["hashinr"]["encoding"]["log2_hashmap_size"] = k
        with torch.device("meta"):
            return parameter_count(baseline_kind("hashinr").build(Config.from_dict(plain), meta))

    assert abs(hs - budget) == min(abs(hashinr_count(k) - budget) for k in LOG2_T_RANGE)
    shared = derived["shared_mlp"][0].hyperinr
    assert np.allclose(shared.positions, [[0.0], [0.5], [1.0]]) and shared.n_encoders == 3
    assert derived["hashinr_large"][1] is None
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        model_config(cfg, "resnet", meta)


def test_shared_and_independent_fit_the_frames_and_predict(tiny_tsr, tmp_path):
    """Both designs trained on the training frames alone fit them (PSNR on training frames
    well above a constant's); both predict every frame through generate(); HyperINR's
    ground-truth provenance names the dataset only (no teacher, no set)."""
    cfg = _cfg(steps=400)
    meta, store = load_dataset_meta(tiny_tsr)
    truth = store.frames[...].reshape(5, -1).astype(np.float64)
    x = grid_coords(meta.dims)
    for name in ("shared_mlp", "independent_mlps"):
        out = train_ablation_model(cfg, name, tiny_tsr, tmp_path / name)
        info = json.loads((tmp_path / name / "info.json").read_text())
        assert info["ablation_model"] == name and info["steps"] == 400
        assert set(info["produced_by"]["inputs"]) == {"dataset"}
        if name == "shared_mlp":
            model, _ = load_hyperinr(out, torch.device("cpu"))
            kind = "hyperinr"
        else:
            model, _ = load_independent(out, torch.device("cpu"))
            kind = "independent"
        for i in (0, 2, 4):
            pred = model.generate(meta.params01[i].double().numpy())(x)[:, 0].numpy()
            err = np.mean((pred - truth[i]) ** 2)
            assert -10 * np.log10(err) > 10 * np.log10(1 / np.var(truth[i])) + 10, (name, i)
        pred_store = predict(cfg, kind, tiny_tsr, out, tmp_path / f"{name}.zarr")
        assert pred_store.exists()


def test_every_model_records_its_name_and_budget_as_it_publishes(tiny_tsr, tmp_path, monkeypatch):
    """info.json is written once, by train_and_publish, with the model's name and budget (the
    sweep table reads both): nothing rewrites a published record."""
    from hyperinr.stages import common

    writes = []

    def spy(path, stage, wall_seconds, **extra):
        writes.append((Path(path).parent.name, extra.get("ablation_model"), extra.get("budget")))
        return write_info(path, stage, wall_seconds, **extra)

    write_info = common.write_info
    monkeypatch.setattr(common, "write_info", spy)
    cfg = _cfg(steps=3)
    meta, _ = load_dataset_meta(tiny_tsr)
    models = [m for sweep in MODEL_SWEEPS.values() for m in sweep]
    for name in models:
        train_ablation_model(cfg, name, tiny_tsr, tmp_path / name)
        info = json.loads((tmp_path / name / "info.json").read_text())
        assert (info["ablation_model"], info["budget"]) == (name, model_config(cfg, name, meta)[1])
    assert writes == [(n, n, model_config(cfg, n, meta)[1]) for n in models]


def _metrics_csv(path, methods):
    rows = []
    for frame, split in enumerate(["train", "unseen", "train"]):
        for k, m in enumerate(methods):
            rows.append({"frame": frame, "t": frame / 2, "split": split, "method": m,
                         "psnr": 20.0 + k + frame, "ssim": 0.5})  # fmt: skip
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["frame", "t", "split", "method", "psnr", "ssim"])
        w.writeheader()
        w.writerows(rows)


def test_summarise_models_rows_references_and_plot(tmp_path):
    names = list(MODEL_SWEEPS["shared_mlp"])
    _metrics_csv(tmp_path / "frames.csv", names)
    _metrics_csv(tmp_path / "metrics.csv", ["hyperinr", "teacher", "lerp"])
    infos = []
    for k, n in enumerate(names):
        (tmp_path / n).mkdir()
        info = {"parameters": 1000 + k, "steps": 50, "wall_seconds": 2.5}
        (tmp_path / n / "info.json").write_text(json.dumps(info))
        infos.append(tmp_path / n / "info.json")
    files = (tmp_path / "metrics.csv", tmp_path / "t.csv", tmp_path / "t.png")
    rows = summarise_models("shared_mlp", names, tmp_path / "frames.csv", infos, *files)
    by = {r["model"]: r for r in rows}
    assert by["shared_mlp"]["unseen_psnr"] == 21.0  # frame 1 only, method 0
    assert by["independent_mlps"]["train_psnr"] == 22.0  # frames 0 and 2 of method 1
    assert by["independent_mlps"]["parameters"] == 1001
    assert math.isclose(by["reference teacher"]["unseen_psnr"], 22.0)
    assert (tmp_path / "t.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="unknown model ablation 'hash'"):
        summarise_models("hash", names, tmp_path / "frames.csv", infos, *files)


def test_budget_hyperinr_keeps_the_gaussian_share_in_n_d():
    """n-D: the budget HyperINR's few encoders keep the configured share of Gaussian positions
    (70 of 180 -> 2 of 6) and always leave a Poisson-disk part."""
    from hyperinr.stages.common import DatasetTensors

    cfg = Config.from_dict({
        "hyperinr": {"n_encoders": 180, "encoder_gaussian": {"count": 70}},
        "ablation": {"budget_encoders": 6},
    })  # fmt: skip
    meta = DatasetTensors(
        dims=(8, 8), n_channels=3, params01=torch.rand(10, 2),
        param_range=torch.tensor([[0.0, 1.0], [0.0, 1.0]]), value_range=(0.0, 1.0),
        train_indices=[0, 1, 2, 3, 4], eval_indices=list(range(10)), param_names=["a", "b"],
    )  # fmt: skip
    h = model_config(cfg, "hyperinr", meta)[0].hyperinr
    assert (h.n_encoders, h.encoder_gaussian.count) == (6, 2)
    tight = Config.from_dict({
        "hyperinr": {"n_encoders": 10, "encoder_gaussian": {"count": 9}},
        "ablation": {"budget_encoders": 6},
    })  # fmt: skip
    assert model_config(tight, "hyperinr", meta)[0].hyperinr.encoder_gaussian.count == 5
