"""Stage `distill`: optimise HyperINR on the distillation set (Sec. 3.1 and 5)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from scipy.stats import qmc

from hyperinr.atomic import atomic_path, clean_stale_temporaries
from hyperinr.config import Config
from hyperinr.device import configure_threads, resolve_device
from hyperinr.grid import flat_to_coords
from hyperinr.models.hyperinr import HyperINR, even_positions
from hyperinr.stages.common import load_dataset_meta, write_info
from hyperinr.train import train

MODEL_KIND = "hyperinr"


def encoder_positions(n_encoders: int, n_param_dims: int, seed: int = 0) -> np.ndarray:
    """1-D: evenly spaced (TSR). n-D: Poisson-disk samples (Bridson's algorithm, scipy)."""
    if n_param_dims == 1:
        return even_positions(n_encoders)
    radius = 0.7 * n_encoders ** (-1.0 / n_param_dims)
    engine = qmc.PoissonDisk(d=n_param_dims, radius=radius, seed=seed)
    return engine.random(n_encoders)


def distill_hyperinr(cfg: Config, dataset: Path, distill_set: Path, out_dir: Path) -> Path:
    """Writes `out_dir/model.pt` and `out_dir/info.json`; resumes from `out_dir/checkpoint.pt`."""
    configure_threads(cfg.runtime.threads)
    device = resolve_device(cfg.runtime.device)
    torch.manual_seed(cfg.runtime.seed)
    meta, store = load_dataset_meta(dataset)
    try:
        root = zarr.open_group(distill_set, mode="r")
        values_arr, params01 = root["values"], np.asarray(root["params01"][...])
    except (FileNotFoundError, KeyError) as err:
        raise ValueError(f"{distill_set}: not a distillation set ({err})") from None
    # the whole set in memory at its stored precision; converted per batch
    values = torch.from_numpy(np.asarray(values_arr[...])).to(device)  # [N_D, V, C]
    positions = encoder_positions(cfg.hyperinr.n_encoders, meta.n_params, cfg.runtime.seed)
    model = HyperINR(
        positions,
        meta.n_spatial,
        meta.n_channels,
        cfg.hyperinr.encoding,
        cfg.hyperinr.network,
        cfg.hyperinr.k_nearest,
        seed=cfg.runtime.seed,
    ).to(device)
    idx_table, w_table = model.lookup(params01)  # [N_D, K] each: parameters are fixed
    n_vox = values.shape[1]
    batch = cfg.hyperinr.train.batch_size

    def batch_fn(step: int, gen: torch.Generator):
        j = torch.randint(len(params01), (batch,), generator=gen).to(device)
        v = torch.randint(n_vox, (batch,), generator=gen).to(device)
        x = flat_to_coords(v, meta.dims)
        return (x, idx_table[j], w_table[j]), values[j, v].float()

    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir / "model.pt")
    tag = f"hyperinr:{cfg.section_hash('hyperinr', 'runtime')}:{root.attrs.get('config_hash')}"
    t0 = time.perf_counter()
    result = train(
        model,
        batch_fn,
        cfg.hyperinr.train,
        device,
        out_dir / "checkpoint.pt",
        tag=tag,
        desc="distill",
        seed=cfg.runtime.seed,
    )
    save_hyperinr(out_dir / "model.pt", model, meta_dict(meta, store))
    write_info(
        out_dir / "info.json",
        "distill",
        result.wall_seconds,
        device=str(device),
        steps=result.steps,
        final_loss=result.final_loss,
        resumed_from=result.resumed_from,
        n_encoders=model.n_encoders,
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        run_seconds=round(time.perf_counter() - t0, 3),
    )
    return out_dir / "model.pt"


def meta_dict(meta: Any, store: Any) -> dict[str, Any]:
    return {
        "dims": list(meta.dims),
        "param_names": meta.param_names,
        "param_range": meta.param_range.tolist(),
        "value_range": list(meta.value_range),
        "dataset_hash": store.config_hash,
    }


def save_hyperinr(path: Path, model: HyperINR, meta: dict[str, Any]) -> None:
    state = {
        "kind": MODEL_KIND,
        "description": model.describe(),
        "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_hyperinr(path: Path, device: torch.device) -> tuple[HyperINR, dict[str, Any]]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable HyperINR checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a HyperINR model file")
    model = HyperINR.from_description(state["description"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), state["meta"]
