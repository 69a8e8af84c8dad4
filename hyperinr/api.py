"""The public Python API: load a trained model, generate the INR for a parameter, use it.

The pipeline's stages speak in normalised units ([0, 1] parameters, [0, 1] values, flat
coordinate rows); a notebook user speaks in the dataset's units ("t = 3.7", vorticity). This
module is the one translation between the two, so that a user never chains the internal calls
(model loader, parameter normalisation, `generate`, grid evaluation, value rescaling) and every
method, networks and interpolation alike, answers through the same object:

    m = hyperinr.load("results/tgv64_vorticity/hyperinr/model.pt")
    inr = m.generate(t=3.7)            # physical, named parameters
    inr(xyz)                           # values in physical units at points in [0, 1]^D
    inr.volume()                       # the dataset's grid, numpy
    inr.render(Camera(60, 35), tf)     # the project's ray marcher

`hyperinr.lerp(dataset, t=3.7)` and `hyperinr.ground_truth(dataset, t=4.0)` return the same
kind of object, so baselines sit beside the networks (the explorer's method switch relies on it).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.data.store import DatasetStore, open_dataset
from hyperinr.grid import field_values
from hyperinr.infra.timing import timer
from hyperinr.models import registry
from hyperinr.models.model_file import model_kind
from hyperinr.param_space.normalise import normalise_params
from hyperinr.param_space.weights import interpolation_weights
from hyperinr.render import (
    DEFAULT_TRANSFER_FUNCTION,
    Camera,
    TransferFunction,
    render,
    volume_field,
)

__all__ = [
    "Generated",
    "Model",
    "ground_truth",
    "lerp",
    "load",
    "parameter_values",
]

Field01 = Callable[[torch.Tensor], torch.Tensor]  # x [B, D] in [0, 1] -> [B, C] in [0, 1]
EVAL_BATCH = 65536  # points per network call: bounded memory, full vector units


def pick_device(name: str | torch.device = "auto") -> torch.device:
    """`auto`: CUDA when present. Unlike the stages' device choice this claims no GPU slot of a
    cluster node: an interactive session is not a scheduled job."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' asked for but CUDA is not available")
    return device


@dataclass(frozen=True)
class ParameterSpace:
    """Names, physical ranges and periodicity of a dataset's scene parameters."""

    names: tuple[str, ...]
    ranges: tuple[tuple[float, float], ...]
    periodic: tuple[bool, ...]

    def values(self, args: Sequence[Any], named: Mapping[str, Any], where: str) -> np.ndarray:
        """Physical values [P] from positional and/or named arguments; one-line errors."""
        return parameter_values(self, args, named, where)

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        return normalise_params(values, self.ranges)


def parameter_values(
    space: ParameterSpace, args: Sequence[Any], named: Mapping[str, Any], where: str
) -> np.ndarray:
    """Resolve `generate(3.7)` / `generate(t=3.7)` / `generate(theta=.., phi=..)` to [P] floats.

    A value outside the trained range warns rather than fails: extrapolation is a legitimate
    question to ask a model, but its answer is not backed by data. Periodic parameters wrap.
    """
    names = space.names
    if args and named:
        raise ValueError(f"{where}: give the parameters by position or by name, not both")
    if named:
        unknown = sorted(set(named) - set(names))
        if unknown:
            raise ValueError(
                f"{where}: unknown parameter(s) {', '.join(unknown)} (this model has "
                f"{', '.join(names)})"
            )
        missing = [n for n in names if n not in named]
        if missing:
            raise ValueError(f"{where}: missing parameter(s) {', '.join(missing)}")
        raw = [named[n] for n in names]
    else:
        raw = list(np.asarray(args, dtype=np.float64).reshape(-1)) if args else []
        if len(raw) != len(names):
            raise ValueError(
                f"{where}: needs {len(names)} parameter value(s) ({', '.join(names)}), "
                f"got {len(raw)}"
            )
    values = np.asarray([float(v) for v in raw], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where}: parameter values must be finite, got {values.tolist()}")
    for i, (lo, hi) in enumerate(space.ranges):
        if space.periodic[i] and hi > lo:
            values[i] = lo + (values[i] - lo) % (hi - lo)
        elif not lo - 1e-9 * max(1.0, abs(hi - lo)) <= values[i] <= hi + 1e-9 * max(
            1.0, abs(hi - lo)
        ):
            warnings.warn(
                f"{where}: {names[i]} = {values[i]:g} lies outside the trained range "
                f"[{lo:g}, {hi:g}] (extrapolation)",
                stacklevel=3,
            )
    return values


@dataclass
class Generated:
    """One method's field at one parameter: what a model generates, in physical units.

    `field01` is the package-internal form (x in [0, 1]^D -> values in [0, 1]); the public
    methods rescale by `value_range`. `frame` holds the exact array for methods that are
    arrays (LERP, ground truth), so `volume()` on the dataset's grid returns it unresampled.
    """

    method: str
    params: dict[str, float]
    dims: tuple[int, ...]
    n_channels: int
    value_range: tuple[float, float]
    device: torch.device
    field01: Field01
    generate_ms: float = 0.0
    frame01: np.ndarray | None = None  # [*dims(, C)] in [0, 1] for array-backed methods
    batch: int = EVAL_BATCH
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_spatial(self) -> int:
        return len(self.dims)

    def to_physical(self, values01: np.ndarray) -> np.ndarray:
        lo, hi = self.value_range
        return (lo + np.asarray(values01, dtype=np.float64) * (hi - lo)).astype(np.float32)

    @torch.inference_mode()
    def values01(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] in [0, 1] -> [B, C] in [0, 1], `batch` points per call, on x's device."""
        x = x.to(self.device, torch.float32).reshape(-1, self.n_spatial)
        out = [self.field01(x[s : s + self.batch]).float() for s in range(0, len(x), self.batch)]
        if not out:
            return torch.zeros(0, self.n_channels, device=self.device)
        return torch.cat(out).reshape(len(x), -1)

    def __call__(self, xyz: Any) -> Any:
        """Values in physical units at points [B, D] (x, y[, z] in [0, 1], hyperinr.grid's
        convention); numpy in -> numpy out [B] (one channel) or [B, C]; torch in -> torch out."""
        is_tensor = isinstance(xyz, torch.Tensor)
        x = xyz if is_tensor else torch.as_tensor(np.asarray(xyz, dtype=np.float32))
        if x.dim() != 2 or x.shape[1] != self.n_spatial:
            raise ValueError(
                f"{self.method}: expected points [B, {self.n_spatial}], got {tuple(x.shape)}"
            )
        v = self.values01(x).cpu().numpy()
        v = self.to_physical(v[:, 0] if self.n_channels == 1 else v)
        return torch.from_numpy(v) if is_tensor else v

    def volume01(self, shape: Sequence[int] | None = None) -> np.ndarray:
        """The field on a grid [*shape(, C)] in [0, 1]: `shape` None is the dataset's grid."""
        dims = tuple(int(n) for n in (self.dims if shape is None else shape))
        if len(dims) != self.n_spatial or min(dims) < 1:
            raise ValueError(f"{self.method}: volume shape {dims} for {self.n_spatial}-D data")
        if self.frame01 is not None and dims == tuple(self.dims):
            return self.frame01.astype(np.float32, copy=False)
        out = field_values(self.values01, dims, self.n_channels, self.batch, self.device)
        return out.reshape(*dims, self.n_channels) if self.n_channels > 1 else out.reshape(dims)

    def volume(self, shape: Sequence[int] | None = None) -> np.ndarray:
        """The field on a grid, in physical units (numpy float32): the dataset's grid by default,
        any other resolution of the same domain when `shape` is given (slowest axis first)."""
        return self.to_physical(self.volume01(shape))

    def scalar_field(self, channel: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
        """x [B, 3] -> channel values [B] in [0, 1]: what the renderer marches through. Array
        methods on their own grid are looked up trilinearly (as the report's renders do)."""
        if not 0 <= channel < self.n_channels:
            raise ValueError(f"{self.method}: channel {channel} of {self.n_channels}")
        if self.frame01 is not None:
            vol = self.frame01 if self.n_channels == 1 else self.frame01[..., channel]
            return volume_field(torch.from_numpy(np.ascontiguousarray(vol)).to(self.device))
        return lambda x: self.values01(x)[:, channel]

    def render(
        self,
        camera: Camera | Mapping[str, Any] | None = None,
        transfer_function: TransferFunction | Mapping[str, Any] | None = None,
        size: int | tuple[int, int] | None = None,
        *,
        channel: int = 0,
        **options: Any,
    ) -> np.ndarray:
        """A volume rendering [H, W, 3] float32 in [0, 1] with the project's ray marcher.

        The transfer function's positions are in the dataset's normalised value range [0, 1]
        (what every stage renders in). `size` (an int or (width, height)) overrides the camera's;
        `options` go to `hyperinr.render.render` (n_steps, shadow, occupancy, ...).
        """
        if self.n_spatial != 3:
            raise ValueError(f"{self.method}: rendering needs a 3-D volume, dims {self.dims}")
        cam = as_camera(camera)
        if size is not None:
            w, h = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
            cam = Camera(cam.theta_deg, cam.phi_deg, cam.distance, cam.fov_deg, w, h)
        tf = as_transfer_function(transfer_function)
        image = render(self.scalar_field(channel), cam, tf, **options)
        return image.cpu().numpy()


def as_camera(camera: Camera | Mapping[str, Any] | None) -> Camera:
    """A Camera from a Camera, a mapping of its fields, or None (the report's default view)."""
    if camera is None:
        return Camera(60.0, 35.0)
    if isinstance(camera, Camera):
        return camera
    try:
        return Camera(**dict(camera))
    except TypeError as err:
        raise ValueError(f"camera: {err}") from None


def as_transfer_function(tf: TransferFunction | Mapping[str, Any] | None) -> TransferFunction:
    if tf is None:
        return DEFAULT_TRANSFER_FUNCTION
    if isinstance(tf, TransferFunction):
        return tf
    return TransferFunction.from_mapping(tf, "transfer_function")


# ---------------------------------------------------------------------------------------------
# models


@dataclass
class Model:
    """A trained model of any kind, ready to generate fields at physical parameters.

    `kind` is the model file's own record (hyperinr.models.registry knows them all);
    `make(theta01)` is the kind's way of producing a field for one normalised parameter, and
    is the only kind-specific part.
    """

    path: Path
    kind: str
    space: ParameterSpace
    dims: tuple[int, ...]
    value_range: tuple[float, float]
    n_channels: int
    device: torch.device
    make: Callable[[np.ndarray], Field01]
    dataset: Path | None = None
    state: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.space.names

    @property
    def param_range(self) -> tuple[tuple[float, float], ...]:
        return self.space.ranges

    def generate(self, *values: float, **named: float) -> Generated:
        """The field at one parameter (physical units, by position or by name). For HyperINR this
        is the paper's generation: K tables blended into one standalone INR (timed)."""
        theta = self.space.values(values, named, f"{self.path}")
        theta01 = self.space.to_unit(theta)
        with timer(self.device) as elapsed:
            field01 = self.make(theta01)
        ms = elapsed.ms
        return Generated(
            method=self.kind,
            params=dict(zip(self.param_names, theta.tolist(), strict=True)),
            dims=self.dims,
            n_channels=self.n_channels,
            value_range=self.value_range,
            device=self.device,
            field01=field01,
            generate_ms=ms,
        )


def _space_from_meta(meta: Mapping[str, Any]) -> ParameterSpace:
    names = tuple(str(n) for n in meta["param_names"])
    ranges = tuple((float(a), float(b)) for a, b in np.asarray(meta["param_range"]).reshape(-1, 2))
    periodic = tuple(bool(p) for p in (meta.get("periodic") or [False] * len(names)))
    return ParameterSpace(names, ranges, periodic)


def _space_from_store(ds: DatasetStore) -> ParameterSpace:
    return ParameterSpace(
        tuple(ds.param_names),
        tuple((float(a), float(b)) for a, b in ds.param_range),
        tuple(bool(p) for p in ds.param_periodic),
    )


def _default_dataset(path: Path) -> Path | None:
    """results/<ds>/<method>/model.pt -> results/<ds>/dataset.zarr (the pipeline's layout);
    ablation models sit one floor deeper."""
    for parent in list(path.resolve().parents)[1:4]:
        if (parent / "dataset.zarr").is_dir():
            return parent / "dataset.zarr"
    return None


def load(
    path: str | Path,
    *,
    dataset: str | Path | None = None,
    device: str | torch.device = "auto",
) -> Model:
    """Any trained model file of the pipeline (HyperINR, teacher, baselines, independent INRs).

    HyperINR files carry their parameter space and value range; the teacher and baselines are
    read against their dataset (by default the pipeline's `results/<ds>/dataset.zarr` beside
    them), which also gives explorers the ground truth.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    dev = pick_device(device)
    kind = model_kind(path)
    impl = registry.get(kind).impl()
    module, saved = impl.load(path, dev)
    meta = saved.get("meta", saved) if isinstance(saved, dict) else {}
    ds_path = Path(dataset) if dataset is not None else _default_dataset(path)
    store = open_dataset(ds_path) if ds_path is not None else None
    if "param_range" in meta and "value_range" in meta:
        space = _space_from_meta(meta)
        if store is not None and len(store.param_periodic) == len(space.names):
            space = ParameterSpace(space.names, space.ranges, tuple(store.param_periodic))
        value_range = (float(meta["value_range"][0]), float(meta["value_range"][1]))
        dims = tuple(int(n) for n in meta["dims"])
    elif store is not None:
        space, value_range, dims = _space_from_store(store), store.value_range, store.dims
    else:
        raise ValueError(
            f"{path}: a {kind} file records no parameter space; pass dataset= (its dataset.zarr)"
        )
    return Model(
        path=path, kind=kind, space=space, dims=tuple(dims),
        value_range=(float(value_range[0]), float(value_range[1])),
        n_channels=impl.n_outputs(module), device=dev,
        make=lambda theta01: impl.field(module, theta01), dataset=ds_path, state={"meta": meta},
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# array methods: data interpolation and the ground truth


def _dataset(dataset: str | Path | DatasetStore) -> DatasetStore:
    return dataset if isinstance(dataset, DatasetStore) else open_dataset(dataset)


def _array_generated(
    ds: DatasetStore, method: str, theta: np.ndarray, frame01: np.ndarray, ms: float,
    device: torch.device, info: dict[str, Any],
) -> Generated:  # fmt: skip
    frame01 = np.asarray(frame01, dtype=np.float32)
    vol = torch.from_numpy(np.ascontiguousarray(frame01)).to(device)
    dims = tuple(ds.dims)
    n_ch = ds.n_channels

    def field01(x: torch.Tensor) -> torch.Tensor:
        if len(dims) == 3:
            chans = [vol] if n_ch == 1 else [vol[..., c] for c in range(n_ch)]
            return torch.stack([volume_field(c)(x) for c in chans], dim=1)
        return _bilinear(vol, x, n_ch)

    return Generated(
        method=method, params=dict(zip(ds.param_names, theta.tolist(), strict=True)),
        dims=dims, n_channels=n_ch, value_range=tuple(ds.value_range), device=device,
        field01=field01, generate_ms=ms, frame01=frame01, info=info,
    )  # fmt: skip


def _bilinear(image: torch.Tensor, x: torch.Tensor, n_ch: int) -> torch.Tensor:
    """An image [Y, X(, C)] at points (x, y) in [0, 1]: grid_sample with the grid's corner
    convention (align_corners=True puts pixel i of n at i / (n - 1))."""
    img = image if n_ch > 1 else image[..., None]
    src = img.permute(2, 0, 1)[None].float()
    grid = (x.float() * 2.0 - 1.0).view(1, 1, -1, 2)
    out = torch.nn.functional.grid_sample(
        src, grid, mode="bilinear", padding_mode="border", align_corners=True
    )
    return out.view(n_ch, -1).T


def lerp(
    dataset: str | Path | DatasetStore,
    *values: float,
    k: int = 4,
    power: float = 1.0,
    device: str | torch.device = "cpu",
    **named: float,
) -> Generated:
    """Data interpolation (the paper's LERP baseline) at a physical parameter: the training
    frames blended with the same weights the pipeline's `predict --method lerp` uses."""
    ds = _dataset(dataset)
    space = _space_from_store(ds)
    theta = space.values(values, named, f"{ds.path}")
    t0 = time.perf_counter()
    train = np.flatnonzero(ds.is_train())
    if train.size == 0:
        raise ValueError(f"{ds.path}: split.train is empty; LERP has nothing to interpolate")
    p = ds.normalised_params()
    periodic = ds.param_periodic if any(ds.param_periodic) else None
    idx, w = interpolation_weights(
        p[train], space.to_unit(theta)[None], min(k, train.size), power=power, periodic=periodic
    )
    acc = np.zeros(ds.frame_shape, dtype=np.float64)
    for j, wj in zip(train[idx[0]], w[0], strict=True):
        if wj != 0.0:
            acc += wj * np.asarray(ds.frames[int(j)], dtype=np.float64)
    ms = (time.perf_counter() - t0) * 1e3
    info = {"frames": [int(j) for j in train[idx[0]]], "weights": [float(v) for v in w[0]]}
    return _array_generated(ds, "lerp", theta, acc, ms, pick_device(device), info)


def frame_index(ds: DatasetStore, theta: np.ndarray, tol: float = 1e-6) -> int | None:
    """The dataset frame at exactly these physical parameters (within `tol` of each range's
    span), or None: the ground truth exists only there."""
    span = np.asarray([max(hi - lo, 1e-12) for lo, hi in ds.param_range])
    d = np.abs((np.asarray(ds.params, dtype=np.float64) - theta[None]) / span)
    periodic = np.asarray(ds.param_periodic, dtype=bool)
    if periodic.any():
        d[:, periodic] = np.minimum(d[:, periodic], 1.0 - d[:, periodic])
    best = int(np.argmin(d.max(axis=1)))
    return best if d[best].max() <= tol else None


def ground_truth(
    dataset: str | Path | DatasetStore,
    *values: float,
    device: str | torch.device = "cpu",
    **named: float,
) -> Generated:
    """The dataset's own frame at these parameters; a parameter that is not a frame is an error
    (there is no ground truth between frames)."""
    ds = _dataset(dataset)
    space = _space_from_store(ds)
    theta = space.values(values, named, f"{ds.path}")
    i = frame_index(ds, theta)
    if i is None:
        raise ValueError(f"{ds.path}: no frame at {dict(zip(space.names, theta.tolist()))}")
    frame = np.asarray(ds.frames[i], dtype=np.float32)
    info = {"frame": i, "train": bool(ds.is_train()[i])}
    return _array_generated(ds, "ground truth", theta, frame, 0.0, pick_device(device), info)


def psnr(reference: Generated, other: Generated) -> float:
    """PSNR (dB) of `other` against `reference` on the dataset's grid, in physical units with
    the reference frame's own range as peak: the same definition as the pipeline's metrics.csv
    (hyperinr.evaluate.metrics), so a number shown live matches the report's."""
    a = reference.volume().astype(np.float64)
    b = other.volume(reference.dims).astype(np.float64)
    peak = float(a.max() - a.min())
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return math.nan if peak <= 0.0 else 10.0 * math.log10(peak**2 / mse)
