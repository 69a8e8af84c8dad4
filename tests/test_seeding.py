"""Every model's initial weights are a function of its seed (runtime.seed) alone, and are the
weights the stages built before models took their seed: then the stages seeded torch's global
generator with runtime.seed and built the model from it (hyperinr.models.seeding). The
references below redo that old construction with plain torch layers, in its draw order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hyperinr.models.baselines import HashINR, NeurComp
from hyperinr.models.coordnet import OMEGA_0, CoordNet, SineLayer
from hyperinr.models.hyperinr import HyperINR
from hyperinr.models.independent import IndependentINRs
from hyperinr.models.mlp import MLP, tcnn_init_bound
from hyperinr.models.seeding import seeded, torch_linear

ENC = {"otype": "HashGrid", "n_levels": 3, "n_features_per_level": 2,
       "log2_hashmap_size": 8, "base_resolution": 2}  # fmt: skip
NET = {"n_neurons": 16, "n_hidden_layers": 2}
POSITIONS = np.linspace(0.0, 1.0, 3).reshape(-1, 1)
MODELS = {
    "coordnet": lambda seed: CoordNet(4, 1, (16, 32), 1, seed=seed),
    "neurcomp": lambda seed: NeurComp(1, 3, 1, 16, 2, seed=seed),
    "hashinr": lambda seed: HashINR(1, 3, 1, ENC, 4, NET, seed=seed),
    "hyperinr": lambda seed: HyperINR(POSITIONS, 3, 1, ENC, NET, 2, seed=seed),
    "independent": lambda seed: IndependentINRs(POSITIONS, 3, 1, ENC, NET, 2, seed=seed),
}


def _equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", MODELS)
def test_initial_weights_are_the_seeds_alone(name):
    build = MODELS[name]
    torch.manual_seed(1)
    first = build(7)
    torch.manual_seed(2)
    torch.rand(1000)
    state = torch.get_rng_state()
    second = build(7)
    assert torch.equal(torch.get_rng_state(), state), "drew from torch's global generator"
    assert _equal(first, second)
    assert not _equal(first, build(8))


def _old_sine(n_in: int, n_out: int) -> nn.Linear:
    """A SineLayer's linear map as the global generator drew it."""
    ref = nn.Linear(n_in, n_out)
    bound = math.sqrt(6.0 / n_in) / OMEGA_0
    with torch.no_grad():
        ref.weight.uniform_(-bound, bound)
    return ref


def _same_linear(layer: nn.Linear, ref: nn.Linear) -> None:
    assert torch.equal(layer.weight, ref.weight)
    assert (layer.bias is None) == (ref.bias is None)
    if layer.bias is not None:
        assert torch.equal(layer.bias, ref.bias)


def _old_mlp_weights(mlp: MLP) -> None:
    for layer in mlp.layers:
        bound = tcnn_init_bound(layer.in_features, layer.out_features)
        expected = torch.empty(layer.out_features, layer.in_features).uniform_(-bound, bound)
        assert torch.equal(layer.weight, expected)


def test_torch_linear_is_nn_linear_under_manual_seed():
    layer = torch_linear(5, 7, seeded(4))
    torch.manual_seed(4)
    _same_linear(layer, nn.Linear(5, 7))


def test_coordnet_draws_what_the_seeded_global_generator_drew():
    net = CoordNet(4, 1, (16, 32), 1, seed=5)
    torch.manual_seed(5)
    sines = [m for m in net.modules() if isinstance(m, SineLayer)]  # construction order
    assert len(sines) == 2 * 4 + 3  # 4 blocks, 3 of them with a sine shortcut
    for sine in sines:
        _same_linear(sine.linear, _old_sine(sine.linear.in_features, sine.linear.out_features))


def test_neurcomp_draws_what_the_seeded_global_generator_drew():
    net = NeurComp(1, 3, 2, 16, 2, seed=6)
    torch.manual_seed(6)
    first, last = _old_sine(4, 16), nn.Linear(16, 2)
    with torch.no_grad():
        first.weight.uniform_(-1.0 / 4, 1.0 / 4)
        last.weight.uniform_(-math.sqrt(6.0 / 16) / OMEGA_0, math.sqrt(6.0 / 16) / OMEGA_0)
    _same_linear(net.net[0].linear, first)
    _same_linear(net.net[-1], last)
    for block in net.net[1:-1]:
        _same_linear(block.layer1.linear, _old_sine(16, 16))
        _same_linear(block.layer2.linear, _old_sine(16, 16))


def test_hashinr_draws_what_the_seeded_global_generator_drew():
    net = HashINR(1, 3, 1, ENC, 4, NET, seed=8)
    torch.manual_seed(8)
    table = torch.empty(net.grid.n_params).uniform_(-1e-4, 1e-4)
    assert torch.equal(net.grid.params, table)
    _old_mlp_weights(net.mlp)


def test_hyperinr_mlp_starts_where_its_tables_do():
    """Its tables came from their own generator seeded `seed`, its MLP from the global one the
    stage had seeded with the same `seed`: both streams start at `seed`."""
    net = HyperINR(POSITIONS, 3, 1, ENC, NET, 2, seed=9)
    tables = torch.rand(3, net.encoding.n_params, generator=seeded(9))
    assert torch.equal(net.tables, (tables * 2 - 1) * 1e-4)
    torch.manual_seed(9)
    _old_mlp_weights(net.mlp)
