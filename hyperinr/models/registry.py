"""The model registry: every kind of trained model the pipeline knows, keyed by name.

A model file records its `kind` (hyperinr.models.model_file); everything that has to handle
"any model" (predict, the public API, the CLI's choices, the rules' wildcards, the sweeps)
asks this registry instead of keeping its own list. The pattern is zarr-python's codec
registry: built-in kinds are listed here once, and other packages add kinds through the
``hyperinr.models`` entry-point group (an entry point names a `ModelKind`), so a new kind
touches its own module and its registration, nothing else.

This module imports nothing heavy: the Snakefile reads it while parsing. A kind's
implementation (`ModelKind.impl()`, an object with `load` and `field`, see `KindImpl`) is
imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Protocol

ENTRY_POINT_GROUP = "hyperinr.models"
#: How each training rule makes its models: the teacher (rule teacher), distillation from it
#: (rule distill), directly on the training frames (rule baseline), or only inside an
#: ablation sweep (rule ablation_model).
TRAINERS = ("teacher", "distill", "baseline", "ablation")
#: Methods that predict without a model file (data interpolation).
MODEL_FREE_METHODS = ("lerp",)

#: A field at one parameter: x [B, D] in [0, 1] -> values [B, C] in [0, 1].
Field01 = Callable[[Any], Any]


class KindImpl(Protocol):
    """What a kind's module provides (duck-typed; a class or a module-level object).

    `generates`: True when `field` is the paper's generation step (HyperINR blends tables
    into a standalone INR), which predict and the API time separately from inference.
    """

    generates: bool

    def load(self, path: Any, device: Any) -> tuple[Any, dict[str, Any]]:
        """(network in eval mode on `device`, the file's saved state); one-line errors."""

    def field(self, network: Any, theta01: Any) -> Field01:
        """The field at one normalised parameter theta01 [P] (numpy float64)."""

    def n_outputs(self, network: Any) -> int:
        """Channels the network predicts."""


@dataclass(frozen=True)
class ModelKind:
    """One kind of model: its name in the pipeline and where its implementation lives.

    name: the method name (results/<ds>/<name>/, `evaluate.methods`, `predict --method`).
    file_kind: the `kind` its model files record (may differ from `name` for old files).
    impl_path: "module:attribute" of its `KindImpl`, imported on first use.
    trained_by: which of TRAINERS makes it.
    train_reads: config keys its training reads (its provenance slice; rule baseline only).
    aliases: other names accepted for it (kept so old commands and files keep working).
    """

    name: str
    file_kind: str
    label: str
    impl_path: str
    trained_by: str
    train_reads: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def impl(self) -> KindImpl:
        module, _, attr = self.impl_path.partition(":")
        return getattr(importlib.import_module(module), attr)


_SEED = ("runtime.seed", "runtime.device", "runtime.gpus_per_job")
BUILTIN: tuple[ModelKind, ...] = (
    ModelKind("teacher", "coordnet", "CoordNet teacher", "hyperinr.models.coordnet:KIND",
              "teacher"),
    ModelKind("hyperinr", "hyperinr", "HyperINR", "hyperinr.models.hyperinr:KIND", "distill"),
    ModelKind("neurcomp", "neurcomp", "NeurComp baseline", "hyperinr.models.baselines:NEURCOMP",
              "baseline", ("baselines.neurcomp", "baselines.train", "teacher.widths",
                           "teacher.hidden_blocks", *_SEED)),
    ModelKind("hashinr", "hashinr", "HashINR baseline", "hyperinr.models.baselines:HASHINR",
              "baseline", ("baselines.hashinr", "baselines.train", *_SEED)),
    ModelKind("independent", "independent_inrs", "independent INRs",
              "hyperinr.models.independent:KIND", "ablation", aliases=("independent_inrs",)),
)  # fmt: skip


@cache
def kinds() -> dict[str, ModelKind]:
    """Every registered kind by name: the built-ins, then the entry points' (a plugin may not
    reuse a built-in's name or file kind: that is an error naming the entry point)."""
    out = {k.name: k for k in BUILTIN}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        kind = ep.load()
        if not isinstance(kind, ModelKind):
            raise TypeError(f"entry point {ep.name} ({ep.value}) is not a ModelKind")
        taken = {n for k in out.values() for n in (k.name, k.file_kind, *k.aliases)}
        if {kind.name, kind.file_kind, *kind.aliases} & taken:
            raise ValueError(f"entry point {ep.name}: model kind '{kind.name}' is taken")
        if kind.trained_by not in TRAINERS:
            raise ValueError(f"entry point {ep.name}: trained_by must be one of {TRAINERS}")
        out[kind.name] = kind
    return out


def get(name: str) -> ModelKind:
    """The kind called `name` (its name, an alias or its file kind)."""
    for kind in kinds().values():
        if name in (kind.name, kind.file_kind, *kind.aliases):
            return kind
    raise ValueError(f"unknown model kind '{name}' (one of {', '.join(kinds())})")


def method_names() -> tuple[str, ...]:
    """What `evaluate.methods` and `predict --method` accept: every kind and LERP."""
    return (*kinds(), *MODEL_FREE_METHODS)


def aliases() -> tuple[str, ...]:
    """Other names the kinds answer to (old method names kept working)."""
    return tuple(a for k in kinds().values() for a in k.aliases)


def names_trained_by(trainer: str) -> tuple[str, ...]:
    if trainer not in TRAINERS:
        raise ValueError(f"unknown trainer '{trainer}' (one of {', '.join(TRAINERS)})")
    return tuple(k.name for k in kinds().values() if k.trained_by == trainer)
