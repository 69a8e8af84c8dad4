"""Provenance: every artifact records the hash of exactly what produced it.

A stage's provenance is its name, the slice of the config it reads (`STAGE_READS`, the same
slice the Snakemake rule passes and hashes as its `params`, so "what triggers a rerun" and
"what identifies a result" are one list) and the *content* hashes of its inputs. Content, not
names or timestamps: a teacher retrained with the same settings but different weights is a
different input to the distillation set. Because every artifact's hash feeds the next stage's
inputs, a change anywhere upstream changes every hash downstream, and a checkpoint resumes only
when its recorded hash equals the current one (`hyperinr.training.loop`).

Content hashes: files (model.pt) are hashed whole (`sha256_file`); Zarr stores record theirs
when they are written (`content_sha256` attr: the dataset and prediction frames as written, the
distillation set from its per-parameter SHA-256s), so no stage rereads a store to hash it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hyperinr.config import Config

# Dotted config keys each stage reads. runtime.threads is not here: it changes no number a
# stage writes, and the rules pass it with --threads from their `threads:` directive.
STAGE_READS: dict[str, tuple[str, ...]] = {
    "simulate": ("simulate",),
    "scene": ("scene", "dataset.task", "runtime.device"),
    # runtime.memory_mb and store shape how a stage works and lays out its store, not a value
    "ingest": ("dataset", "store", "runtime.memory_mb"),
    "teacher": ("teacher", "runtime.seed", "runtime.device", "runtime.gpus_per_job"),
    "teacher_validation": (
        "teacher", "hyperinr.shrinkage_validation", "runtime.seed", "runtime.device",
        "runtime.gpus_per_job",
    ),
    "distill_set": ("distill_set", "runtime.seed", "runtime.device"),
    "distill": ("hyperinr", "runtime.seed", "runtime.device", "runtime.gpus_per_job"),
    # every model kind predicts alike (hyperinr.stages.predict); LERP reads its weights' keys
    "predict": ("predict.batch_size", "runtime.device", "store", "runtime.memory_mb"),
    "predict_lerp": ("hyperinr.k_nearest", "hyperinr.idw_power", "store", "runtime.memory_mb"),
    # stage baseline_<kind> reads what its kind declares (hyperinr.models.registry)
    "evaluate": ("runtime.memory_mb", "runtime.dask_scheduler"),
    "report": ("evaluate.slice_frames",),
    "shadows": ("scene", "runtime.device"),
    "speed": ("runtime.device",),
    "renders": ("render", "runtime.device"),
    "explore_snapshots": ("runtime.device",),
}
# The ablation models (hyperinr.sweeps.MODEL_SWEEPS) read their model's block, the sweep's
# settings and, where the budget follows the teacher's parameter count, its architecture.
_ABLATION = (
    "ablation.steps", "ablation.budget", "ablation.budget_encoders", "runtime.seed",
    "runtime.device", "runtime.gpus_per_job",
)
_TEACHER_SIZE = ("teacher.widths", "teacher.hidden_blocks")
STAGE_READS.update({
    "ablation_coordnet": ("teacher", *_ABLATION),
    "ablation_neurcomp": ("baselines.neurcomp", "baselines.train", *_TEACHER_SIZE, *_ABLATION),
    "ablation_hashinr": ("baselines.hashinr", "baselines.train", *_TEACHER_SIZE, *_ABLATION),
    "ablation_hashinr_large": ("baselines.hashinr", "baselines.train", *_ABLATION),
    "ablation_hyperinr": ("hyperinr", *_TEACHER_SIZE, *_ABLATION),
    "ablation_hyperinr_large": ("hyperinr", *_ABLATION),
    "ablation_shared_mlp": ("hyperinr", *_ABLATION),
    "ablation_independent_mlps": ("hyperinr", *_ABLATION),
})  # fmt: skip
HASH_CHARS = 24
# Stages that train under torchrun, and the rule whose resources.<rule>.gpu sets their GPUs.
TRAINING_STAGE_RULE = {
    "teacher": "teacher",
    "teacher_validation": "teacher_validation",
    "distill": "distill",
    **{s: "ablation_model" for s in STAGE_READS if s.startswith("ablation_")},  # the rule
}


def _baseline_reads(stage: str) -> tuple[str, ...] | None:
    """Keys of stage baseline_<kind>: the kind's own declaration (plugins included)."""
    from hyperinr.models import registry

    name = stage.removeprefix("baseline_")
    if stage.startswith("baseline_") and name in registry.names_trained_by("baseline"):
        return registry.get(name).train_reads
    return None


def training_rule(stage: str) -> str | None:
    """The rule whose resources.<rule>.gpu sets a training stage's GPUs (None: not one)."""
    if _baseline_reads(stage) is not None:
        return "baseline"
    return TRAINING_STAGE_RULE.get(stage)


def _reads(stage: str, plain: Mapping[str, Any]) -> tuple[str, ...]:
    baseline = _baseline_reads(stage)
    if baseline is not None:
        return baseline
    if stage not in STAGE_READS:
        raise ValueError(f"unknown stage '{stage}' (one of {', '.join(STAGE_READS)})")
    keys = STAGE_READS[stage]
    if stage == "distill" and plain.get("hyperinr", {}).get("target_source") == "on_demand":
        keys = (*keys, "distill_set")  # on demand, distill samples the set's parameters itself
    return keys


def stage_slice(
    config: Config | Mapping[str, Any], stage: str, processes: int | None = None
) -> dict[str, Any]:
    """The nested sub-mapping of `config` that `stage` reads (keys of STAGE_READS only).

    Takes the typed Config (stages) or the plain validated dict (the Snakemake rules): both
    give the same slice, since rules/common.smk fills the workflow's dict from the Config.

    `processes`: the number of processes a training stage's rule really starts, which the
    slice records as its `runtime.gpus_per_job` (at least 1; resources gpu 0 is one CPU
    process): the rules pass hyperinr.cluster.gpus.workflow_training_gpus (e.g. 4 on a Polaris
    node where the config says 1), so their params, and the slice the stage records from them,
    follow the process count. None (the stages: their Config is built from that slice): the
    config's value as it is. A stage that does not read runtime.gpus_per_job ignores it. The
    environment is never read here: the slice is a function of the arguments alone.
    """
    plain = config.to_dict() if isinstance(config, Config) else config
    out: dict[str, Any] = {}
    for dotted in _reads(stage, plain):
        *parents, leaf = dotted.split(".")
        src: Any = plain
        dst = out
        for key in parents:
            src = src[key]
            dst = dst.setdefault(key, {})
        dst[leaf] = json.loads(json.dumps(src[leaf]))  # plain JSON types, a deep copy
    if processes is not None and "gpus_per_job" in out.get("runtime", {}):
        out["runtime"]["gpus_per_job"] = max(1, int(processes))
    return out


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def record(stage: str, config: Config | Mapping[str, Any], inputs: Mapping[str, str]) -> dict:
    """{"stage", "config" (the slice), "inputs" (name -> content hash), "hash"}: stored with
    the artifact; `hash` is what a checkpoint must match to be resumed."""
    body = {"stage": stage, "config": stage_slice(config, stage), "inputs": dict(inputs)}
    return {**body, "hash": sha256_json(body)[:HASH_CHARS]}


def require(value: Any, where: str, what: str = "content_sha256") -> str:
    """A recorded hash, or a one-line error naming the artifact that predates provenance."""
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{where}: records no {what} (written by an older hyperinr); rerun the stage "
            "that made it"
        )
    return value
