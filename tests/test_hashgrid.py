"""HashGrid against an independent slow reference written from tcnn's formulas.

The reference (``ref_*`` below) uses Python loops and float64 and shares no index math with the
package: level sizes, dense/hashed choice, corner enumeration, hashing and interpolation are
re-derived here from tiny-cuda-nn's grid.h / common_device.h semantics.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hyperinr.encoding import HashGrid, blend_tables, make_encoding
from hyperinr.encoding._torch_path import fma_positions
from hyperinr.encoding.hashgrid import numba_kernels

HAS_NUMBA = numba_kernels() is not None
BACKENDS = ["torch"] + (["numba"] if HAS_NUMBA else [])
PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


# ----------------------------------------------------------------------------- reference


def ref_levels(dims: int, cfg: dict) -> list[dict]:
    """Per level: float32 scale, resolution, table size T, entry offset, dense flag."""
    n_levels = cfg.get("n_levels", 16)
    base = cfg.get("base_resolution", 16)
    pls = np.float32(cfg.get("per_level_scale", 2.0))
    hashmap = 2 ** cfg.get("log2_hashmap_size", 19)
    log2s = np.float32(math.log2(float(pls)))
    levels, offset = [], 0
    for lv in range(n_levels):
        e = np.float32(2.0 ** float(np.float32(lv) * log2s))  # exp2f of a float32 product
        scale = np.float32(float(e) * base - 1.0)  # fused e * base - 1
        res = math.ceil(float(scale)) + 1
        size = min(((res**dims + 7) // 8) * 8, hashmap)
        levels.append(dict(scale=scale, res=res, size=size, offset=offset,
                           dense=res**dims <= size))
        offset += size
    return levels


def ref_corners(x: np.ndarray, lvl: dict, smooth: bool) -> list[tuple[float, int]]:
    """(weight, level-local entry) of the 2**D corners around x (float32 coordinates)."""
    dims = len(x)
    cell, frac = [], []
    for d in range(dims):
        pos = np.float32(float(lvl["scale"]) * float(x[d]) + 0.5)  # fmaf up to double rounding
        c = math.floor(float(pos))
        f = float(pos) - c
        if smooth:
            f = f * f * (3.0 - 2.0 * f)
        cell.append(c)
        frac.append(f)
    out = []
    for corner in range(2**dims):
        w, coords = 1.0, []
        for d in range(dims):
            hi = (corner >> d) & 1
            w *= frac[d] if hi else 1.0 - frac[d]
            coords.append(cell[d] + hi)
        if lvl["dense"]:
            idx = sum(c * lvl["res"] ** d for d, c in enumerate(coords))
        else:
            idx = 0
            for d, c in enumerate(coords):
                idx ^= (c * PRIMES[d]) % 2**32
        out.append((w, idx % lvl["size"]))
    return out


def ref_encode(x: np.ndarray, table: np.ndarray, dims: int, cfg: dict) -> np.ndarray:
    """[B, L*F] float64 encoding of x [B, D] with the flat table [n_params]."""
    feat = cfg.get("n_features_per_level", 2)
    smooth = cfg.get("interpolation", "Linear") == "Smoothstep"
    levels = ref_levels(dims, cfg)
    out = np.zeros((len(x), len(levels) * feat))
    for b in range(len(x)):
        for lv, lvl in enumerate(levels):
            for w, idx in ref_corners(x[b], lvl, smooth):
                e = (lvl["offset"] + idx) * feat
                out[b, lv * feat:(lv + 1) * feat] += w * table[e:e + feat].astype(np.float64)
    return out


def ref_grad(x: np.ndarray, grad_out: np.ndarray, n_params: int, dims: int, cfg: dict):
    """d sum(grad_out * encode(x, table)) / d table, float64 [n_params]."""
    feat = cfg.get("n_features_per_level", 2)
    smooth = cfg.get("interpolation", "Linear") == "Smoothstep"
    grad = np.zeros(n_params)
    for b in range(len(x)):
        for lv, lvl in enumerate(ref_levels(dims, cfg)):
            for w, idx in ref_corners(x[b], lvl, smooth):
                e = (lvl["offset"] + idx) * feat
                grad[e:e + feat] += w * grad_out[b, lv * feat:(lv + 1) * feat]
    return grad


# ----------------------------------------------------------------------------- helpers

#: log2_hashmap_size per D chosen so that base 3 / scale 1.3819 / 6 levels mixes dense and
#: hashed levels.
MIXED_LOG2 = {1: 3, 2: 5, 3: 7, 4: 8}


def mixed_config(dims: int, feat: int, interpolation: str = "Linear") -> dict:
    return {"otype": "HashGrid", "n_levels": 6, "n_features_per_level": feat,
            "log2_hashmap_size": MIXED_LOG2[dims], "base_resolution": 3,
            "per_level_scale": 1.3819, "interpolation": interpolation}


def inputs(dims: int, n: int, seed: int = 0) -> torch.Tensor:
    """Random points plus the exact corners 0 and 1 of the unit cube."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, dims, generator=g)
    x[0] = 0.0
    x[1] = 1.0
    x[2, ::2] = 1.0
    x[3] = torch.tensor([0.0, 1.0] * dims)[:dims]
    return x


def random_table(n: int, seed: int = 1) -> torch.Tensor:
    return torch.empty(n).uniform_(-1, 1, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize("dims", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("cfg", [
    {},
    {"n_levels": 8, "n_features_per_level": 4, "log2_hashmap_size": 15, "base_resolution": 4},
    {"n_levels": 6, "log2_hashmap_size": 7, "base_resolution": 3, "per_level_scale": 1.3819},
    {"n_levels": 5, "log2_hashmap_size": 10, "base_resolution": 1, "per_level_scale": 1.5},
])
def test_level_layout_matches_reference(dims, cfg):
    enc = HashGrid(dims, cfg)
    ref = ref_levels(dims, cfg)
    geom = enc.geometry
    assert geom.resolutions.tolist() == [lv["res"] for lv in ref]
    assert geom.table_sizes.tolist() == [lv["size"] for lv in ref]
    assert geom.offsets.tolist() == [lv["offset"] for lv in ref]
    assert geom.dense.tolist() == [lv["dense"] for lv in ref]
    assert np.array_equal(geom.scales, np.array([lv["scale"] for lv in ref], np.float32))
    feat = enc.config["n_features_per_level"]
    assert enc.n_params == sum(lv["size"] for lv in ref) * feat == enc.params.numel()
    assert enc.n_output_dims == enc.config["n_levels"] * feat


def test_tcnn_default_layout_by_hand():
    # tcnn defaults in 3D: L=16, F=2, T=2**19, base 16, scale 2.  Level l has scale 16*2**l - 1
    # and resolution 16*2**l: 16**3 = 4096, 32**3 = 32768, 64**3 = 262144 entries (dense);
    # 128**3 > 2**19, so levels 3..15 hold 2**19 = 524288 entries each (hashed).
    enc = HashGrid(3, {"otype": "HashGrid"})
    assert enc.geometry.resolutions.tolist() == [16 * 2**lv for lv in range(16)]
    entries = 4096 + 32768 + 262144 + 13 * 524288
    assert enc.n_params == 2 * entries == 14229504
    assert enc.n_output_dims == 32


def test_config_filled_json_and_grid_alias():
    enc = HashGrid(3, {"otype": "HashGrid", "n_levels": 4})
    assert json.loads(json.dumps(enc.config)) == enc.config
    assert enc.config == {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
                          "log2_hashmap_size": 19, "base_resolution": 16,
                          "per_level_scale": 2.0, "interpolation": "Linear",
                          "hash": "CoherentPrime"}
    alias = HashGrid(3, {"otype": "Grid", "type": "Hash", "n_levels": 4})
    assert alias.n_params == enc.n_params and alias.config["type"] == "Hash"
    x, table = inputs(3, 16), random_table(enc.n_params)
    torch.testing.assert_close(alias(x, table), enc(x, table), rtol=0, atol=0)
    assert isinstance(make_encoding(3, {"otype": "grid", "n_levels": 2}), HashGrid)
    n_feat = HashGrid(2, {"n_features": 12, "n_features_per_level": 4})
    assert n_feat.config["n_levels"] == 3


def test_init_and_seed():
    a = HashGrid(2, {"n_levels": 3, "log2_hashmap_size": 8}, seed=7)
    b = HashGrid(2, {"n_levels": 3, "log2_hashmap_size": 8}, seed=7)
    c = HashGrid(2, {"n_levels": 3, "log2_hashmap_size": 8}, seed=8)
    assert a.params.dtype == torch.float32 and a.params.dim() == 1
    assert torch.equal(a.params, b.params) and not torch.equal(a.params, c.params)
    assert float(a.params.detach().abs().max()) <= 1e-4


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", [1, 2, 3, 4])
@pytest.mark.parametrize("feat", [1, 2, 4, 8])
def test_forward_matches_reference(backend, dims, feat):
    cfg = mixed_config(dims, feat)
    enc = HashGrid(dims, cfg, backend=backend)
    dense = enc.geometry.dense
    assert dense.any() and not dense.all(), "config must mix dense and hashed levels"
    x, table = inputs(dims, 40), random_table(enc.n_params)
    out = enc(x, table)
    assert out.shape == (40, 6 * feat) and out.dtype == torch.float32
    ref = ref_encode(x.numpy(), table.numpy(), dims, cfg)
    np.testing.assert_allclose(out.numpy(), ref, rtol=0, atol=4e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", [2, 3])
def test_smoothstep_matches_reference(backend, dims):
    cfg = mixed_config(dims, 2, "Smoothstep")
    enc = HashGrid(dims, cfg, backend=backend)
    x, table = inputs(dims, 40, seed=3), random_table(enc.n_params)
    out = enc(x, table).numpy()
    np.testing.assert_allclose(out, ref_encode(x.numpy(), table.numpy(), dims, cfg),
                               rtol=0, atol=4e-6)
    linear = HashGrid(dims, mixed_config(dims, 2), backend=backend)(x, table).numpy()
    assert np.abs(out - linear).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_computed_table_index(backend):
    # D=2, F=1, base 4, per_level_scale 2, T = 2**4 = 16 entries per level at most.
    # Level 0: scale = 2**0 * 4 - 1 = 3, res = 4, 4**2 = 16 <= 16 -> dense, 16 entries.
    #   x = (0.5, 0.25): pos = 3*0.5 + 0.5 = 2.0 (cell 2, frac 0), 3*0.25 + 0.5 = 1.25
    #   (cell 1, frac 0.25).  Corner (2,1): index 2 + 1*4 = 6, weight 1 * 0.75;
    #   corner (2,2): 2 + 2*4 = 10, weight 1 * 0.25; corners with x-cell 3 weigh 0.
    # Level 1: scale = 2 * 4 - 1 = 7, res = 8, 8**2 = 64 > 16 -> hashed, 16 entries from 16.
    #   pos = 7*0.5 + 0.5 = 4.0 (cell 4, frac 0), 7*0.25 + 0.5 = 2.25 (cell 2, frac 0.25).
    #   Corner (4,2): 4*1 XOR (2*2654435761 mod 2**32 = 1013904226) = 1013904230,
    #   mod 16 = 6 -> entry 16 + 6 = 22, weight 0.75.
    #   Corner (4,3): 4 XOR (3*2654435761 mod 2**32 = 3668339987) = 3668339991,
    #   mod 16 = 7 -> entry 16 + 7 = 23, weight 0.25.
    cfg = {"n_levels": 2, "n_features_per_level": 1, "log2_hashmap_size": 4,
           "base_resolution": 4, "per_level_scale": 2.0}
    enc = HashGrid(2, cfg, backend=backend)
    assert enc.n_params == 32 and enc.geometry.dense.tolist() == [True, False]
    x = torch.tensor([[0.5, 0.25]])
    expected = {6: (0, 0.75), 10: (0, 0.25), 22: (1, 0.75), 23: (1, 0.25)}
    for entry in range(32):
        table = torch.zeros(32)
        table[entry] = 1.0
        out = enc(x, table)[0]
        want = torch.zeros(2)
        if entry in expected:
            want[expected[entry][0]] = expected[entry][1]
        torch.testing.assert_close(out, want, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_outside_unit_cube_are_clamped(backend):
    enc = HashGrid(3, mixed_config(3, 2), backend=backend)
    table = random_table(enc.n_params)
    x = torch.tensor([[-0.5, 0.3, 1.5], [2.0, -1e-3, 0.5], [-3.0, 4.0, 1.0 + 1e-6]])
    torch.testing.assert_close(enc(x, table), enc(x.clamp(0, 1), table), rtol=0, atol=0)


def test_backends_agree_to_float32_rounding():
    if not HAS_NUMBA:
        pytest.skip("numba not installed")
    cfg = {"n_levels": 8, "n_features_per_level": 4, "log2_hashmap_size": 12,
           "base_resolution": 4, "per_level_scale": 1.7}
    a = HashGrid(3, cfg, backend="numba")
    b = HashGrid(3, cfg, backend="torch")
    x, table = inputs(3, 4096), random_table(a.n_params)
    torch.testing.assert_close(a(x, table), b(x, table), rtol=0, atol=1e-6)


@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_threads_follow_torch_and_results_are_deterministic():
    import numba

    enc = HashGrid(3, mixed_config(3, 4), backend="numba")
    x, grad_out = inputs(3, 3000), torch.randn(3000, enc.n_output_dims)
    tables = torch.randn(3, enc.n_params).requires_grad_(True)
    idx = torch.randint(0, 3, (3000, 2))
    w = torch.rand(3000, 2)
    results = []
    old = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            tables.grad = None
            out = enc(x, tables, idx, w)
            assert numba.get_num_threads() == min(threads, numba.config.NUMBA_NUM_THREADS)
            out.backward(grad_out)
            results.append((out.detach(), tables.grad.clone()))
    finally:
        torch.set_num_threads(old)
    # Levels own disjoint table slices, so the scatter order does not depend on threads.
    assert torch.equal(results[0][0], results[1][0])
    assert torch.equal(results[0][1], results[1][1])


def test_auto_backend_selection():
    enc = HashGrid(2, {"n_levels": 2})
    cpu = torch.device("cpu")
    assert enc.resolve_backend(cpu, False, torch.float32) == ("numba" if HAS_NUMBA else "torch")
    assert enc.resolve_backend(cpu, True, torch.float64) == "torch"
    forced = HashGrid(2, {"n_levels": 2}, backend="torch")
    assert forced.resolve_backend(cpu, False, torch.float32) == "torch"
    with pytest.raises(ValueError):
        HashGrid(2, {"n_levels": 2}, backend="tcnn").resolve_backend(cpu, False, torch.float32)


@pytest.mark.parametrize("backend", BACKENDS)
def test_autocast_does_not_lower_precision(backend):
    enc = HashGrid(2, mixed_config(2, 4), backend=backend)
    x, table = inputs(2, 64), random_table(enc.n_params)
    tables, idx, w = table.expand(2, -1).contiguous(), torch.zeros(64, 1, dtype=torch.long), \
        torch.ones(64, 1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, ens = enc(x, table), enc(x, tables, idx, w)
    assert out.dtype == ens.dtype == torch.float32
    torch.testing.assert_close(out, enc(x, table), rtol=0, atol=0)
    torch.testing.assert_close(ens, enc(x, table), rtol=0, atol=1e-6)


def test_empty_batch():
    enc = HashGrid(3, {"n_levels": 3})
    assert enc(torch.zeros(0, 3)).shape == (0, 6)


# ----------------------------------------------------------------------------- positions


def exact_fmaf(a: np.float32, b: np.float32, c: float) -> np.float32:
    """Correctly rounded float32 a*b + c (ties to even), via exact rationals."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(c)
    guess = np.float32(float(exact))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess,
             np.nextafter(guess, np.float32(np.inf))]
    return min(cands, key=lambda v: (abs(Fraction(float(v)) - exact),
                                     int(np.array(v).view(np.int32)) & 1))


def test_positions_are_single_rounding_fma():
    # Adversarial case for a naive float64 emulation: scale = 3 (1 + 2**-22),
    # x = 2**-25 (1 - 2**-22), so scale*x + 0.5 = 0.5 + 3*2**-25 - 3*2**-69, just below the
    # float32 midpoint 0.5 + 3*2**-25.  float64 rounds it onto the midpoint and ties-to-even
    # then gives 0.5 + 2**-23; the correct fmaf result is 0.5 + 2**-24.
    scale = np.float32(3 * (1 + 2**-22))
    x0 = np.float32(2**-25 * (1 - 2**-22))
    assert np.float32(float(scale) * float(x0) + 0.5) == np.float32(0.5 + 2**-23)
    assert exact_fmaf(scale, x0, 0.5) == np.float32(0.5 + 2**-24)
    rng = np.random.default_rng(0)
    xs = np.concatenate([[x0, 0.0, 1.0], rng.random(300, dtype=np.float32),
                         rng.random(100, dtype=np.float32) * 2**-20]).astype(np.float32)
    scales = np.array([scale, 3.0, 15.0, 1.3819 * 40, 1e4 / 3], dtype=np.float32)
    want = np.array([[exact_fmaf(s, v, 0.5) for s in scales] for v in xs], np.float32)
    got = fma_positions(torch.from_numpy(xs)[:, None], torch.from_numpy(scales))[:, :, 0]
    assert np.array_equal(got.numpy(), want)
    if HAS_NUMBA:
        out = np.empty((len(xs), len(scales), 1), np.float32)
        numba_kernels().fma_positions_kernel(xs[:, None], scales, out)
        assert np.array_equal(out[:, :, 0], want)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", [1, 3, 4])
def test_param_gradient_matches_reference(backend, dims):
    cfg = mixed_config(dims, 2, "Smoothstep" if dims == 3 else "Linear")
    enc = HashGrid(dims, cfg, backend=backend)
    x = inputs(dims, 30, seed=5)
    table = random_table(enc.n_params).requires_grad_(True)
    grad_out = torch.randn(30, enc.n_output_dims, generator=torch.Generator().manual_seed(2))
    enc(x, table).backward(grad_out)
    ref = ref_grad(x.numpy(), grad_out.numpy(), enc.n_params, dims, cfg)
    np.testing.assert_allclose(table.grad.numpy(), ref, rtol=0, atol=1e-5)


def test_module_params_receive_gradient():
    enc = HashGrid(2, {"n_levels": 3, "log2_hashmap_size": 6})
    enc(inputs(2, 10)).sum().backward()
    assert enc.params.grad is not None and enc.params.grad.abs().sum() > 0


def test_no_gradient_for_x():
    enc = HashGrid(2, {"n_levels": 2})
    x = inputs(2, 5).requires_grad_(True)
    enc(x).sum().backward()
    assert x.grad is None


SMALL = {"n_levels": 3, "n_features_per_level": 2, "log2_hashmap_size": 4,
         "base_resolution": 2, "per_level_scale": 2.0}


def test_gradcheck_float64_single():
    enc = HashGrid(2, SMALL, backend="torch")
    assert enc.geometry.dense.tolist() == [True, True, False]
    x = inputs(2, 6, seed=9)
    table = random_table(enc.n_params).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: enc(x, p), (table,))


def test_gradcheck_float64_ensemble():
    enc = HashGrid(2, SMALL, backend="torch")
    x = inputs(2, 5, seed=4)
    tables = torch.randn(2, enc.n_params, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0], [1, 0]])
    w = torch.rand(5, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, ww: enc(x, t, idx, ww), (tables, w))


# ----------------------------------------------------------------------------- ensembles


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dims", [1, 3])
def test_ensemble_is_blend_of_single_encodings(backend, dims):
    enc = HashGrid(dims, mixed_config(dims, 4), backend=backend)
    gen = torch.Generator().manual_seed(11)
    n, batch, k = 5, 64, 3
    x = inputs(dims, batch, seed=6)
    tables = torch.randn(n, enc.n_params, generator=gen).requires_grad_(True)
    idx = torch.randint(0, n, (batch, k), generator=gen)
    w = torch.rand(batch, k, generator=gen).requires_grad_(True)
    grad_out = torch.randn(batch, enc.n_output_dims, generator=gen)

    out = enc(x, tables, idx, w)
    out.backward(grad_out)
    g_tables, g_w = tables.grad.clone(), w.grad.clone()
    tables.grad = w.grad = None

    singles = torch.stack([enc(x, tables[i]) for i in range(n)])  # [N, B, L*F]
    rows = torch.arange(batch)
    want = sum(w[:, j, None] * singles[idx[:, j], rows] for j in range(k))
    torch.testing.assert_close(out, want, rtol=0, atol=2e-6)
    want.backward(grad_out)
    torch.testing.assert_close(g_tables, tables.grad, rtol=0, atol=2e-5)
    torch.testing.assert_close(g_w, w.grad, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blend_tables_equals_blended_encodings(backend):
    enc = HashGrid(3, mixed_config(3, 2), backend=backend)
    tables = torch.randn(4, enc.n_params, generator=torch.Generator().manual_seed(3))
    idx = torch.tensor([2, 0, 3])
    w = torch.tensor([0.5, 0.3, 0.2])
    x = inputs(3, 50, seed=8)
    blended = blend_tables(tables, idx, w)
    assert blended.shape == (enc.n_params,)
    want = sum(w[j] * enc(x, tables[idx[j]]) for j in range(3))
    torch.testing.assert_close(enc(x, blended), want, rtol=0, atol=2e-6)
    per_sample = enc(x, tables, idx.expand(50, 3).contiguous(), w.expand(50, 3).contiguous())
    torch.testing.assert_close(per_sample, want, rtol=0, atol=2e-6)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dims=st.integers(1, 4),
    feat=st.sampled_from([1, 2, 4, 8]),
    n_levels=st.integers(1, 4),
    log2=st.integers(3, 9),
    base=st.integers(1, 9),
    pls=st.floats(1.05, 3.0),
    smooth=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_all_backends_match_reference(dims, feat, n_levels, log2, base, pls, smooth,
                                               seed):
    cfg = {"n_levels": n_levels, "n_features_per_level": feat, "log2_hashmap_size": log2,
           "base_resolution": base, "per_level_scale": pls,
           "interpolation": "Smoothstep" if smooth else "Linear"}
    x = inputs(dims, 12, seed=seed)
    ref = None
    for backend in BACKENDS:
        enc = HashGrid(dims, cfg, backend=backend)
        table = random_table(enc.n_params, seed)
        if ref is None:
            ref = ref_encode(x.numpy(), table.numpy(), dims, cfg)
        np.testing.assert_allclose(enc(x, table).numpy(), ref, rtol=0, atol=4e-6)


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 4), n=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_property_convex_blend_of_equal_tables_is_identity(k, n, seed):
    # Blending copies of one table with weights summing to 1 must give that table's encoding.
    enc = HashGrid(2, mixed_config(2, 2))
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(enc.n_params, generator=gen)
    x = torch.rand(20, 2, generator=gen)
    w = torch.rand(20, k, generator=gen) + 0.1
    w = w / w.sum(1, keepdim=True)
    idx = torch.randint(0, n, (20, k), generator=gen)
    out = enc(x, table.expand(n, -1).contiguous(), idx, w)
    torch.testing.assert_close(out, enc(x, table), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- errors


def _enc() -> HashGrid:
    return HashGrid(2, {"n_levels": 2, "log2_hashmap_size": 6})


@pytest.mark.parametrize("call", [
    lambda e: e(torch.rand(4, 2, dtype=torch.float64)),
    lambda e: e(torch.rand(4)),
    lambda e: e(torch.rand(4, 3)),
    lambda e: e([[0.1, 0.2]]),
    lambda e: e(torch.tensor([[0.1, float("nan")]])),
    lambda e: e(torch.rand(4, 2), torch.zeros(e.n_params - 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(e.n_params, dtype=torch.int32)),
    lambda e: e(torch.rand(4, 2), torch.zeros(1, 1, e.n_params)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params)),
    lambda e: e(torch.rand(4, 2), torch.zeros(e.n_params), torch.zeros(4, 1, dtype=torch.long),
                torch.ones(4, 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.zeros(4, 1, dtype=torch.long)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.zeros(4, 1, dtype=torch.int32),
                torch.ones(4, 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.zeros(4, 2, dtype=torch.long),
                torch.ones(4, 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.zeros(3, 1, dtype=torch.long),
                torch.ones(3, 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.full((4, 1), 2),
                torch.ones(4, 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.full((4, 1), -1),
                torch.ones(4, 1)),
    lambda e: e(torch.rand(4, 2), torch.zeros(2, e.n_params), torch.zeros(4, 1, dtype=torch.long),
                torch.ones(4, 1, dtype=torch.float64)),
])
def test_bad_inputs_raise_value_error(call):
    with pytest.raises(ValueError, match="HashGrid"):
        call(_enc())


@pytest.mark.parametrize("dims, cfg", [
    (0, {}), (8, {}), (2.5, {}),
    (2, {"otype": "DenseGrid"}), (2, {"otype": "Grid", "type": "Dense"}),
    (2, {"n_features_per_level": 3}), (2, {"interpolation": "Nearest"}),
    (2, {"log2_hashmap_sizes": 12}), (2, {"n_levels": 0}), (2, {"per_level_scale": -1.0}),
    (2, {"per_level_scale": 0.5, "base_resolution": 1}), (2, {"hash": "Rng"}),
    (2, {"n_features": 6, "n_features_per_level": 4}), (2, {"stochastic_interpolation": True}),
    (2, "HashGrid"),
])
def test_bad_configs_raise_value_error(dims, cfg):
    with pytest.raises(ValueError, match="HashGrid"):
        HashGrid(dims, cfg)


def test_bad_backend_and_blend_arguments():
    with pytest.raises(ValueError, match="backend"):
        HashGrid(2, {"n_levels": 2}, backend="cuda")
    if HAS_NUMBA:
        enc = HashGrid(2, {"n_levels": 2}, backend="numba")
        with pytest.raises(ValueError, match="numba"):
            enc(torch.rand(3, 2), enc.params.double())
    with pytest.raises(ValueError, match="make_encoding"):
        make_encoding(2, {"otype": "Frequency"})
    t = torch.zeros(3, 8)
    for idx, w in [(torch.tensor([3]), torch.ones(1)), (torch.tensor([0]), torch.ones(2)),
                   (torch.tensor([0.0]), torch.ones(1)), (torch.tensor([], dtype=torch.long),
                                                          torch.ones(0))]:
        with pytest.raises(ValueError, match="blend_tables"):
            blend_tables(t, idx, w)


# ----------------------------------------------------------------------------- tcnn parity


def _tcnn_ready() -> bool:
    if not torch.cuda.is_available():
        return False
    from hyperinr.encoding._tcnn import tcnn_module
    return tcnn_module() is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _tcnn_ready(), reason="needs tinycudann and CUDA")
@pytest.mark.parametrize("dims", [2, 3])
def test_tcnn_parity(dims):
    cfg = {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 2,
           "log2_hashmap_size": 12, "base_resolution": 4, "per_level_scale": 2.0}
    ours = HashGrid(dims, cfg, backend="torch", device="cuda")
    theirs = HashGrid(dims, cfg, backend="tcnn", device="cuda")
    x = torch.rand(5000, dims, device="cuda")
    table = random_table(ours.n_params).cuda().requires_grad_(True)
    a = ours(x, table)
    b = theirs(x, table)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    grad_out = torch.randn_like(a)
    (ga,) = torch.autograd.grad(a, table, grad_out)
    (gb,) = torch.autograd.grad(b, table, grad_out)
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-4)
