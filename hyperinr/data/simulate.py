"""The default dataset: a Taylor-Green vortex at Re = 1600, simulated with fluidsim.

Setup (the classic DNS benchmark, e.g. the 1st/2nd International Workshops on High-Order CFD):
periodic box [0, 2*pi)^3, V0 = 1, L = 1, nu = 1/Re, initial velocity

    u = sin x cos y cos z,  v = -cos x sin y cos z,  w = 0.

The solver is fluidsim's `ns3d` (pseudo-spectral, RK4, 2/3-rule dealiasing, viscous term
integrated exactly). Time stepping uses a fixed step so every snapshot lands exactly on its
output time: the interval between snapshots, t_end / (n_frames - 1), is split into
ceil(interval / cfg.dt) equal steps (0.25 / 13 = 0.01923 for the defaults: never larger than the
configured dt; the CFL number, max|u| dt / dx, is about 0.2 at 64^3 and is recorded). fluidsim's
own CFL control was not used: it moves the step and would need interpolation to hit the output
times.

Fields are derived from the solver's velocity with numpy FFTs:
- `vorticity`: |curl u| (spectral derivatives);
- `pressure`: the solution of the pressure Poisson equation lap p = -d_i u_j d_j u_i
  (periodic, zero mean, density 1), the source term computed pseudo-spectrally and truncated to
  the solver's 2/3 band, which makes it alias-free;
- `qcriterion` (Q = lap p / 2) and `velocity` (|u|) on request.

Determinism: fluidsim plans its FFTs with FFTW_MEASURE (timing-based: the plan, and so the last
bits of every result, can change from run to run; seen at 64^3). `simulate_tgv` forgets FFTW's
wisdom (an ESTIMATE request is otherwise answered with the measured plan) and re-plans them with
FFTW_ESTIMATE on one thread, so the same configuration gives byte-identical arrays on the same
machine and FFTW build (checked: two concurrent 64^3 runs in separate processes).

Measured on the 2-core development machine: 64^3 (520 steps, 41 frames) takes 38-40 s of CPU
(47 s wall with other jobs sharing the cores).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from hyperinr.atomic import atomic_path
from hyperinr.config import SimulateConfig
from hyperinr.data.errors import DataError

BOX = 2.0 * np.pi
FIELDS = ("vorticity", "pressure", "qcriterion", "velocity")

# Environment variables fluidsim / fluiddyn / transonic read to decide where to write.
_FLUID_ENV = (
    "FLUIDSIM_PATH",
    "FLUIDDYN_PATH_SCRATCH",
    "FLUIDDYN_PATH_WARNING",
    "FLUIDLAB_PATH",
    "TRANSONIC_DIR",
)
_PATH_CONSTANTS = {
    "FLUIDSIM_PATH": str,
    "FLUIDDYN_PATH_SCRATCH": str,
    "FLUIDDYN_PATH_WARNING": str,
    "path_dir_results": Path,
}


# --------------------------------------------------------------------------- spectral fields


def _wavenumbers(shape: tuple[int, int, int], length: float = BOX) -> list[np.ndarray]:
    """Broadcastable wavenumbers (kz, ky, kx) for an rfftn over (z, y, x).

    Nyquist modes get k = 0 for first derivatives (their derivative is not representable).
    """
    nz, ny, nx = shape
    scale = 2.0 * np.pi / length
    ks = []
    for n, axis in ((nz, 0), (ny, 1)):
        k = np.fft.fftfreq(n, d=1.0 / n) * scale
        if n % 2 == 0:
            k[n // 2] = 0.0
        ks.append(k.reshape([-1 if a == axis else 1 for a in range(3)]))
    kx = np.fft.rfftfreq(nx, d=1.0 / nx) * scale
    if nx % 2 == 0:
        kx[-1] = 0.0
    ks.append(kx.reshape(1, 1, -1))
    return ks  # [kz, ky, kx]


def _dealias_mask(shape: tuple[int, int, int]) -> np.ndarray:
    """True for modes kept by the 2/3 rule (cubic truncation, as fluidsim's ns3d)."""
    nz, ny, nx = shape
    iz = np.abs(np.fft.fftfreq(nz, d=1.0 / nz)).reshape(-1, 1, 1)
    iy = np.abs(np.fft.fftfreq(ny, d=1.0 / ny)).reshape(1, -1, 1)
    ix = np.fft.rfftfreq(nx, d=1.0 / nx).reshape(1, 1, -1)
    return (iz < nz / 3.0) & (iy < ny / 3.0) & (ix < nx / 3.0)


def _velocity_gradient(u: np.ndarray, length: float) -> np.ndarray:
    """A[i, j] = d u_i / d x_j for u of shape (3, nz, ny, nx) ordered (ux, uy, uz)."""
    shape = u.shape[1:]
    kz, ky, kx = _wavenumbers(shape, length)
    k_by_x = (kx, ky, kz)  # derivative along x, y, z
    grad = np.empty((3, 3, *shape))
    for i in range(3):
        u_hat = np.fft.rfftn(u[i])
        for j in range(3):
            grad[i, j] = np.fft.irfftn(1j * k_by_x[j] * u_hat, s=shape, axes=(0, 1, 2))
    return grad


def vorticity_magnitude(u: np.ndarray, length: float = BOX) -> np.ndarray:
    """|curl u| for a periodic velocity u of shape (3, nz, ny, nx), components (ux, uy, uz)."""
    a = _velocity_gradient(u, length)
    wx = a[2, 1] - a[1, 2]
    wy = a[0, 2] - a[2, 0]
    wz = a[1, 0] - a[0, 1]
    return np.sqrt(wx * wx + wy * wy + wz * wz)


def _velocity_gradient_invariant(a: np.ndarray) -> np.ndarray:
    """d_i u_j d_j u_i = sum_ij A_ij A_ji."""
    return np.einsum("ij...,ji...->...", a, a)


def pressure_from_velocity(u: np.ndarray, length: float = BOX, dealias: bool = True) -> np.ndarray:
    """Zero-mean periodic pressure (density 1) solving lap p = -d_i u_j d_j u_i.

    With `dealias`, the source is truncated to the 2/3 band: for a velocity already limited to
    that band (as fluidsim's) the retained modes of the product are then alias-free.
    """
    shape = u.shape[1:]
    source = -_velocity_gradient_invariant(_velocity_gradient(u, length))
    s_hat = np.fft.rfftn(source)
    if dealias:
        s_hat *= _dealias_mask(shape)
    scale = 2.0 * np.pi / length
    kz = np.fft.fftfreq(shape[0], d=1.0 / shape[0]).reshape(-1, 1, 1) * scale
    ky = np.fft.fftfreq(shape[1], d=1.0 / shape[1]).reshape(1, -1, 1) * scale
    kx = np.fft.rfftfreq(shape[2], d=1.0 / shape[2]).reshape(1, 1, -1) * scale
    k2 = kx * kx + ky * ky + kz * kz
    k2[0, 0, 0] = 1.0
    p_hat = -s_hat / k2  # -k^2 p_hat = s_hat
    p_hat[0, 0, 0] = 0.0
    return np.fft.irfftn(p_hat, s=shape, axes=(0, 1, 2))


def q_criterion(u: np.ndarray, length: float = BOX) -> np.ndarray:
    """Q = -1/2 d_i u_j d_j u_i (= lap p / 2 for incompressible flow)."""
    return -0.5 * _velocity_gradient_invariant(_velocity_gradient(u, length))


def tgv_initial_velocity(n: int) -> np.ndarray:
    """The TGV initial condition on the n^3 grid x_i = i * 2 pi / n, as (3, nz, ny, nx)."""
    x = np.arange(n) * (BOX / n)
    z3, y3, x3 = np.meshgrid(x, x, x, indexing="ij")
    u = np.sin(x3) * np.cos(y3) * np.cos(z3)
    v = -np.cos(x3) * np.sin(y3) * np.cos(z3)
    return np.stack([u, v, np.zeros_like(u)])


def _field(name: str, u: np.ndarray) -> np.ndarray:
    if name == "vorticity":
        return vorticity_magnitude(u)
    if name == "pressure":
        return pressure_from_velocity(u)
    if name == "qcriterion":
        return q_criterion(u)
    if name == "velocity":
        return np.sqrt(np.sum(u * u, axis=0))
    raise DataError(f"simulate.fields: unknown field '{name}' (known: {', '.join(FIELDS)})")


def _undo_fluidsim_h5netcdf_patch() -> None:
    """fluidsim replaces `h5netcdf.File` by a functools.partial when imported (to silence a
    warning, fluidsim/util/util.py), which breaks every later `isinstance(x, h5netcdf.File)`:
    xarray's h5netcdf backend then fails in the same process (our NetCDF export, user code
    after `hyperinr simulate`). Our simulation writes no NetCDF, so the original class returns."""
    import functools

    try:
        import h5netcdf
    except ImportError:
        return
    if isinstance(h5netcdf.File, functools.partial):
        h5netcdf.File = h5netcdf.File.func


# --------------------------------------------------------------------------- fluidsim driver


@contextlib.contextmanager
def _fluidsim_sandbox() -> Iterator[Path]:
    """Point fluidsim's output, warning and transonic dirs at a temp dir; restore afterwards.

    The variables are read when fluidsim is first imported: the import happens inside this
    context. The run itself saves nothing (params.output.HAS_TO_SAVE = False).
    """
    tmp = Path(tempfile.mkdtemp(prefix="hyperinr-fluidsim-"))
    saved = {k: os.environ.get(k) for k in _FLUID_ENV}
    err_state = np.geterr()
    patched: list[tuple[object, str, object]] = []
    try:
        for key in _FLUID_ENV[:-1]:
            os.environ[key] = str(tmp)
        os.environ["TRANSONIC_DIR"] = str(tmp / ".transonic")
        # fluidsim imported earlier (by the caller or a previous run) keeps the paths it read
        # then as module constants: point those at the sandbox too.
        for name, module in list(sys.modules.items()):
            if module is None or not name.startswith(("fluiddyn", "fluidsim", "fluidfft")):
                continue
            for attr, kind in _PATH_CONSTANTS.items():
                value = vars(module).get(attr)
                if value is not None:
                    patched.append((module, attr, value))
                    setattr(module, attr, kind(tmp))
        yield tmp
    finally:
        for module, attr, value in reversed(patched):
            setattr(module, attr, value)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        np.seterr(**err_state)  # fluidsim sets np.seterr(all="warn") globally
        shutil.rmtree(tmp, ignore_errors=True)


def _deterministic_fft(oper) -> str:
    """Re-plan fluidsim's FFTW transforms with FFTW_ESTIMATE on one thread (reproducible)."""
    fft = getattr(oper, "oper_fft", None)
    needed = ("arrayX", "arrayK", "fftplan", "ifftplan")
    if fft is None or not all(hasattr(fft, a) for a in needed):
        return f"{type(fft).__name__} (fluidsim default planning)"
    import pyfftw

    # FFTW answers an ESTIMATE request from its wisdom when it has some: fluidsim's MEASURE
    # plans just left timing-based wisdom for these very sizes, so forget it first.
    pyfftw.forget_wisdom()
    axes = tuple(range(fft.arrayX.ndim))
    flags = ("FFTW_ESTIMATE",)  # as fluidsim, minus the timing-based planner
    fft.fftplan = pyfftw.FFTW(
        fft.arrayX, fft.arrayK, axes=axes, direction="FFTW_FORWARD", flags=flags, threads=1
    )
    fft.ifftplan = pyfftw.FFTW(
        fft.arrayK, fft.arrayX, axes=axes, direction="FFTW_BACKWARD", flags=flags, threads=1
    )
    return f"pyfftw {pyfftw.__version__} (FFTW_ESTIMATE, 1 thread)"


def _steps(cfg: SimulateConfig) -> tuple[float, int, float]:
    if cfg.n_frames < 2:
        raise DataError(f"simulate.n_frames: need at least 2 frames, got {cfg.n_frames}")
    if cfg.t_end <= 0 or cfg.dt <= 0:
        raise DataError(f"simulate: t_end and dt must be positive (t_end={cfg.t_end}, dt={cfg.dt})")
    if cfg.resolution < 8:
        raise DataError(f"simulate.resolution: need at least 8, got {cfg.resolution}")
    if cfg.reynolds <= 0:
        raise DataError(f"simulate.reynolds: must be positive, got {cfg.reynolds}")
    interval = cfg.t_end / (cfg.n_frames - 1)
    n_sub = max(1, math.ceil(interval / cfg.dt - 1e-9))
    return interval, n_sub, interval / n_sub


def simulate_tgv(cfg: SimulateConfig, out_dir: Path | None = None) -> Path:
    """Simulate the TGV and write `<out_dir>/tgv.h5` and `<out_dir>/params.json` atomically.

    `out_dir` defaults to `cfg.output_dir` (relative to the working directory). Returns the
    path of `tgv.h5`. Frames are written to the (temporary) HDF5 file as they are computed,
    so memory stays at a few velocity fields whatever the resolution.
    """
    for name in cfg.fields:
        if name not in FIELDS:
            raise DataError(f"simulate.fields: unknown field '{name}' (known: {', '.join(FIELDS)})")
    if not cfg.fields:
        raise DataError("simulate.fields: no field requested")
    interval, n_sub, dt = _steps(cfg)
    out_dir = Path(out_dir if out_dir is not None else cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    h5_path = out_dir / "tgv.h5"
    n = cfg.resolution
    nu = 1.0 / cfg.reynolds
    times = np.arange(cfg.n_frames, dtype=np.float64) * interval
    energy = np.empty(cfg.n_frames)
    dissipation = np.empty(cfg.n_frames)
    cfl = np.empty(cfg.n_frames)
    start = time.perf_counter()

    with (
        atomic_path(h5_path) as tmp_h5,
        h5py.File(tmp_h5, "w", track_order=True) as h5,
        _fluidsim_sandbox(),
        contextlib.redirect_stdout(sys.stderr),
    ):
        out = {
            name: h5.create_dataset(
                name,
                shape=(cfg.n_frames, n, n, n),
                dtype=np.float32,
                chunks=(1, n, n, n),
                track_times=False,
            )
            for name in cfg.fields
        }
        import fluidsim
        from fluidsim.solvers.ns3d.solver import Simul

        _undo_fluidsim_h5netcdf_patch()

        params = Simul.create_default_params()
        params.short_name_type_run = "tgv"
        params.oper.nx = params.oper.ny = params.oper.nz = n
        params.oper.Lx = params.oper.Ly = params.oper.Lz = BOX
        params.nu_2 = nu
        params.time_stepping.type_time_scheme = "RK4"
        params.time_stepping.USE_CFL = False
        params.time_stepping.USE_T_END = False
        params.time_stepping.deltat0 = dt
        params.time_stepping.it_end = n_sub * (cfg.n_frames - 1)
        params.init_fields.type = "in_script"
        params.output.HAS_TO_SAVE = False
        params.output.periods_print.print_stdout = 0
        sim = Simul(params)
        fft_info = _deterministic_fft(sim.oper)

        u0 = tgv_initial_velocity(n)
        sim.state.init_statephys_from(vx=u0[0], vy=u0[1], vz=u0[2])
        sim.state.statespect_from_statephys()
        sim.state.statephys_from_statespect()
        stepping = sim.time_stepping
        stepping.prepare_main_loop()
        dx = BOX / n

        for frame in range(cfg.n_frames):
            if frame > 0:
                for _ in range(n_sub):
                    stepping.one_time_step()
            sim.state.statephys_from_statespect()
            phys = sim.state.state_phys
            u = np.stack([np.array(phys.get_var(k), dtype=np.float64) for k in ("vx", "vy", "vz")])
            if not np.all(np.isfinite(u)):
                raise DataError(
                    f"simulate: the TGV run blew up at t={stepping.t:.4g} "
                    f"(resolution {n}, dt {dt:.4g}); lower simulate.dt"
                )
            omega = vorticity_magnitude(u)
            energy[frame] = 0.5 * float(np.mean(np.sum(u * u, axis=0)))
            dissipation[frame] = nu * float(np.mean(omega * omega))
            cfl[frame] = float(np.max(np.abs(u))) * dt / dx
            for name in cfg.fields:
                values = omega if name == "vorticity" else _field(name, u)
                out[name][frame] = values.astype(np.float32)
            print(
                f"tgv {n}^3: frame {frame + 1}/{cfg.n_frames} t={times[frame]:.3f} "
                f"E={energy[frame]:.5f} eps={dissipation[frame]:.5f} "
                f"({time.perf_counter() - start:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
        t_solver = float(stepping.t)
        if abs(t_solver - cfg.t_end) > 1e-9 * max(1.0, cfg.t_end):
            raise RuntimeError(f"simulate: solver ended at t={t_solver}, expected {cfg.t_end}")
        sim.output.close_files()

        h5.create_dataset("t", data=times, track_times=False)
        h5.create_dataset("kinetic_energy", data=energy, track_times=False)
        h5.create_dataset("dissipation", data=dissipation, track_times=False)
        attrs = {
            "solver": "fluidsim ns3d: pseudo-spectral, RK4, 2/3-rule dealiasing (cubic)",
            "fluidsim_version": fluidsim.__version__,
            "fft": fft_info,
            "resolution": n,
            "Re": cfg.reynolds,
            "nu": nu,
            "box_length": BOX,
            "dt": dt,
            "dt_max": cfg.dt,
            "steps_per_frame": n_sub,
            "t_end": cfg.t_end,
            "n_frames": cfg.n_frames,
            "max_cfl": float(cfl.max()),
            "layout": "[n_frames, nz, ny, nx], x fastest; grid x_i = i * 2 pi / n",
            "fields": json.dumps(list(cfg.fields)),
            "provenance": (
                "Taylor-Green vortex u = sin x cos y cos z, v = -cos x sin y cos z, w = 0 "
                "(V0 = 1, L = 1, nu = 1/Re) simulated by hyperinr.data.simulate.simulate_tgv; "
                "vorticity = |curl u| and pressure from lap p = -d_i u_j d_j u_i (zero mean), "
                "both computed spectrally with numpy FFTs from the solver's velocity"
            ),
        }
        for key, value in attrs.items():
            h5.attrs[key] = value

    wall = time.perf_counter() - start
    with atomic_path(out_dir / "params.json") as tmp:
        rows = ",\n  ".join(json.dumps([float(t)]) for t in times)
        tmp.write_text(f'{{"names": ["t"], "values": [\n  {rows}\n]}}\n')
    print(
        f"tgv {n}^3 Re={cfg.reynolds:g}: {cfg.n_frames} frames, {n_sub * (cfg.n_frames - 1)} "
        f"steps of dt={dt:.5g} in {wall:.1f} s; peak dissipation {dissipation.max():.5f} at "
        f"t={times[int(dissipation.argmax())]:.2f} -> {h5_path}",
        file=sys.stderr,
    )
    return h5_path
