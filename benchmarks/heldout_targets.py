"""Which distillation targets to default to, judged on training frames no teacher trained on.

The validation teacher (rule teacher_validation: the teacher's architecture trained without
every other interior training frame in 1-D, a seeded half of the training views in n-D) is the
only teacher whose predictions at training frames are predictions. On the frames it never saw
this prints its own error (what `targets_mode: teacher` teaches there) beside the corrected
target's at the shrinkage the rule chose and at a = 0 (LERP of the kept frames) and a = 1, all
as mean squared error in the store's [0, 1] values. Test frames are never read.

    snakemake --cores 2 target_modes --configfile config/dgs.yaml   # the models it reads
    python benchmarks/heldout_targets.py results/dgs_tgv [results/nvs_tgv ...]
"""

from __future__ import annotations  # noqa: I001  (hyperinr is imported before torch on purpose)

import argparse
import json
from pathlib import Path

import hyperinr  # noqa: F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch

from hyperinr.data.store import open_dataset
from hyperinr.models.coordnet import load_teacher, teacher_values


def heldout_errors(results: Path) -> dict:
    """Mean squared errors on the validation teacher's held-out training frames."""
    ds = open_dataset(results / "dataset.zarr")
    model, state = load_teacher(results / "teacher_validation/model.pt", torch.device("cpu"))
    choice = json.loads((results / "hyperinr_corrected/info.json").read_text())["shrinkage_choice"]
    held = [int(k) for k in state["held_out_frames"]]
    scored = [int(k) for k in choice["scored"]]  # dataset frames, as the distill stage records
    if sorted(scored) != sorted(held):
        raise SystemExit(f"{results}: the shrinkage curve scored {scored}, the teacher held {held}")
    p01 = torch.from_numpy(ds.normalised_params())
    teacher_mse = []
    for k in held:
        pred = teacher_values(model, p01[k], ds.dims, 65536, torch.device("cpu"))
        truth = np.asarray(ds.frames[k], dtype=np.float64).reshape(pred.shape)
        teacher_mse.append(float(np.mean((pred - truth) ** 2)))
    chosen = choice["a"].index(choice["chosen"])
    return {
        "held_out": len(held),
        "teacher": float(np.mean(teacher_mse)),
        "corrected": float(choice["mse"][chosen]),
        "a": choice["chosen"],
        "lerp": float(choice["mse"][0]),
        "a=1": float(choice["mse"][-1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results/<dataset> folders")
    args = parser.parse_args()
    print("| dataset | held-out training frames | teacher's own (targets_mode teacher) | "
          "corrected at the chosen a | LERP (a = 0) | a = 1 | least |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---|")
    for results in args.results:
        e = heldout_errors(results)
        cands = {"teacher": e["teacher"], "corrected": e["corrected"], "lerp": e["lerp"]}
        print(
            f"| {results.name} | {e['held_out']} | {e['teacher']:.6f} | {e['corrected']:.6f} "
            f"(a = {e['a']:g}) | {e['lerp']:.6f} | {e['a=1']:.6f} | {min(cands, key=cands.get)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
