"""Does the shrinkage rule choose well? The correction's a on fields unlike each other, measured.

For each config (an overlay on config/config.yaml, as the workflow merges them) this runs the
workflow up to its metrics (skipped when up to date), then, side by side in one run:

- the a the rule chose (validation teacher, `hyperinr/info.json` shrinkage_choice) and its cost
  (the teacher_validation stage's wall time plus the curve's);
- the a an oracle would pick: the main teacher's corrected targets scored on the unseen frames
  (only this benchmark reads them), and the unseen PSNR of the *targets* at the rule's a, the
  oracle's and a = 1 (how much the choice matters before any student is trained);
- HyperINR distilled with a = 1 (the old rule's constant answer) from the same teacher and set,
  next to the workflow's HyperINR (the rule's a), the teacher and LERP: unseen PSNR/SSIM.

    python benchmarks/bench_shrinkage.py --configfile config/config.yaml \
        --configfile config/tgv64_pressure.yaml --configfile config/forced32_vorticity.yaml

(config/config.yaml alone is the default field; each other file is one more field over it.)
"""

from __future__ import annotations  # noqa: I001  (hyperinr is imported before torch on purpose)

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import hyperinr  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch

from hyperinr import api
from hyperinr.config import Config, merge_dicts, read_config_file
from hyperinr.training.targets import SHRINKAGE_GRID
from hyperinr.evaluate.metrics import frame_metrics, read_metrics
from hyperinr.data.store import open_dataset
from hyperinr.models.coordnet import load_teacher, teacher_values
from hyperinr.infra.provenance import stage_slice
from hyperinr.stages.common import load_dataset_meta, read_frames
from hyperinr.stages.distill import training_anchors

DEFAULT = Path("config/config.yaml")


def _config(overlay: Path | None) -> dict:
    data = read_config_file(DEFAULT)
    return merge_dicts(data, read_config_file(overlay)) if overlay else data


def _run(cmd: list[str], log: Path) -> float:
    t0 = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if code:
        sys.exit(f"bench_shrinkage: {' '.join(cmd[:3])} ... failed ({code}); see {log}")
    return time.perf_counter() - t0


def oracle(cfg: Config, results: Path) -> dict:
    """Unseen-frame MSE (normalised values) of the main teacher's corrected targets, per a."""
    device = torch.device("cpu")
    meta, store = load_dataset_meta(results / "dataset.zarr")
    anchors = training_anchors(cfg, meta, store, results / "teacher" / "model.pt", device)
    model, _ = load_teacher(results / "teacher" / "model.pt", device)
    train = set(meta.train_indices)
    unseen = [i for i in range(len(meta.params01)) if i not in train]
    sums = np.zeros(len(SHRINKAGE_GRID))
    for i in unseen:
        idx, w = anchors.weights(meta.params01[i : i + 1].double().numpy())
        w_t = torch.from_numpy(w[0]).double().reshape(-1, 1, 1)
        gt = read_frames(store, [i])[0].double()
        te = torch.from_numpy(teacher_values(model, meta.params01[i], meta.dims, 65536, device))
        l_gt = (w_t * anchors.ground_truth.double()[idx[0]]).sum(0)
        l_te = (w_t * anchors.teacher.double()[idx[0]]).sum(0)
        d_gt, d_te = gt - l_gt, te.double() - l_te
        for g, a in enumerate(SHRINKAGE_GRID):
            sums[g] += float(((d_gt - a * d_te) ** 2).mean())
    mse = sums / len(unseen)
    best = SHRINKAGE_GRID[int(mse.argmin())]
    return {"a": list(SHRINKAGE_GRID), "mse": mse.tolist(), "best": best}


def unseen_scores(model_path: Path, dataset: Path) -> tuple[float, float]:
    """Mean unseen PSNR/SSIM of a HyperINR file, as the report scores (physical units)."""
    m = api.load(model_path, dataset=dataset, device="cpu")
    ds = open_dataset(dataset)
    p01 = ds.normalised_params()
    scores = []
    for i in ds.eval_indices:
        if i in ds.train_indices:
            continue
        theta = [lo + float(p) * (hi - lo) for p, (lo, hi) in zip(p01[i], ds.param_range)]
        vol = m.generate(*theta).volume()
        scores.append(
            frame_metrics(
                ds.physical_frame(i), vol.reshape(ds.frame_shape), channel_axis=ds.channel_axis
            )
        )
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))


def bench(overlay: Path | None, cores: int, extra: list[str]) -> dict:
    plain = _config(overlay)
    cfg = Config.from_dict(plain)
    name = cfg.dataset.name
    results = Path("results") / name
    work = results / "bench_shrinkage"
    work.mkdir(parents=True, exist_ok=True)
    conf = ["--configfile", str(overlay)] if overlay else []
    workflow_wall = _run(
        ["snakemake", "--cores", str(cores), *conf, *extra, f"{results}/report/metrics.csv"],
        work / "snakemake.log",
    )
    info = json.loads((results / "hyperinr" / "info.json").read_text())
    vinfo = json.loads((results / "teacher_validation" / "info.json").read_text())
    choice = info["shrinkage_choice"]

    a1_cfg = stage_slice(merge_dicts(cfg.to_dict(), {"hyperinr": {"shrinkage": 1.0}}), "distill")
    a1_dir = work / "hyperinr_a1"
    a1_wall = _run(
        ["hyperinr", "distill", "--config-json", json.dumps(a1_cfg), "--threads",
         str(cfg.runtime.threads), "--dataset", f"{results}/dataset.zarr", "--distill-set",
         f"{results}/distill_set.zarr", "--teacher", f"{results}/teacher/model.pt",
         "--out-dir", str(a1_dir)],
        work / "distill_a1.log",
    )  # fmt: skip
    rows = [r for r in read_metrics(results / "report" / "metrics.csv") if r["split"] == "unseen"]

    def mean(method: str, key: str) -> float:
        return float(np.mean([float(r[key]) for r in rows if r["method"] == method]))

    a1 = unseen_scores(a1_dir / "model.pt", results / "dataset.zarr")
    rule = unseen_scores(results / "hyperinr" / "model.pt", results / "dataset.zarr")
    orc = oracle(cfg, results)
    at = {a: orc["mse"][SHRINKAGE_GRID.index(a)] for a in {choice["chosen"], orc["best"], 1.0}}
    return {
        "field": name,
        "chosen": choice["chosen"],
        "oracle": orc["best"],
        "targets_psnr": {a: -10 * np.log10(m) for a, m in at.items()},
        "rule_seconds": vinfo["wall_seconds"] + choice.get("seconds", 0.0),
        "rule": {
            "psnr": mean("hyperinr", "psnr"),
            "ssim": mean("hyperinr", "ssim"),
            "api_psnr": rule[0],
        },
        "a1": {"psnr": a1[0], "ssim": a1[1], "wall": a1_wall},
        "teacher": {"psnr": mean("teacher", "psnr"), "ssim": mean("teacher", "ssim")},
        "lerp": {"psnr": mean("lerp", "psnr"), "ssim": mean("lerp", "ssim")},
        "workflow_wall": workflow_wall,
        "scored": choice["scored"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", action="append", type=Path, default=[])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--snakemake-args", default="", help="more snakemake arguments, quoted")
    args = parser.parse_args()
    overlays = [None if Path(c) == DEFAULT else Path(c) for c in args.configfile] or [None]
    print(
        "| field | a chosen (rule) | a oracle | targets PSNR at chosen / oracle / a=1 | "
        "HyperINR (rule) | HyperINR (a=1) | teacher | LERP | rule cost | scored frames |"
    )
    print("|---|---:|---:|---|---|---|---|---|---:|---|")
    for overlay in overlays:
        r = bench(overlay, args.cores, shlex.split(args.snakemake_args))
        t = r["targets_psnr"]
        print(
            f"| {r['field']} | {r['chosen']:g} | {r['oracle']:g} | "
            f"{t[r['chosen']]:.2f} / {t[r['oracle']]:.2f} / {t[1.0]:.2f} dB | "
            f"{r['rule']['psnr']:.2f} / {r['rule']['ssim']:.4f} | "
            f"{r['a1']['psnr']:.2f} / {r['a1']['ssim']:.4f} | "
            f"{r['teacher']['psnr']:.2f} / {r['teacher']['ssim']:.4f} | "
            f"{r['lerp']['psnr']:.2f} / {r['lerp']['ssim']:.4f} | {r['rule_seconds']:.0f} s | "
            f"{r['scored']} |",
            flush=True,
        )
        print(
            f"<!-- {r['field']}: HyperINR (rule) unseen PSNR through hyperinr.load "
            f"{r['rule']['api_psnr']:.2f} dB; workflow {r['workflow_wall']:.0f} s; a = 1 "
            f"distill {r['a1']['wall']:.0f} s -->",
            flush=True,
        )


if __name__ == "__main__":
    main()
