"""The paper's Sec. 6 sweeps as workflow targets (rules/ablation.smk): which runs a sweep is.

The Snakefile imports this module while parsing, so it imports nothing heavier than the
config (no torch, matplotlib or scikit-image); the tables and plots of a finished sweep are
hyperinr/evaluate/ablation.py.

Two kinds. `SWEEPS` (encoders, hash) are variants of the configured HyperINR: a variant
changes exactly one key of the `hyperinr` section (and, when `ablation.steps` is set, the
training steps of every variant alike) and is distilled from the pipeline's own
teacher and distillation set: a sweep never retrains what its runs share, and each variant
is an ordinary distill run with its own provenance, so a finished variant is never redone
and a killed one resumes. Names are `<key>-<value>` (`n_levels-4`), which is also the model
directory `results/<name>/ablation/<variant>/`.

`MODEL_SWEEPS` (architectures, shared_mlp) compare different models trained on the training
frames alone, as the paper's Sec. 6.2-6.3 do (no teacher: what the design choice itself gives);
hyperinr/stages/ablation_models.py builds and trains them, each into
`results/<name>/ablation/<model>/`, and they are predicted and evaluated like every method.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hyperinr.config import AblationConfig, allowed_values

# hyperinr.targets_mode: what HyperINR is trained on (the schema's enum is their one list)
TRAINING_MODES: tuple[str, ...] = allowed_values("hyperinr.targets_mode")
GROUND_TRUTH = "ground_truth"  # no teacher, no set: the training frames alone
# the distillation modes, which rule target_modes compares (hyperinr/training/targets.py)
TARGET_MODES = tuple(m for m in TRAINING_MODES if m != GROUND_TRUTH)

# sweep -> (variant key, dotted hyperinr key it sets, AblationConfig field with its values)
SWEEPS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "encoders": (("encoders", "hyperinr.n_encoders", "encoders"),),
    "hash": (
        ("n_levels", "hyperinr.encoding.n_levels", "n_levels"),
        ("n_features_per_level", "hyperinr.encoding.n_features_per_level", "n_features_per_level"),
        ("log2_hashmap_size", "hyperinr.encoding.log2_hashmap_size", "log2_hashmap_size"),
    ),
}


@dataclass(frozen=True)
class SweepModel:
    """A model of a model sweep: its name (directory, row), the registry kind it is
    (hyperinr.models.registry: which trainer makes it) and its label in tables and plots."""

    name: str
    kind: str
    label: str


# sweep -> its models
SWEEP_TABLE: dict[str, tuple[SweepModel, ...]] = {
    # Fig. 7A-B at one parameter budget, then 7C: HashINR and HyperINR at their configured size
    "architectures": (
        SweepModel("coordnet", "teacher", "CoordNet (budget)"),
        SweepModel("neurcomp", "neurcomp", "NeurComp (budget)"),
        SweepModel("hashinr", "hashinr", "HashINR (budget)"),
        SweepModel("hyperinr", "hyperinr", "HyperINR on GT (budget)"),
        SweepModel("hashinr_large", "hashinr", "HashINR (configured T)"),
        SweepModel("hyperinr_large", "hyperinr", "HyperINR on GT (configured)"),
    ),
    # Fig. 8: one shared MLP vs one MLP per INR, both with encoders at the training frames
    "shared_mlp": (
        SweepModel("shared_mlp", "hyperinr", "shared MLP (HyperINR)"),
        SweepModel("independent_mlps", "independent", "independent MLPs"),
    ),
}
MODEL_SWEEPS = {sweep: tuple(m.name for m in models) for sweep, models in SWEEP_TABLE.items()}
SWEEP_MODEL = {m.name: m for models in SWEEP_TABLE.values() for m in models}
SWEEP_MODELS = tuple(SWEEP_MODEL)
MODEL_LABELS = {name: m.label for name, m in SWEEP_MODEL.items()}
LABELS = {
    "encoders": "encoders N",
    "n_levels": "levels L",
    "n_features_per_level": "features per level F",
    "log2_hashmap_size": "log2 table size T",
}


@dataclass(frozen=True)
class Variant:
    sweep: str
    key: str  # short name (the variant's prefix)
    dotted: str  # the config key it sets
    value: int

    @property
    def name(self) -> str:
        return f"{self.key}-{self.value}"


def variants(cfg: AblationConfig, sweep: str) -> list[Variant]:
    if sweep in MODEL_SWEEPS:
        raise ValueError(f"ablation '{sweep}' compares models ({', '.join(MODEL_SWEEPS[sweep])})")
    if sweep not in SWEEPS:
        raise ValueError(f"unknown ablation '{sweep}' (one of {', '.join(SWEEPS)})")
    return [
        Variant(sweep, key, dotted, int(v))
        for key, dotted, field in SWEEPS[sweep]
        for v in getattr(cfg, field)
    ]


def parse(name: str) -> tuple[str, int]:
    key, _, value = name.rpartition("-")
    if key not in LABELS or not value.isdigit():
        raise ValueError(f"ablation variant '{name}' is not <key>-<integer> ({', '.join(LABELS)})")
    return key, int(value)


def variant_config(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The plain config of variant `name`: one hyperinr key changed, ablation.steps applied."""
    key, value = parse(name)
    dotted = next(d for sw in SWEEPS.values() for k, d, _ in sw if k == key)
    out = copy.deepcopy(dict(config))
    node = out
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    steps = out.get("ablation", {}).get("steps")
    if steps is not None:
        out["hyperinr"].setdefault("train", {})["steps"] = int(steps)
    return out
