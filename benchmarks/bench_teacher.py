"""What buys teacher quality per CPU-minute: CoordNet variants on one dataset, side by side.

Trains each variant of the teacher (widths, hidden blocks, steps, batch, learning rate and its
decay, loss, and for n-D scenes how the parameters enter: wrapped azimuth, parameter scale) with
the pipeline's own stage (`hyperinr.stages.teacher.train_teacher`) on one dataset store, then
scores it like the report does (PSNR/SSIM per frame in physical units, means over training and
unseen frames) and prints one Markdown row per variant with the training wall time.

    python benchmarks/bench_teacher.py --dataset results/tgv64_vorticity/dataset.zarr \
        [--variants base,steps8k,...] [--threads 2] [--out /tmp/bench_teacher]
    python benchmarks/bench_teacher.py --config config/nvs.yaml \
        --variants base,periodic,periodic+scale2 [--steps 2000]

`--config`: a task config; its teacher block is the `base` variant and its dataset store
(results/<name>/dataset.zarr) the data. `--steps` overrides every variant's steps (a cheaper
screen; the table shows the steps run). Run the pipeline up to ingest first
(`snakemake --cores 2 --until ingest [--configfile ...]`).
"""

from __future__ import annotations  # noqa: I001  (hyperinr is imported before torch on purpose)

import argparse
import json
import time
from pathlib import Path

import hyperinr  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch
import yaml

from hyperinr.config import Config
from hyperinr.data.store import open_dataset
from hyperinr.evaluate.metrics import frame_metrics
from hyperinr.models.coordnet import load_teacher, teacher_values
from hyperinr.stages.teacher import train_teacher

BASE = {  # the TSR study's starting point (config/config.yaml before it)
    "widths": [64, 64, 64],
    "hidden_blocks": 2,
    "train": {"steps": 4000, "batch_size": 8192, "lr": 5e-4, "lr_decay": 0.1},
}

VARIANTS: dict[str, dict] = {  # overrides of the base teacher block
    "base": {},
    "steps8k": {"train": {"steps": 8000}},
    "lr1e-3": {"train": {"lr": 1e-3}},
    "lr2e-4": {"train": {"lr": 2e-4}},
    "batch4k_steps8k": {"train": {"batch_size": 4096, "steps": 8000}},
    "wide96": {"widths": [96, 96, 96]},
    "deep4": {"hidden_blocks": 4},
    "wide96_steps8k": {"widths": [96, 96, 96], "train": {"steps": 8000}},
    # how the scene parameters enter (n-D): a wrapped azimuth and the parameters' frequency
    "reference_inputs": {"periodic_inputs": False, "param_scale": 1.0},
    "periodic": {"periodic_inputs": True, "param_scale": 1.0},
    "scale0.5": {"periodic_inputs": False, "param_scale": 0.5},
    "scale0.25": {"periodic_inputs": False, "param_scale": 0.25},
    "periodic_scale0.5": {"periodic_inputs": True, "param_scale": 0.5},
    "periodic_scale0.25": {"periodic_inputs": True, "param_scale": 0.25},
    "periodic_scale0.1": {"periodic_inputs": True, "param_scale": 0.1},
    "scale2": {"param_scale": 2.0},
    "scale4": {"param_scale": 4.0},
    "steps1k": {"train": {"steps": 1000}},
    "steps2k": {"train": {"steps": 2000}},
    "steps3k": {"train": {"steps": 3000}},
    "steps4k": {"train": {"steps": 4000}},
    "steps6k": {"train": {"steps": 6000}},
    "l1": {"train": {"loss": "l1"}},
    "l2": {"train": {"loss": "l2"}},
    "batch16k": {"train": {"batch_size": 16384}},
    "wide128": {"widths": [128, 128, 128]},
}


def variant(base: dict, name: str, steps: int | None = None) -> dict:
    """The teacher block of variant `name`: `base` with its overrides (and `steps`). A name
    joined by "+" applies each part's overrides in order (periodic+lr1e-3)."""
    out = json.loads(json.dumps(base))
    out.setdefault("train", {})
    for part in name.split("+"):
        over = json.loads(json.dumps(VARIANTS[part]))
        out["train"].update(over.pop("train", {}))
        out.update(over)
    if steps is not None:
        out["train"]["steps"] = steps
    out["train"]["checkpoint_every"] = 10**9  # a benchmark run is never resumed
    return out


def task_config(path: Path) -> tuple[dict, Path]:
    """(the teacher block, the dataset store) of a task config."""
    raw = yaml.safe_load(path.read_text())
    return raw["teacher"], Path("results") / raw["dataset"]["name"] / "dataset.zarr"


def score(dataset: Path, model_path: Path, batch: int = 65536) -> dict:
    """Mean PSNR/SSIM of the teacher over training and unseen frames (physical units)."""
    ds = open_dataset(dataset)
    model, _ = load_teacher(model_path, torch.device("cpu"))
    p01 = torch.from_numpy(ds.normalised_params())
    train = set(ds.train_indices)
    sums: dict[str, list[tuple[float, float]]] = {"train": [], "unseen": []}
    for i in range(ds.n_frames):
        vol = teacher_values(model, p01[i], ds.dims, batch, torch.device("cpu"))
        pred = ds.to_physical(vol.reshape(ds.frame_shape)).astype(np.float32)
        psnr, ssim = frame_metrics(ds.physical_frame(i), pred, channel_axis=ds.channel_axis)
        sums["train" if i in train else "unseen"].append((psnr, ssim))
    return {
        f"{k}_{m}": float(np.mean([v[j] for v in vals]))
        for k, vals in sums.items()
        for j, m in enumerate(("psnr", "ssim"))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, help="a dataset store (default data: TSR)")
    parser.add_argument("--config", type=Path, help="a task config (its teacher and dataset)")
    parser.add_argument("--variants", default="base,steps8k,lr1e-3,wide96,deep4")
    parser.add_argument("--steps", type=int, help="every variant's steps (a cheaper screen)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_teacher"))
    args = parser.parse_args()
    base, dataset = BASE, args.dataset
    if args.config is not None:
        base, from_config = task_config(args.config)
        dataset = dataset or from_config
    if dataset is None:
        parser.error("give --dataset or --config")
    names = args.variants.split(",")
    unknown = [p for n in names for p in n.split("+") if p not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    print(
        "| variant | widths | hidden | inputs | steps | batch | lr (decay) | loss | params | "
        "train PSNR | train SSIM | unseen PSNR | unseen SSIM | train wall |"
    )
    print("|---|---|---:|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        teacher = variant(base, name, args.steps)
        cfg = Config.from_dict(
            {"teacher": teacher, "runtime": {"threads": args.threads, "device": "cpu"}}
        )
        out = args.out / name
        t0 = time.perf_counter()
        train_teacher(cfg, dataset, out)
        wall = time.perf_counter() - t0
        info = json.loads((out / "info.json").read_text())
        s = score(dataset, out / "model.pt")
        t, tr = cfg.teacher, cfg.teacher.train
        inputs = f"{'wrapped' if t.periodic_inputs else 'plain'} x{t.param_scale:g}"
        print(
            f"| {name} | {list(t.widths)} | {t.hidden_blocks} | {inputs} | {tr.steps} | "
            f"{tr.batch_size} | {tr.lr:g} ({tr.lr_decay:g}) | {tr.loss} | {info['parameters']} | "
            f"{s['train_psnr']:.2f} | {s['train_ssim']:.3f} | {s['unseen_psnr']:.2f} | "
            f"{s['unseen_ssim']:.3f} | {wall / 60:.1f} min |",
            flush=True,
        )


if __name__ == "__main__":
    main()
