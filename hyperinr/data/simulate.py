"""The simulated datasets: a Taylor-Green vortex at Re = 1600 (the default, `tgv.h5`) and
statistically stationary forced turbulence (`simulate.flow: forced_turbulence`, `turbulence.h5`).

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

Forced turbulence exists because TGV frames are smooth in time (|vorticity| correlation ~0.6
between frames 4 apart, the training spacing, at 64^3): a field whose frames say little about
each other tests what a model adds over interpolation. Same solver and fixed-step frame writer;
the flow starts from rest and is driven by fluidsim's time-correlated random forcing
("tcrandom") of the toroidal and poloidal velocity in the shell forcing_kmin <= |k| <=
forcing_kmax, normalised to a constant total injection rate forcing_rate; `spinup` time units
are run before frame 0 (t = 0). The forcing draws from numpy's global RNG: it is seeded from
`simulate.seed` and the caller's RNG state is restored afterwards, and the forcing's coarse
FFTs are re-planned as the solver's, so a configuration gives byte-identical arrays.
config/forced32_vorticity.yaml (32^3, nu = 1/50, P = 1, 1 <= k <= 3, frames 0.1 apart, 10 of
spin-up): E ~ 2.0 +- 5 %, eps ~ 0.94, max CFL 0.75; |vorticity| correlation 0.85 / 0.61 /
0.33 / 0.14 at lags 1 / 2 / 4 / 8 frames (TGV 64^3: 0.87 / 0.75 / 0.59 / 0.36); ~7 s.
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
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from hyperinr.config import SimulateConfig
from hyperinr.data.errors import DataError
from hyperinr.infra.atomic import atomic_path

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


FLOWS = ("taylor_green", "forced_turbulence")
_FILE_NAMES = {"taylor_green": "tgv.h5", "forced_turbulence": "turbulence.h5"}


def _check_flow(flow: str) -> None:
    if flow not in FLOWS:
        raise DataError(f"simulate.flow: unknown flow '{flow}' (known: {', '.join(FLOWS)})")


def simulation_file(cfg: SimulateConfig, out_dir: Path | str | None = None) -> Path:
    """Where `simulate` writes the HDF5 file: one answer for the CLI and rule simulate.

    Each flow has its own file name so a run directory never holds one flow's data under the
    other's name (`tgv.h5` stays where existing configurations expect it).
    """
    _check_flow(cfg.flow)
    return Path(out_dir if out_dir is not None else cfg.output_dir) / _FILE_NAMES[cfg.flow]


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


def _check_forcing(cfg: SimulateConfig) -> None:
    """Reject forcing settings before any file is opened (fluidsim's own errors are not
    one-line and some, like an unresolved forcing band, come only after its set-up)."""
    if cfg.spinup < 0:
        raise DataError(f"simulate.spinup: must be >= 0, got {cfg.spinup}")
    if cfg.forcing_rate <= 0:
        raise DataError(f"simulate.forcing_rate: must be positive, got {cfg.forcing_rate}")
    if not 0 < cfg.forcing_kmin <= cfg.forcing_kmax:
        raise DataError(
            "simulate.forcing_kmin/forcing_kmax: need 0 < kmin <= kmax, got "
            f"{cfg.forcing_kmin}, {cfg.forcing_kmax}"
        )
    if cfg.forcing_kmax >= cfg.resolution / 3:
        raise DataError(
            f"simulate.forcing_kmax: {cfg.forcing_kmax} is not resolved at resolution "
            f"{cfg.resolution} (needs < {cfg.resolution / 3:.4g}, the 2/3-rule band)"
        )
    if not 0 <= cfg.seed < 2**32:
        raise DataError(f"simulate.seed: must be in [0, 2**32), got {cfg.seed}")


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """fluidsim's random forcing draws from numpy's global RNG (its seeds and random arrays):
    seed it for a reproducible run and give the caller its own state back afterwards."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        yield
    finally:
        np.random.set_state(state)


def _advance(stepping, steps: int, blown_up: str) -> None:
    """Take `steps` steps, turning fluidsim's own blow-up reports into our one-line error:
    it raises ValueError("nan at it = ...") when its periodic check sees a NaN, and a forced
    run can fail earlier in the forcing normalisation (np.roots of a NaN polynomial)."""
    try:
        for _ in range(steps):
            stepping.one_time_step()
    except (np.linalg.LinAlgError, FloatingPointError):
        raise DataError(blown_up.format(t=stepping.t)) from None
    except ValueError as err:
        if "nan" not in str(err).lower():
            raise
        raise DataError(blown_up.format(t=stepping.t)) from None


def _write_frames(
    sim,
    cfg: SimulateConfig,
    out: dict,
    times: np.ndarray,
    n_sub: int,
    dt: float,
    nu: float,
    blown_up: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step between snapshots and write each frame's fields as soon as it is reached, so
    memory stays at a few velocity fields whatever the resolution and number of frames.

    Returns the kinetic energy, dissipation nu <|w|^2> and CFL number of every frame.
    """
    n = cfg.resolution
    stepping = sim.time_stepping
    dx = BOX / n
    energy = np.empty(cfg.n_frames)
    dissipation = np.empty(cfg.n_frames)
    cfl = np.empty(cfg.n_frames)
    start = time.perf_counter()
    label = "tgv" if cfg.flow == "taylor_green" else "forced"
    for frame in range(cfg.n_frames):
        if frame > 0:
            _advance(stepping, n_sub, blown_up)
        sim.state.statephys_from_statespect()
        phys = sim.state.state_phys
        u = np.stack([np.array(phys.get_var(k), dtype=np.float64) for k in ("vx", "vy", "vz")])
        if not np.all(np.isfinite(u)):
            raise DataError(blown_up.format(t=stepping.t))
        omega = vorticity_magnitude(u)
        energy[frame] = 0.5 * float(np.mean(np.sum(u * u, axis=0)))
        dissipation[frame] = nu * float(np.mean(omega * omega))
        cfl[frame] = float(np.max(np.abs(u))) * dt / dx
        for name in cfg.fields:
            values = omega if name == "vorticity" else _field(name, u)
            out[name][frame] = values.astype(np.float32)
        print(
            f"{label} {n}^3: frame {frame + 1}/{cfg.n_frames} t={times[frame]:.3f} "
            f"E={energy[frame]:.5f} eps={dissipation[frame]:.5f} "
            f"({time.perf_counter() - start:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return energy, dissipation, cfl


def _configure_forcing(params, cfg: SimulateConfig) -> None:
    """fluidsim's time-correlated random forcing on the toroidal and poloidal velocity: both
    are solenoidal, so nothing of the injection is lost to the pressure projection, and
    forcing both (not only one component, as vx_fft would) keeps the forcing isotropic. The
    normalisation holds the injection rate of each key fixed, so each gets half of the total.
    """
    forcing = params.forcing
    forcing.enable = True
    forcing.type = "tcrandom"
    forcing.key_forced = ["vt_fft", "vp_fft"]
    forcing.forcing_rate = cfg.forcing_rate / 2
    forcing.nkmin_forcing = cfg.forcing_kmin
    forcing.nkmax_forcing = cfg.forcing_kmax
    forcing.normalized.constant_rate_of = None


def simulate(cfg: SimulateConfig, out_dir: Path | None = None) -> Path:
    """Simulate `cfg.flow` and write `simulation_file(cfg, out_dir)` and `params.json`."""
    _check_flow(cfg.flow)
    if cfg.flow == "forced_turbulence":
        return simulate_forced(cfg, out_dir)
    return simulate_tgv(cfg, out_dir)


def simulate_tgv(cfg: SimulateConfig, out_dir: Path | None = None) -> Path:
    """Simulate the TGV and write `<out_dir>/tgv.h5` and `<out_dir>/params.json` atomically.

    `out_dir` defaults to `cfg.output_dir` (relative to the working directory). Returns the
    path of `tgv.h5`. `cfg.flow` is ignored: callers wanting the configured flow use `simulate`.
    """
    return _run(replace(cfg, flow="taylor_green"), out_dir)


def simulate_forced(cfg: SimulateConfig, out_dir: Path | None = None) -> Path:
    """Simulate forced turbulence and write `<out_dir>/turbulence.h5` and `params.json`.

    Statistically stationary, so unlike the TGV no frame is special: frames at the training
    spacing are only weakly correlated and interpolating between them is poor (module doc).
    """
    return _run(replace(cfg, flow="forced_turbulence"), out_dir)


def _run(cfg: SimulateConfig, out_dir: Path | None) -> Path:
    forced = cfg.flow == "forced_turbulence"
    for name in cfg.fields:
        if name not in FIELDS:
            raise DataError(f"simulate.fields: unknown field '{name}' (known: {', '.join(FIELDS)})")
    if not cfg.fields:
        raise DataError("simulate.fields: no field requested")
    interval, n_sub, dt = _steps(cfg)
    if forced:
        _check_forcing(cfg)
    h5_path = simulation_file(cfg, out_dir)
    out_dir = h5_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    n = cfg.resolution
    nu = 1.0 / cfg.reynolds
    n_spin = math.ceil(cfg.spinup / dt - 1e-9) if forced else 0
    times = np.arange(cfg.n_frames, dtype=np.float64) * interval
    title = "forced-turbulence" if forced else "TGV"
    blown_up = (
        f"simulate: the {title} run blew up at t={{t:.4g}} (resolution {n}, dt {dt:.4g}); lower "
        + ("simulate.reynolds or simulate.forcing_rate" if forced else "simulate.dt")
    )
    start = time.perf_counter()

    with (
        atomic_path(h5_path) as tmp_h5,
        h5py.File(tmp_h5, "w", track_order=True) as h5,
        _fluidsim_sandbox(),
        contextlib.redirect_stdout(sys.stderr),
        _seeded_global_rng(cfg.seed) if forced else contextlib.nullcontext(),
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
        params.short_name_type_run = "forced" if forced else "tgv"
        params.oper.nx = params.oper.ny = params.oper.nz = n
        params.oper.Lx = params.oper.Ly = params.oper.Lz = BOX
        params.nu_2 = nu
        params.time_stepping.type_time_scheme = "RK4"
        params.time_stepping.USE_CFL = False
        params.time_stepping.USE_T_END = False
        params.time_stepping.deltat0 = dt
        params.time_stepping.it_end = n_spin + n_sub * (cfg.n_frames - 1)
        params.init_fields.type = "in_script"
        params.output.HAS_TO_SAVE = False
        params.output.periods_print.print_stdout = 0
        if forced:
            _configure_forcing(params, cfg)
        sim = Simul(params)
        fft_info = _deterministic_fft(sim.oper)
        if forced:
            _deterministic_fft(sim.forcing.forcing_maker.oper_coarse)

        # the forced run starts from rest: the forcing alone, seeded, sets the flow
        u0 = np.zeros((3, n, n, n)) if forced else tgv_initial_velocity(n)
        sim.state.init_statephys_from(vx=u0[0], vy=u0[1], vz=u0[2])
        sim.state.statespect_from_statephys()
        sim.state.statephys_from_statespect()
        stepping = sim.time_stepping
        stepping.prepare_main_loop()
        _advance(stepping, n_spin, blown_up)
        t_start = float(stepping.t)

        energy, dissipation, cfl = _write_frames(sim, cfg, out, times, n_sub, dt, nu, blown_up)
        t_solver = float(stepping.t) - t_start
        if abs(t_solver - cfg.t_end) > 1e-9 * max(1.0, cfg.t_end):
            raise RuntimeError(f"simulate: solver ended at t={t_solver}, expected {cfg.t_end}")
        period = float(sim.forcing.forcing_maker.period_change_f0f1) if forced else None
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
            "provenance": _FORCED_PROVENANCE if forced else _TGV_PROVENANCE,
        }
        if forced:
            attrs.update(
                {
                    "flow": cfg.flow,
                    "seed": cfg.seed,
                    "spinup": t_start,
                    "forcing": "fluidsim tcrandom on vt_fft and vp_fft (toroidal, poloidal)",
                    "forcing_rate": cfg.forcing_rate,
                    "forcing_kmin": cfg.forcing_kmin,
                    "forcing_kmax": cfg.forcing_kmax,
                    "forcing_period": period,
                }
            )
        for key, value in attrs.items():
            h5.attrs[key] = value

    wall = time.perf_counter() - start
    with atomic_path(out_dir / "params.json") as tmp:
        rows = ",\n  ".join(json.dumps([float(t)]) for t in times)
        tmp.write_text(f'{{"names": ["t"], "values": [\n  {rows}\n]}}\n')
    steps = f"{n_spin} + " if forced else ""
    steps += f"{n_sub * (cfg.n_frames - 1)} steps of dt={dt:.5g} in {wall:.1f} s"
    if forced:
        summary = f"E = {energy.mean():.4f} +- {energy.std():.4f}, eps = {dissipation.mean():.4f}"
    else:
        peak = times[int(dissipation.argmax())]
        summary = f"peak dissipation {dissipation.max():.5f} at t={peak:.2f}"
    print(
        f"{cfg.flow} {n}^3 Re={cfg.reynolds:g}: {cfg.n_frames} frames, {steps}; {summary} "
        f"-> {h5_path}",
        file=sys.stderr,
    )
    return h5_path


_TGV_PROVENANCE = (
    "Taylor-Green vortex u = sin x cos y cos z, v = -cos x sin y cos z, w = 0 "
    "(V0 = 1, L = 1, nu = 1/Re) simulated by hyperinr.data.simulate.simulate_tgv; "
    "vorticity = |curl u| and pressure from lap p = -d_i u_j d_j u_i (zero mean), "
    "both computed spectrally with numpy FFTs from the solver's velocity"
)
_FORCED_PROVENANCE = (
    "statistically stationary forced homogeneous turbulence (nu = 1/Re) simulated by "
    "hyperinr.data.simulate.simulate_forced: started from rest, driven by fluidsim's "
    "time-correlated random forcing (tcrandom) of the toroidal and poloidal velocity in the "
    "wavenumber shell [forcing_kmin, forcing_kmax] at a fixed total injection rate "
    "forcing_rate, seeded from simulate.seed; t = 0 is the end of the spin-up; vorticity = "
    "|curl u| and pressure from lap p = -d_i u_j d_j u_i (zero mean), both computed "
    "spectrally with numpy FFTs from the solver's velocity"
)
