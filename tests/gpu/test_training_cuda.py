"""Short trainings on CUDA through the public loop (hyperinr.training.loop.train), AMP on.

On CUDA the loop autocasts the forward to float16 and scales the loss (hyperinr.infra.device.
amp_enabled); the CPU tests never exercise that path.  Each run is a few hundred steps on a
small synthetic target: the loss must stay finite, fall clearly, and leave finite weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hyperinr.config import TrainConfig
from hyperinr.infra.device import amp_enabled
from hyperinr.models.coordnet import CoordNet, SineLayer
from hyperinr.models.hyperinr import HyperINR
from hyperinr.param_space.positions import encoder_positions
from hyperinr.training.loop import train

#: the tiny workflow config's grid and MLP (config/test.yaml)
ENCODING = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
            "log2_hashmap_size": 12, "base_resolution": 2, "per_level_scale": 2.0,
            "interpolation": "Linear"}
NETWORK = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
           "n_neurons": 32, "n_hidden_layers": 2}


def field01(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A smooth target in [0, 1]: theta [B, 1], x [B, 3] in [0, 1] -> [B, 1]."""
    phase = 2 * math.pi * (x[:, :1] + 0.5 * theta)
    return 0.5 + 0.2 * torch.sin(phase) * torch.cos(math.pi * x[:, 1:2]) + 0.1 * x[:, 2:3]


def check(result, model: torch.nn.Module, factor: float) -> None:
    losses = [loss for _, loss in result.losses]
    assert losses and all(math.isfinite(v) for v in losses), losses
    assert math.isfinite(result.final_loss)
    assert losses[-1] < factor * losses[0], f"loss did not fall enough: {losses}"
    for name, p in model.named_parameters():
        assert bool(torch.isfinite(p).all()), name


def teacher_run(device: torch.device, tmp_path, steps: int = 400):
    torch.manual_seed(0)
    model = CoordNet(4, 1, (32, 32), 1)

    def batch_fn(step, gen):
        theta = torch.rand(4096, 1, generator=gen)
        x = torch.rand(4096, 3, generator=gen)
        inputs = torch.cat([theta, x], dim=1) * 2 - 1  # CoordNet's [-1, 1]
        target = field01(theta, x) * 2 - 1
        return (inputs.to(device),), target.to(device)

    cfg = TrainConfig(steps=steps, batch_size=4096, lr=1e-3, checkpoint_every=0, log_every=25)
    result = train(model, batch_fn, cfg, device, tmp_path / "teacher.pt", tag="gpu-teacher")
    return result, model


def hyperinr_run(device: torch.device, tmp_path, steps: int = 400):
    torch.manual_seed(0)
    model = HyperINR(encoder_positions(5, 1), 3, 1, ENCODING, NETWORK, k_nearest=2, seed=0)

    def batch_fn(step, gen):
        theta = torch.rand(4096, 1, generator=gen)
        x = torch.rand(4096, 3, generator=gen)
        idx, w = model.lookup(theta.numpy().astype(np.float64))  # on the model's device
        return (x.to(device), idx, w), field01(theta, x).to(device)

    cfg = TrainConfig(steps=steps, batch_size=4096, lr=1e-2, checkpoint_every=0, log_every=25)
    result = train(model, batch_fn, cfg, device, tmp_path / "hyperinr.pt", tag="gpu-hyperinr")
    return result, model


def test_sine_layers_stay_float32_under_cuda_autocast(cuda):
    torch.manual_seed(0)
    net = CoordNet(4, 1, (32, 64), 2).to(cuda)
    layer = SineLayer(4, 32).to(cuda)
    x = torch.rand(4096, 4, device=cuda) * 2 - 1
    with torch.no_grad():
        want_net, want_layer = net(x), layer(x)
        with torch.autocast("cuda", dtype=torch.float16):
            assert torch.nn.functional.linear(x, layer.linear.weight).dtype == torch.float16
            got_net, got_layer = net(x), layer(x)
    assert got_net.dtype == got_layer.dtype == torch.float32
    # same float32 kernels with and without autocast; a float16 sine would be off by ~1e-2
    torch.testing.assert_close(got_layer, want_layer, rtol=0, atol=1e-6)
    torch.testing.assert_close(got_net, want_net, rtol=0, atol=1e-6)


def test_teacher_trains_with_amp(cuda, tmp_path):
    assert amp_enabled(cuda)
    result, model = teacher_run(cuda, tmp_path)
    check(result, model, 0.3)


def test_hyperinr_trains_with_amp(cuda, tmp_path):
    assert amp_enabled(cuda)
    result, model = hyperinr_run(cuda, tmp_path)
    check(result, model, 0.3)
    inr = model.generate(np.array([0.3]))  # generation works from CUDA weights
    x = torch.rand(1000, 3, device=cuda)
    assert bool(torch.isfinite(inr(x)).all())
