"""Where in parameter space things sit: encoder positions and distillation parameters.

One home for both, because the paper builds them the same way (Sec. 3 and 5, Fig. 5), in
normalised parameter units [0, 1]^P:

- 1-D (TSR): evenly spaced along the axis (on a periodic axis without the end point, which is
  the start point again).
- n-D: Poisson-disk samples (an even spread with a minimum distance and no grid pattern: 177
  encoders for NVS) united with Gaussian-kernel samples around the training parameters
  (application knowledge: DGS's 206 encoders) and, for distillation sets, uniform samples
  (DGS, Fig. 5B). Every total is exact, because the counts come from the config.

Each part draws from its own RNG stream, np.random.default_rng([seed, role, part]), so e.g.
adding uniform samples leaves the Poisson-disk and Gaussian parts unchanged, and encoder
positions and distillation parameters do not repeat each other for one seed.

Periodic dimensions (an azimuth, period 1): the Poisson-disk radius is enforced in the plain
(non-wrapped) metric, so two points near 0 and near 1 may be closer than the radius across the
wrap; Gaussian samples wrap around (mod 1, into [0, 1)). Non-periodic dimensions reflect
Gaussian samples at 0 and 1 rather than clip them: clipping would put a point mass on the faces
(several samples at exactly 0 or 1, i.e. coinciding rows near corners), reflection keeps the
density smooth and the samples distinct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import gamma
from scipy.stats import qmc

from hyperinr.param_space.weights import check_distinct, periodic_mask, wrap_unit

Seed = int | Sequence[int]

# RNG streams: [seed, role, part]
_ENCODERS, _DISTILL = 0, 1
_POISSON, _GAUSSIAN, _UNIFORM = 0, 1, 2

_SHRINK = 0.9  # geometric radius step while bracketing the largest radius that fits n points
_REFINE = 6  # bisections of that bracket: the surplus to drop shrinks with each
# No packing of equal balls in d >= 2 is denser than the hexagonal one in the plane
_PACKING_DENSITY = np.pi / np.sqrt(12.0)


@dataclass(frozen=True)
class GaussianSpec:
    """`count` samples in total, spread round-robin over the given centres, with standard
    deviation `sigma` in normalised parameter units."""

    count: int = 0
    sigma: float = 0.05


def poisson_disk(
    n: int, d: int, seed: Seed = 0, radius: float | None = None
) -> tuple[np.ndarray, float]:
    """Exactly n points in [0, 1]^d, pairwise at least the returned radius apart.

    scipy's PoissonDisk fills the space at a given radius and may fit fewer points than asked.
    Without `radius`, the largest radius that fits n is searched (deterministic for a seed):
    from a packing estimate for n points, grow or shrink by x0.9 until n just fit, then bisect
    that bracket. The surplus of the fill is dropped one point at a time, always the one
    nearest to another (it covers the least on its own), so the kept points still cover
    [0, 1]^d (typically no empty ball of twice the radius; scipy's fill is close to, not
    exactly, maximal, so that is not a guarantee). With an explicit `radius`, fewer than n
    fitting is a ValueError.

    The returned radius is the smallest pairwise distance of the points, what they actually
    guarantee: at least the fill radius up to ~1e-7 (scipy checks distances against float32
    copies of the points), and more where dropping the surplus parted the closest pair.
    """
    if n < 1 or d < 1:
        raise ValueError(f"Poisson-disk sampling needs n >= 1 points in d >= 1 dims, got {n}, {d}")
    if radius is None:
        points, used = _largest_fitting(n, d, seed)
    else:
        if not (np.isfinite(radius) and radius > 0):
            raise ValueError(f"Poisson-disk radius must be a finite number > 0, got {radius}")
        points, used = _fill(d, float(radius), seed), float(radius)
        if len(points) < n:
            raise ValueError(
                f"Poisson-disk radius {radius:g} fits only {len(points)} points in "
                f"[0, 1]^{d}, {n} asked"
            )
    points = _drop_redundant(points, n)
    if n == 1:
        return points, used
    return points, float(cKDTree(points).query(points, k=2)[0][:, 1].min())


def gaussian_samples(
    centres: np.ndarray,
    spec: GaussianSpec,
    seed: Seed = 0,
    periodic: Sequence[bool] | None = None,
) -> np.ndarray:
    """[spec.count, d] normal offsets of std spec.sigma around the centres [C, d], sample i
    around centre i mod C (round-robin, so every centre gets its share); folded into [0, 1]:
    periodic dimensions wrap into [0, 1), the others reflect (see the module docstring)."""
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim != 2:
        raise ValueError(f"Gaussian centres must be [C, d], got shape {centres.shape}")
    if spec.count < 0:
        raise ValueError(f"Gaussian sample count must be >= 0, got {spec.count}")
    if spec.count == 0:
        return np.empty((0, centres.shape[1]))
    if len(centres) == 0:
        raise ValueError(f"{spec.count} Gaussian samples need at least one centre, got none")
    if not np.isfinite(centres).all():
        raise ValueError("Gaussian centres must be finite")
    if not (np.isfinite(spec.sigma) and spec.sigma > 0):
        raise ValueError(f"Gaussian sigma must be a finite number > 0, got {spec.sigma}")
    mask = periodic_mask(periodic, centres.shape[1])
    rng = np.random.default_rng(seed)
    around = centres[np.arange(spec.count) % len(centres)]
    return fold_unit(around + rng.normal(0.0, spec.sigma, around.shape), mask)


def uniform_samples(count: int, d: int, seed: Seed = 0) -> np.ndarray:
    """[count, d] uniform in [0, 1)^d."""
    if count < 0:
        raise ValueError(f"uniform sample count must be >= 0, got {count}")
    return np.random.default_rng(seed).random((count, d))


def fold_unit(x: np.ndarray, periodic: np.ndarray) -> np.ndarray:
    """Into the unit box: wrap (mod 1) the periodic dimensions, reflect the others at 0 and 1
    (a triangle wave of period 2, so even offsets of several units land inside)."""
    x = np.asarray(x, dtype=np.float64)
    folded = np.mod(x, 2.0)
    folded = np.where(folded > 1.0, 2.0 - folded, folded)
    return np.where(periodic, wrap_unit(x), folded)


def encoder_positions(
    n_encoders: int,
    n_param_dims: int,
    seed: int = 0,
    *,
    centres: np.ndarray | None = None,
    gaussian: GaussianSpec = GaussianSpec(),
    periodic: Sequence[bool] | None = None,
) -> np.ndarray:
    """[n_encoders, P] in [0, 1]: evenly spaced in 1-D (TSR); in n-D Poisson-disk samples
    (n_encoders - gaussian.count of them) and gaussian.count samples around `centres` (the
    training parameters, normalised), the paper's recipe (Sec. 3)."""
    if n_encoders < 1:
        raise ValueError("hyperinr.n_encoders must be >= 1")
    mask = periodic_mask(periodic, n_param_dims)
    if n_param_dims == 1:
        if gaussian.count != 0:
            raise ValueError(
                "hyperinr.encoder_gaussian.count must be 0 for a 1-D parameter "
                "(encoders are evenly spaced there)"
            )
        return _even_1d(n_encoders, bool(mask[0]))
    points = _mixture(
        n_encoders,
        n_param_dims,
        [seed, _ENCODERS],
        centres,
        gaussian,
        0,
        mask,
        ("hyperinr.n_encoders", "hyperinr.encoder_gaussian.count", "uniform"),
    )
    check_distinct(points, "encoder positions", mask)
    return points


def distill_params(
    n: int,
    n_param_dims: int,
    seed: int = 0,
    *,
    centres: np.ndarray | None = None,
    gaussian: GaussianSpec = GaussianSpec(),
    uniform: int = 0,
    periodic: Sequence[bool] | None = None,
) -> np.ndarray:
    """Normalised distillation parameters [n, P]: uniform along a 1-D axis (TSR); in n-D
    Poisson-disk samples united with gaussian.count samples around `centres` (the training
    parameters: NVS, Fig. 5A) and `uniform` uniform samples (DGS, Fig. 5B)."""
    if n < 2:
        raise ValueError("distill_set.n_samples must be >= 2")
    mask = periodic_mask(periodic, n_param_dims)
    if n_param_dims == 1:
        if gaussian.count != 0 or uniform != 0:
            raise ValueError(
                "distill_set.gaussian.count and distill_set.uniform must be 0 for a 1-D "
                "parameter (the set is evenly spaced there)"
            )
        return _even_1d(n, bool(mask[0]))
    points = _mixture(
        n,
        n_param_dims,
        [seed, _DISTILL],
        centres,
        gaussian,
        uniform,
        mask,
        ("distill_set.n_samples", "distill_set.gaussian.count", "distill_set.uniform"),
    )
    check_distinct(points, "distillation parameters", mask)
    return points


def _even_1d(n: int, periodic: bool) -> np.ndarray:
    return np.linspace(0.0, 1.0, n, endpoint=not periodic).reshape(-1, 1)


def _mixture(
    n: int,
    d: int,
    stream: list[int],
    centres: np.ndarray | None,
    gaussian: GaussianSpec,
    uniform: int,
    mask: np.ndarray,
    keys: tuple[str, str, str],
) -> np.ndarray:
    """Poisson-disk ∪ Gaussian ∪ uniform, n rows in that order; `keys` name the config
    entries of the total, the Gaussian count and the uniform count for the errors."""
    n_key, g_key, u_key = keys
    if gaussian.count < 0:
        raise ValueError(f"{g_key} must be >= 0, got {gaussian.count}")
    if uniform < 0:
        raise ValueError(f"{u_key} must be >= 0, got {uniform}")
    n_poisson = n - gaussian.count - uniform
    if n_poisson < 0:
        extra = f" + {u_key}={uniform}" if uniform else ""
        raise ValueError(f"{g_key}={gaussian.count}{extra} exceeds {n_key}={n}")
    if gaussian.count > 0 and centres is None:
        raise ValueError(f"{g_key}={gaussian.count} needs centres (the training parameters)")
    if centres is not None:
        centres = np.asarray(centres, dtype=np.float64)
        if centres.ndim != 2 or centres.shape[1] != d:
            raise ValueError(f"centres must be [C, {d}], got shape {centres.shape}")
    parts = [np.empty((0, d))]
    if n_poisson:
        parts.append(poisson_disk(n_poisson, d, [*stream, _POISSON])[0])
    if gaussian.count:
        parts.append(gaussian_samples(centres, gaussian, [*stream, _GAUSSIAN], mask))
    parts.append(uniform_samples(uniform, d, [*stream, _UNIFORM]))
    points = np.concatenate(parts)
    points[:, mask] = wrap_unit(points[:, mask])  # a Poisson point may sit at exactly 1
    return points


def _fill(d: int, radius: float, seed: Seed) -> np.ndarray:
    """scipy's Poisson-disk fill of [0, 1]^d, the same for the same seed and radius."""
    engine = qmc.PoissonDisk(
        d, radius=radius, ncandidates=_candidates(d), rng=np.random.default_rng(seed)
    )
    return engine.fill_space()


def _candidates(d: int) -> int:
    """Bridson's 30 candidates per point (scipy's default) fill the plane well; from d = 3 on
    they leave holes of about two radii (measured over seeds), which 100 close, at ~3x the
    cost of a fill that is rarely needed (the paper's n-D spaces are 2-D)."""
    return 30 if d <= 2 else 100


def _packing_radius(n: int, d: int) -> float:
    """The radius at which n points could just fit: n disjoint balls of radius r / 2, centres
    in the cube (so inside the cube grown by r / 2), at the densest packing density."""
    ball = np.pi ** (d / 2) / gamma(d / 2 + 1)
    c = (_PACKING_DENSITY / (n * ball)) ** (1.0 / d)  # (r / 2) / (1 + r)
    return 2 * c / (1 - 2 * c) if 2 * c < 1 else float(np.sqrt(d))


def _largest_fitting(n: int, d: int, seed: Seed) -> tuple[np.ndarray, float]:
    """(fill, radius): about the largest radius whose fill holds >= n points."""
    r = _packing_radius(n, d)
    points = _fill(d, r, seed)
    if len(points) >= n:  # the estimate fits already: grow until it does not
        lo, hi = r, r / _SHRINK
        while hi < np.sqrt(d) and len(grown := _fill(d, hi, seed)) >= n:
            lo, hi, points = hi, hi / _SHRINK, grown
    else:
        hi, lo = r, r * _SHRINK
        while len(points := _fill(d, lo, seed)) < n:
            hi, lo = lo, lo * _SHRINK
    for _ in range(_REFINE):
        mid = 0.5 * (lo + hi)
        if len(trial := _fill(d, mid, seed)) >= n:
            lo, points = mid, trial
        else:
            hi = mid
    return points, lo


def _drop_redundant(points: np.ndarray, n: int) -> np.ndarray:
    """n of the points, dropping one at a time the point nearest to another: of a close pair
    either covers about what both do, so the spread loses the least."""
    keep = np.arange(len(points))
    while len(keep) > n:
        nearest = cKDTree(points[keep]).query(points[keep], k=2)[0][:, 1]
        keep = np.delete(keep, int(np.argmin(nearest)))
    return points[keep]
