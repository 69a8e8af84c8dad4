"""Distillation targets beyond the teacher: ground-truth-corrected and hybrid batches.

The paper distils the teacher T as it is (`teacher`), so the student inherits its errors
("when CoordNet's performance was not satisfactory, HyperINR's performance also deteriorated")
and names "incorporating ground truth into distillation" as future work. Two ways, both applied
to the batches as they are drawn (any source: the precomputed set in memory or streamed, or the
teacher on demand), so one teacher and one distillation set serve every mode:

- `corrected`: C(theta) = L_GT(theta) + a * (T(theta) - L_T(theta)), where L_GT interpolates
  the ground truth between the training frames around theta and L_T does the same with the
  teacher's outputs at those frames (1-D: linear; n-D: IDW of the K nearest, exactly as the
  LERP baseline, `hyperinr.param_space.weights`). C equals the ground truth at training
  parameters for every a; between them the teacher contributes only its deviation from the
  interpolation (the dynamics it learned), scaled by the shrinkage a. Rewritten as
  C = a * T + sum_k w_k (GT_k - a * T_k), a batch needs the teacher's value (the source's
  target) plus K gathers from the residual volumes R_k = GT_k - a T_k kept in memory
  ([n_train, V, C], the size of the training frames): O(batch * K * 2^D) work, no extra set.
- `hybrid`: a fraction of every batch is ground truth at the training parameters, the rest the
  teacher's targets (the loss weights the two by their share of the batch).
- `ground_truth`: no teacher at all: every batch is ground truth at the training parameters.
  This is not distillation but the paper's Sec. 6.2-6.3 setting (HyperINR trained like any
  INR on the sparse frames, the ablations' architectures and shared-MLP comparisons), and it
  measures what distillation buys.

The shrinkage a is chosen on training frames a teacher never saw (`choose_shrinkage`): a
validation teacher (the teacher's architecture, trained without every other interior training
frame: `validation_split`) predicts those held-out frames, and the a whose corrected target is
nearest their ground truth wins. Scoring the main teacher at its own training frames, as a
leave-one-out over them would, measures nothing: it fitted them, so its departure from the
interpolation equals the truth's and the curve always falls to a = 1. Unseen frames are never
read (tests poison them with NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hyperinr.grid import flat_to_coords, n_voxels
from hyperinr.param_space.weights import interpolation_weights

SHRINKAGE_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # 0, 0.05, ..., 1


@dataclass
class Anchors:
    """What the ground-truth modes know: the training frames and the teacher at them.

    params01 [n_train, P]; ground_truth and teacher [n_train, V, C] float32 in [0, 1], V the
    full grid of `dims` (C order, x fastest: the hyperinr.grid convention). `power` and
    `periodic` shape the n-D weights exactly as HyperINR's lookup (1-D ignores `power`)."""

    params01: np.ndarray
    ground_truth: torch.Tensor
    teacher: torch.Tensor
    dims: tuple[int, ...]
    k_nearest: int
    power: float = 1.0
    periodic: Sequence[bool] | None = None

    def weights(self, params01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training-frame indices and interpolation weights [Q, K] of each query parameter."""
        return interpolation_weights(
            self.params01, params01, self.k_nearest, power=self.power, periodic=self.periodic
        )


def validation_split(params01: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held): indices into the training frames. The validation teacher trains on `kept`
    only and the shrinkage is scored on `held` alone, so every scored teacher value is a
    prediction, as it is between training frames at distillation time.

    1-D: every other interior frame in parameter order (positions 1, 3, 5, ...), so each held
    frame sits between two kept ones, twice the training spacing apart (an end frame would be
    extrapolated). n-D: a seeded random half, each held view interpolated from the kept ones
    exactly as the anchors interpolate. Needs at least 3 training frames."""
    p = np.asarray(params01, dtype=np.float64)
    n = len(p)
    if n < 3:
        raise ValueError(f"choosing the shrinkage a needs >= 3 training frames, got {n}")
    if p.shape[1] == 1:
        order = np.argsort(p[:, 0], kind="stable")
        held = np.sort(order[1:-1:2])
    else:
        held = np.sort(np.random.default_rng(seed).permutation(n)[: n // 2])
    kept = np.setdiff1d(np.arange(n), held)
    return kept, held


def shrinkage_curve(
    anchors: Anchors, held: Sequence[int], grid: tuple[float, ...] = SHRINKAGE_GRID
) -> dict:
    """Mean squared error of the corrected target at each held frame, per a in `grid`.

    `anchors.teacher` holds a teacher that never trained on the `held` frames (the validation
    teacher) at every training frame. At a held frame k the target is built as distillation
    builds it between training frames: L_GT and L_T interpolate the kept frames around k,
    C_a = L_GT + a (T_k - L_T), scored against GT_k. Returns {"a", "mse", "scored" (training
    frame indices), "a_least_squares"} (the unconstrained optimum, for the record)."""
    p = anchors.params01
    held = [int(k) for k in held]
    kept = np.setdiff1d(np.arange(len(p)), held)
    if not held or len(kept) == 0:
        raise ValueError(f"shrinkage: {len(held)} held-out and {len(kept)} kept training frames")
    gt, te = anchors.ground_truth.double(), anchors.teacher.double()
    idx, w = interpolation_weights(
        p[kept],
        p[held],
        min(anchors.k_nearest, len(kept)),
        power=anchors.power,
        periodic=anchors.periodic,
    )
    num = den = 0.0
    sums = np.zeros(len(grid))
    for row, k in enumerate(held):
        w_t = torch.from_numpy(w[row]).double().reshape(-1, 1, 1).to(gt.device)
        near = torch.from_numpy(kept[idx[row]]).to(gt.device)
        d_gt = gt[k] - (w_t * gt[near]).sum(0)  # truth off the interpolation of kept frames
        d_te = te[k] - (w_t * te[near]).sum(0)  # the teacher's prediction of that departure
        num += float((d_gt * d_te).sum())
        den += float((d_te * d_te).sum())
        for g, a in enumerate(grid):
            sums[g] += float(((d_gt - a * d_te) ** 2).mean())
    return {
        "a": list(grid),
        "mse": (sums / len(held)).tolist(),
        "scored": held,
        "a_least_squares": num / den if den > 0 else 0.0,
    }


SHRINKAGE_RULE = "validation teacher: least MSE on training frames it never trained on"


def choose_shrinkage(
    anchors: Anchors, held: Sequence[int], grid: tuple[float, ...] = SHRINKAGE_GRID
) -> dict:
    """The a of the grid with the least held-out error (ties: the smaller a), with the whole
    curve and the rule's name, for info.json and the report."""
    curve = shrinkage_curve(anchors, held, grid)
    best = int(np.argmin(curve["mse"]))
    return {**curve, "chosen": curve["a"][best], "rule": SHRINKAGE_RULE}


def trilinear(volumes: torch.Tensor, dims: tuple[int, ...], k: torch.Tensor, x: torch.Tensor):
    """volumes [N, V, C] on the grid `dims`; sample volume k[b] at x[b] in [0, 1]^D, N-linearly
    (exact at grid points: full and on-demand sets sample there; subset sets anywhere)."""
    d = len(dims)
    sizes = torch.tensor(list(reversed(dims)), device=x.device)  # x first, as coordinates
    pos = x.clamp(0, 1) * (sizes - 1)
    lo = pos.floor().long().clamp(max=(sizes - 2).clamp(min=0))
    frac = pos - lo
    strides = [1]
    for n in reversed(dims[1:]):  # C order: x fastest
        strides.append(strides[-1] * n)
    strides_t = torch.tensor(strides, device=x.device)
    out = torch.zeros(len(x), volumes.shape[-1], dtype=volumes.dtype, device=x.device)
    for corner in range(2**d):
        bits = torch.tensor([(corner >> i) & 1 for i in range(d)], device=x.device)
        idx = ((lo + bits).clamp(max=sizes - 1) * strides_t).sum(1)
        weight = torch.where(bits.bool(), frac, 1 - frac).prod(1, keepdim=True)
        out += weight.to(volumes.dtype) * volumes[k, idx]
    return out


class CorrectedTargets:
    """C = a * (source's teacher target) + sum_k w_k R_k(x), R_k = GT_k - a T_k."""

    def __init__(self, source: Any, anchors: Anchors, a: float) -> None:
        self.source, self.anchors, self.a = source, anchors, float(a)
        self.params01 = source.params01
        idx, w = anchors.weights(self.params01)
        device = anchors.ground_truth.device
        self.idx = torch.from_numpy(idx).to(device)  # [N_D, K] training frames of each param
        self.w = torch.from_numpy(w).float().to(device)
        self.residual = anchors.ground_truth - self.a * anchors.teacher  # [n_train, V, C]

    def sample(self, step: int, gen: torch.Generator):
        j, x, y = self.source.sample(step, gen)
        out = self.a * y
        for kk in range(self.idx.shape[1]):
            frames = self.idx[j, kk]
            out = out + self.w[j, kk : kk + 1] * trilinear(
                self.residual, self.anchors.dims, frames, x
            )
        return j, x, out

    def close(self) -> None:
        self.source.close()

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "shrinkage": self.a}


class GroundTruthTargets:
    """Batches of the training frames alone: parameter (a training frame) and voxel uniform,
    the batch source of targets_mode ground_truth. `frames` [n_train, V, C] in [0, 1]."""

    def __init__(
        self, frames: torch.Tensor, params01: np.ndarray, dims: tuple[int, ...], batch: int
    ) -> None:
        if len(frames) != len(params01):
            raise ValueError(f"{len(frames)} training frames for {len(params01)} parameters")
        self.frames, self.params01, self.dims, self.batch = frames, params01, dims, batch
        self.n_points = n_voxels(dims)

    def sample(self, step: int, gen: torch.Generator):
        device = self.frames.device
        j = torch.randint(len(self.params01), (self.batch,), generator=gen).to(device)
        v = torch.randint(self.n_points, (self.batch,), generator=gen).to(device)
        return j, flat_to_coords(v, self.dims), self.frames[j, v]

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"loader": "ground_truth", "training_frames": len(self.params01)}


class HybridTargets:
    """A share `fraction` of every batch is ground truth at the training parameters (indices
    N_D.. in params01), the rest comes from the source."""

    def __init__(self, source: Any, anchors: Anchors, fraction: float, batch: int) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"hyperinr.hybrid_fraction must be in (0, 1), got {fraction}")
        self.source, self.anchors = source, anchors
        self.n_gt = max(1, round(fraction * batch))
        self.offset = len(source.params01)
        self.params01 = np.concatenate([source.params01, anchors.params01])
        self.n_points = n_voxels(anchors.dims)

    def sample(self, step: int, gen: torch.Generator):
        j, x, y = self.source.sample(step, gen)
        device = self.anchors.ground_truth.device
        f = torch.randint(len(self.anchors.params01), (self.n_gt,), generator=gen).to(device)
        v = torch.randint(self.n_points, (self.n_gt,), generator=gen).to(device)
        x_gt = flat_to_coords(v, self.anchors.dims)
        y_gt = self.anchors.ground_truth[f, v]
        keep = len(j) - self.n_gt  # the batch keeps its size
        j = torch.cat([j[:keep], (f + self.offset).to(j.device)])
        return j, torch.cat([x[:keep], x_gt.to(x.device)]), torch.cat([y[:keep], y_gt.to(y.device)])

    def close(self) -> None:
        self.source.close()

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "hybrid_samples_per_batch": self.n_gt}
