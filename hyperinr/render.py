"""Emission-absorption direct volume rendering of the unit box, with global shadows (Sec. 4, 7.3).

The volume's domain is [0, 1]^3 in `hyperinr.grid`'s coordinates (x, y, z; voxel i of n at
i / (n - 1)). A *field* maps points x [B, 3] to scalars [B]; it may be a volume
(`volume_field`, trilinear), an INR (`inr_field`), or any callable. `render` ray-marches a
pinhole `Camera` through the box with a `TransferFunction` (value -> colour, extinction) and
shades every sample by a light factor L_i that comes from one of three places, which is the
comparison of the paper's dynamic-global-shadow task (Fig. 16):

- nowhere (L_i = 1): plain direct volume rendering;
- a *shadow field* (a shadow volume from `shadow_volume`, or a shadow INR predicted by
  HyperINR): one look-up per sample, O(n) per primary ray;
- secondary rays towards the light (`transmittance_to_light`) from every sample: the O(n^2)
  reference the paper compares against.

All three modes use the same sample positions, so any difference between their images comes
from L alone. Everything is plain torch on the device of the field (volume, INR table, or
module parameters; CPU otherwise), batched so that at most `batch` points are evaluated at a
time, and run under `torch.inference_mode` (results are cloned out of it so callers may use them
as training targets).

Two opt-in accelerations exist for interactive use, where an INR costs ~1 us per sample on a CPU
and so the number of field evaluations is the frame time. Both are off by default, so the
default image (and every image the pipeline writes) is the exact sum above:

- empty-space skipping (`occupancy_grid`, `render(..., occupancy=)`), as in instant-vnr: a
  coarse grid of macrocells, built once per field, says where the transfer function can be
  non-transparent; samples elsewhere get sigma = 0 without evaluating the field. The image is
  unchanged as long as the grid is right, so the grid errs towards "occupied" (value margins and
  a one-cell dilation, because an INR can exceed the values it was sampled at);
- early ray termination (`render(..., early_stop=eps)`): rays are marched in chunks of steps and
  dropped once their transmittance is <= eps; what they would still have gathered is at most eps
  per channel, which is the image's error bound.

`RenderStats` counts rays, samples and field evaluations, so the savings can be measured rather
than inferred from timings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

Field = Callable[[torch.Tensor], torch.Tensor]  # x [B,3] (x,y,z) in [0,1] -> values [B] (float32)

SQRT3 = math.sqrt(3.0)  # the box's diagonal: the longest chord any ray can have through it


# ---------------------------------------------------------------------------------------------
# directions and the transfer function


def direction(theta_deg: Any, phi_deg: Any) -> np.ndarray:
    """Unit vector(s) [..., 3] for polar angle theta (from +z) and azimuth phi (+x toward +y).

    The spherical convention of the paper's light and view parameters (theta, phi in degrees):
    theta = 0 is +z, theta = 90, phi = 0 is +x, theta = 90, phi = 90 is +y. Accepts scalars or
    broadcastable arrays; float64.
    """
    t = np.deg2rad(np.asarray(theta_deg, dtype=np.float64))
    p = np.deg2rad(np.asarray(phi_deg, dtype=np.float64))
    t, p = np.broadcast_arrays(t, p)
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)


def _number_list(value: Any, key: str) -> list[float]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ValueError(f"{key}: expected a list of numbers, got {type(value).__name__}")
    out = []
    for i, v in enumerate(value):
        if not _is_number(v) or not math.isfinite(float(v)):
            raise ValueError(f"{key}: entry {i} is not a finite number ({v!r})")
        out.append(float(v))
    return out


def _check_tf(positions, colors, opacities, density, where: str) -> None:
    """One validation for `from_mapping` (naming config keys) and direct construction."""
    n = len(positions)
    if n < 2:
        raise ValueError(f"{where}.positions: need at least 2 positions, got {n}")
    for key, seq in (("colors", colors), ("opacities", opacities)):
        if len(seq) != n:
            raise ValueError(
                f"{where}.{key}: {len(seq)} entries but positions has {n} (lengths must agree)"
            )
    for i, p in enumerate(positions):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{where}.positions: entry {i} = {p:g} outside [0, 1]")
        if i and p <= positions[i - 1]:
            raise ValueError(
                f"{where}.positions: not increasing at index {i} ({p:g} after {positions[i - 1]:g})"
            )
    for i, c in enumerate(colors):
        if len(c) != 3:
            raise ValueError(f"{where}.colors: entry {i} has {len(c)} components, expected RGB (3)")
        for v in c:
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{where}.colors: entry {i} = {list(c)} outside [0, 1]")
    for i, o in enumerate(opacities):
        if not 0.0 <= o <= 1.0:
            raise ValueError(f"{where}.opacities: entry {i} = {o:g} outside [0, 1]")
    if not (math.isfinite(density) and density >= 0.0):
        raise ValueError(f"{where}.density: must be a finite number >= 0, got {density!r}")


@dataclass(frozen=True)
class TransferFunction:
    """Piecewise-linear map scalar value -> (RGB, extinction sigma), clamped outside its range.

    `density` is the extinction coefficient at opacity 1 per unit length of the [0, 1] box, so
    sigma = density * opacity and a sample of length dt absorbs 1 - exp(-sigma dt): the image
    does not depend on the step size beyond quadrature error (no opacity correction needed).
    """

    positions: tuple[float, ...]
    colors: tuple[tuple[float, float, float], ...]
    opacities: tuple[float, ...]
    density: float = 20.0

    def __post_init__(self) -> None:
        # tuples of floats whatever was passed, so the instance is hashable and comparable
        object.__setattr__(self, "positions", tuple(float(p) for p in self.positions))
        object.__setattr__(self, "colors", tuple(tuple(float(v) for v in c) for c in self.colors))
        object.__setattr__(self, "opacities", tuple(float(o) for o in self.opacities))
        object.__setattr__(self, "density", float(self.density))
        _check_tf(self.positions, self.colors, self.opacities, self.density, "TransferFunction")

    @classmethod
    def from_mapping(cls, m: Mapping, where: str = "render.transfer_function") -> TransferFunction:
        """From a config block {positions, colors, opacities[, density]}; errors name the key."""
        if not isinstance(m, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(m).__name__}")
        known = ("positions", "colors", "opacities", "density")
        unknown = sorted(str(k) for k in m if k not in known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown} (expected {list(known)})")
        for key in known[:3]:
            if key not in m:
                raise ValueError(f"{where}.{key}: missing")
        positions = _number_list(m["positions"], f"{where}.positions")
        opacities = _number_list(m["opacities"], f"{where}.opacities")
        raw = m["colors"]
        if isinstance(raw, str | bytes) or not isinstance(raw, Sequence | np.ndarray):
            raise ValueError(f"{where}.colors: expected a list of RGB triples")
        colors = [_number_list(c, f"{where}.colors[{i}]") for i, c in enumerate(raw)]
        density = m.get("density", cls.density)
        if not _is_number(density):
            raise ValueError(f"{where}.density: expected a number, got {density!r}")
        _check_tf(positions, colors, opacities, float(density), where)
        return cls(tuple(positions), tuple(tuple(c) for c in colors), tuple(opacities), density)

    def to_mapping(self) -> dict:
        return {
            "positions": list(self.positions),
            "colors": [list(c) for c in self.colors],
            "opacities": list(self.opacities),
            "density": self.density,
        }

    def __call__(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """values [B] -> rgb [B, 3], sigma [B] (float32, on the values' device)."""
        dev = values.device
        pos = torch.tensor(self.positions, dtype=torch.float32, device=dev)
        col = torch.tensor(self.colors, dtype=torch.float32, device=dev)
        opa = torch.tensor(self.opacities, dtype=torch.float32, device=dev)
        v = values.reshape(-1).to(torch.float32).clamp(self.positions[0], self.positions[-1])
        i = (torch.searchsorted(pos, v.contiguous(), right=True) - 1).clamp(0, len(pos) - 2)
        p0, p1 = pos[i], pos[i + 1]
        w = ((v - p0) / (p1 - p0)).clamp(0.0, 1.0)
        rgb = torch.lerp(col[i], col[i + 1], w[:, None])
        sigma = self.density * torch.lerp(opa[i], opa[i + 1], w)
        return rgb, sigma

    def max_sigma(self, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """The largest sigma over each value interval [lo, hi] (tensors of one shape, float32).

        The map is piecewise linear, so the maximum over an interval is at one of its ends or at
        a control point inside it (values clamp to the positions' range as in `__call__`). This
        is what decides whether a macrocell whose values lie in [lo, hi] can absorb anything.
        """
        shape = lo.shape
        pos = torch.tensor(self.positions, dtype=torch.float32, device=lo.device)
        opa = torch.tensor(self.opacities, dtype=torch.float32, device=lo.device)
        a = lo.reshape(-1).to(torch.float32).clamp(self.positions[0], self.positions[-1])
        b = hi.reshape(-1).to(torch.float32).clamp(self.positions[0], self.positions[-1])
        ends = torch.maximum(self(a)[1], self(b)[1])
        inside = (pos >= a[:, None]) & (pos <= b[:, None])  # [C, P] control points in [a, b]
        peak = (self.density * opa * inside).amax(dim=1)
        return torch.maximum(ends, peak).view(shape)


# For a [0, 1]-normalised scalar such as the Taylor-Green vortex's vorticity magnitude: the
# bulk (low values) is transparent so the vortex tubes (high values) show, cool-to-warm with
# the highest values opaque dark red. density 20: a unit-opacity region 0.05 thick absorbs 63 %.
DEFAULT_TRANSFER_FUNCTION = TransferFunction(
    positions=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    colors=(
        (0.23, 0.30, 0.75),
        (0.23, 0.30, 0.75),
        (0.55, 0.65, 0.90),
        (0.95, 0.75, 0.40),
        (0.90, 0.40, 0.15),
        (0.70, 0.05, 0.05),
    ),
    opacities=(0.0, 0.0, 0.05, 0.3, 0.7, 1.0),
    density=20.0,
)


# ---------------------------------------------------------------------------------------------
# fields


class _VolumeField:
    """Trilinear look-up of a [Z, Y, X] volume at x (x, y, z) in [0, 1]; 0 outside the box.

    `grid_sample` takes sample coordinates with the *fastest* array axis first: for an input of
    shape [N, C, D, H, W] the last grid dimension is (w, h, d) = (x, y, z). That is exactly our
    coordinate order, while the array itself is [z, y, x], so the coordinates go in unpermuted.
    align_corners=True puts -1 and +1 on the centres of the first and last voxels, which is the
    package's i / (n - 1) convention after mapping [0, 1] -> [-1, 1] (align_corners=False would
    put voxel centres at (i + 0.5) / n and shift everything by half a voxel). Border padding
    plus an explicit mask makes "outside" exactly 0 rather than fading over one extra voxel as
    zero padding would.
    """

    def __init__(self, volume: torch.Tensor) -> None:
        if not isinstance(volume, torch.Tensor):
            volume = torch.as_tensor(np.asarray(volume))
        if volume.dim() != 3:
            shape = tuple(volume.shape)
            raise ValueError(f"volume_field: expected a [Z, Y, X] volume, got {shape}")
        self.volume = volume.detach().to(torch.float32).contiguous()[None, None]
        self.device = volume.device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32).reshape(-1, 3)
        grid = (x * 2.0 - 1.0).view(1, 1, 1, -1, 3)
        v = F.grid_sample(
            self.volume, grid, mode="bilinear", padding_mode="border", align_corners=True
        ).view(-1)
        inside = ((x >= 0.0) & (x <= 1.0)).all(dim=1)
        return torch.where(inside, v, torch.zeros((), dtype=v.dtype, device=v.device))


def volume_field(volume: torch.Tensor) -> Field:
    """A [Z, Y, X] volume (values at grid.py's voxel coordinates) as a trilinear field."""
    return _VolumeField(volume)


class _INRField:
    """Channel `channel` of a callable x [B, 3] -> [B, C] (or [B]), as float32 [B]."""

    def __init__(self, inr: Any, channel: int) -> None:
        self.inr = inr
        self.channel = int(channel)
        self.device = _device_of(inr)
        n_out = getattr(getattr(inr, "network", None), "n_outputs", None)
        if n_out is not None and not 0 <= self.channel < int(n_out):
            raise ValueError(f"inr_field: channel {channel} but the INR has {n_out} output(s)")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device is not None:
            x = x.to(self.device)
        y = self.inr(x.to(torch.float32))
        if y.dim() == 2:
            y = y[:, self.channel]
        elif y.dim() != 1 or self.channel != 0:
            raise ValueError(f"inr_field: expected [B, C] or [B] output, got {tuple(y.shape)}")
        return y.to(torch.float32)


def inr_field(inr: Any, channel: int = 0) -> Field:
    """A hyperinr `INR` (or any callable x [B, 3] in [0, 1] -> [B, C]) as a scalar field.

    Points are moved to the INR's device (its table, or a module's parameters) first.
    """
    return _INRField(inr, channel)


def _device_of(obj: Any) -> torch.device | None:
    """Where a field wants its inputs: `.device`, an INR's table, or a module's parameters."""
    dev = getattr(obj, "device", None)
    if isinstance(dev, torch.device | str):
        return torch.device(dev)
    table = getattr(obj, "table", None)
    if isinstance(table, torch.Tensor):
        return table.device
    if isinstance(obj, torch.nn.Module):
        for p in obj.parameters():
            return p.device
    return None


def _eval(field: Field, x: torch.Tensor, batch: int) -> torch.Tensor:
    """field(x) in pieces of at most `batch` points, as float32 [B] on x's device."""
    out = []
    for s in range(0, len(x), batch):
        chunk = x[s : s + batch]
        v = field(chunk)
        if v.numel() != len(chunk):
            raise ValueError(
                f"field returned {tuple(v.shape)} for {len(chunk)} points (expected [B])"
            )
        out.append(v.reshape(-1).to(x.device, torch.float32))
    if not out:
        return torch.zeros(0, dtype=torch.float32, device=x.device)
    return out[0] if len(out) == 1 else torch.cat(out)


# ---------------------------------------------------------------------------------------------
# camera and ray/box intersection


@dataclass(frozen=True)
class Camera:
    """Pinhole camera on a sphere around the box centre, looking at the centre.

    eye = (0.5, 0.5, 0.5) + distance * direction(theta, phi); `fov_deg` is the vertical field
    of view. The up vector is -d direction / d theta = (-cos t cos p, -cos t sin p, sin t):
    world +z projected onto the image plane for 0 < theta < 180, and its continuous limit at the
    poles (theta 0 looks straight down -z with image-up = -(cos p, sin p, 0)), so no special
    case and no degenerate cross product. Intended for theta in [0, 180]; outside that range the
    same formula holds but the image is upside down relative to the equivalent (theta, phi).
    """

    theta_deg: float
    phi_deg: float
    distance: float = 2.2
    fov_deg: float = 40.0
    width: int = 64
    height: int = 64

    def __post_init__(self) -> None:
        for name in ("theta_deg", "phi_deg", "distance", "fov_deg"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"Camera.{name}: must be finite, got {getattr(self, name)!r}")
        if self.distance <= 0:
            raise ValueError(f"Camera.distance: must be > 0, got {self.distance}")
        if not 0 < self.fov_deg < 180:
            raise ValueError(f"Camera.fov_deg: must be in (0, 180), got {self.fov_deg}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not isinstance(v, int | np.integer) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Camera.{name}: must be a positive integer, got {v!r}")

    def frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """eye, forward, right, up (float64 [3] each; forward/right/up orthonormal)."""
        t, p = math.radians(self.theta_deg), math.radians(self.phi_deg)
        d = direction(self.theta_deg, self.phi_deg)
        eye = 0.5 + self.distance * d
        forward = -d
        up = np.array([-math.cos(t) * math.cos(p), -math.cos(t) * math.sin(p), math.sin(t)])
        right = np.cross(forward, up)
        return eye, forward, right, up

    def rays(self, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """origins [H*W, 3], unit directions [H*W, 3] (float32); pixel (row, col) at row*W+col.

        Rays pass through pixel centres; row 0 is the top of the image, column 0 its left.
        """
        eye, forward, right, up = self.frame()
        h, w = int(self.height), int(self.width)
        half = math.tan(math.radians(self.fov_deg) / 2.0)
        # image-plane offsets at unit distance, in float64 then one cast
        u = ((np.arange(w) + 0.5) / w * 2.0 - 1.0) * half * (w / h)
        v = (1.0 - (np.arange(h) + 0.5) / h * 2.0) * half
        d = forward + u[None, :, None] * right + v[:, None, None] * up  # [H, W, 3]
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        dirs = torch.as_tensor(d.reshape(-1, 3), dtype=torch.float32, device=device)
        origins = torch.as_tensor(eye, dtype=torch.float32, device=device).expand(h * w, 3)
        return origins.contiguous(), dirs


def box_interval(origins: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """t_near, t_far [B] of the rays o + t d (t >= 0) inside [0, 1]^3 (slab method).

    Rays are half-lines: t_near is clamped to 0, so a ray starting inside the box has
    t_near = 0. t_far <= t_near means a miss (box behind the origin or beside the ray); misses
    return t_near = t_far = 0 so that t_far - t_near is a safe zero length (no inf/nan). A zero
    direction component is handled exactly (inside the slab iff the origin is, faces included),
    which axis-aligned lights and rays need.
    """
    o = origins.to(torch.float32)
    d = dirs.to(torch.float32)
    zero = d == 0
    safe = torch.where(zero, torch.ones_like(d), d)
    t0 = -o / safe
    t1 = (1.0 - o) / safe
    lo = torch.minimum(t0, t1)
    hi = torch.maximum(t0, t1)
    inside = (o >= 0.0) & (o <= 1.0)
    inf = torch.tensor(float("inf"), device=o.device)
    lo = torch.where(zero, torch.where(inside, -inf, inf), lo)
    hi = torch.where(zero, torch.where(inside, inf, -inf), hi)
    t_near = lo.amax(dim=1).clamp_min(0.0)
    t_far = hi.amin(dim=1)
    hit = t_far > t_near
    zeros = torch.zeros_like(t_near)
    return torch.where(hit, t_near, zeros), torch.where(hit, t_far, zeros)


# ---------------------------------------------------------------------------------------------
# shadows


def _unit(v: Any, device: torch.device, what: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v, np.float64))
    if t.numel() != 3 or not torch.isfinite(t).all() or float(t.norm()) == 0.0:
        raise ValueError(f"{what}: expected a finite non-zero 3-vector, got {v!r}")
    return (t.reshape(3) / t.norm()).to(torch.float32).to(device)


def _transmittance(
    field, tf, points, light, n_steps, batch, occupancy=None, stats=None
) -> torch.Tensor:
    """Body of `transmittance_to_light` (already in inference mode, light a unit tensor)."""
    n = len(points)
    out = torch.ones(n, dtype=torch.float32, device=points.device)
    if n == 0:
        return out
    t_near, t_far = box_interval(points, light.expand(n, 3))
    step = (t_far - t_near) / n_steps  # [B]; 0 for points whose light ray misses the box
    mids = torch.arange(n_steps, dtype=torch.float32, device=points.device) + 0.5
    per = max(1, batch // n_steps)  # points per chunk: per * n_steps field evaluations
    for s in range(0, n, per):
        p, tn, st = points[s : s + per], t_near[s : s + per], step[s : s + per]
        dist = tn[:, None] + mids[None, :] * st[:, None]  # [P, S]
        x = (p[:, None, :] + dist[..., None] * light).reshape(-1, 3)
        _, sigma = _lookup(field, tf, x, batch, occupancy, stats)
        tau = sigma.view(len(p), n_steps).sum(dim=1) * st
        out[s : s + per] = torch.exp(-tau)
    return out


def transmittance_to_light(
    field: Field,
    tf: TransferFunction,
    points: torch.Tensor,
    light_dir: Any,
    n_steps: int = 64,
    batch: int = 32768,
) -> torch.Tensor:
    """exp(-integral of sigma(x + s L) ds) from each point [B, 3] to where its ray leaves the box.

    L is the unit vector toward the light (normalised here). Quadrature: midpoint rule with
    `n_steps` equal steps of (exit distance) / n_steps per point, i.e. never coarser than the
    fixed sqrt(3) / n_steps and exact for a constant sigma. A fixed count (not a fixed step)
    keeps every point's secondary ray the same shape, so a batch is one dense [P, n_steps]
    evaluation without masking. Points on the exit face (or whose ray misses the box) get 1.
    Returns float32 [B] on the points' device.
    """
    if n_steps < 1 or batch < 1:
        raise ValueError(f"n_steps and batch must be >= 1, got {n_steps}, {batch}")
    with torch.inference_mode():
        pts = points.to(torch.float32).reshape(-1, 3)
        light = _unit(light_dir, pts.device, "light_dir")
        out = _transmittance(field, tf, pts, light, n_steps, batch)
    return out.clone()


def shadow_volume(
    volume: torch.Tensor,
    tf: TransferFunction,
    light_dir: Any,
    n_steps: int = 64,
    batch: int = 32768,
) -> torch.Tensor:
    """Transmittance to the light at every voxel of `volume` [Z, Y, X]: the DGS ground truth.

    Voxel (k, j, i) sits at grid_coords' (i/(X-1), j/(Y-1), k/(Z-1)); the secondary rays march
    through the trilinear `volume_field(volume)` exactly as `transmittance_to_light` does, so
    `volume_field(shadow_volume(...))` is the shadow-volume approximation of the secondary-ray
    shading in `render`. Evaluated slab by slab (memory ~ batch points). float32, volume's device.
    """
    from hyperinr.grid import grid_coords, n_voxels

    if n_steps < 1 or batch < 1:
        raise ValueError(f"n_steps and batch must be >= 1, got {n_steps}, {batch}")
    field = volume_field(volume)
    dims = tuple(int(n) for n in volume.shape)
    dev = field.device
    with torch.inference_mode():
        light = _unit(light_dir, dev, "light_dir")
        total = n_voxels(dims)
        out = torch.empty(total, dtype=torch.float32, device=dev)
        slab = max(1, batch // n_steps) * 64  # coordinates held at a time
        for s in range(0, total, slab):
            x = grid_coords(dims, s, s + slab, device=dev)
            out[s : s + len(x)] = _transmittance(field, tf, x, light, n_steps, batch)
    return out.view(dims).clone()


# ---------------------------------------------------------------------------------------------
# empty-space skipping and work counters


@dataclass
class RenderStats:
    """Work counters that `render(..., stats=RenderStats())` adds to (one object may sum frames).

    rays: camera rays; samples: primary samples marched (segments inside the box, up to where a
    ray stopped); field_evals: points the field was evaluated at (primary samples in occupied
    cells plus secondary-ray samples); shadow_evals: look-ups of a `shadow` field. Counting is
    the caller's explicit choice, so there is no global state and no cost when not asked for.
    """

    rays: int = 0
    samples: int = 0
    field_evals: int = 0
    shadow_evals: int = 0


@dataclass(frozen=True, eq=False)
class OccupancyGrid:
    """Which macrocells of the box can absorb light under `tf`: the map for empty-space skipping.

    Cell (k, j, i) of resolution R is [i/R, (i+1)/R] x [j/R, (j+1)/R] x [k/R, (k+1)/R]; `lo`, `hi`
    [R, R, R] (z, y, x, like the volumes) bound the field's values in the cell (already widened by
    `occupancy_grid`) and `occupied` = tf.max_sigma(lo, hi) > 0. The bounds depend on the field
    only, so `for_tf` re-derives the map for an edited transfer function without evaluating the
    field again. `field_evals` is what building the grid cost.
    """

    lo: torch.Tensor
    hi: torch.Tensor
    occupied: torch.Tensor
    tf: TransferFunction
    field_evals: int = 0

    @property
    def resolution(self) -> int:
        return int(self.occupied.shape[-1])

    @property
    def fraction(self) -> float:
        """Share of occupied cells (what skipping can at best save is 1 - this)."""
        return float(self.occupied.float().mean())

    def for_tf(self, tf: TransferFunction) -> OccupancyGrid:
        return replace(self, occupied=tf.max_sigma(self.lo, self.hi) > 0, tf=tf)

    def to(self, device: torch.device | str) -> OccupancyGrid:
        lo, hi, occupied = self.lo.to(device), self.hi.to(device), self.occupied.to(device)
        return replace(self, lo=lo, hi=hi, occupied=occupied)

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        """bool [B]: whether each point x [B, 3] (x, y, z) lies in an occupied cell.

        Points on a face between cells belong to the upper one; points (rounding) outside the box
        to the nearest cell.
        """
        r = self.resolution
        i = (x * r).floor().long().clamp_(0, r - 1)
        return self.occupied.reshape(-1)[(i[:, 2] * r + i[:, 1]) * r + i[:, 0]]


def occupancy_grid(
    field: Field,
    tf: TransferFunction,
    resolution: int = 32,
    *,
    samples_per_cell: int = 2,
    dilate: int = 1,
    margin: float = 0.0,
    batch: int = 16384,
) -> OccupancyGrid:
    """Build the empty-space-skipping grid of `field` under `tf` (once per field).

    The field is evaluated on a lattice that splits every cell edge into `samples_per_cell`
    intervals, so each cell sees (samples_per_cell + 1)^3 points: its corners (shared with its
    neighbours) and interior points; (R * samples_per_cell + 1)^3 evaluations in all. A cell's
    value range [min, max] of its points is then widened, because the field can exceed the
    values it was sampled at between the samples:

    - by the largest difference between adjacent lattice points in the cell (a local slope times
      the spacing). For a locally quadratic field this is >= the overshoot of a peak between
      samples once a cell has >= 3 points per axis, hence samples_per_cell >= 2;
    - by `margin` (absolute, in field values), for fields with known finer detail;
    - by `dilate` cells in every direction (the range becomes the union over the neighbourhood),
      which covers features sitting on cell faces and sampling that lands on a boundary.

    A cell is occupied iff the TF's sigma can be > 0 anywhere in the widened range (NaN values
    widen it to everything). This is conservative for fields that are smooth at the lattice
    scale, not a guarantee for arbitrary ones: detail much finer than 1 / (R * samples_per_cell)
    can be missed, and then skipping drops it from the image.
    """
    r, s = int(resolution), int(samples_per_cell)
    if r < 1 or s < 2 or dilate < 0 or batch < 1:
        raise ValueError(
            f"occupancy_grid: need resolution >= 1, samples_per_cell >= 2, dilate >= 0 and "
            f"batch >= 1 (got {resolution}, {samples_per_cell}, {dilate}, {batch})"
        )
    if not (math.isfinite(margin) and margin >= 0.0):
        raise ValueError(f"occupancy_grid: margin must be a finite number >= 0, got {margin!r}")
    from hyperinr.grid import grid_coords

    device = _device_of(field) or torch.device("cpu")
    n = r * s + 1
    with torch.inference_mode():
        v = torch.empty(n**3, dtype=torch.float32, device=device)
        for start in range(0, n**3, batch):
            x = grid_coords((n, n, n), start, start + batch, device=device)
            v[start : start + len(x)] = _eval(field, x, batch)
        v = v.view(1, 1, n, n, n)  # z, y, x

        def cell_max(t: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
            return F.max_pool3d(t, kernel, stride=s)

        k = s + 1
        hi = cell_max(v, (k, k, k))
        lo = -cell_max(-v, (k, k, k))
        jump = torch.maximum(
            cell_max((v[:, :, 1:] - v[:, :, :-1]).abs(), (s, k, k)),
            torch.maximum(
                cell_max((v[:, :, :, 1:] - v[:, :, :, :-1]).abs(), (k, s, k)),
                cell_max((v[..., 1:] - v[..., :-1]).abs(), (k, k, s)),
            ),
        )
        lo, hi = lo - jump - margin, hi + jump + margin
        if dilate:
            w = 2 * dilate + 1
            hi = F.max_pool3d(hi, w, stride=1, padding=dilate)
            lo = -F.max_pool3d(-lo, w, stride=1, padding=dilate)
        lo = torch.nan_to_num(lo[0, 0], nan=-math.inf)
        hi = torch.nan_to_num(hi[0, 0], nan=math.inf)
    lo, hi = lo.clone(), hi.clone()  # out of inference mode
    return OccupancyGrid(lo, hi, tf.max_sigma(lo, hi) > 0, tf, n**3)


def _lookup(field, tf, x, batch, occupancy, stats) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb, sigma = tf(field(x)); with an occupancy grid the field runs only at points in
    occupied cells and the rest get sigma = 0 (and rgb 0), which the grid says they have."""
    if occupancy is None:
        rgb, sigma = tf(_eval(field, x, batch))
    else:
        keep = occupancy.contains(x)
        x = x[keep]
        rgb_k, sigma_k = tf(_eval(field, x, batch))
        rgb = torch.zeros(len(keep), 3, dtype=torch.float32, device=keep.device)
        sigma = torch.zeros(len(keep), dtype=torch.float32, device=keep.device)
        rgb[keep], sigma[keep] = rgb_k, sigma_k
    if stats is not None:
        stats.field_evals += len(x)
    return rgb, sigma


# ---------------------------------------------------------------------------------------------
# rendering


def render(
    field: Field,
    camera: Camera,
    tf: TransferFunction,
    *,
    n_steps: int = 128,
    shadow: Field | None = None,
    light_dir: Any = None,
    shadow_steps: int = 64,
    ambient: float = 0.0,
    background: Sequence[float] = (1.0, 1.0, 1.0),
    batch: int = 16384,
    occupancy: OccupancyGrid | None = None,
    early_stop: float | None = None,
    stats: RenderStats | None = None,
) -> torch.Tensor:
    """Front-to-back emission-absorption ray casting -> image [H, W, 3] in [0, 1] (float32).

    Samples: each ray's box interval [t_near, t_far] is cut into segments of dt = sqrt(3) /
    n_steps from t_near (the last one clipped at t_far, so at most n_steps per ray); each
    segment is sampled at its midpoint x_i and has length dt_i. With sigma_i, c_i = tf(field(x_i)):

        C = sum_i T_i (1 - exp(-sigma_i dt_i)) c_i L_i + T_final * background,
        T_i = exp(-sum_{j<i} sigma_j dt_j).

    L_i = 1 without shadows; L_i = ambient + (1 - ambient) * S_i with S_i = shadow(x_i) for a
    shadow field (a shadow volume or shadow INR returning transmittance in [0, 1]), or
    S_i = transmittance_to_light(field, tf, x_i, light_dir, shadow_steps) for secondary rays
    (the O(n^2) reference). Give at most one of `shadow` / `light_dir`. Samples with zero
    opacity contribute nothing, so their S_i is not evaluated (same image, far fewer rays).
    Runs on the field's device (`.device`, an INR's table, a module's parameters; else CPU); at
    most `batch` points per field call.

    Opt-in accelerations (the defaults give the exact sum, with all modes on identical samples):

    - `occupancy`: an `OccupancyGrid` of this field built for this `tf`; the field (primary and
      secondary rays) is evaluated only at samples in occupied cells, the others get sigma = 0.
      Same image whenever the grid is right about the empty cells.
    - `early_stop` in (0, 1): rays are marched 16 steps at a time and dropped once their
      transmittance is <= early_stop, without the background. What a dropped ray would still
      have added is in [0, T] (colours, light factors, background in [0, 1]), so the image is
      darker than the exact one by at most early_stop per channel, never brighter.
    - `stats`: a `RenderStats` the work of this call is added to.
    """
    if shadow is not None and light_dir is not None:
        raise ValueError("render: give either `shadow` (a shadow field) or `light_dir`, not both")
    if n_steps < 1 or shadow_steps < 1 or batch < 1:
        raise ValueError(
            f"render: n_steps, shadow_steps and batch must be >= 1 "
            f"(got {n_steps}, {shadow_steps}, {batch})"
        )
    if not 0.0 <= float(ambient) <= 1.0:
        raise ValueError(f"render: ambient must be in [0, 1], got {ambient}")
    bg_list = [float(b) for b in background]
    if len(bg_list) != 3:
        raise ValueError(f"render: background must be RGB (3 values), got {background!r}")
    if early_stop is not None and not 0.0 < float(early_stop) < 1.0:
        raise ValueError(f"render: early_stop must be in (0, 1) or None, got {early_stop!r}")
    if occupancy is not None and occupancy.tf != tf:
        raise ValueError(
            "render: the occupancy grid was built for another transfer function "
            "(use occupancy.for_tf(tf))"
        )

    device = _device_of(field) or torch.device("cpu")
    with torch.inference_mode():
        origins, dirs = camera.rays(device)
        light = None if light_dir is None else _unit(light_dir, device, "light_dir")
        occ = None if occupancy is None else occupancy.to(device)

        def shade(x: torch.Tensor, seg: torch.Tensor):
            """Samples x [N, 3] of lengths seg [N] -> rgb, tau, alpha, light factor."""
            rgb, sigma = _lookup(field, tf, x, batch, occ, stats)
            tau = sigma * seg
            alpha = -torch.expm1(-tau)
            if shadow is None and light is None:
                return rgb, tau, alpha, torch.ones_like(alpha)
            lit = alpha > 0
            x_lit = x[lit]
            s_i = torch.ones_like(alpha)
            if shadow is not None:
                s_i[lit] = _eval(shadow, x_lit, batch)
                if stats is not None:
                    stats.shadow_evals += len(x_lit)
            else:
                s_i[lit] = _transmittance(field, tf, x_lit, light, shadow_steps, batch, occ, stats)
            return rgb, tau, alpha, ambient + (1.0 - ambient) * s_i

        bg = torch.tensor(bg_list, dtype=torch.float32, device=device)
        image = _march(origins, dirs, shade, bg, n_steps, batch, early_stop, stats)
        image = image.clamp(0.0, 1.0).view(camera.height, camera.width, 3)
    if stats is not None:
        stats.rays += len(origins)
    return image.clone()


EARLY_STOP_STEPS = 16  # steps per chunk with early termination: a ray overshoots by < 16 steps


def _march(origins, dirs, shade, bg, n_steps, batch, early_stop, stats) -> torch.Tensor:
    """Front-to-back compositing of chunks of rays, `shade` giving each sample's colour,
    optical depth, opacity and light factor.

    Without early termination all n_steps of a chunk of rays are one dense [R, S] prefix sum
    (the exact default). With it, rays march EARLY_STOP_STEPS steps at a time and rays whose
    transmittance is <= early_stop (or that left the box) are dropped before the next chunk:
    same sample positions, T_i = exp(-(optical depth of the earlier chunks + the prefix within
    this chunk)), equal to the dense prefix sum up to float rounding. A dropped ray gets no
    background: its remaining contribution, in [0, T], is what the image loses.
    """
    device = origins.device
    t_near, t_far = box_interval(origins, dirs)
    dt = SQRT3 / n_steps
    k = torch.arange(n_steps, dtype=torch.float32, device=device)
    tau_stop = math.inf if early_stop is None else -math.log(early_stop)
    steps = n_steps if early_stop is None else min(EARLY_STOP_STEPS, n_steps)
    n_rays = len(origins)
    image = torch.empty(n_rays, 3, dtype=torch.float32, device=device)
    per = max(1, batch // steps)  # rays per chunk: at most `batch` samples per chunk
    for s in range(0, n_rays, per):
        o, d = origins[s : s + per], dirs[s : s + per]
        tn, tfar = t_near[s : s + per], t_far[s : s + per]
        depth = torch.zeros(len(o), dtype=torch.float32, device=device)  # optical depth so far
        col = torch.zeros(len(o), 3, dtype=torch.float32, device=device)
        stopped = torch.zeros(len(o), dtype=torch.bool, device=device)
        live = (tfar > tn).nonzero().squeeze(1)  # rays still marching (misses never start)
        for k0 in range(0, n_steps, steps):
            if len(live) == 0:
                break
            k1 = min(k0 + steps, n_steps)
            a = tn[live, None] + k[None, k0:k1] * dt  # [R, K] segment starts
            b = torch.minimum(a + dt, tfar[live, None])
            length = (b - a).clamp_min(0.0)
            ray_idx, step_idx = (length > 0).nonzero(as_tuple=True)
            seg = length[ray_idx, step_idx]
            mid = 0.5 * (a[ray_idx, step_idx] + b[ray_idx, step_idx])
            ray = live[ray_idx]
            x = o[ray] + mid[:, None] * d[ray]
            rgb, tau, alpha, weight_light = shade(x, seg)
            if stats is not None:
                stats.samples += len(seg)
            tau_rs = torch.zeros_like(length)
            tau_rs[ray_idx, step_idx] = tau
            csum = torch.cumsum(tau_rs, dim=1)
            before = torch.cat([torch.zeros_like(csum[:, :1]), csum[:, :-1]], dim=1)
            trans_before = torch.exp(-(depth[live, None] + before))[ray_idx, step_idx]
            col.index_add_(0, ray, (trans_before * alpha * weight_light)[:, None] * rgb)
            depth[live] += csum[:, -1]
            if k1 == n_steps:
                break
            more = tn[live] + k[k1] * dt < tfar[live]  # the next chunk has segments
            opaque = depth[live] >= tau_stop
            stopped[live] = opaque & more
            live = live[more & ~opaque]
        transmittance = torch.exp(-depth).masked_fill(stopped, 0.0)
        image[s : s + per] = col + transmittance[:, None] * bg
    return image
