"""The corrected and hybrid target wrappers on CUDA agree with the CPU (same draws, same sums)."""

from __future__ import annotations

import numpy as np
import torch

from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.training.targets import Anchors, CorrectedTargets, HybridTargets

DIMS = (6, 7, 8)


class Source:
    """Loader-like batches of a fixed random field on `device` (generator on the CPU)."""

    def __init__(self, params01, fields, device):
        self.params01, self.fields, self.device = params01, fields.to(device), device

    def sample(self, step, gen):
        j = torch.randint(len(self.params01), (512,), generator=gen).to(self.device)
        v = torch.randint(n_voxels(DIMS), (512,), generator=gen).to(self.device)
        return j, flat_to_coords(v, DIMS), self.fields[j, v]

    def close(self):
        pass


def _case(device):
    g = torch.Generator().manual_seed(0)
    train = np.linspace(0, 1, 4).reshape(-1, 1)
    params = np.linspace(0, 1, 13).reshape(-1, 1)
    anchors = Anchors(train, torch.rand(4, n_voxels(DIMS), 1, generator=g).to(device),
                      torch.rand(4, n_voxels(DIMS), 1, generator=g).to(device), DIMS, 2)
    return Source(params, torch.rand(13, n_voxels(DIMS), 1, generator=g), device), anchors


def test_target_modes_match_cpu(cuda):
    out = {}
    for device in (torch.device("cpu"), cuda):
        source, anchors = _case(device)
        for name, wrap in (("corrected", CorrectedTargets(source, anchors, 0.4)),
                           ("hybrid", HybridTargets(source, anchors, 0.25, 512))):
            j, x, y = wrap.sample(0, torch.Generator().manual_seed(1))
            out.setdefault(name, []).append((j.cpu(), x.cpu(), y.cpu()))
    for name, (cpu, gpu) in out.items():
        for a, b in zip(cpu, gpu):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6, msg=name)


def test_shrinkage_curve_matches_cpu(cuda):
    """The validation teacher's curve (the default shrinkage rule) from anchors on the GPU."""
    from hyperinr.training.targets import shrinkage_curve, validation_split

    curves = []
    for device in (torch.device("cpu"), cuda):
        _, anchors = _case(device)
        _, held = validation_split(anchors.params01)
        curves.append(shrinkage_curve(anchors, held))
    np.testing.assert_allclose(curves[0]["mse"], curves[1]["mse"], rtol=1e-9)
