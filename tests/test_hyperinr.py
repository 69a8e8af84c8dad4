"""HyperINR: table blending (generation) equals encoding blending (training); export round trip."""

import numpy as np
import pytest
import torch

from hyperinr.models.hyperinr import HyperINR, load_hyperinr, save_hyperinr
from hyperinr.models.inr import INR
from hyperinr.param_space.positions import encoder_positions

ENC = {
    "otype": "HashGrid",
    "n_levels": 4,
    "n_features_per_level": 2,
    "log2_hashmap_size": 10,
    "base_resolution": 4,
    "per_level_scale": 1.5,
}
NET = {"n_neurons": 16, "n_hidden_layers": 2}


def _model(positions):
    torch.manual_seed(0)
    model = HyperINR(positions, 3, 1, ENC, NET, k_nearest=3)
    with torch.no_grad():  # tables far from zero so differences between encoders show
        model.tables.uniform_(-1, 1)
    return model


@pytest.mark.parametrize(
    "positions", [encoder_positions(5, 1), np.random.default_rng(1).random((9, 2))]
)
def test_generated_inr_equals_training_forward(positions):
    model = _model(positions)
    x = torch.rand(257, 3)
    theta = np.full((1, positions.shape[1]), 0.37)
    idx, w = model.lookup(theta)
    with torch.no_grad():
        trained = model(x, idx.expand(len(x), -1), w.expand(len(x), -1))
    generated = model.generate(theta[0])(x)
    assert torch.allclose(trained, generated, atol=1e-5)


def test_generation_at_an_encoder_position_uses_that_encoder_alone():
    model = _model(encoder_positions(5, 1))
    inr = model.generate(np.array([0.5]))  # position of encoder 2
    assert torch.allclose(inr.table, model.tables[2])


def test_linear_in_time_between_neighbours():
    model = _model(encoder_positions(3, 1))
    t0, t1 = model.generate(np.array([0.0])).table, model.generate(np.array([0.5])).table
    mid = model.generate(np.array([0.25])).table
    assert torch.allclose(mid, 0.5 * (t0 + t1), atol=1e-7)


def test_gradients_reach_only_the_neighbouring_encoders():
    model = _model(encoder_positions(5, 1))
    x = torch.rand(64, 3)
    idx, w = model.lookup(np.array([[0.1]]))  # between encoders 0 and 1
    model(x, idx.expand(64, -1), w.expand(64, -1)).sum().backward()
    touched = model.tables.grad.abs().sum(dim=1) > 0
    assert touched.tolist() == [True, True, False, False, False]
    assert all(p.grad is not None for p in model.mlp.parameters())


def test_export_round_trip(tmp_path):
    model = _model(encoder_positions(4, 1))
    inr = model.generate(np.array([0.6]), {"param": [0.6]})
    path = inr.save(tmp_path / "inr.npz")
    loaded = INR.load(path)
    x = torch.rand(100, 3)
    assert torch.equal(inr(x), loaded(x))
    assert loaded.metadata["param"] == [0.6]
    assert loaded.encoding.config["otype"] == "HashGrid"


def test_load_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        INR.load(bad)


def test_generated_inr_does_not_change_when_training_continues():
    model = _model(encoder_positions(4, 1))
    x = torch.rand(64, 3)
    inr = model.generate(np.array([0.4]))
    before = inr(x).clone()
    assert model.generate(np.array([0.9])).network is inr.network  # no copy while unchanged
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    idx, w = model.lookup(np.full((len(x), 1), 0.4))
    model(x, idx, w).sum().backward()
    opt.step()
    assert torch.equal(inr(x), before)
    assert not torch.equal(model.generate(np.array([0.4]))(x), before)  # the model did move


def test_only_the_encoder_bank_and_mlp_are_state():
    """No unused table of the grid's own: it would shift the RNG stream and fill checkpoints."""
    model = _model(encoder_positions(3, 1))
    assert model.encoding.params is None
    names = set(model.state_dict())
    assert names == {"positions", "tables"} | {n for n in names if n.startswith("mlp.")}
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == model.tables.numel() + sum(p.numel() for p in model.mlp.parameters())


def test_save_and_load_round_trip(tmp_path):
    model = _model(np.random.default_rng(2).random((6, 2)))
    save_hyperinr(tmp_path / "m.pt", model, {"dims": [4, 4, 4]})
    loaded, meta = load_hyperinr(tmp_path / "m.pt", torch.device("cpu"))
    assert meta == {"dims": [4, 4, 4]}
    x, theta = torch.rand(32, 3), np.array([0.2, 0.7])
    assert torch.equal(loaded.generate(theta)(x), model.generate(theta)(x))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable HyperINR"):
        load_hyperinr(tmp_path / "bad.pt", torch.device("cpu"))


# ----------------------------------------------------------------------------- n-D, periodic


def test_periodic_lookup_near_one_uses_encoders_near_zero():
    positions = np.array([[0.02, 0.5], [0.5, 0.5], [0.85, 0.5], [0.5, 0.1]])
    theta = np.array([[0.99, 0.5]])
    plain = HyperINR(positions, 3, 1, ENC, NET, k_nearest=1)
    assert plain.lookup(theta)[0][0, 0] == 2  # without the wrap: 0.85 is nearest
    model = HyperINR(positions, 3, 1, ENC, NET, k_nearest=2, periodic=[True, False])
    idx, w = model.lookup(theta)
    assert idx[0].tolist() == [0, 2]  # 0.03 away across the wrap, then 0.14
    assert torch.allclose(w[0], torch.tensor([0.14 / 0.17, 0.03 / 0.17]), atol=1e-6)
    x = torch.rand(32, 3)
    with torch.no_grad():
        model.tables.uniform_(-1, 1)
        blended = model(x, idx.expand(32, -1), w.expand(32, -1))
    assert torch.allclose(model.generate(theta[0])(x), blended, atol=1e-5)


def test_idw_power_reaches_the_lookup():
    positions = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    model = HyperINR(positions, 3, 1, ENC, NET, k_nearest=2, power=2.0)
    _, w = model.lookup(np.array([[0.25, 0.0]]))
    assert torch.allclose(w[0], torch.tensor([0.9, 0.1]))


def test_invalid_positions_and_k_raise():
    with pytest.raises(ValueError, match="encoder positions: rows 0 and 2 coincide"):
        HyperINR(np.array([[0.1, 0.2], [0.5, 0.5], [0.1, 0.2]]), 3, 1, ENC, NET)
    with pytest.raises(ValueError, match="encoder positions: rows 0 and 1 coincide"):
        HyperINR(np.array([[0.0, 0.2], [1.0, 0.2]]), 3, 1, ENC, NET, 1, periodic=[True, False])
    with pytest.raises(ValueError, match="outside"):
        HyperINR(np.array([[0.1, 1.2], [0.5, 0.5]]), 3, 1, ENC, NET, k_nearest=1)
    with pytest.raises(ValueError, match="hyperinr.k_nearest=4 exceeds the 3 encoders"):
        HyperINR(np.random.default_rng(0).random((3, 2)), 3, 1, ENC, NET, k_nearest=4)
    HyperINR(encoder_positions(3, 1), 3, 1, ENC, NET, k_nearest=4)  # 1-D: always two


def test_description_round_trip_keeps_power_and_periodic(tmp_path):
    positions = np.random.default_rng(3).random((6, 2))
    model = HyperINR(positions, 3, 1, ENC, NET, k_nearest=3, power=2.5, periodic=[True, False])
    desc = model.describe()
    assert desc["power"] == 2.5 and desc["periodic"] == [True, False]
    again = HyperINR.from_description(desc)
    assert again.power == 2.5 and again.periodic == (True, False)
    theta = np.array([[0.97, 0.3], [0.01, 0.8]])
    for a, b in zip(model.lookup(theta), again.lookup(theta)):
        assert torch.equal(a, b)
    save_hyperinr(tmp_path / "m.pt", model, {})
    loaded, _ = load_hyperinr(tmp_path / "m.pt", torch.device("cpu"))
    assert loaded.power == 2.5 and loaded.periodic == (True, False)


def test_old_descriptions_load_with_the_defaults():
    desc = _model(np.random.default_rng(4).random((5, 2))).describe()
    del desc["power"], desc["periodic"]
    old = HyperINR.from_description(desc)
    assert old.power == 1.0 and old.periodic is None
