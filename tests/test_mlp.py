"""The shared MLP starts from tiny-cuda-nn's weight initialisation, not torch's default.

tcnn (src/fully_fused_mlp.cu, FullyFusedMLP::initialize_params -> GPUMatrix::
initialize_xavier_uniform in include/tiny-cuda-nn/gpu_matrix.h) draws every weight of a ReLU
MLP from U(-b, b), b = sqrt(6 / (fan_in + fan_out)), with the widths of its matrices padded to
multiples of 16.  torch's nn.Linear default is U(+-1/sqrt(fan_in)), which the checks below
reject (see test_torch_default_init_would_fail).
"""

from __future__ import annotations

import math

import pytest
import torch

from hyperinr.models.mlp import MLP, tcnn_init_bound, tcnn_padded
from hyperinr.models.seeding import seeded


def test_bound_formula_by_hand():
    assert [tcnn_padded(n) for n in (1, 3, 15, 16, 17, 24, 32, 64)] == [
        16, 16, 16, 16, 32, 32, 32, 64]
    assert tcnn_init_bound(32, 64) == pytest.approx(math.sqrt(6 / 96))  # 0.25
    assert tcnn_init_bound(64, 64) == pytest.approx(math.sqrt(6 / 128))
    assert tcnn_init_bound(64, 1) == pytest.approx(math.sqrt(6 / 80))  # 1 output row -> 16
    assert tcnn_init_bound(24, 128) == pytest.approx(math.sqrt(6 / 160))  # 24 inputs -> 32


def _check_uniform(w: torch.Tensor, bound: float) -> None:
    """w looks like n i.i.d. draws of U(-bound, bound): support, reach, mean and variance."""
    w = w.detach().double().flatten()
    n = w.numel()
    assert float(w.abs().max()) <= bound
    assert float(w.abs().max()) >= (1 - 8 / n) * bound  # P(max < (1-8/n) b) ~ e^-8
    var = bound**2 / 3
    # sample variance of a uniform: relative standard error sqrt(0.8 / n); allow 5 of them
    assert abs(float((w**2).mean()) / var - 1) < 5 * math.sqrt(0.8 / n)
    assert abs(float(w.mean())) < 5 * math.sqrt(var / n)


CASES = [
    (32, 1, {"n_neurons": 64, "n_hidden_layers": 4}),  # the paper's MLP on L8 F4 features
    (8, 1, {"n_neurons": 32, "n_hidden_layers": 2}),  # the tiny config's MLP
    (24, 3, {"n_neurons": 128, "n_hidden_layers": 3}),  # padded input and output widths
]


@pytest.mark.parametrize("n_in, n_out, cfg", CASES)
def test_every_layer_is_tcnn_xavier_uniform(n_in, n_out, cfg):
    torch.manual_seed(0)
    mlp = MLP(n_in, n_out, cfg)
    width = cfg["n_neurons"]
    sizes = [n_in] + [width] * cfg["n_hidden_layers"] + [n_out]
    assert len(mlp.layers) == len(sizes) - 1
    for layer, a, b in zip(mlp.layers, sizes[:-1], sizes[1:]):
        assert layer.weight.shape == (b, a) and layer.bias is None
        bound = math.sqrt(6 / (16 * math.ceil(a / 16) + 16 * math.ceil(b / 16)))
        assert tcnn_init_bound(a, b) == pytest.approx(bound)
        _check_uniform(layer.weight, bound)


def test_torch_default_init_would_fail():
    """nn.Linear's own init does not pass the per-layer check (the test is not vacuous)."""
    torch.manual_seed(0)
    for a, b in [(32, 64), (64, 64), (64, 1)]:
        default = torch.nn.Linear(a, b, bias=False).weight
        with pytest.raises(AssertionError):
            _check_uniform(default, tcnn_init_bound(a, b))


def test_init_is_its_generator_alone():
    """The weights come from the generator passed (None: one seeded 0), never from torch's
    global one: what drew before changes nothing, and nothing drawn after sees the MLP's."""
    cfg = {"n_neurons": 64, "n_hidden_layers": 4}
    torch.manual_seed(3)
    expected_next = torch.rand(4)
    torch.manual_seed(3)
    first = MLP(32, 1, cfg, generator=seeded(5))
    assert torch.equal(torch.rand(4), expected_next)  # the global generator did not move
    torch.rand(1000)
    second = MLP(32, 1, cfg, generator=seeded(5))
    for p, q in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(p, q)
    other = MLP(32, 1, cfg, generator=seeded(6))
    assert not torch.equal(first.layers[0].weight, other.layers[0].weight)
    default, zero = MLP(32, 1, cfg), MLP(32, 1, cfg, generator=seeded(0))
    assert torch.equal(default.layers[0].weight, zero.layers[0].weight)


def test_draws_what_the_seeded_global_generator_drew():
    """MLP(generator=seeded(s)) has the weights an MLP built right after torch.manual_seed(s)
    had when it drew from the global generator: models trained then keep their weights."""
    mlp = MLP(32, 1, {"n_neurons": 64, "n_hidden_layers": 4}, generator=seeded(3))
    torch.manual_seed(3)
    for layer in mlp.layers:
        bound = tcnn_init_bound(layer.in_features, layer.out_features)
        expected = torch.empty(layer.out_features, layer.in_features).uniform_(-bound, bound)
        assert torch.equal(layer.weight, expected)
