"""The training loop resumes a killed run exactly where it stopped."""

import pytest
import torch

from hyperinr.config import TrainConfig
from hyperinr.training.loop import train


class Killed(Exception):
    pass


def _setup(kill_at=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))

    def batch_fn(step, gen):
        if kill_at is not None and step == kill_at:
            raise Killed
        x = torch.rand(64, 3, generator=gen)
        return (x,), x.sum(dim=1, keepdim=True).sin()

    return model, batch_fn


CFG = TrainConfig(steps=60, batch_size=64, lr=1e-2, checkpoint_every=20, log_every=10, lr_decay=0.5)


def test_resume_after_kill_equals_uninterrupted(tmp_path):
    ref, fn = _setup()
    train(ref, fn, CFG, torch.device("cpu"), tmp_path / "a.pt", tag="x")

    model, killing = _setup(kill_at=45)
    with pytest.raises(Killed):
        train(model, killing, CFG, torch.device("cpu"), tmp_path / "b.pt", tag="x")
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 40
    resumed, fn2 = _setup()  # fresh weights: everything must come from the checkpoint
    result = train(resumed, fn2, CFG, torch.device("cpu"), tmp_path / "b.pt", tag="x")
    assert result.resumed_from == 40
    for a, b in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    model, killing = _setup(kill_at=45)
    with pytest.raises(Killed):
        train(model, killing, CFG, torch.device("cpu"), tmp_path / "c.pt", tag="x")
    assert torch.load(tmp_path / "c.pt", weights_only=False)["step"] == 40
    model2, fn2 = _setup()
    result = train(model2, fn2, CFG, torch.device("cpu"), tmp_path / "c.pt", tag="y")
    assert result.resumed_from == 0


def test_a_finished_run_is_never_resumed(tmp_path):
    """The loop writes no checkpoint at the last step, and refuses one that claims it (a file
    left by an older hyperinr, or copied by hand): a rerun trains from step 0."""
    path = tmp_path / "f.pt"
    model, fn = _setup()
    train(model, fn, CFG, torch.device("cpu"), path, tag="x")
    assert torch.load(path, weights_only=False)["step"] == 40  # the last intermediate one
    state = torch.load(path, weights_only=False)
    state["step"] = CFG.steps
    torch.save(state, path)
    again, fn2 = _setup()
    result = train(again, fn2, CFG, torch.device("cpu"), path, tag="x")
    assert result.resumed_from == 0 and result.steps == CFG.steps


def test_loss_decreases_and_non_finite_loss_fails(tmp_path):
    model, fn = _setup()
    result = train(model, fn, CFG, torch.device("cpu"), tmp_path / "d.pt", tag="x")
    assert result.losses[-1][1] < result.losses[0][1]

    def nan_batch(step, gen):
        return (torch.full((4, 3), float("nan")),), torch.zeros(4, 1)

    with pytest.raises(FloatingPointError, match="loss became nan"):
        train(model, nan_batch, CFG, torch.device("cpu"), tmp_path / "e.pt", tag="z")
