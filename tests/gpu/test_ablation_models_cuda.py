"""The shared-MLP ablation's independent INRs on CUDA agree with the CPU: training forward
(each sample through its own INR), gradients, and generate() (blended tables and MLPs)."""

from __future__ import annotations

import numpy as np
import torch

from hyperinr.models.independent import IndependentINRs

ENCODING = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
            "log2_hashmap_size": 12, "base_resolution": 4, "per_level_scale": 2.0}  # fmt: skip
NETWORK = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
           "n_neurons": 32, "n_hidden_layers": 2}  # fmt: skip


def test_independent_inrs_match_cpu(cuda):
    cpu = IndependentINRs(np.linspace(0, 1, 4).reshape(-1, 1), 3, 1, ENCODING, NETWORK, seed=2)
    with torch.no_grad():
        cpu.tables.uniform_(-1, 1)
    gpu = IndependentINRs(np.linspace(0, 1, 4).reshape(-1, 1), 3, 1, ENCODING, NETWORK, seed=2)
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to(cuda)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4096, 3, generator=gen)
    j = torch.randint(4, (4096,), generator=gen)
    out_cpu, out_gpu = cpu(x, j), gpu(x.to(cuda), j.to(cuda))
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-5)
    out_cpu.square().mean().backward()
    out_gpu.square().mean().backward()
    torch.testing.assert_close(gpu.tables.grad.cpu(), cpu.tables.grad, rtol=1e-3, atol=1e-6)
    theta = np.array([0.4])
    inr_cpu, inr_gpu = cpu.generate(theta), gpu.generate(theta)
    torch.testing.assert_close(inr_gpu(x.to(cuda)).cpu(), inr_cpu(x), rtol=1e-4, atol=1e-5)
