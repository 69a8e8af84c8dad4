"""Hash grid on CUDA: the torch path against the CPU kernels, and tcnn against the torch path.

Tolerances (tables and upstream gradients are O(1), weights are convex):

* forward: |diff| <= 2e-6.  Each output is a convex blend of 2**D (times K) table entries;
  the two sides read the same entries with bit-identical corner weights (see
  hyperinr/encoding/_torch_path.py) and differ only in summation order, worth a few float32
  ulps (6e-8) of a value <= 1.
* table gradient: |diff| <= 2e-5 * S + 1e-6 per entry, S = sum over samples of |w * g| (the
  gradient of the same scatter with |g|).  Entries of the coarse levels gather thousands of
  contributions, so the error of a reordered float32 sum scales with S, not with the result.
* weight gradient (ensembles): <g, encoding> over L*F features, |diff| <= 1e-5 (1 + |value|).
"""

from __future__ import annotations

import pytest
import torch

from hyperinr.encoding import HashGrid
from hyperinr.encoding._tcnn import tcnn_module
from hyperinr.encoding.hashgrid import numba_kernels

#: the CPU reference: the numba kernels (the CPU production path) when numba imports
CPU_BACKEND = "numba" if numba_kernels() is not None else "torch"
FWD_ATOL = 2e-6
GRAD_REL = 2e-5
B = 4096


def config(dims: int, feat: int, interpolation: str) -> dict:
    """Coarse levels dense, fine levels hashed (asserted below): both code paths run."""
    log2 = {2: 8, 3: 11, 4: 13}[dims]
    return {"otype": "HashGrid", "n_levels": 6, "n_features_per_level": feat,
            "log2_hashmap_size": log2, "base_resolution": 3, "per_level_scale": 1.6,
            "interpolation": interpolation}


CASES = [(2, 2, "Linear"), (3, 2, "Linear"), (3, 4, "Smoothstep"), (4, 2, "Linear")]


def points(dims: int, n: int = B, seed: int = 0) -> torch.Tensor:
    """Random points in [0, 1]^D plus the cube's corners 0 and 1."""
    x = torch.rand(n, dims, generator=torch.Generator().manual_seed(seed))
    x[0], x[1] = 0.0, 1.0
    x[2, ::2] = 1.0
    return x


def encoders(dims: int, cfg: dict, backend: str) -> HashGrid:
    enc = HashGrid(dims, cfg, backend=backend)
    assert enc.geometry.dense.any() and not enc.geometry.dense.all()
    return enc


def run(enc: HashGrid, device, x, tables, grad_out, idx=None, w=None):
    """(output, table gradient, |g| table gradient, weight gradient) on `device`, as CPU."""
    t = tables.to(device).requires_grad_(True)
    wd = None if w is None else w.to(device).requires_grad_(True)
    id_ = None if idx is None else idx.to(device)
    out = enc(x.to(device), t, id_, wd)
    out.backward(grad_out.to(device))
    t_abs = tables.to(device).requires_grad_(True)
    wd_abs = None if w is None else w.to(device)
    enc(x.to(device), t_abs, id_, wd_abs).backward(grad_out.abs().to(device))
    return (out.detach().cpu(), t.grad.cpu(), t_abs.grad.cpu(),
            None if wd is None else wd.grad.cpu())


def assert_grad_close(got: torch.Tensor, want: torch.Tensor, scale: torch.Tensor) -> None:
    err = (got - want).abs()
    bound = GRAD_REL * scale + 1e-6
    worst = int(torch.argmax(err - bound))
    assert bool((err <= bound).all()), (
        f"table gradient differs at entry {worst}: {float(got[worst])} vs {float(want[worst])} "
        f"(bound {float(bound[worst]):.3g})")


@pytest.mark.parametrize("dims, feat, interpolation", CASES)
def test_torch_cuda_matches_cpu_single_table(cuda, dims, feat, interpolation):
    cfg = config(dims, feat, interpolation)
    x = points(dims)
    gen = torch.Generator().manual_seed(1)
    ref_enc = encoders(dims, cfg, CPU_BACKEND)
    table = torch.empty(ref_enc.n_params).uniform_(-1, 1, generator=gen)
    grad_out = torch.randn(B, ref_enc.n_output_dims, generator=gen)
    want, want_g, scale, _ = run(ref_enc, "cpu", x, table, grad_out)
    got, got_g, _, _ = run(encoders(dims, cfg, "torch"), cuda, x, table, grad_out)
    torch.testing.assert_close(got, want, rtol=0, atol=FWD_ATOL)
    assert_grad_close(got_g, want_g, scale)


@pytest.mark.parametrize("dims, feat, interpolation", CASES)
def test_torch_cuda_matches_cpu_ensemble(cuda, dims, feat, interpolation):
    cfg = config(dims, feat, interpolation)
    x = points(dims, seed=2)
    gen = torch.Generator().manual_seed(3)
    ref_enc = encoders(dims, cfg, CPU_BACKEND)
    n_tables, k = 5, 2
    tables = torch.empty(n_tables, ref_enc.n_params).uniform_(-1, 1, generator=gen)
    idx = torch.randint(0, n_tables, (B, k), generator=gen)
    w = torch.rand(B, k, generator=gen)
    w = w / w.sum(dim=1, keepdim=True)
    grad_out = torch.randn(B, ref_enc.n_output_dims, generator=gen)
    want, want_g, scale, want_w = run(ref_enc, "cpu", x, tables, grad_out, idx, w)
    got, got_g, _, got_w = run(encoders(dims, cfg, "torch"), cuda, x, tables, grad_out, idx, w)
    torch.testing.assert_close(got, want, rtol=0, atol=FWD_ATOL)
    assert_grad_close(got_g.flatten(), want_g.flatten(), scale.flatten())
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dims, feat, interpolation", CASES)
def test_tcnn_matches_torch_cuda(cuda, dims, feat, interpolation):
    if tcnn_module() is None:  # the only place tinycudann is imported
        pytest.skip("tinycudann does not import")
    cfg = config(dims, feat, interpolation)
    x = points(dims, seed=4)
    gen = torch.Generator().manual_seed(5)
    torch_enc = encoders(dims, cfg, "torch")
    tcnn_enc = encoders(dims, cfg, "tcnn")
    assert tcnn_enc.resolve_backend(cuda, False, torch.float32) == "tcnn"
    table = torch.empty(torch_enc.n_params).uniform_(-1, 1, generator=gen)
    grad_out = torch.randn(B, torch_enc.n_output_dims, generator=gen)
    want, want_g, scale, _ = run(torch_enc, cuda, x, table, grad_out)
    got, got_g, _, _ = run(tcnn_enc, cuda, x, table, grad_out)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=FWD_ATOL)
    assert_grad_close(got_g, want_g, scale)
