"""What several stages need: the dataset as tensors, the teacher check (and its size, the
baselines' budget), where in parameter space the encoders and the distillation parameters
sit, and the one train-then-publish protocol of every training stage."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.config import Config, TrainConfig
from hyperinr.data.store import open_dataset
from hyperinr.infra.atomic import clean_stale_temporaries
from hyperinr.infra.stage_info import write_info
from hyperinr.models.coordnet import coordnet_parameter_count
from hyperinr.models.model_file import parameter_count
from hyperinr.param_space.positions import GaussianSpec, distill_params, encoder_positions
from hyperinr.training import distributed
from hyperinr.training.loop import discard_checkpoint, train


@dataclass
class DatasetTensors:
    """The frames a stage trains on, flattened to [n, n_voxels, C] in [0, 1]."""

    dims: tuple[int, ...]
    n_channels: int
    params01: torch.Tensor  # [n_frames, P] normalised parameters of ALL frames
    param_range: torch.Tensor  # [P, 2]
    value_range: tuple[float, float]
    train_indices: list[int]
    eval_indices: list[int]
    param_names: list[str]
    periodic: tuple[bool, ...] = ()  # per parameter (an azimuth wraps)

    @property
    def n_params(self) -> int:
        return self.params01.shape[1]

    @property
    def n_spatial(self) -> int:
        return len(self.dims)


def load_dataset_meta(path: str | Path) -> tuple[DatasetTensors, Any]:
    """Open the Zarr dataset; returns typed metadata and the store (frames read lazily)."""
    store = open_dataset(path)
    param_range = torch.tensor(store.param_range, dtype=torch.float64)
    params01 = torch.from_numpy(store.normalised_params())
    meta = DatasetTensors(
        dims=tuple(store.dims),
        n_channels=int(store.n_channels),
        params01=params01.float(),
        param_range=param_range,
        value_range=tuple(store.value_range),
        train_indices=list(store.train_indices),
        eval_indices=list(store.eval_indices),
        param_names=list(store.param_names),
        periodic=tuple(store.param_periodic),
    )
    return meta, store


def read_frames(store: Any, indices: list[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Frames [len(indices), n_voxels, C]; one frame at a time so peaks stay one frame large."""
    out = []
    for i in indices:
        frame = np.asarray(store.frames[i], dtype=np.float32)
        out.append(torch.from_numpy(frame.reshape(-1, max(1, store.n_channels))).to(dtype))
    return torch.stack(out)


def check_teacher(
    path: Path, tstate: dict[str, Any], meta: DatasetTensors, dataset_hash: str
) -> None:
    """One-line errors naming the teacher file when it was made for another dataset."""
    arch = tstate.get("arch", {})
    if (
        arch.get("n_inputs") != meta.n_params + meta.n_spatial
        or arch.get("n_outputs") != meta.n_channels
        or list(tstate.get("dims", [])) != list(meta.dims)
    ):
        raise ValueError(
            f"{path}: teacher was trained for another dataset layout (inputs "
            f"{arch.get('n_inputs')}, outputs {arch.get('n_outputs')}, dims {tstate.get('dims')}; "
            f"dataset needs {meta.n_params + meta.n_spatial}, {meta.n_channels}, {list(meta.dims)})"
        )
    if tstate.get("dataset_hash") != dataset_hash:
        raise ValueError(
            f"{path}: teacher was trained on another dataset (dataset content "
            f"{str(tstate.get('dataset_hash'))[:16]!r}, this dataset's is {dataset_hash[:16]!r})"
        )


def encoder_positions_for(cfg: Config, meta: DatasetTensors) -> np.ndarray:
    """[N, P]: hyperinr.positions if given, else sampled (even in 1-D; Poisson-disk plus
    Gaussians around the training parameters in n-D). Deterministic for runtime.seed."""
    h = cfg.hyperinr
    if h.positions is not None:
        return np.asarray(h.positions, dtype=np.float64)
    return encoder_positions(
        h.n_encoders,
        meta.n_params,
        cfg.runtime.seed,
        centres=_train_params(meta),
        gaussian=GaussianSpec(h.encoder_gaussian.count, h.encoder_gaussian.sigma),
        periodic=meta.periodic or None,
    )


def distill_parameters(cfg: Config, meta: DatasetTensors) -> np.ndarray:
    """[N_D, P] normalised distillation parameters: the distillation set's (and, target_source
    on_demand, the loader's); uniform in 1-D, Poisson-disk + Gaussian + uniform in n-D."""
    ds = cfg.distill_set
    return distill_params(
        ds.n_samples,
        meta.n_params,
        cfg.runtime.seed,
        centres=_train_params(meta),
        gaussian=GaussianSpec(ds.gaussian.count, ds.gaussian.sigma),
        uniform=ds.uniform,
        periodic=meta.periodic or None,
    )


def _train_params(meta: DatasetTensors) -> np.ndarray:
    return meta.params01[meta.train_indices].double().numpy()


def teacher_inputs(cfg: Config, meta: DatasetTensors) -> dict[str, Any]:
    """How the configured CoordNet takes this dataset's parameters (its keyword arguments)."""
    wraps = tuple(meta.periodic) or (False,) * meta.n_params
    periodic = wraps if cfg.teacher.periodic_inputs else (False,) * meta.n_params
    return {"periodic": periodic, "param_scale": cfg.teacher.param_scale}


def teacher_parameter_count(cfg: Config, meta: DatasetTensors) -> int:
    """Parameters of the configured CoordNet for this dataset (the baselines' budget)."""
    return coordnet_parameter_count(
        meta.n_params + meta.n_spatial, meta.n_channels, cfg.teacher.widths,
        cfg.teacher.hidden_blocks, periodic=teacher_inputs(cfg, meta)["periodic"],
    )  # fmt: skip


def train_and_publish(
    model: torch.nn.Module,
    batch_fn: Callable,
    train_cfg: TrainConfig,
    device: torch.device,
    out_dir: Path,
    stage: str,
    produced_by: dict[str, Any],
    save: Callable[[Path], None],
    *,
    seed: int,
    desc: str,
    info: Callable[[], dict[str, Any]] = dict,
    extra_info: Mapping[str, Any] | None = None,
    find_unused_parameters: bool = False,
) -> Path:
    """Train `model` into `out_dir`, resumable from `out_dir/checkpoint.pt` only for the same
    `produced_by` hash, then publish: rank 0 writes model.pt (`save`) and info.json (the
    run's record plus `info()` and the caller's `extra_info`, e.g. the ablation model's name
    and budget: written once, never patched after publishing) and discards the last
    checkpoint, so a finished stage leaves nothing to resume; under torchrun the other ranks
    wait for it. Returns model.pt's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = out_dir / "checkpoint.pt"
    model_path = out_dir / "model.pt"
    if distributed.is_main():
        clean_stale_temporaries(model_path)
    t0 = time.perf_counter()
    result = train(
        model, batch_fn, train_cfg, device, checkpoint, tag=produced_by["hash"], desc=desc,
        seed=seed, find_unused_parameters=find_unused_parameters,
    )  # fmt: skip
    if distributed.is_main():
        save(model_path)
        world = distributed.world_size()
        write_info(
            out_dir / "info.json",
            stage,
            result.wall_seconds,
            device=str(device),
            steps=result.steps,
            final_loss=result.final_loss,
            resumed_from=result.resumed_from,
            parameters=parameter_count(model),
            run_seconds=round(time.perf_counter() - t0, 3),
            produced_by=produced_by,
            **info(),
            **({"processes": world} if world > 1 else {}),
            **(extra_info or {}),
        )
        discard_checkpoint(checkpoint)
    distributed.barrier()
    distributed.cleanup()
    return model_path


def meta_dict(meta: DatasetTensors) -> dict[str, Any]:
    """What a HyperINR file carries about its data, so its INRs are usable on their own."""
    return {
        "dims": list(meta.dims),
        "param_names": meta.param_names,
        "param_range": meta.param_range.tolist(),
        "value_range": list(meta.value_range),
    }
