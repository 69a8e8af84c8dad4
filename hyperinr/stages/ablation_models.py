"""Stage `ablation-train`: the models of the architecture and shared-MLP sweeps (Sec. 6.2-6.3).

Each model is one of the pipeline's own trainers (CoordNet, a baseline, HyperINR) run with a
derived config, so it resumes, records provenance and writes model.pt/info.json exactly as
they do; only the independent INRs have a loop of their own here. Everything trains on the
training frames (HyperINR with targets_mode ground_truth): Sec. 6 compares what the designs
learn from the data, not from a teacher.

Budget: the configured teacher's trainable parameters (or ablation.budget). NeurComp picks its
width for it; HashINR and HyperINR (ablation.budget_encoders encoders) the hash-table size T
whose parameter count lands nearest, counted on the meta device (no memory).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.config import Config
from hyperinr.encoding import HashGrid
from hyperinr.infra import provenance
from hyperinr.infra.device import configure_threads, resolve_device
from hyperinr.models import registry
from hyperinr.models.independent import IndependentINRs, save_independent
from hyperinr.models.mlp import MLP
from hyperinr.models.model_file import parameter_count
from hyperinr.stages.baseline import baseline_kind, train_baseline
from hyperinr.stages.common import (
    DatasetTensors,
    load_dataset_meta,
    meta_dict,
    read_frames,
    teacher_parameter_count,
    train_and_publish,
)
from hyperinr.stages.distill import distill_hyperinr
from hyperinr.stages.teacher import train_teacher
from hyperinr.sweeps import GROUND_TRUTH, SWEEP_MODEL
from hyperinr.training import distributed
from hyperinr.training.loop import rank_batch_size
from hyperinr.training.targets import GroundTruthTargets

MODELS = tuple(SWEEP_MODEL)
LOG2_T_RANGE = range(4, 25)  # tcnn's table sizes the budget search may pick from


def hyperinr_parameter_count(n_encoders: int, encoding: dict, network: dict, meta) -> int:
    """Trainable parameters of a HyperINR: the encoder tables plus the shared MLP."""
    grid = HashGrid(meta.n_spatial, encoding, own_table=False)
    with torch.device("meta"):
        mlp = MLP(grid.n_output_dims, meta.n_channels, network)
    return n_encoders * grid.n_params + parameter_count(mlp)


def log2_size_for_budget(count, budget: int) -> int:
    """The log2 T in LOG2_T_RANGE whose count(log2 T) is nearest `budget` (ties: the smaller)."""
    return min(LOG2_T_RANGE, key=lambda k: (abs(count(k) - budget), k))


def model_config(cfg: Config, name: str, meta: DatasetTensors) -> tuple[Config, int | None]:
    """(the config model `name` trains with, the parameter budget it was sized to or None)."""
    if name not in MODELS:
        raise ValueError(f"ablation-train: unknown model '{name}' (one of {', '.join(MODELS)})")
    plain = copy.deepcopy(cfg.to_dict())
    ab = cfg.ablation
    budget = ab.budget if ab.budget is not None else teacher_parameter_count(cfg, meta)
    steps = ab.steps
    h, b = plain["hyperinr"], plain["baselines"]
    if name == "coordnet":
        _set_steps(plain["teacher"], steps)
        return Config.from_dict(plain), budget
    if SWEEP_MODEL[name].kind in registry.names_trained_by("baseline"):
        _set_steps(b, steps)
        if name == "neurcomp":
            b["neurcomp"].update(width=None, budget=budget)
        elif name == "hashinr":
            enc = b["hashinr"]["encoding"]

            def count(k: int) -> int:
                trial = copy.deepcopy(plain)
                trial["baselines"]["hashinr"]["encoding"]["log2_hashmap_size"] = k
                with torch.device("meta"):
                    return parameter_count(
                        baseline_kind("hashinr").build(Config.from_dict(trial), meta)
                    )

            enc["log2_hashmap_size"] = log2_size_for_budget(count, budget)
        return Config.from_dict(plain), budget if name != "hashinr_large" else None
    _set_steps(h, steps)
    h["targets_mode"] = GROUND_TRUTH
    if name == "hyperinr":
        gaussian = h["encoder_gaussian"]  # n-D: the same share of Gaussian positions
        share = gaussian["count"] / h["n_encoders"]
        gaussian["count"] = min(ab.budget_encoders - 1, round(share * ab.budget_encoders))
        h.update(n_encoders=ab.budget_encoders, positions=None)
        enc = h["encoding"]

        def count(k: int) -> int:
            trial = {**enc, "log2_hashmap_size": k}
            return hyperinr_parameter_count(ab.budget_encoders, trial, h["network"], meta)

        enc["log2_hashmap_size"] = log2_size_for_budget(count, budget)
        return Config.from_dict(plain), budget
    if name in ("shared_mlp", "independent_mlps"):  # one encoder (INR) per training frame
        train = meta.params01[meta.train_indices].double().numpy()
        h.update(n_encoders=len(train), positions=train.tolist())
    return Config.from_dict(plain), None


def _set_steps(section: dict[str, Any], steps: int | None) -> None:
    if steps is not None:
        section["train"]["steps"] = int(steps)


def train_ablation_model(cfg: Config, name: str, dataset: Path, out_dir: Path) -> Path:
    """Trains model `name` into `out_dir` (model.pt, info.json, resumable checkpoint.pt)."""
    meta, _ = load_dataset_meta(dataset)
    derived, budget = model_config(cfg, name, meta)
    extra = {"ablation_model": name, "budget": budget}  # info.json, for the sweep's table
    kind = registry.get(SWEEP_MODEL[name].kind)
    if kind.trained_by == "teacher":
        return train_teacher(derived, dataset, out_dir, extra_info=extra)
    if kind.trained_by == "baseline":
        return train_baseline(derived, kind.name, dataset, out_dir, extra_info=extra)
    if kind.name == "independent":
        return train_independent(derived, dataset, out_dir, extra_info=extra)
    return distill_hyperinr(derived, dataset, None, out_dir, extra_info=extra)


def train_independent(
    cfg: Config, dataset: Path, out_dir: Path, *, extra_info: dict[str, Any] | None = None
) -> Path:
    """One INR per training frame (hyperinr.models.independent), trained on its frame alone;
    the hyperinr section's encoding, network and schedule, so it differs from shared_mlp in
    one thing only: the MLPs are not shared."""
    configure_threads(cfg.runtime.threads)
    device = distributed.init(resolve_device(cfg.runtime.device))
    meta, store = load_dataset_meta(dataset)
    h = cfg.hyperinr
    produced_by = provenance.record(
        "ablation_independent_mlps", cfg, {"dataset": store.content_hash}
    )
    positions = np.asarray(h.positions, dtype=np.float64)
    model = IndependentINRs(
        positions, meta.n_spatial, meta.n_channels, h.encoding, h.network, h.k_nearest,
        seed=cfg.runtime.seed, power=h.idw_power, periodic=meta.periodic or None,
    ).to(device)  # fmt: skip
    frames = read_frames(store, meta.train_indices).to(device)
    source = GroundTruthTargets(frames, positions, meta.dims, rank_batch_size(h.train.batch_size))

    def batch_fn(step: int, gen: torch.Generator):
        j, x, y = source.sample(step, gen)
        return (x, j), y

    return train_and_publish(
        model, batch_fn, h.train, device, out_dir, "ablation_independent_mlps", produced_by,
        lambda path: save_independent(
            path, model, {**meta_dict(meta), "produced_by": produced_by}
        ),
        seed=cfg.runtime.seed, desc="independent INRs", find_unused_parameters=True,
        info=lambda: {"n_inrs": model.n_inrs, **source.describe()}, extra_info=extra_info,
    )  # fmt: skip
