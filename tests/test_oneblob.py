"""OneBlob against a reference that integrates the wrapped quartic kernel numerically (float64).

The reference never uses the closed-form CDF: it integrates K(u) = 15/16 (1 - u^2)^2 (radius
1/n_bins, centred at x - 1, x, x + 1) over each bin with scipy's quad.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from hyperinr.encoding import OneBlob, make_encoding


def ref_oneblob(x: np.ndarray, n_bins: int) -> np.ndarray:
    """[B, D * n_bins] float64: kernel mass of each bin (column = dim * n_bins + bin)."""
    radius = 1.0 / n_bins

    def density(t: float, centre: float) -> float:
        u = (t - centre) / radius
        return 15.0 / 16.0 * (1.0 - u * u) ** 2 / radius if abs(u) <= 1.0 else 0.0

    out = np.zeros((x.shape[0], x.shape[1] * n_bins))
    for b in range(x.shape[0]):
        for d in range(x.shape[1]):
            for k in range(n_bins):
                lo, hi = k / n_bins, (k + 1) / n_bins
                total = 0.0
                for shift in (-1.0, 0.0, 1.0):
                    centre = float(x[b, d]) + shift
                    a, c = max(lo, centre - radius), min(hi, centre + radius)
                    if a < c:
                        total += quad(density, a, c, args=(centre,), points=[centre])[0]
                out[b, d * n_bins + k] = total
    return out


def sample_inputs(dims: int, n: int, n_bins: int, seed: int = 0) -> torch.Tensor:
    """Random points plus 0, 1 and exact bin edges."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, dims, generator=g)
    x[0], x[1] = 0.0, 1.0
    x[2] = 1.0 / n_bins
    x[3] = 0.5 + 0.5 / n_bins
    return x


@pytest.mark.parametrize("n_bins", [1, 2, 4, 16, 32])
@pytest.mark.parametrize("dims", [1, 3])
def test_matches_integrated_kernel(n_bins, dims):
    enc = OneBlob(dims, {"otype": "OneBlob", "n_bins": n_bins})
    assert enc.n_output_dims == dims * n_bins
    x = sample_inputs(dims, 12, n_bins)
    out = enc(x)
    assert out.shape == (12, dims * n_bins) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref_oneblob(x.numpy(), n_bins), rtol=0, atol=2e-6)
    out64 = enc(x.double())
    np.testing.assert_allclose(out64.numpy(), ref_oneblob(x.numpy(), n_bins), rtol=0,
                               atol=1e-9)


def test_default_config_and_make_encoding():
    enc = make_encoding(2, {"otype": "OneBlob"})
    assert isinstance(enc, OneBlob)
    assert enc.config == {"otype": "OneBlob", "n_bins": 16}
    assert json.loads(json.dumps(enc.config)) == enc.config
    assert enc.n_output_dims == 32 and enc.n_params == 0
    assert len(list(enc.parameters())) == 0


def test_blob_at_bin_centre_by_hand():
    # n_bins = 4, radius 1/4.  x = 0.375 is the centre of bin 1 ([0.25, 0.5]); the blob spans
    # [0.125, 0.625], and bin 1 holds the mass of |u| <= 1/2, where u = (t - x) / radius:
    # 2 * 15/16 * (1/2 - (2/3)(1/2)**3 + (1/5)(1/2)**5) = 2 * 15/16 * 203/480 = 203/256.
    # Bins 0 and 2 share the rest: (1 - 203/256) / 2 = 53/512 each; bin 3 gets nothing.
    out = OneBlob(1, {"n_bins": 4})(torch.tensor([[0.375]]))
    want = torch.tensor([[53 / 512, 203 / 256, 53 / 512, 0.0]])
    torch.testing.assert_close(out, want, rtol=0, atol=2e-7)
    # x = 0.25 sits on the edge between bins 0 and 1: half of the mass on each side.
    out = OneBlob(1, {"n_bins": 4})(torch.tensor([[0.25]]))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.5, 0.0, 0.0]]), rtol=0, atol=1e-7)
    # x = 0 wraps: half of the blob lands in the last bin.
    out = OneBlob(1, {"n_bins": 4})(torch.tensor([[0.0]]))
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0, 0.0, 0.5]]), rtol=0, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(x=st.floats(0.0, 1.0), log2_bins=st.integers(0, 6))
def test_property_partition_of_unity_and_periodic(x, log2_bins):
    n_bins = 2**log2_bins
    enc = OneBlob(1, {"n_bins": n_bins})
    out = enc(torch.tensor([[x]], dtype=torch.float64))
    assert float(out.min()) >= -1e-12
    assert abs(float(out.sum()) - 1.0) < 1e-12
    if x <= 1.0 - 1.0 / n_bins:  # the three-term wrap is exact up to x + 1 <= 2 - radius
        shifted = enc(torch.tensor([[x + 1.0]], dtype=torch.float64))
        torch.testing.assert_close(shifted, out, rtol=0, atol=1e-12)


def test_input_gradient_gradcheck():
    enc = OneBlob(2, {"n_bins": 8})
    x = torch.rand(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(enc, (x,))


@pytest.mark.parametrize("cfg", [{"n_bins": 3}, {"n_bins": 0}, {"n_bins": 4.0},
                                 {"otype": "HashGrid"}, {"bins": 4}, "OneBlob"])
def test_bad_config_raises(cfg):
    with pytest.raises(ValueError, match="OneBlob"):
        OneBlob(1, cfg)


@pytest.mark.parametrize("x", [torch.rand(3), torch.rand(3, 2), torch.rand(3, 1).half(),
                               [[0.5]]])
def test_bad_input_raises(x):
    with pytest.raises(ValueError, match="OneBlob"):
        OneBlob(1)(x)


def test_bad_dims_and_make_encoding_options():
    with pytest.raises(ValueError, match="OneBlob"):
        OneBlob(0)
    with pytest.raises(ValueError, match="make_encoding"):
        make_encoding(1, {"otype": "OneBlob"}, seed=3)
