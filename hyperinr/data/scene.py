"""The NVS and DGS datasets: rendered by the workflow from one real volume (rule `scene`).

The paper's MPAS images and MechHand shadow volumes are not public; the same tasks are built
here from a real volume available offline (default: a late frame of the simulated Taylor-Green
vortex, whose vortex tubes cast structured shadows and look different from every side), with
hyperinr's own renderer and a fixed transfer function:

- NVS (Sec. 4): `n_train` images from view directions spread evenly over the sphere band
  `theta_range` (a Fibonacci lattice: no two training views cluster) and `n_test` images from
  random directions of the same band (the evaluation set, unseen by construction). Parameters
  (theta, phi) in degrees; phi is periodic in [0, 360).
- DGS (Sec. 4): shadow volumes, the transmittance from every voxel toward a directional light,
  for `n_theta` x `n_phi` light directions (a grid: azimuth sweeps between two training lights
  at a fixed polar angle exist, as in the paper's Fig. 16); `n_train` of them, evenly spread,
  train.

Training frames come first (dataset.split.train_first = scene.n_train). The output is one HDF5
file (`frames`, plus the base `volume` and the transfer function as attrs, which the DGS
renders need) and the parameter sidecar (names, values, declared ranges, periodic names), both
written atomically. Deterministic for a configuration (the test views use runtime.seed-free
fixed seeds: a scene is data, not a run).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from scipy import ndimage
from tqdm.auto import tqdm

from hyperinr.config import SceneConfig
from hyperinr.data.errors import DataError
from hyperinr.infra.atomic import atomic_path
from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    TransferFunction,
    direction,
    render,
    shadow_volume,
    volume_field,
)
from hyperinr.tasks import SCENE_DATASET, scene_files

PHI_RANGE = (0.0, 360.0)
_TEST_SEED = 20231  # the NVS test directions: fixed, so the evaluation set never moves


def transfer_function(cfg: SceneConfig) -> TransferFunction:
    if cfg.transfer_function is None:
        return DEFAULT_TRANSFER_FUNCTION
    return TransferFunction.from_mapping(cfg.transfer_function, "scene.transfer_function")


def load_base_volume(cfg: SceneConfig) -> np.ndarray:
    """The volume [R, R, R] in [0, 1] (float32): frame `frame` of the HDF5 dataset, resampled
    (linear) to `resolution`^3 and normalised by its own min/max."""
    path = Path(cfg.volume_file)
    if not path.is_file():
        raise DataError(f"{path}: scene.volume_file not found")
    try:
        with h5py.File(path, "r") as h5:
            if cfg.volume_dataset not in h5:
                raise DataError(f"{path}: no dataset '{cfg.volume_dataset}' (scene.volume_dataset)")
            data = h5[cfg.volume_dataset]
            if data.ndim == 4:
                if not -data.shape[0] <= cfg.frame < data.shape[0]:
                    raise DataError(
                        f"{path}: scene.frame {cfg.frame} outside its {data.shape[0]} frames"
                    )
                vol = np.asarray(data[cfg.frame], dtype=np.float64)
            elif data.ndim == 3:
                vol = np.asarray(data[...], dtype=np.float64)
            else:
                raise DataError(f"{path}: '{cfg.volume_dataset}' is {data.ndim}-D, need 3-D or 4-D")
    except OSError as err:
        raise DataError(f"{path}: not a readable HDF5 file ({err})") from None
    if not np.isfinite(vol).all():
        raise DataError(f"{path}: the base volume holds NaN/Inf")
    zoom = [cfg.resolution / n for n in vol.shape]
    vol = ndimage.zoom(vol, zoom, order=1, mode="nearest", grid_mode=False)
    lo, hi = float(vol.min()), float(vol.max())
    if not hi > lo:
        raise DataError(f"{path}: the base volume is constant ({lo:g})")
    return ((vol - lo) / (hi - lo)).astype(np.float32)


# ----------------------------------------------------------------------------- directions


def fibonacci_band(n: int, theta_range: tuple[float, float]) -> np.ndarray:
    """[n, 2] (theta, phi) degrees, evenly spread over the sphere band (equal-area lattice)."""
    c0, c1 = np.cos(np.radians(theta_range[0])), np.cos(np.radians(theta_range[1]))
    i = np.arange(n) + 0.5
    cos_t = c0 + (c1 - c0) * i / n
    golden = 180.0 * (3.0 - np.sqrt(5.0))  # the golden angle in degrees
    phi = np.mod(i * golden, 360.0)
    return np.stack([np.degrees(np.arccos(cos_t)), phi], axis=1)


def random_band(n: int, theta_range: tuple[float, float], seed: int) -> np.ndarray:
    """[n, 2] directions uniform on the sphere band (cos theta and phi uniform)."""
    rng = np.random.default_rng(seed)
    c0, c1 = np.cos(np.radians(theta_range[0])), np.cos(np.radians(theta_range[1]))
    cos_t = rng.uniform(min(c0, c1), max(c0, c1), n)
    return np.stack([np.degrees(np.arccos(cos_t)), rng.uniform(0.0, 360.0, n)], axis=1)


def light_grid(cfg: SceneConfig) -> np.ndarray:
    """[n_theta * n_phi, 2] light directions (theta, phi) degrees, theta-major."""
    thetas = np.linspace(*cfg.light_theta_range, cfg.n_theta)
    phis = np.arange(cfg.n_phi) * (360.0 / cfg.n_phi)
    return np.array([(t, p) for t in thetas for p in phis], dtype=np.float64)


def even_training_lights(cfg: SceneConfig) -> np.ndarray:
    """Indices into `light_grid` of `n_train` evenly spread lights: the same azimuths at every
    polar angle when n_train divides by n_theta (so sweeps between two training lights at one
    theta exist), else farthest-point sampling of the light vectors."""
    n, n_theta, n_phi = cfg.n_train, cfg.n_theta, cfg.n_phi
    if n % n_theta == 0 and n // n_theta <= n_phi:
        per = n // n_theta
        phis = np.unique(np.round(np.linspace(0, n_phi, per, endpoint=False)).astype(int))
        return np.array([t * n_phi + p for t in range(n_theta) for p in phis], dtype=np.int64)
    grid = light_grid(cfg)
    vec = direction(grid[:, 0], grid[:, 1])
    chosen = [0]
    dist = np.linalg.norm(vec - vec[0], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vec - vec[nxt], axis=1))
    return np.sort(np.array(chosen, dtype=np.int64))


# ----------------------------------------------------------------------------- frames


@dataclass(frozen=True)
class Scene:
    """What rule scene writes: frames [N, ...], parameters [N, 2] (degrees), n_train first."""

    frames: np.ndarray
    params: np.ndarray
    n_train: int
    volume: np.ndarray
    tf: TransferFunction
    seconds: float


def nvs_scene(cfg: SceneConfig, device: torch.device, progress: bool = True) -> Scene:
    t0 = time.perf_counter()
    volume = load_base_volume(cfg)
    tf = transfer_function(cfg)
    views = np.concatenate(
        [
            fibonacci_band(cfg.n_train, cfg.theta_range),
            random_band(cfg.n_test, cfg.theta_range, _TEST_SEED),
        ]
    )
    field = volume_field(torch.from_numpy(volume).to(device))
    images = np.empty((len(views), cfg.image_size, cfg.image_size, 3), dtype=np.float32)
    for i, (theta, phi) in enumerate(tqdm(views, desc="nvs views", disable=not progress)):
        cam = Camera(
            float(theta),
            float(phi),
            cfg.camera_distance,
            cfg.fov_deg,
            cfg.image_size,
            cfg.image_size,
        )
        images[i] = render(field, cam, tf, n_steps=cfg.n_steps).cpu().numpy()
    return Scene(images, views, cfg.n_train, volume, tf, time.perf_counter() - t0)


def dgs_scene(cfg: SceneConfig, device: torch.device, progress: bool = True) -> Scene:
    t0 = time.perf_counter()
    volume = load_base_volume(cfg)
    tf = transfer_function(cfg)
    grid = light_grid(cfg)
    train = even_training_lights(cfg)
    order = np.concatenate([train, np.setdiff1d(np.arange(len(grid)), train)])
    lights = grid[order]
    vol_t = torch.from_numpy(volume).to(device)
    shadows = np.empty((len(lights), *volume.shape), dtype=np.float32)
    for i, (theta, phi) in enumerate(tqdm(lights, desc="dgs lights", disable=not progress)):
        light = direction(float(theta), float(phi))
        shadows[i] = shadow_volume(vol_t, tf, light, n_steps=cfg.shadow_steps).cpu().numpy()
    return Scene(shadows, lights, len(train), volume, tf, time.perf_counter() - t0)


def write_scene(task: str, cfg: SceneConfig, device: torch.device) -> tuple[Path, Path]:
    """Render the `task` dataset and publish frames.h5 + params.json in cfg.output_dir."""
    if task not in ("nvs", "dgs"):
        raise DataError(f"dataset.task: rule scene renders nvs or dgs datasets, not '{task}'")
    scene = (nvs_scene if task == "nvs" else dgs_scene)(cfg, device)
    frames_path, sidecar_path = (Path(p) for p in scene_files(cfg.output_dir))
    frames_path.parent.mkdir(parents=True, exist_ok=True)
    theta_range = cfg.theta_range if task == "nvs" else cfg.light_theta_range
    meta: dict[str, Any] = {
        "task": task,
        "transfer_function": scene.tf.to_mapping(),
        "n_train": scene.n_train,
        "scene": {k: v for k, v in asdict(cfg).items() if k != "activate"},
        "seconds": round(scene.seconds, 3),
    }
    with atomic_path(frames_path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset(SCENE_DATASET, data=scene.frames, chunks=(1, *scene.frames.shape[1:]))
            h5.create_dataset("volume", data=scene.volume)
            h5.attrs["scene"] = json.dumps(meta)
    sidecar = {
        "names": ["theta", "phi"],
        "values": scene.params.tolist(),
        "ranges": [list(theta_range), list(PHI_RANGE)],
        "periodic": ["phi"],
    }
    with atomic_path(sidecar_path) as tmp:
        Path(tmp).write_text(json.dumps(sidecar, indent=1))
    print(
        f"scene {task}: {len(scene.frames)} frames of {scene.frames.shape[1:]} "
        f"({scene.n_train} train) in {scene.seconds:.1f} s -> {frames_path}"
    )
    return frames_path, sidecar_path


def read_scene(path: str | Path) -> tuple[np.ndarray, TransferFunction, dict[str, Any]]:
    """(base volume [R, R, R] in [0, 1], transfer function, scene metadata) of a frames.h5."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            volume = np.asarray(h5["volume"][...], dtype=np.float32)
            meta = json.loads(h5.attrs["scene"])
    except (OSError, KeyError) as err:
        raise DataError(f"{path}: not a scene file written by rule scene ({err})") from None
    return volume, TransferFunction.from_mapping(meta["transfer_function"]), meta
