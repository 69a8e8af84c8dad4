"""What buys teacher quality per CPU-minute: CoordNet variants on one dataset, side by side.

Trains each variant of the teacher (widths, hidden blocks, steps, batch, learning rate and its
decay) with the pipeline's own stage (`hyperinr.stages.teacher.train_teacher`) on one dataset
store, then scores it like the report does (PSNR/SSIM per frame in physical units, means over
training and unseen frames) and prints one Markdown row per variant with the training wall time.

    python benchmarks/bench_teacher.py --dataset results/tgv64_vorticity/dataset.zarr \
        [--variants base,steps8k,...] [--threads 2] [--out /tmp/bench_teacher]

Run the default pipeline up to ingest first (`snakemake --cores 2 --until ingest`).
"""

from __future__ import annotations  # noqa: I001  (hyperinr is imported before torch on purpose)

import argparse
import json
import time
from pathlib import Path

import hyperinr  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch

from hyperinr.config import Config
from hyperinr.data.store import open_dataset
from hyperinr.evaluate.metrics import frame_metrics
from hyperinr.models.coordnet import load_teacher, teacher_values
from hyperinr.stages.teacher import train_teacher

BASE = {  # today's CPU default (config/config.yaml)
    "widths": [64, 64, 64],
    "hidden_blocks": 2,
    "train": {"steps": 4000, "batch_size": 8192, "lr": 5e-4, "lr_decay": 0.1,
              "checkpoint_every": 100000},
}


def _variant(**over) -> dict:
    out = json.loads(json.dumps(BASE))
    train = over.pop("train", {})
    out.update(over)
    out["train"].update(train)
    return out


VARIANTS = {
    "base": _variant(),
    "steps8k": _variant(train={"steps": 8000}),
    "lr1e-3": _variant(train={"lr": 1e-3}),
    "lr2e-4": _variant(train={"lr": 2e-4}),
    "batch4k_steps8k": _variant(train={"batch_size": 4096, "steps": 8000}),
    "wide96": _variant(widths=[96, 96, 96]),
    "deep4": _variant(hidden_blocks=4),
    "wide96_steps8k": _variant(widths=[96, 96, 96], train={"steps": 8000}),
}


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
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_teacher"))
    args = parser.parse_args()
    names = args.variants.split(",")
    print("| variant | widths | hidden | steps | batch | lr (decay) | params | train PSNR | "
          "train SSIM | unseen PSNR | unseen SSIM | train wall |")
    print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        teacher = VARIANTS[name]
        cfg = Config.from_dict(
            {"teacher": teacher, "runtime": {"threads": args.threads, "device": "cpu"}}
        )
        out = args.out / name
        t0 = time.perf_counter()
        train_teacher(cfg, args.dataset, out)
        wall = time.perf_counter() - t0
        info = json.loads((out / "info.json").read_text())
        s = score(args.dataset, out / "model.pt")
        tr = teacher["train"]
        print(
            f"| {name} | {teacher['widths']} | {teacher['hidden_blocks']} | {tr['steps']} | "
            f"{tr['batch_size']} | {tr['lr']:g} ({tr['lr_decay']:g}) | {info['parameters']} | "
            f"{s['train_psnr']:.2f} | {s['train_ssim']:.3f} | {s['unseen_psnr']:.2f} | "
            f"{s['unseen_ssim']:.3f} | {wall / 60:.1f} min |",
            flush=True,
        )


if __name__ == "__main__":
    main()
