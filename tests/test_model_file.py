"""Model files load with torch.load(weights_only=True): every real model kind round-trips, and a
file carrying pickled code is refused (one line naming the file) without running that code."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic import smooth_field, write_dataset

from hyperinr.cli import main
from hyperinr.config import Config, TrainConfig
from hyperinr.infra import provenance
from hyperinr.models.coordnet import CoordNet, evaluate_teacher, load_teacher, save_teacher
from hyperinr.models.direct import evaluate_direct
from hyperinr.models.hyperinr import HyperINR, load_hyperinr, save_hyperinr
from hyperinr.models.independent import IndependentINRs, load_independent, save_independent
from hyperinr.models.model_file import read_model_file
from hyperinr.stages.baseline import baseline_kind
from hyperinr.stages.common import load_dataset_meta, meta_dict
from hyperinr.training.loop import train

ENC = {
    "otype": "HashGrid",
    "n_levels": 3,
    "n_features_per_level": 2,
    "log2_hashmap_size": 10,
    "base_resolution": 2,
    "per_level_scale": 2.0,
}
NET = {"n_neurons": 16, "n_hidden_layers": 2}
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A tiny dataset, its typed metadata and the fields the stages write next to the weights."""
    root = tmp_path_factory.mktemp("model_file")
    t = np.linspace(0.0, 1.0, 5)[:, None]
    ds = write_dataset(
        root / "dataset.zarr", smooth_field(t, (4, 4, 4)), t, [0, 2, 4], param_names=["t"]
    )
    meta, store = load_dataset_meta(ds)
    cfg = Config.from_dict({
        "baselines": {"neurcomp": {"n_blocks": 1, "width": 16},
                      "hashinr": {"encoding": ENC, "n_bins": 4, "network": NET}},
        "runtime": {"device": "cpu", "threads": 1, "seed": 0},
    })  # fmt: skip
    produced_by = provenance.record("distill", cfg, {"dataset": store.content_hash})
    return meta, store, cfg, produced_by


def _randomise(model: torch.nn.Module) -> None:
    torch.manual_seed(1)
    with torch.no_grad():  # hash tables start at ~1e-4: make every weight matter
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))


def _assert_plain(obj, where="file"):
    """What the writers store: tensors and plain data only (what weights_only=True reads)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            assert type(k) is str, f"{where}: key {k!r}"
            _assert_plain(v, f"{where}.{k}")
    elif type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _assert_plain(v, f"{where}[{i}]")
    else:
        assert type(obj) in (str, int, float, bool, type(None), torch.Tensor), (
            f"{where}: {type(obj).__name__}"
        )


def _check_file(path: Path, kind: str, label: str) -> dict:
    raw = torch.load(path, map_location="cpu", weights_only=True)  # what read_model_file does
    _assert_plain(raw)
    return read_model_file(path, kind, label)


def test_teacher_round_trip(case, tmp_path):
    meta, store, _, produced_by = case
    torch.manual_seed(0)
    model = CoordNet(meta.n_params + meta.n_spatial, meta.n_channels, (16, 16), 1)
    path = tmp_path / "teacher.pt"
    save_teacher(path, model, {"produced_by": produced_by, "dataset_hash": store.content_hash,
                               "dims": list(meta.dims)})  # fmt: skip
    _check_file(path, "coordnet", "CoordNet teacher")
    loaded, state = load_teacher(path, CPU)
    assert state["produced_by"] == produced_by and state["dims"] == [4, 4, 4]
    x = torch.rand(50, meta.n_params + meta.n_spatial)
    assert torch.equal(evaluate_teacher(loaded, x[:, :1], x[:, 1:]),
                       evaluate_teacher(model.eval(), x[:, :1], x[:, 1:]))  # fmt: skip


def test_hyperinr_round_trip(case, tmp_path):
    meta, _, _, produced_by = case
    torch.manual_seed(0)
    model = HyperINR(np.array([[0.0], [0.5], [1.0]]), meta.n_spatial, meta.n_channels, ENC, NET,
                     k_nearest=2, power=2.0, periodic=(False,))  # fmt: skip
    _randomise(model)
    path = tmp_path / "hyperinr.pt"
    save_hyperinr(path, model, {**meta_dict(meta), "produced_by": produced_by})
    _check_file(path, "hyperinr", "HyperINR")
    loaded, saved_meta = load_hyperinr(path, CPU)
    assert saved_meta["produced_by"] == produced_by and saved_meta["param_names"] == ["t"]
    assert loaded.describe() == model.describe()
    x, theta = torch.rand(40, 3), np.array([0.3])
    assert torch.equal(loaded.generate(theta)(x), model.generate(theta)(x))


def test_independent_round_trip(case, tmp_path):
    meta, _, _, produced_by = case
    model = IndependentINRs(np.array([[0.0], [1.0]]), meta.n_spatial, meta.n_channels, ENC, NET,
                            seed=3)  # fmt: skip
    _randomise(model)
    path = tmp_path / "independent.pt"
    save_independent(path, model, {**meta_dict(meta), "produced_by": produced_by})
    _check_file(path, "independent_inrs", "independent INRs")
    loaded, saved_meta = load_independent(path, CPU)
    assert saved_meta["produced_by"] == produced_by
    x, j = torch.rand(30, 3), torch.tensor([0, 1] * 15)
    assert torch.equal(loaded(x, j), model(x, j))


@pytest.mark.parametrize("name", ["neurcomp", "hashinr"])
def test_baseline_round_trip(case, tmp_path, name):
    meta, store, cfg, produced_by = case
    torch.manual_seed(0)
    model = baseline_kind(name).build(cfg, meta)  # as the baseline stage builds it
    _randomise(model)
    path = tmp_path / f"{name}.pt"
    baseline_kind(model.kind).save(path, model, {
        "produced_by": produced_by, "dataset_hash": store.content_hash, "dims": list(meta.dims),
    })  # fmt: skip
    _check_file(path, name, name)
    loaded, state = baseline_kind(name).load(path, CPU)
    assert state["produced_by"] == produced_by and loaded.arch() == model.arch()
    theta, x = torch.rand(64, 1), torch.rand(64, 3)
    expected = evaluate_direct(model.eval(), theta, x)
    assert torch.equal(evaluate_direct(loaded, theta, x), expected)


# ----------------------------------------------------------------------------- foreign files


def _plant(path: str) -> str:
    """What a malicious file runs when unpickled without weights_only: leaves a marker."""
    Path(path).write_text("pwned")
    return "pwned"


class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (_plant, (self.marker,))


def _evil_file(path: Path, marker: Path, kind: str = "hyperinr") -> Path:
    model = HyperINR(np.array([[0.0], [1.0]]), 3, 1, ENC, NET)
    state = {"kind": kind, "state_dict": model.state_dict(), "description": model.describe()}
    torch.save({**state, "meta": {"note": _Payload(marker)}}, path)
    return path


def test_the_payload_is_live_without_weights_only(tmp_path):
    """The test file really runs code under the old weights_only=False (so the refusal below
    is what keeps the marker away)."""
    marker = tmp_path / "ran"
    path = _evil_file(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.read_text() == "pwned"


def test_a_file_with_a_pickled_callable_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    path = _evil_file(tmp_path / "evil.pt", marker)
    with pytest.raises(ValueError) as info:
        load_hyperinr(path, CPU)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: refusing to load")
    assert "beyond tensors and plain data" in message and "_plant" in message
    assert not marker.exists()


def test_a_stored_callable_field_is_refused(tmp_path):
    path = tmp_path / "teacher.pt"
    model = CoordNet(4, 1, (8,), 0)
    torch.save({"kind": "coordnet", "state_dict": model.state_dict(), "arch": {},
                "hook": os.system}, path)  # fmt: skip
    with pytest.raises(ValueError, match=r"teacher\.pt: refusing to load .*posix\.system") as info:
        load_teacher(path, CPU)
    assert "\n" not in str(info.value)


def test_the_cli_reports_the_refusal_on_one_line(tmp_path, capsys):
    marker = tmp_path / "ran"
    path = _evil_file(tmp_path / "evil.pt", marker)
    assert main(["export", "--model", str(path), "--param", "0.5",
                 "--out", str(tmp_path / "inr.npz")]) == 1  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err and "refusing to load" in err
    assert not marker.exists() and not (tmp_path / "inr.npz").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on bare pickles
def test_garbage_and_bare_pickles_are_one_line_errors_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    payload = {"kind": "hyperinr", "meta": _Payload(marker)}
    noise = np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    blobs = [b"not a checkpoint", b"\x80\x04K\x01.", noise]
    blobs += [pickle.dumps(payload, protocol=p) for p in (0, 2, 4, 5)]  # not torch.save'd
    for i, data in enumerate(blobs):
        path = tmp_path / f"bad{i}.pt"
        path.write_bytes(data)
        with pytest.raises(ValueError) as info:
            load_hyperinr(path, CPU)
        assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: ")
    assert not marker.exists()


def test_a_training_checkpoint_with_code_is_not_resumed_nor_run(tmp_path, caplog):
    marker = tmp_path / "ran"
    checkpoint = tmp_path / "checkpoint.pt"
    torch.save({"tag": "t", "step": 5, "payload": _Payload(marker)}, checkpoint)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)

    def batch_fn(step, gen):
        x = torch.rand(8, 3, generator=gen)
        return (x,), x.sum(dim=1, keepdim=True)

    cfg = TrainConfig(steps=10, batch_size=8, lr=1e-2, checkpoint_every=0, log_every=5)
    result = train(model, batch_fn, cfg, CPU, checkpoint, tag="t")
    assert result.resumed_from == 0 and not marker.exists()
    assert any("refusing to load" in r.getMessage() for r in caplog.records)
