"""A small read-only view of the dataset and prediction stores, for the evaluation stage.

Evaluation only needs a few things from the Zarr layout written by `hyperinr.data.store`
(frames normalised to [0, 1], params, attrs), so it reads them directly and checks them with
messages that name the store. Frames are always read one at a time.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from hyperinr.atomic import atomic_path

#: Methods drawn first, in this order; any other method follows in the order it was given.
METHOD_ORDER = ("hyperinr", "teacher", "lerp")


def order_methods(methods) -> list[str]:
    methods = list(dict.fromkeys(methods))
    first = [m for m in METHOD_ORDER if m in methods]
    return first + [m for m in methods if m not in METHOD_ORDER]


def _open_group(path: Path, what: str) -> zarr.Group:
    if not path.exists():
        raise FileNotFoundError(f"{what} store not found: {path}")
    try:
        return zarr.open_group(str(path), mode="r")
    except Exception as exc:  # zarr raises several types for a non-store directory
        raise ValueError(f"{path}: not a readable Zarr group ({exc})") from exc


@dataclass(frozen=True)
class DatasetView:
    """The dataset store, read lazily (frames) or eagerly (params and attrs)."""

    path: Path
    frames: zarr.Array  # [n_frames, *spatial(, channel)], normalised to [0, 1]
    params: np.ndarray  # [n_frames, n_params] float64
    param_names: list[str]
    param_range: np.ndarray  # [n_params, 2]
    value_range: tuple[float, float]
    train: np.ndarray  # sorted training frame indices
    n_channels: int
    attrs: dict[str, Any]

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.frames.shape[1:])

    @property
    def channel_axis(self) -> int | None:
        return -1 if self.n_channels > 1 else None

    @property
    def n_spatial(self) -> int:
        return len(self.frame_shape) - (1 if self.n_channels > 1 else 0)

    @property
    def name(self) -> str:
        if self.attrs.get("name"):
            return str(self.attrs["name"])
        return self.path.parent.name if self.path.stem == "dataset" else self.path.stem

    def is_train(self) -> np.ndarray:
        mask = np.zeros(self.n_frames, dtype=bool)
        mask[self.train] = True
        return mask

    def to_physical(self, normalised: np.ndarray) -> np.ndarray:
        """[0, 1] values -> physical float32, computed in float64 exactly as outputs are."""
        lo, hi = self.value_range
        return (lo + np.asarray(normalised, dtype=np.float64) * (hi - lo)).astype(np.float32)

    def physical_frame(self, i: int) -> np.ndarray:
        return self.to_physical(self.frames[int(i)])

    def normalised_params(self) -> np.ndarray:
        """Params mapped to [0, 1] per column by `param_range` (a zero span maps to 0)."""
        lo, hi = self.param_range[:, 0], self.param_range[:, 1]
        span = np.where(hi > lo, hi - lo, 1.0)
        return (self.params - lo) / span


def open_dataset(path: str | Path) -> DatasetView:
    path = Path(path)
    root = _open_group(path, "dataset")
    for key in ("frames", "params"):
        if key not in root:
            raise ValueError(f"{path}: dataset store has no '{key}' array")
    frames = root["frames"]
    params = np.asarray(root["params"][...], dtype=np.float64)
    if params.ndim == 1:
        params = params[:, None]
    attrs = dict(root.attrs)
    n = int(frames.shape[0])
    if params.shape[0] != n:
        raise ValueError(f"{path}: params has {params.shape[0]} rows but frames has {n} frames")
    if "value_range" not in attrs or "split" not in attrs:
        raise ValueError(f"{path}: dataset attrs need 'value_range' and 'split'")
    lo, hi = (float(v) for v in attrs["value_range"])
    names = [str(s) for s in attrs.get("param_names") or [f"p{j}" for j in range(params.shape[1])]]
    if len(names) != params.shape[1]:
        raise ValueError(f"{path}: {len(names)} param_names for {params.shape[1]} params")
    if attrs.get("param_range") is not None:
        prange = np.asarray(attrs["param_range"], dtype=np.float64).reshape(-1, 2)
    else:
        prange = np.stack([params.min(axis=0), params.max(axis=0)], axis=1)
    train = np.unique(np.asarray(attrs["split"].get("train", []), dtype=np.int64))
    if train.size and (train.min() < 0 or train.max() >= n):
        raise ValueError(f"{path}: split.train holds indices outside [0, {n})")
    return DatasetView(
        path=path,
        frames=frames,
        params=params,
        param_names=names,
        param_range=prange,
        value_range=(lo, hi),
        train=train,
        n_channels=int(attrs.get("n_channels", 1) or 1),
        attrs=attrs,
    )


def open_prediction(path: str | Path, dataset: DatasetView) -> zarr.Array:
    """The `frames` array of a prediction store, checked against the dataset's shape."""
    path = Path(path)
    root = _open_group(path, "prediction")
    if "frames" not in root:
        raise ValueError(f"{path}: prediction store has no 'frames' array")
    frames = root["frames"]
    if tuple(frames.shape) != tuple(dataset.frames.shape):
        raise ValueError(
            f"{path}: prediction frames shape {tuple(frames.shape)} does not match dataset "
            f"frames shape {tuple(dataset.frames.shape)} ({dataset.path})"
        )
    return frames


def prediction_attrs(path: str | Path) -> dict[str, Any]:
    return dict(_open_group(Path(path), "prediction").attrs)


class FrameCache:
    """A tiny LRU cache of normalised frames (float64) for blending neighbours."""

    def __init__(self, frames: zarr.Array, size: int):
        self.frames = frames
        self.size = max(1, size)
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, i: int) -> np.ndarray:
        i = int(i)
        if i in self._items:
            self._items.move_to_end(i)
            return self._items[i]
        frame = np.asarray(self.frames[i], dtype=np.float64)
        self._items[i] = frame
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return frame


def write_json(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
