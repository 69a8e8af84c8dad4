"""The shared MLP: tiny-cuda-nn's FullyFusedMLP as plain torch (bias-free linear layers).

tcnn's fused MLPs have no bias terms; keeping that here means exported weights mean the same
thing in both frameworks. The hash-grid features give the network its offsets instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

_ACTIVATIONS = {"ReLU": nn.ReLU, "None": nn.Identity, "Sigmoid": nn.Sigmoid}
NETWORK_DEFAULTS = {
    "otype": "FullyFusedMLP",
    "activation": "ReLU",
    "output_activation": "None",
    "n_neurons": 64,
    "n_hidden_layers": 2,
}


def network_config(config: dict[str, Any]) -> dict[str, Any]:
    """tcnn network dict with tcnn's defaults filled in; unknown activations fail here."""
    full = {**NETWORK_DEFAULTS, **config}
    if full["otype"] not in ("FullyFusedMLP", "CutlassMLP"):
        raise ValueError(f"network otype '{full['otype']}' is not supported (FullyFusedMLP)")
    for key in ("activation", "output_activation"):
        if full[key] not in _ACTIVATIONS:
            raise ValueError(f"network {key} '{full[key]}' is not one of {sorted(_ACTIVATIONS)}")
    return full


class MLP(nn.Module):
    """n_in -> n_hidden_layers x n_neurons -> n_out; `layers` are the tcnn weight matrices."""

    def __init__(self, n_inputs: int, n_outputs: int, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = network_config(config)
        width = int(self.config["n_neurons"])
        depth = int(self.config["n_hidden_layers"])
        sizes = [n_inputs] + [width] * depth + [n_outputs]
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.activation = _ACTIVATIONS[self.config["activation"]]()
        self.output_activation = _ACTIVATIONS[self.config["output_activation"]]()
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.output_activation(self.layers[-1](h))
