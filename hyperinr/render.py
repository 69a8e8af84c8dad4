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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


def _transmittance(field, tf, points, light, n_steps, batch) -> torch.Tensor:
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
        _, sigma = tf(_eval(field, x, batch))
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
    No early ray termination, so all modes see identical samples. Runs on the field's device
    (`.device`, an INR's table, a module's parameters; else CPU); at most `batch` points per
    field call.
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

    device = _device_of(field) or torch.device("cpu")
    with torch.inference_mode():
        origins, dirs = camera.rays(device)
        t_near, t_far = box_interval(origins, dirs)
        light = None if light_dir is None else _unit(light_dir, device, "light_dir")
        bg = torch.tensor(bg_list, dtype=torch.float32, device=device)
        dt = SQRT3 / n_steps
        k = torch.arange(n_steps, dtype=torch.float32, device=device)
        n_rays = len(origins)
        image = torch.empty(n_rays, 3, dtype=torch.float32, device=device)
        per = max(1, batch // n_steps)  # rays per chunk: at most `batch` samples per chunk
        for s in range(0, n_rays, per):
            o, d = origins[s : s + per], dirs[s : s + per]
            tn, tfar = t_near[s : s + per], t_far[s : s + per]
            a = tn[:, None] + k[None, :] * dt  # [R, S] segment starts
            b = torch.minimum(a + dt, tfar[:, None])
            length = (b - a).clamp_min(0.0)
            valid = length > 0
            ray_idx, step_idx = valid.nonzero(as_tuple=True)
            seg = length[ray_idx, step_idx]
            mid = 0.5 * (a[ray_idx, step_idx] + b[ray_idx, step_idx])
            x = o[ray_idx] + mid[:, None] * d[ray_idx]
            rgb, sigma = tf(_eval(field, x, batch))
            tau = sigma * seg
            alpha = -torch.expm1(-tau)
            if shadow is not None or light is not None:
                lit = alpha > 0
                s_i = torch.ones_like(alpha)
                if shadow is not None:
                    s_i[lit] = _eval(shadow, x[lit], batch)
                else:
                    s_i[lit] = _transmittance(field, tf, x[lit], light, shadow_steps, batch)
                weight_light = ambient + (1.0 - ambient) * s_i
            else:
                weight_light = torch.ones_like(alpha)
            # dense [R, S] optical depth for the exclusive prefix sum along each ray
            tau_rs = torch.zeros_like(length)
            tau_rs[ray_idx, step_idx] = tau
            csum = torch.cumsum(tau_rs, dim=1)
            before = torch.cat([torch.zeros_like(csum[:, :1]), csum[:, :-1]], dim=1)
            trans_before = torch.exp(-before)[ray_idx, step_idx]
            w = trans_before * alpha * weight_light
            col = torch.zeros(len(o), 3, dtype=torch.float32, device=device)
            col.index_add_(0, ray_idx, w[:, None] * rgb)
            col += torch.exp(-csum[:, -1])[:, None] * bg
            image[s : s + per] = col
        image = image.clamp(0.0, 1.0).view(camera.height, camera.width, 3)
    return image.clone()
