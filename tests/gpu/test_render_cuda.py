"""The renderer on CUDA agrees with the CPU: plain, shadow-volume and secondary-ray renders, the
shadow volume itself, and rendering through a HyperINR-generated INR."""

from __future__ import annotations

import numpy as np
import torch

from hyperinr.models.hyperinr import HyperINR
from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    direction,
    inr_field,
    render,
    shadow_volume,
    volume_field,
)

ENCODING = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
            "log2_hashmap_size": 12, "base_resolution": 4, "per_level_scale": 2.0}  # fmt: skip
NETWORK = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
           "n_neurons": 32, "n_hidden_layers": 2}  # fmt: skip


def _volume() -> torch.Tensor:
    z, y, x = torch.meshgrid(*[torch.linspace(0, 1, 24)] * 3, indexing="ij")
    return torch.exp(-((x - 0.55) ** 2 + (y - 0.45) ** 2 + (z - 0.5) ** 2) / 0.04)


def test_renders_match_cpu(cuda):
    cam = Camera(60.0, 30.0, width=32, height=32)
    light = direction(45.0, 150.0)
    tf = DEFAULT_TRANSFER_FUNCTION
    out = {}
    for device in (torch.device("cpu"), cuda):
        vol = _volume().to(device)
        field = volume_field(vol)
        shadow = shadow_volume(vol, tf, light, n_steps=32)
        out[device.type] = [
            render(field, cam, tf, n_steps=64).cpu(),
            render(field, cam, tf, n_steps=64, shadow=volume_field(shadow), ambient=0.2).cpu(),
            render(field, cam, tf, n_steps=64, light_dir=light, shadow_steps=32).cpu(),
            shadow.cpu(),
        ]
        assert out[device.type][0].device.type == "cpu"
    for a, b in zip(out["cpu"], out["cuda"], strict=True):
        torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-4)


def test_render_through_a_generated_inr_on_cuda(cuda):
    model = HyperINR(np.random.default_rng(0).random((6, 2)), 3, 1, ENCODING, NETWORK, 3)
    cam = Camera(70.0, 10.0, width=16, height=16)
    images = {}
    for device in (torch.device("cpu"), cuda):
        inr = model.to(device).generate(np.array([0.3, 0.6]))
        images[device.type] = render(inr_field(inr), cam, DEFAULT_TRANSFER_FUNCTION, n_steps=32)
    torch.testing.assert_close(images["cuda"].cpu(), images["cpu"].cpu(), atol=2e-4, rtol=1e-4)
