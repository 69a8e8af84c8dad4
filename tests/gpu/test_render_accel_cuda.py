"""The renderer's accelerations on CUDA agree with the CPU: the occupancy grid itself, and
renders with empty-space skipping and early ray termination (plain and both shadow modes),
through a volume and through a HyperINR-generated INR."""

from __future__ import annotations

import numpy as np
import torch

from hyperinr.models.hyperinr import HyperINR
from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    RenderStats,
    direction,
    inr_field,
    occupancy_grid,
    render,
    volume_field,
)

ENCODING = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
            "log2_hashmap_size": 12, "base_resolution": 4, "per_level_scale": 2.0}  # fmt: skip
NETWORK = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
           "n_neurons": 32, "n_hidden_layers": 2}  # fmt: skip


def _volume() -> torch.Tensor:
    z, y, x = torch.meshgrid(*[torch.linspace(0, 1, 24)] * 3, indexing="ij")
    return torch.exp(-((x - 0.55) ** 2 + (y - 0.45) ** 2 + (z - 0.5) ** 2) / 0.04)


def test_accelerated_renders_match_cpu(cuda):
    cam = Camera(60.0, 30.0, width=32, height=32)
    light = direction(45.0, 150.0)
    tf = DEFAULT_TRANSFER_FUNCTION
    out, grids, counts = {}, {}, {}
    for device in (torch.device("cpu"), cuda):
        field = volume_field(_volume().to(device))
        grid = occupancy_grid(field, tf, 16)
        assert grid.occupied.device.type == device.type
        fast = {"occupancy": grid, "early_stop": 1e-3}
        stats = RenderStats()
        out[device.type] = [
            render(field, cam, tf, n_steps=64, stats=stats, **fast).cpu(),
            render(field, cam, tf, n_steps=64, shadow=lambda x: 1.0 - 0.5 * x[:, 2], **fast).cpu(),
            render(field, cam, tf, n_steps=64, light_dir=light, shadow_steps=32, **fast).cpu(),
            render(field, cam, tf, n_steps=64, occupancy=grid).cpu(),
        ]
        grids[device.type] = grid.to("cpu")
        counts[device.type] = stats
    # float32 rounding differs between devices, so a cell or sample on a threshold may flip
    assert grids["cpu"].fraction < 0.5
    assert (grids["cuda"].occupied != grids["cpu"].occupied).float().mean() < 0.01
    assert abs(counts["cuda"].field_evals / counts["cpu"].field_evals - 1.0) < 0.01
    for a, b in zip(out["cpu"], out["cuda"], strict=True):
        torch.testing.assert_close(b, a, atol=2e-4, rtol=1e-4)


def test_accelerated_render_through_a_generated_inr_on_cuda(cuda):
    model = HyperINR(np.random.default_rng(0).random((6, 2)), 3, 1, ENCODING, NETWORK, 3)
    cam = Camera(70.0, 10.0, width=16, height=16)
    tf = DEFAULT_TRANSFER_FUNCTION
    images = {}
    for device in (torch.device("cpu"), cuda):
        field = inr_field(model.to(device).generate(np.array([0.3, 0.6])))
        grid = occupancy_grid(field, tf, 8)
        exact = render(field, cam, tf, n_steps=32)
        fast = render(field, cam, tf, n_steps=32, occupancy=grid, early_stop=1e-3)
        assert fast.device.type == device.type
        lost = (exact - fast).cpu()
        assert lost.min() >= -2e-4 and lost.max() <= 1e-3 + 2e-4
        images[device.type] = fast.cpu()
    torch.testing.assert_close(images["cuda"], images["cpu"], atol=2e-4, rtol=1e-4)
