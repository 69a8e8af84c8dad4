"""tcnn-style HashGrid configuration: parse the JSON dict and derive the per-level layout.

Everything here runs once per encoder on the host, so it favours being an exact, readable
transcription of tiny-cuda-nn's float32 / uint32 arithmetic over speed.  The kernels (torch and
numba) only consume the arrays in :class:`GridGeometry`; they never re-derive level sizes, so all
backends agree on the parameter layout by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: tcnn's "CoherentPrime" factors (the default hash); "Prime" and "ReversedPrime" are tcnn's
#: other XOR-of-products hashes, offered because they cost nothing extra.
HASH_FACTORS: dict[str, tuple[int, ...]] = {
    "CoherentPrime": (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737),
    "Prime": (1958374283, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737),
    "ReversedPrime": (2165219737, 1434869437, 2097192037, 3674653429, 805459861, 2654435761,
                      1958374283),
}
#: The XOR hashes have 7 factors, so tcnn cannot hash more than 7 input dimensions with them.
MAX_INPUT_DIMS = 7
INTERPOLATIONS = ("Linear", "Smoothstep")
FEATURES_PER_LEVEL = (1, 2, 4, 8)
#: tcnn caps a level's dense size at UINT32_MAX / 2 before rounding up to a multiple of 8.
_MAX_LEVEL_PARAMS = (2**32 - 1) // 2
#: Keeps every uint32 intermediate of the index math (pos * prime) inside int64.
_MAX_RESOLUTION = 2**31 - 2

_DEFAULTS: dict[str, Any] = {
    "n_levels": 16,
    "n_features_per_level": 2,
    "log2_hashmap_size": 19,
    "base_resolution": 16,
    "per_level_scale": 2.0,
    "interpolation": "Linear",
    "hash": "CoherentPrime",
}
_KNOWN_KEYS = set(_DEFAULTS) | {"otype", "type", "n_features", "stochastic_interpolation"}


def _f32(v: float) -> float:
    """Round a Python float to the nearest float32 and return it as a Python float."""
    return float(np.float32(v))


def _pick(options: tuple[str, ...], value: Any, key: str) -> str:
    """Case-insensitive choice, as tcnn's ``equals_case_insensitive`` does, returning the
    canonical spelling so the filled config is stable."""
    if isinstance(value, str):
        for opt in options:
            if opt.lower() == value.lower():
                return opt
    raise ValueError(f"HashGrid: {key}={value!r} is not supported (choose one of {options})")


def _as_int(cfg: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"HashGrid: {key} must be an integer, got {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"HashGrid: {key}={value} is outside [{lo}, {hi}]")
    return int(value)


def fill_hashgrid_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate a tcnn HashGrid / Grid(type=Hash) dict and return a copy with defaults filled.

    Unknown keys are rejected (tcnn ignores them) because a silently ignored typo such as
    ``"log2_hashmapsize"`` would quietly train a different model.
    """
    if not isinstance(config, dict):
        raise ValueError(f"HashGrid: config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"HashGrid: unknown config keys {unknown}")
    otype = _pick(("HashGrid", "Grid"), config.get("otype", "HashGrid"), "otype")
    grid_type = config.get("type", "Hash")
    if not isinstance(grid_type, str) or grid_type.lower() != "hash":
        raise ValueError(f"HashGrid: only type='Hash' grids are implemented, got {grid_type!r}")
    if config.get("stochastic_interpolation", False):
        raise ValueError("HashGrid: stochastic_interpolation is not implemented")

    cfg = dict(_DEFAULTS)
    cfg.update({k: v for k, v in config.items() if k in _DEFAULTS})
    n_feat = _as_int(cfg, "n_features_per_level", 1, 8)
    if n_feat not in FEATURES_PER_LEVEL:
        raise ValueError(f"HashGrid: n_features_per_level must be 1, 2, 4 or 8, got {n_feat}")
    if "n_features" in config:
        if "n_levels" in config:
            raise ValueError("HashGrid: give n_features or n_levels, not both")
        total = _as_int({"n_features": config["n_features"]}, "n_features", 1, 128 * 8)
        if total % n_feat:
            raise ValueError("HashGrid: n_features must be a multiple of n_features_per_level")
        cfg["n_levels"] = total // n_feat

    out: dict[str, Any] = {"otype": otype}
    if otype == "Grid":
        out["type"] = "Hash"
    out["n_levels"] = _as_int(cfg, "n_levels", 1, 128)
    out["n_features_per_level"] = n_feat
    out["log2_hashmap_size"] = _as_int(cfg, "log2_hashmap_size", 1, 31)
    out["base_resolution"] = _as_int(cfg, "base_resolution", 1, _MAX_RESOLUTION)
    pls = cfg["per_level_scale"]
    if isinstance(pls, bool) or not isinstance(pls, (int, float, np.floating, np.integer)):
        raise ValueError(f"HashGrid: per_level_scale must be a number, got {pls!r}")
    if not (math.isfinite(float(pls)) and float(pls) > 0.0):
        raise ValueError(f"HashGrid: per_level_scale must be finite and > 0, got {pls!r}")
    out["per_level_scale"] = float(pls)
    out["interpolation"] = _pick(INTERPOLATIONS, cfg["interpolation"], "interpolation")
    out["hash"] = _pick(tuple(HASH_FACTORS), cfg["hash"], "hash")
    return out


@dataclass(frozen=True)
class GridGeometry:
    """Per-level layout of one hash-grid table (all arrays have length ``n_levels``).

    ``scales`` are float32 values as tcnn computes them; ``table_sizes`` and ``offsets`` count
    entries (each entry holds ``n_features_per_level`` floats); ``dense[l]`` tells whether level
    ``l`` is indexed linearly (``res**D <= table_size``) or through the XOR hash.
    """

    n_input_dims: int
    n_levels: int
    n_features_per_level: int
    smoothstep: bool
    scales: np.ndarray  # [L] float32
    resolutions: np.ndarray  # [L] int64
    table_sizes: np.ndarray  # [L] int64
    offsets: np.ndarray  # [L] int64, in entries
    dense: np.ndarray  # [L] bool
    strides: np.ndarray  # [L, D] int64: res**d, the dense-index stride of dim d
    primes: np.ndarray  # [D] int64 hash factors
    n_entries: int  # sum(table_sizes)

    @property
    def n_params(self) -> int:
        return self.n_entries * self.n_features_per_level


def level_scale(level: int, per_level_scale: float, base_resolution: int) -> float:
    """tcnn's ``grid_scale``: exp2f(level * log2f(s)) * base - 1, in float32.

    ``level * log2(s)`` is a float32 product; exp2 is rounded once to float32 (CUDA's exp2f may be
    up to 2 ulp off for non-integer arguments, so bit-parity with a GPU is only guaranteed when
    ``log2(per_level_scale)`` makes ``level * log2(s)`` an integer, e.g. s = 2).  The final
    ``e * base - 1`` is evaluated with one rounding, as nvcc's fused multiply-add does; the
    double-precision product is exact because both factors have at most 24 significant bits.
    """
    log2_s = _f32(math.log2(_f32(per_level_scale)))
    t = float(np.float32(level) * np.float32(log2_s))
    e = _f32(2.0**t)
    return _f32(e * float(np.float32(base_resolution)) - 1.0)


def build_geometry(n_input_dims: int, config: dict[str, Any]) -> GridGeometry:
    """Derive the table layout for ``n_input_dims`` inputs from a *filled* config."""
    dims = n_input_dims
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)):
        raise ValueError(f"HashGrid: n_input_dims must be an int, got {dims!r}")
    if not 1 <= dims <= MAX_INPUT_DIMS:
        raise ValueError(f"HashGrid: n_input_dims={dims} is outside [1, {MAX_INPUT_DIMS}]")
    n_levels = config["n_levels"]
    hashmap = 2 ** config["log2_hashmap_size"]
    scales, res, sizes, offsets, dense = [], [], [], [], []
    offset = 0
    for level in range(n_levels):
        scale = level_scale(level, config["per_level_scale"], config["base_resolution"])
        if not 0.0 <= scale <= _MAX_RESOLUTION - 1:
            raise ValueError(
                f"HashGrid: level {level} has scale {scale}; per_level_scale and "
                f"base_resolution must keep every level's scale in [0, {_MAX_RESOLUTION - 1}]"
            )
        r = int(math.ceil(scale)) + 1
        # tcnn compares pow((float)res, D), a double, against (float)max_params == 2**31.
        full = r**dims
        dense_size = _MAX_LEVEL_PARAMS if _f32(r) ** dims > float(2**31) else full
        size = min(-(-dense_size // 8) * 8, hashmap)
        scales.append(scale)
        res.append(r)
        sizes.append(size)
        offsets.append(offset)
        dense.append(full <= size)
        offset += size
    # The kernels reduce indices without a division, relying on two facts checked here:
    # a hashed level's size is 2**log2_hashmap_size, and a dense level's largest linear index,
    # res * (res**D - 1) / (res - 1) (corner coordinates reach res), is below 2 * size.
    for r, size, is_dense in zip(res, sizes, dense, strict=True):
        assert (size == hashmap) if not is_dense else sum(r * r**d for d in range(dims)) < 2 * size
    res_arr = np.asarray(res, dtype=np.int64)
    strides = np.ones((n_levels, dims), dtype=np.int64)
    for d in range(1, dims):
        # Only dense levels use strides, and there res**D <= 2**31 so no overflow.
        strides[:, d] = np.where(np.asarray(dense), strides[:, d - 1] * res_arr, 0)
    primes = np.asarray(HASH_FACTORS[config["hash"]][:dims], dtype=np.int64)
    return GridGeometry(
        n_input_dims=dims,
        n_levels=n_levels,
        n_features_per_level=config["n_features_per_level"],
        smoothstep=config["interpolation"] == "Smoothstep",
        scales=np.asarray(scales, dtype=np.float32),
        resolutions=res_arr,
        table_sizes=np.asarray(sizes, dtype=np.int64),
        offsets=np.asarray(offsets, dtype=np.int64),
        dense=np.asarray(dense, dtype=bool),
        strides=strides,
        primes=primes,
        n_entries=offset,
    )
