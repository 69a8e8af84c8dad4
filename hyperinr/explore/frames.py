"""What the explorer shows, as pure functions of a request: no web server, no threads.

The browser app (`server.py`) and `hyperinr explore --snapshot` both call `render_frame`, so a
frame seen in the browser and a frame written by a script are one computation: the browser test
compares the two pixel for pixel. Per task the "frame" differs:

- TSR: the generated INR (or LERP / ground-truth volume) ray-marched from an orbit camera;
- NVS: the parameter *is* the view, so the predicted image is shown as it is (no camera);
- DGS: the scene's base volume ray-marched with the predicted shadow field as its light factor.

Interactivity on a 2-core CPU comes from three places: a generated field is cached per
(method, parameter), so orbiting never regenerates; its occupancy grid (empty-space skipping,
built once per field from the transfer function) is cached beside it; and the server asks for a
small preview while the user drags and a refined frame when idle.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr import api
from hyperinr.data.store import DatasetStore, open_dataset
from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    OccupancyGrid,
    RenderStats,
    TransferFunction,
    occupancy_grid,
    render,
    volume_field,
)

GROUND_TRUTH = "ground truth"
LERP = "lerp"
AMBIENT = 0.25  # DGS: light reaching fully shadowed samples (as the report's shadow renders)

# Transfer-function presets over the normalised value range [0, 1].
PRESETS: dict[str, TransferFunction] = {
    "cool-warm": DEFAULT_TRANSFER_FUNCTION,
    "grey ramp": TransferFunction(
        positions=(0.0, 0.15, 1.0),
        colors=((0.2, 0.2, 0.2), (0.2, 0.2, 0.2), (1.0, 1.0, 1.0)),
        opacities=(0.0, 0.0, 0.8),
        density=20.0,
    ),
    "shell": TransferFunction(
        positions=(0.0, 0.45, 0.5, 0.55, 1.0),
        colors=((0.1, 0.3, 0.8),) * 2 + ((0.95, 0.85, 0.3),) + ((0.8, 0.2, 0.1),) * 2,
        opacities=(0.0, 0.0, 1.0, 0.0, 0.0),
        density=60.0,
    ),
}


def scaled(tf: TransferFunction, opacity_scale: float) -> TransferFunction:
    """The preset with its extinction scaled: one knob for 'see further into the volume'."""
    return replace(tf, density=tf.density * float(opacity_scale))


@dataclass(frozen=True)
class FrameRequest:
    """Everything a frame depends on (hashable: it is the cache and staleness key)."""

    method: str
    params: tuple[float, ...]  # physical, in the dataset's parameter order
    camera: Camera = Camera(60.0, 35.0)  # its width/height are the frame's size
    preset: str = "cool-warm"
    opacity_scale: float = 1.0
    n_steps: int = 96
    compare: str = "single"  # single | split | side by side (the method vs LERP)
    skip_empty: bool = True


@dataclass
class FrameResult:
    image: np.ndarray  # [H, W, 3] uint8
    generate_ms: float
    render_ms: float
    psnr_db: float | None  # vs the ground truth when the parameter is a dataset frame
    frame: int | None  # that frame's index
    field_evals: int = 0
    note: str = ""
    cached: bool = False  # the field was generated for an earlier frame (generate_ms is its cost)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] float in [0, 1] -> uint8 with round-to-nearest (one rule for app and snapshot)."""
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def build_occupancy(field_fn: Any, tf: TransferFunction) -> OccupancyGrid:
    """The explorer's occupancy grid for a field: 32^3 cells, no dilation. The per-cell
    widening by the largest neighbour jump already bounds a field that is smooth at the
    sampling lattice (1/64 of the box: a 64^3 dataset's voxel); measured on the default model
    (t 1.3 to 10, two cameras, 128 steps) the skipped image equals the unskipped one to 6e-8,
    while one cell of dilation keeps 70 % of the cells at t = 5 instead of 40 %."""
    return occupancy_grid(field_fn, tf, 32, dilate=0)


class Explorer:
    """The models, dataset and caches of one exploring session.

    `methods` maps a method name to a `hyperinr.api.Model` (networks); LERP and the ground truth
    come from the dataset. The caches hold the last few generated fields and their occupancy
    grids (a few MB each): memory stays bounded however long one explores.
    """

    def __init__(
        self,
        dataset: str | Path | DatasetStore,
        models: Mapping[str, api.Model],
        *,
        scene: str | Path | None = None,
        device: str | torch.device = "auto",
        cache_size: int = 8,
    ) -> None:
        self.ds = dataset if isinstance(dataset, DatasetStore) else open_dataset(dataset)
        self.device = api.pick_device(device)
        self.models = dict(models)
        self.task = str(self.ds.attrs.raw.get("task", "tsr"))
        self.space = api.ParameterSpace(
            tuple(self.ds.param_names),
            tuple((float(a), float(b)) for a, b in self.ds.param_range),
            tuple(bool(p) for p in self.ds.param_periodic),
        )
        for m in self.models.values():
            if m.param_names != self.space.names:
                raise ValueError(
                    f"{m.path}: model parameters {m.param_names} do not match the dataset's "
                    f"{self.space.names} ({self.ds.path})"
                )
        self.base_volume: torch.Tensor | None = None
        self.scene_tf: TransferFunction | None = None
        if self.task == "dgs":
            self._load_scene(scene)
        self._fields: OrderedDict[tuple, api.Generated] = OrderedDict()
        self._grids: OrderedDict[tuple, Any] = OrderedDict()
        self._psnr: dict[tuple, float] = {}
        self.cache_size = max(2, int(cache_size))

    # -- what exists ---------------------------------------------------------------------------

    @property
    def method_names(self) -> list[str]:
        return [*self.models, LERP, GROUND_TRUTH]

    @property
    def needs_camera(self) -> bool:
        return self.task != "nvs"

    def training_params(self) -> np.ndarray:
        return np.asarray(self.ds.params, dtype=np.float64)[np.asarray(self.ds.is_train())]

    def frame_at(self, params: tuple[float, ...]) -> int | None:
        return api.frame_index(self.ds, np.asarray(params, dtype=np.float64))

    def snap(
        self, params: tuple[float, ...], fraction: float = 0.01,
        leaving: tuple[float, ...] | None = None,
    ) -> tuple[float, ...]:  # fmt: skip
        """A parameter within `fraction` of each range of a training parameter snaps onto it,
        so the training frames (and their ground truth) are easy to hit with a slider. The
        training parameter being left (`leaving`) does not snap, or a slider moved by the
        keyboard's small steps could never leave it."""
        p = np.asarray(params, dtype=np.float64)
        train = self.training_params()
        if leaving is not None and train.size:
            train = train[np.any(train != np.asarray(leaving, dtype=np.float64)[None], axis=1)]
        if train.size == 0:
            return tuple(p.tolist())
        span = np.asarray([max(hi - lo, 1e-12) for lo, hi in self.space.ranges])
        d = np.abs(train - p[None]) / span
        best = int(np.argmin(d.max(axis=1)))
        return tuple(train[best].tolist()) if d[best].max() <= fraction else tuple(p.tolist())

    def _load_scene(self, scene: str | Path | None) -> None:
        from hyperinr.data.scene import read_scene

        if scene is None:
            files = self.ds.attrs.provenance.get("files") or []
            scene = next((f.get("path") for f in files if str(f.get("path", "")).endswith(".h5")),
                         None)  # fmt: skip
            # recorded relative to the workflow's directory: results/<ds>/dataset.zarr's root
            if scene is not None and not Path(scene).is_absolute() and not Path(scene).is_file():
                beside = Path(self.ds.path).resolve().parents[2] / scene
                scene = beside if beside.is_file() else scene
        if scene is None or not Path(scene).is_file():
            raise ValueError(
                f"{self.ds.path}: a DGS dataset renders its scene's base volume: pass --scene "
                f"(the scene's frames.h5){'' if scene is None else f'; {scene} is missing'}"
            )
        volume, tf, _ = read_scene(scene)
        self.base_volume = torch.from_numpy(volume).to(self.device)
        self.scene_tf = tf

    # -- fields --------------------------------------------------------------------------------

    def generated(self, method: str, params: tuple[float, ...]) -> api.Generated:
        """The method's field at `params`, generated once and cached (LRU)."""
        key = (method, params)
        if key in self._fields:
            self._fields.move_to_end(key)
            return self._fields[key]
        named = dict(zip(self.space.names, params, strict=True))
        if method in self.models:
            g = self.models[method].generate(**named)
        elif method == LERP:
            g = api.lerp(self.ds, device=self.device, **named)
        elif method == GROUND_TRUTH:
            g = api.ground_truth(self.ds, device=self.device, **named)
        else:
            raise ValueError(f"unknown method '{method}' (one of {', '.join(self.method_names)})")
        self._fields[key] = g
        while len(self._fields) > self.cache_size:
            self._fields.popitem(last=False)
        return g

    def _occupancy(self, key: tuple, field_fn: Any, tf: TransferFunction) -> OccupancyGrid:
        """The field's occupancy grid for `tf`: the field is sampled once per generated field;
        a new transfer function only re-thresholds the cached min/max (no network calls)."""
        grid = self._grids.get(key)
        if grid is None:
            grid = build_occupancy(field_fn, tf)
        elif grid.tf != tf:
            grid = grid.for_tf(tf)
        self._grids[key] = grid
        self._grids.move_to_end(key)
        while len(self._grids) > self.cache_size:
            self._grids.popitem(last=False)
        return grid

    # -- frames --------------------------------------------------------------------------------

    def _one(self, method: str, req: FrameRequest) -> tuple[np.ndarray, float, dict[str, Any]]:
        """(float image [H, W, 3], generation ms, info) of one method."""
        fresh = (method, req.params) not in self._fields
        g = self.generated(method, req.params)
        gen_ms = g.generate_ms
        info: dict[str, Any] = {"field_evals": 0, "cached": not fresh}
        if self.task == "nvs":
            img = g.volume01()
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            return np.clip(img[..., :3], 0.0, 1.0), gen_ms, info
        cam = req.camera
        if self.task == "dgs":
            assert self.base_volume is not None and self.scene_tf is not None
            tf = scaled(self.scene_tf, req.opacity_scale)
            field_fn = volume_field(self.base_volume)
            options: dict[str, Any] = {"shadow": g.scalar_field(0), "ambient": AMBIENT}
            grid_key: tuple = ("scene",)
        else:
            tf = scaled(PRESETS[req.preset], req.opacity_scale)
            field_fn = g.scalar_field(0)
            options = {}
            grid_key = (method, req.params)
        if req.skip_empty:
            options["occupancy"] = self._occupancy(grid_key, field_fn, tf)
            options["early_stop"] = 1e-3
        stats = RenderStats()
        img = render(field_fn, cam, tf, n_steps=req.n_steps, stats=stats, **options)
        info["field_evals"] = stats.field_evals + stats.shadow_evals
        return img.cpu().numpy(), gen_ms, info

    def render_frame(self, req: FrameRequest) -> FrameResult:
        """One frame for `req`: the method's picture (or two side by side / split with LERP),
        how long generation and rendering took, and PSNR against the ground truth when the
        parameter is a dataset frame."""
        if len(req.params) != len(self.space.names):
            raise ValueError(f"explore: {len(self.space.names)} parameter(s) expected")
        t0 = time.perf_counter()
        img, gen_ms, info = self._one(req.method, req)
        evals = info["field_evals"]
        cached = info["cached"]
        note = ""
        if req.compare != "single" and req.method != LERP:
            other, gen2, info2 = self._one(LERP, req)
            evals += info2["field_evals"]
            if req.compare == "split":
                w = img.shape[1] // 2
                img = np.concatenate([img[:, :w], other[:, w:]], axis=1)
                img[:, max(0, w - 1) : w + 1] = 1.0  # the seam
            elif req.compare == "side by side":
                img = np.concatenate([img, other], axis=1)
            else:
                raise ValueError(f"explore: compare '{req.compare}' (single, split, side by side)")
            note = f"left {req.method}, right LERP"
        render_ms = (time.perf_counter() - t0) * 1e3 - (0.0 if cached else gen_ms)
        frame = self.frame_at(req.params)
        psnr = None
        if frame is not None and req.method != GROUND_TRUTH:
            key = (req.method, req.params)
            if key not in self._psnr:  # once per field, not per frame: orbiting stays cheap
                self._psnr[key] = api.psnr(
                    self.generated(GROUND_TRUTH, req.params), self.generated(*key)
                )
            psnr = self._psnr[key]
        return FrameResult(
            image=to_uint8(img), generate_ms=gen_ms, render_ms=max(render_ms, 0.0),
            psnr_db=psnr, frame=frame, field_evals=evals, note=note, cached=cached,
        )  # fmt: skip


def parse_camera(text: str | None, size: tuple[int, int]) -> Camera:
    """`theta=60,phi=35,distance=2.2,fov=40` (any subset) -> Camera of `size` (width, height)."""
    values = {"theta": 60.0, "phi": 35.0, "distance": 2.2, "fov": 40.0}
    if text:
        for item in text.split(","):
            key, sep, val = item.partition("=")
            key = key.strip()
            if not sep or key not in values:
                raise ValueError(
                    f"--camera: '{item}' is not KEY=VALUE with KEY in {', '.join(values)}"
                )
            try:
                values[key] = float(val)
            except ValueError:
                raise ValueError(f"--camera: {key}={val!r} is not a number") from None
    return Camera(values["theta"], values["phi"], values["distance"], values["fov"], *size)


def camera_from_pose(
    position: np.ndarray, look_at: np.ndarray, fov_rad: float, size: tuple[int, int]
) -> Camera:
    """A browser orbit camera (position, look-at in the viewer's world, the volume's centre at
    the origin, +z up) as the renderer's Camera: theta from +z, phi from +x, distance. Panning
    moves the look-at point; the orbit stays about the volume's centre."""
    d = np.asarray(position, dtype=np.float64) - np.asarray(look_at, dtype=np.float64)
    r = float(np.linalg.norm(d))
    if not math.isfinite(r) or r <= 1e-6:
        r, d = 2.2, np.array([0.0, 0.0, 2.2])
    theta = math.degrees(math.acos(max(-1.0, min(1.0, d[2] / r))))
    phi = math.degrees(math.atan2(d[1], d[0]))
    fov = min(max(math.degrees(float(fov_rad)), 1.0), 170.0)
    return Camera(theta, phi, r, fov, *size)


def pose_from_camera(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """(position, look_at) in the viewer's world for a Camera: the inverse of camera_from_pose."""
    from hyperinr.render import direction

    return camera.distance * direction(camera.theta_deg, camera.phi_deg), np.zeros(3)
