"""Ground-truth-corrected and hybrid distillation targets (hyperinr/training/targets.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hyperinr.config import Config
from hyperinr.data.store import write_dataset
from hyperinr.grid import flat_to_coords, grid_coords, n_voxels
from hyperinr.models.coordnet import CoordNet, save_teacher
from hyperinr.training.targets import (
    Anchors,
    CorrectedTargets,
    HybridTargets,
    choose_shrinkage,
    shrinkage_curve,
    trilinear,
    validation_split,
)

DIMS = (4, 5, 6)
TRAIN = np.array([[0.0], [0.25], [0.5], [0.75], [1.0]])


def truth(theta: float) -> torch.Tensor:
    """A field that is not linear in theta: [V, 1]."""
    x = grid_coords(DIMS).double()
    return (0.5 + 0.3 * torch.sin(3 * theta + 4 * x.sum(1, keepdim=True))).float()


def teacher_error(theta: float) -> torch.Tensor:
    x = grid_coords(DIMS).double()
    return (0.05 * torch.cos(2 + 7 * theta * x[:, :1])).float()


class FieldSource:
    """A batch source like the loaders: the "teacher" (truth + error) at grid points."""

    def __init__(self, params01: np.ndarray, batch: int = 256) -> None:
        self.params01, self.batch = params01, batch
        self.fields = torch.stack([truth(t) + teacher_error(t) for t in params01[:, 0]])

    def sample(self, step, gen):
        j = torch.randint(len(self.params01), (self.batch,), generator=gen)
        v = torch.randint(n_voxels(DIMS), (self.batch,), generator=gen)
        return j, flat_to_coords(v, DIMS), self.fields[j, v]

    def close(self):
        pass

    def describe(self):
        return {"loader": "fake"}


def anchors(teacher=None) -> Anchors:
    gt = torch.stack([truth(t) for t in TRAIN[:, 0]])
    te = gt + torch.stack([teacher_error(t) for t in TRAIN[:, 0]]) if teacher is None else teacher
    return Anchors(TRAIN, gt, te, DIMS, k_nearest=2)


def lerp_truth(theta: float) -> torch.Tensor:
    """Linear interpolation of the ground truth between the bracketing training frames."""
    k = min(int(theta / 0.25), 3)
    w = (theta - TRAIN[k, 0]) / 0.25
    return (1 - w) * truth(TRAIN[k, 0]) + w * truth(TRAIN[k + 1, 0])


def _draw(targets, seed=0):
    j, x, y = targets.sample(0, torch.Generator().manual_seed(seed))
    v = torch.round(x * torch.tensor([d - 1 for d in reversed(DIMS)])).long()
    flat = (v[:, 2] * DIMS[1] + v[:, 1]) * DIMS[2] + v[:, 0]
    return j, flat, y


def test_trilinear_is_exact_at_grid_points_and_linear_between():
    vols = torch.rand(3, n_voxels(DIMS), 2)
    v = torch.arange(n_voxels(DIMS))
    k = v % 3
    torch.testing.assert_close(trilinear(vols, DIMS, k, flat_to_coords(v, DIMS)), vols[k, v])
    a, b = flat_to_coords(torch.tensor([0]), DIMS), flat_to_coords(torch.tensor([1]), DIMS)
    mid = trilinear(vols, DIMS, torch.tensor([1]), (a + b) / 2)
    torch.testing.assert_close(mid, (vols[1, 0] + vols[1, 1])[None] / 2)


def test_a_zero_gives_the_interpolated_ground_truth():
    params = np.linspace(0, 1, 17).reshape(-1, 1)
    j, flat, y = _draw(CorrectedTargets(FieldSource(params), anchors(), a=0.0))
    want = torch.stack([lerp_truth(params[int(jj), 0])[v] for jj, v in zip(j, flat)])
    torch.testing.assert_close(y, want, atol=2e-6, rtol=0)


@pytest.mark.parametrize("a", [0.0, 0.3, 0.5, 1.0])
def test_corrected_targets_are_the_ground_truth_at_training_parameters(a):
    j, flat, y = _draw(CorrectedTargets(FieldSource(TRAIN), anchors(), a=a))
    want = torch.stack([truth(TRAIN[int(jj), 0])[v] for jj, v in zip(j, flat)])
    torch.testing.assert_close(y, want, atol=2e-6, rtol=0)


def test_a_one_adds_the_interpolated_teacher_residual():
    params = np.array([[0.1], [0.6]])
    j, flat, y = _draw(CorrectedTargets(FieldSource(params), anchors(), a=1.0))
    for jj, v, yy in zip(j, flat, y):
        t = params[int(jj), 0]
        k = int(t / 0.25)
        w = (t - TRAIN[k, 0]) / 0.25
        teacher = truth(t) + teacher_error(t)
        lerp_err = (1 - w) * teacher_error(TRAIN[k, 0]) + w * teacher_error(TRAIN[k + 1, 0])
        torch.testing.assert_close(yy, (teacher - lerp_err)[v], atol=2e-6, rtol=0)


TRAIN9 = np.linspace(0, 1, 9).reshape(-1, 1)


def validation_anchors(teacher_at_held) -> tuple[Anchors, np.ndarray]:
    """9 training frames of the non-linear field; the validation teacher is exact at the frames
    it trained on and `teacher_at_held(theta, gt)` at the ones it never saw."""
    kept, held = validation_split(TRAIN9)
    gt = torch.stack([truth(t) for t in TRAIN9[:, 0]])
    te = gt.clone()
    for k in held:
        te[k] = teacher_at_held(TRAIN9[k, 0], gt[k])
    return Anchors(TRAIN9, gt, te, DIMS, k_nearest=2), held


def test_validation_split_holds_out_every_other_interior_frame():
    kept, held = validation_split(TRAIN9)
    assert held.tolist() == [1, 3, 5, 7] and kept.tolist() == [0, 2, 4, 6, 8]
    shuffled = TRAIN9[[4, 0, 8, 2, 6, 1, 7, 3, 5]]  # order of the parameters, not of the rows
    kept, held = validation_split(shuffled)
    assert sorted(shuffled[held, 0]) == [0.125, 0.375, 0.625, 0.875]
    assert validation_split(TRAIN9[:4])[1].tolist() == [1]  # ends are never held out
    rng = np.random.default_rng(3)
    views = rng.random((10, 2))
    kept, held = validation_split(views, seed=5)
    assert len(held) == 5 and set(kept) | set(held) == set(range(10))
    assert np.array_equal(held, validation_split(views, seed=5)[1])
    with pytest.raises(ValueError, match=">= 3 training frames"):
        validation_split(TRAIN9[:2])


def test_shrinkage_curve_matches_a_slow_linear_reference():
    gen = torch.Generator().manual_seed(1)
    anchors, held = validation_anchors(lambda t, g: g + 0.05 * torch.randn(g.shape, generator=gen))
    curve = shrinkage_curve(anchors, held)
    gt, te = anchors.ground_truth.double().numpy(), anchors.teacher.double().numpy()
    for g, a in enumerate(curve["a"]):
        errs = []
        for k in held:  # neighbours k - 1 and k + 1 are kept, halfway between them
            lerp_gt = 0.5 * (gt[k - 1] + gt[k + 1])
            lerp_te = 0.5 * (te[k - 1] + te[k + 1])
            target = lerp_gt + a * (te[k] - lerp_te)
            errs.append(np.mean((target - gt[k]) ** 2))
        assert curve["mse"][g] == pytest.approx(np.mean(errs), rel=1e-9, abs=1e-15)
    assert curve["scored"] == [1, 3, 5, 7]


def test_a_useless_teacher_gets_a_small_shrinkage():
    """Random outputs at the times it never saw: its departures from the interpolation are noise,
    not dynamics, and the rule shrinks them away."""
    gen = torch.Generator().manual_seed(0)
    anchors, held = validation_anchors(lambda t, g: torch.rand(g.shape, generator=gen))
    choice = choose_shrinkage(anchors, held)
    assert choice["chosen"] <= 0.2
    assert choice["mse"][0] < choice["mse"][-1]


def test_an_exact_teacher_gets_a_large_shrinkage():
    anchors, held = validation_anchors(lambda t, g: g.clone())
    choice = choose_shrinkage(anchors, held)
    assert choice["chosen"] >= 0.8 and choice["a_least_squares"] == pytest.approx(1.0)
    assert "never trained on" in choice["rule"]


def test_a_partly_right_teacher_gets_a_shrinkage_in_between():
    """Half of the truth's departure plus as much unrelated error: the least-squares a is ~0.5."""
    def half(t, g):
        lerp = 0.5 * (truth(t - 0.125) + truth(t + 0.125))
        other = 0.5 * (truth(t + 0.5) - truth(t + 0.6))
        return lerp + 0.5 * (g - lerp) + other
    anchors, held = validation_anchors(half)
    choice = choose_shrinkage(anchors, held)
    assert 0.0 < choice["chosen"] < 1.0


def test_hybrid_batches_mix_ground_truth_at_the_training_parameters():
    params = np.linspace(0, 1, 9).reshape(-1, 1)
    source = FieldSource(params, batch=200)
    hybrid = HybridTargets(source, anchors(), 0.25, 200)
    assert len(hybrid.params01) == 9 + 5
    j, flat, y = _draw(hybrid)
    assert len(j) == 200 and int((j >= 9).sum()) == 50
    for jj, v, yy in zip(j[j >= 9], flat[j >= 9], y[j >= 9]):
        torch.testing.assert_close(yy, truth(TRAIN[int(jj) - 9, 0])[v])
    with pytest.raises(ValueError, match="hybrid_fraction"):
        HybridTargets(source, anchors(), 1.0, 200)


# ------------------------------------------------------------------ through the distill stage


def _stage_case(root, poison: bool):
    """A dataset whose unseen frames are NaN when `poison`, and an untrained teacher."""
    t = np.linspace(0, 1, 9)
    frames = [truth(tt).numpy().reshape(DIMS) for tt in t]
    train = [0, 2, 4, 6, 8]
    if poison:
        frames = [f if i in train else np.full(DIMS, np.nan, np.float32)
                  for i, f in enumerate(frames)]
    dataset = write_dataset(
        root / "dataset.zarr", iter(frames), shape=(9, *DIMS), value_range=(0.0, 1.0),
        params=t[:, None], param_names=["t"], train_indices=train, source_dtype="float32",
        provenance={"format": "test"},
    )
    from hyperinr.data.store import open_dataset

    torch.manual_seed(0)
    teacher = root / "teacher.pt"
    save_teacher(teacher, CoordNet(4, 1, (8, 8), 0),
                 {"dataset_hash": open_dataset(dataset).content_hash, "dims": list(DIMS)})
    return dataset, teacher


def _validation_teacher(root, dataset):
    """The validation teacher as rule teacher_validation trains it (a tiny one)."""
    from hyperinr.stages.teacher import train_teacher

    cfg = Config.from_dict({
        "teacher": {"widths": [8, 8], "hidden_blocks": 0,
                    "train": {"steps": 40, "batch_size": 64, "checkpoint_every": 20,
                              "log_every": 20}},
        "runtime": {"threads": 1, "device": "cpu"},
    })
    return train_teacher(cfg, dataset, root / "teacher_validation", validation=True)


def _cfg(mode: str, steps: int = 30) -> Config:
    return Config.from_dict({
        "distill_set": {"n_samples": 9},
        "hyperinr": {
            "n_encoders": 3,
            "encoding": {"n_levels": 2, "n_features_per_level": 2, "log2_hashmap_size": 8,
                         "base_resolution": 2},
            "network": {"n_neurons": 16, "n_hidden_layers": 1},
            "target_source": "on_demand",
            "targets_mode": mode,
            "train": {"steps": steps, "batch_size": 128, "checkpoint_every": 10,
                      "log_every": 10},
        },
        "runtime": {"threads": 1, "device": "cpu"},
    })


@pytest.mark.parametrize("mode", ["corrected", "hybrid"])
def test_the_modes_never_read_an_unseen_frame(tmp_path, mode):
    from hyperinr.stages.distill import distill_hyperinr

    dataset, teacher = _stage_case(tmp_path, poison=True)
    validation = _validation_teacher(tmp_path, dataset)  # reads training frames only too
    vinfo = json.loads((validation.parent / "info.json").read_text())
    assert vinfo["held_out_frames"] == [2, 6] and vinfo["trained_frames"] == [0, 4, 8]
    assert vinfo["steps"] == 4  # a tenth of the teacher's 40 (shrinkage_validation)
    distill_hyperinr(_cfg(mode), dataset, None, tmp_path / "h", teacher=teacher,
                     validation_teacher=validation)
    info = json.loads((tmp_path / "h" / "info.json").read_text())
    assert np.isfinite(info["final_loss"]) and info["targets_mode"] == mode
    if mode == "corrected":
        choice = info["shrinkage_choice"]
        assert np.all(np.isfinite(choice["mse"])) and info["shrinkage"] == choice["chosen"]
        assert choice["scored"] == [2, 6] and choice["validation_teacher_frames"] == [0, 4, 8]
        assert info["produced_by"]["inputs"]["validation_teacher"]
    assert info["produced_by"]["inputs"]["teacher"]


def test_an_untrained_validation_teacher_gets_a_small_shrinkage(tmp_path):
    """Through the stage: a validation teacher that learned nothing (random network) predicts no
    dynamics, so the correction falls back toward the interpolation of the ground truth."""
    from hyperinr.stages.distill import distill_hyperinr

    dataset, teacher = _stage_case(tmp_path, poison=True)
    from hyperinr.data.store import open_dataset

    useless = tmp_path / "useless.pt"
    torch.manual_seed(3)
    save_teacher(useless, CoordNet(4, 1, (8, 8), 0), {
        "dataset_hash": open_dataset(dataset).content_hash, "dims": list(DIMS),
        "held_out_frames": [2, 6], "trained_frames": [0, 4, 8],
    })
    distill_hyperinr(_cfg("corrected", steps=10), dataset, None, tmp_path / "h", teacher=teacher,
                     validation_teacher=useless)
    info = json.loads((tmp_path / "h" / "info.json").read_text())
    assert info["shrinkage"] <= 0.2


def test_corrected_without_a_validation_teacher_is_a_one_line_error(tmp_path):
    from hyperinr.stages.distill import distill_hyperinr

    dataset, teacher = _stage_case(tmp_path, poison=False)
    with pytest.raises(ValueError, match="needs --validation-teacher"):
        distill_hyperinr(_cfg("corrected"), dataset, None, tmp_path / "h", teacher=teacher)
    with pytest.raises(ValueError, match="not a validation teacher of this dataset"):
        distill_hyperinr(_cfg("corrected"), dataset, None, tmp_path / "h", teacher=teacher,
                         validation_teacher=teacher)


class Killed(Exception):
    pass


@pytest.mark.parametrize("mode", ["teacher", "corrected", "hybrid"])
def test_resume_is_exact_in_every_mode(tmp_path, monkeypatch, mode):
    from hyperinr.stages.distill import distill_hyperinr
    from hyperinr.training import loader

    dataset, teacher = _stage_case(tmp_path, poison=False)
    cfg = _cfg(mode)
    validation = _validation_teacher(tmp_path, dataset) if mode == "corrected" else None
    distill_hyperinr(cfg, dataset, None, tmp_path / "whole", teacher=teacher,
                     validation_teacher=validation)

    real = loader.TeacherTargets.sample

    def killing(self, step, gen):
        if step == 15:
            raise Killed
        return real(self, step, gen)

    monkeypatch.setattr(loader.TeacherTargets, "sample", killing)
    with pytest.raises(Killed):
        distill_hyperinr(cfg, dataset, None, tmp_path / "killed", teacher=teacher,
                         validation_teacher=validation)
    monkeypatch.setattr(loader.TeacherTargets, "sample", real)
    distill_hyperinr(cfg, dataset, None, tmp_path / "killed", teacher=teacher,
                     validation_teacher=validation)
    info = json.loads((tmp_path / "killed" / "info.json").read_text())
    assert info["resumed_from"] == 10
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "killed" / "model.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
