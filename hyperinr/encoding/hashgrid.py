"""Multiresolution hash encoding with tiny-cuda-nn semantics, usable statelessly and as an ensemble.

HyperINR keeps N small hash grids (one per encoder position in parameter space) and one shared
MLP.  Training evaluates, per sample, a convex blend of K grids; because the encoding is linear
in its table, the blend is computed by reading the K tables at the corners of one cell
computation (never by building a table per sample).  Generation (``generate(theta)``) instead
blends tables once with :func:`blend_tables` and hands back a plain single-table encoder.

Parameter layout, level sizes, positions (``fmaf(scale, x, 0.5)``), hashing and corner weights
follow tcnn's documented semantics (``_config.py`` derives the layout): tests/test_hashgrid.py
checks them against a reference re-derived from tcnn's grid.h / common_device.h, and
tests/gpu/test_hashgrid_cuda.py checks forward and backward parity with tcnn itself (same
flat table in, same encoding and table gradient out) on CUDA when ``tinycudann`` imports; it
is skipped otherwise.  Backends ("auto" picks the first that applies): tcnn for single tables
on CUDA when ``tinycudann`` imports and D is 2-4; numba for float32 CPU tensors when numba
imports (threads follow ``torch.get_num_threads()``); the plain-torch path otherwise (the
reference, and the CUDA path for ensembles).  numba and torch agree to float32 rounding: they
read the same entries with bit-identical corner weights and differ only in summation order.

Deliberate differences from tcnn:

* Inputs are clamped to [0, 1].  tcnn does not clamp: out-of-range inputs wrap around to
  unrelated table entries, which is never what a caller wants; inside [0, 1] the clamp is the
  identity, and that is where parity with tcnn is checked.  Non-finite inputs raise ValueError.
* No gradient w.r.t. ``x`` (HyperINR's coordinates are data); ``x.grad`` stays None.
* Only ``type: Hash`` grids, ``Linear``/``Smoothstep`` interpolation, D <= 7 (tcnn's hash factors).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, NoReturn

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ._config import GridGeometry, build_geometry, fill_hashgrid_config
from ._tcnn import tcnn_forward, tcnn_module
from ._torch_path import (
    TorchGeometry,
    backward_ensemble,
    backward_single,
    forward_ensemble,
    forward_single,
)

BACKENDS = ("auto", "torch", "numba", "tcnn")


@functools.cache
def numba_kernels() -> ModuleType | None:
    """The compiled-on-demand numba kernels, or None when numba is not installed."""
    try:
        from . import _numba_kernels
    except ImportError:
        return None
    return _numba_kernels


def _set_numba_threads() -> None:
    """Follow torch's intra-op thread count so one knob controls both libraries."""
    import numba

    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


class _Grid:
    """Geometry of one HashGrid plus its per-device tensor copies and numba argument tuple."""

    def __init__(self, geom: GridGeometry) -> None:
        self.geom = geom
        self._torch: dict[torch.device, TorchGeometry] = {}
        g = geom
        self.numba_args = (
            g.scales, g.table_sizes, g.offsets, g.dense.astype(np.uint8), g.strides, g.primes,
            g.n_features_per_level, g.smoothstep,
        )

    def torch_geometry(self, device: torch.device) -> TorchGeometry:
        if device not in self._torch:
            self._torch[device] = TorchGeometry.build(self.geom, device)
        return self._torch[device]


_DUMMY_INDICES = np.zeros((1, 1), dtype=np.int64)
_DUMMY_WEIGHTS = np.ones((1, 1), dtype=np.float32)


def _np(t: torch.Tensor) -> np.ndarray:
    """C-contiguous numpy view (or numpy copy) of a CPU tensor.

    The numba path prepares its arrays with numpy, never with torch ops: each small parallel
    torch op is an OpenMP barrier, and on an oversubscribed machine those cost milliseconds.
    """
    return np.ascontiguousarray(t.detach().numpy())


class _GridFunction(torch.autograd.Function):
    """Custom autograd so the backward is a scatter into the table(s), never a dense
    [B, n_params] Jacobian.  ``tables`` is [P] (single) or [N, P] with indices/weights [B, K]."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        tables: torch.Tensor,
        indices: torch.Tensor | None,
        weights: torch.Tensor | None,
        grid: _Grid,
        backend: str,
    ) -> torch.Tensor:
        ctx.grid, ctx.backend = grid, backend
        ctx.save_for_backward(x, tables, indices, weights)
        if backend == "numba":
            ctx.order = _visit_order(tables, indices)
            return _numba_forward(x, tables, indices, weights, grid, ctx.order)
        tg = grid.torch_geometry(x.device)
        # Autocast would run the corner blend (a matmul) in half precision; the encoding is
        # cheap and precision-sensitive, so it always runs in the tables' dtype.
        with torch.autocast(device_type=x.device.type, enabled=False):
            if indices is None:
                return forward_single(x, tables, tg)
            return forward_ensemble(x, tables, indices, weights, tg)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, tables, indices, weights = ctx.saved_tensors
        need_tables = ctx.needs_input_grad[1]
        need_weights = weights is not None and ctx.needs_input_grad[3]
        grid: _Grid = ctx.grid
        grad_out = grad_out.to(tables.dtype)
        if ctx.backend == "numba":
            gt, gw = _numba_backward(x, tables, indices, weights, grad_out, grid, ctx.order,
                                     need_tables, need_weights)
        elif indices is None:
            grad_out = grad_out.contiguous()
            gt = backward_single(x, grad_out, tables.numel(), grid.torch_geometry(x.device))
            gw = None
        else:
            with torch.autocast(device_type=x.device.type, enabled=False):
                gt, gw = backward_ensemble(x, tables, indices, weights, grad_out.contiguous(),
                                           grid.torch_geometry(x.device), need_tables,
                                           need_weights)
        return None, gt if need_tables else None, None, gw, None, None


def _visit_order(tables: torch.Tensor, indices: torch.Tensor | None) -> np.ndarray | None:
    """For ensembles of several tables, the samples sorted by their first table.

    Visiting samples in that order makes consecutive samples read (and scatter into) the same
    table, which keeps the working set in cache when the N tables do not fit; it roughly
    doubles ensemble throughput for N = 24 random per-sample tables.
    """
    if indices is None or tables.shape[0] == 1:
        return None
    return np.argsort(indices.numpy()[:, 0], kind="stable")


def _permuted(t: torch.Tensor, order: np.ndarray | None) -> np.ndarray:
    """Rows of a CPU tensor in visiting order, as a C-contiguous array."""
    a = t.detach().numpy()
    return np.ascontiguousarray(a if order is None else a[order])


def _numba_forward(
    x: torch.Tensor,
    tables: torch.Tensor,
    indices: torch.Tensor | None,
    weights: torch.Tensor | None,
    grid: _Grid,
    order: np.ndarray | None,
) -> torch.Tensor:
    kernels = numba_kernels()
    assert kernels is not None
    _set_numba_threads()
    out = np.empty((x.shape[0], grid.geom.n_levels * grid.geom.n_features_per_level),
                   dtype=np.float32)
    ensemble = indices is not None
    kernels.forward_kernel(
        _permuted(x, order).T.copy(), _np(tables).reshape(-1), tables.shape[-1],
        _permuted(indices, order) if ensemble else _DUMMY_INDICES,
        _permuted(weights, order) if ensemble else _DUMMY_WEIGHTS,
        ensemble, *grid.numba_args, out,
    )
    if order is not None:
        unsorted = np.empty_like(out)
        unsorted[order] = out
        out = unsorted
    return torch.from_numpy(out)


def _numba_backward(
    x: torch.Tensor,
    tables: torch.Tensor,
    indices: torch.Tensor | None,
    weights: torch.Tensor | None,
    grad_out: torch.Tensor,
    grid: _Grid,
    order: np.ndarray | None,
    need_tables: bool,
    need_weights: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    kernels = numba_kernels()
    assert kernels is not None
    _set_numba_threads()
    ensemble = indices is not None
    xt = _permuted(x, order).T.copy()
    g = _permuted(grad_out, order)  # [B, L*F]
    idx = _permuted(indices, order) if ensemble else _DUMMY_INDICES
    grad_tables = grad_weights = None
    if need_tables:
        w = _permuted(weights, order) if ensemble else _DUMMY_WEIGHTS
        geom = grid.geom
        g_lbf = g.reshape(-1, geom.n_levels, geom.n_features_per_level).transpose(1, 0, 2)
        grad = np.empty(tables.numel(), dtype=np.float32)  # zeroed by the kernel, per level
        kernels.backward_tables_kernel(xt, tables.shape[-1], idx, w, ensemble, *grid.numba_args,
                                       np.ascontiguousarray(g_lbf), grad)
        grad_tables = torch.from_numpy(grad).view(tables.shape)
    if need_weights:
        gw = np.empty(idx.shape, dtype=np.float32)
        kernels.backward_weights_kernel(xt, _np(tables).reshape(-1), tables.shape[-1], idx,
                                        *grid.numba_args, g, gw)
        if order is not None:
            unsorted = np.empty_like(gw)
            unsorted[order] = gw
            gw = unsorted
        grad_weights = torch.from_numpy(gw)
    return grad_tables, grad_weights


def _fail(msg: str) -> NoReturn:
    raise ValueError(f"HashGrid: {msg}")


class HashGrid(torch.nn.Module):
    """tcnn HashGrid encoding: x [B, D] in [0, 1] -> [B, n_levels * F], level-major columns.

    Args:
        n_input_dims: D, 1..7.
        config: tcnn encoding dict (``otype`` "HashGrid", or "Grid" with ``type`` "Hash");
            missing keys take tcnn's defaults; the filled dict is kept in ``self.config``.
        seed: seeds the U(-1e-4, 1e-4) table initialisation (ignored if ``generator`` given).
        generator: torch.Generator for the initialisation.
        backend: "auto" (see the module docstring), or force "torch", "numba" or "tcnn"
            ("tcnn" still runs ensembles on the torch path: tcnn cannot blend per sample).
        device: where ``params`` lives.
        own_table: False makes the grid a pure function of the tables passed to ``forward``
            (no ``params``, no draw from the generator): HyperINR keeps its own bank.
    """

    def __init__(
        self,
        n_input_dims: int,
        config: dict[str, Any] | None = None,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        backend: str = "auto",
        device: torch.device | str | None = None,
        own_table: bool = True,
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            _fail(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.config: dict[str, Any] = fill_hashgrid_config({} if config is None else config)
        self._grid = _Grid(build_geometry(n_input_dims, self.config))
        self.n_input_dims = int(n_input_dims)
        self.n_output_dims = self._grid.geom.n_levels * self._grid.geom.n_features_per_level
        self.n_params = self._grid.geom.n_params
        self.backend = backend
        self.params: torch.nn.Parameter | None = None
        if not own_table:  # a pure function of the tables passed in (HyperINR's encoder bank)
            return
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        init = torch.empty(self.n_params, dtype=torch.float32)
        init.uniform_(-1e-4, 1e-4, generator=generator)
        self.params = torch.nn.Parameter(init.to(device))

    @property
    def geometry(self) -> GridGeometry:
        """Per-level scales, resolutions, table sizes, offsets and dense/hashed flags."""
        return self._grid.geom

    def extra_repr(self) -> str:
        return (f"n_input_dims={self.n_input_dims}, n_output_dims={self.n_output_dims}, "
                f"n_params={self.n_params}, backend={self.backend!r}, config={self.config}")

    def resolve_backend(self, device: torch.device, ensemble: bool, dtype: torch.dtype) -> str:
        """Backend that will run for tensors on ``device`` (rules in the module docstring)."""
        f32 = dtype == torch.float32
        if self.backend == "torch":
            return "torch"
        if self.backend == "numba":
            if device.type != "cpu" or not f32 or numba_kernels() is None:
                _fail("backend='numba' needs numba installed and float32 CPU tensors")
            return "numba"
        if self.backend == "tcnn":
            if device.type != "cuda" or not f32 or tcnn_module() is None:
                _fail("backend='tcnn' needs tinycudann, CUDA and float32 tensors")
            return "torch" if ensemble else "tcnn"  # tcnn cannot blend tables per sample
        if device.type == "cpu":
            return "numba" if f32 and numba_kernels() is not None else "torch"
        tcnn_dims = self.n_input_dims in (2, 3, 4)  # the dims tcnn's grid is compiled for
        if device.type == "cuda" and f32 and not ensemble and tcnn_dims and tcnn_module():
            return "tcnn"
        return "torch"

    def forward(
        self,
        x: torch.Tensor,
        params: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Encode x [B, D] float32 -> [B, n_levels * F].

        Args:
            params: optional table(s) replacing ``self.params`` (stateless use; gradients flow
                into it): [n_params], or [N, n_params] for an ensemble.
            indices: [B, K] int64 ensemble members per sample (only with 2-D params).
            weights: [B, K] blend weights (dtype of params): output is
                sum_k weights[b, k] * encode(x[b], params[indices[b, k]]).
        """
        tables = self.params if params is None else params
        if tables is None:
            _fail("this HashGrid has no table of its own (own_table=False): pass params")
        x, tables, indices, weights = self._check(x, tables, indices, weights)
        ensemble = indices is not None
        backend = self.resolve_backend(x.device, ensemble, tables.dtype)
        x = x.detach()
        if backend != "numba":  # the numba kernels clamp as they read
            x = x.clamp(0.0, 1.0).contiguous()
        if backend == "tcnn":
            return tcnn_forward(x, tables, self.n_input_dims, self.config)
        return _GridFunction.apply(x, tables, indices, weights, self._grid, backend)

    def _check(
        self,
        x: torch.Tensor,
        tables: torch.Tensor,
        indices: torch.Tensor | None,
        weights: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if not isinstance(x, torch.Tensor) or x.dtype != torch.float32:
            _fail(f"x must be a float32 tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() != 2 or x.shape[1] != self.n_input_dims:
            _fail(f"x must have shape [B, {self.n_input_dims}], got {list(x.shape)}")
        if not isinstance(tables, torch.Tensor) or tables.dtype not in (torch.float32,
                                                                           torch.float64):
            _fail("params must be a float32 (or float64, torch backend) tensor")
        if tables.device != x.device:
            _fail(f"params is on {tables.device} but x is on {x.device}")
        if tables.shape[-1:] != (self.n_params,) or tables.dim() not in (1, 2):
            _fail(f"params must have shape [{self.n_params}] or [N, {self.n_params}], "
                  f"got {list(tables.shape)}")
        if (indices is None) != (weights is None):
            _fail("indices and weights must be given together")
        if tables.dim() == 1 and indices is not None:
            _fail("indices/weights need 2-D params [N, n_params]")
        if tables.dim() == 2 and indices is None:
            _fail("2-D params [N, n_params] need per-sample indices and weights")
        if indices is not None and weights is not None:
            batch = x.shape[0]
            if indices.dtype != torch.int64 or indices.dim() != 2 or indices.shape[0] != batch:
                _fail(f"indices must be int64 [B={batch}, K], got {indices.dtype} "
                      f"{list(indices.shape)}")
            if weights.shape != indices.shape or weights.dtype != tables.dtype:
                _fail(f"weights must be {tables.dtype} with the shape of indices "
                      f"{list(indices.shape)}, got {weights.dtype} {list(weights.shape)}")
            if indices.device != x.device or weights.device != x.device:
                _fail("indices and weights must be on the device of x")
            if indices.shape[1] == 0:
                _fail("indices must have K >= 1 columns")
            if batch:  # numpy on CPU: see _np
                ids = indices.numpy() if indices.device.type == "cpu" else indices
                if int(ids.min()) < 0 or int(ids.max()) >= tables.shape[0]:
                    _fail(f"indices must lie in [0, {tables.shape[0] - 1}]")
        if x.numel():
            finite = (np.isfinite(x.detach().numpy()).all() if x.device.type == "cpu"
                      else torch.isfinite(x).all())
            if not bool(finite):
                _fail("x contains NaN or inf")
        return x, tables, indices, weights


def blend_tables(params: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One blended table sum_k w[k] * params[idx[k]]: params [N, P], idx [K] int64, w [K] -> [P].

    By linearity, encoding with the result equals blending the K encodings, so
    ``generate(theta)`` can hand out a plain single-table INR.  Differentiable by autograd.
    """
    if not isinstance(params, torch.Tensor) or params.dim() != 2:
        raise ValueError("blend_tables: params must be a 2-D tensor [N, n_params]")
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or idx.dim() != 1:
        raise ValueError("blend_tables: idx must be a 1-D int64 tensor [K]")
    if not isinstance(w, torch.Tensor) or w.shape != idx.shape or w.dtype != params.dtype:
        raise ValueError("blend_tables: w must have idx's shape and params' dtype")
    if idx.numel() == 0:
        raise ValueError("blend_tables: idx must not be empty")
    if int(idx.min()) < 0 or int(idx.max()) >= params.shape[0]:
        raise ValueError(f"blend_tables: idx must lie in [0, {params.shape[0] - 1}]")
    w = w.to(params.device)
    if torch.is_grad_enabled() and (params.requires_grad or w.requires_grad):
        return (w[:, None] * params[idx.to(params.device)]).sum(0)
    # generation path: one pass per neighbour, no [K, P] gather (12x faster on CPU, measured)
    ks = idx.tolist()
    out = params[ks[0]] * w[0]
    for k in range(1, len(ks)):
        out.add_(params[ks[k]], alpha=float(w[k]))
    return out
