"""tiny-cuda-nn's network JSON: its defaults and the values this package supports.

Kept apart from the MLP itself (hyperinr/models/mlp.py, torch) because the configuration reads
these defaults while the Snakefile is parsed, which must not import torch.
"""

from __future__ import annotations

from typing import Any

#: tcnn's own defaults for a network block (the config states only what it changes)
NETWORK_DEFAULTS = {
    "otype": "FullyFusedMLP",
    "activation": "ReLU",
    "output_activation": "None",
    "n_neurons": 64,
    "n_hidden_layers": 2,
}
ACTIVATIONS = ("ReLU", "None", "Sigmoid")  # what hyperinr.models.mlp implements


def network_config(config: dict[str, Any]) -> dict[str, Any]:
    """tcnn network dict with tcnn's defaults filled in; unknown activations fail here."""
    full = {**NETWORK_DEFAULTS, **config}
    if full["otype"] not in ("FullyFusedMLP", "CutlassMLP"):
        raise ValueError(f"network otype '{full['otype']}' is not supported (FullyFusedMLP)")
    for key in ("activation", "output_activation"):
        if full[key] not in ACTIVATIONS:
            raise ValueError(f"network {key} '{full[key]}' is not one of {sorted(ACTIVATIONS)}")
    return full
