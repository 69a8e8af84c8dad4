"""Models trained directly on the training frames (rule baseline): one network over (theta, x).

The paper's comparison INRs (NeurComp, HashINR; Sec. 6.3) are such networks, and so is any
kind a plugin adds the same way: a network class that takes (theta01 [B, P], x01 [B, D]) and
has `arch()` (the keyword arguments that rebuild it), `to_native`/`from_native` (its own value
convention, e.g. [-1, 1] for sine networks) and `n_params`/`n_outputs`, plus a `build(cfg,
meta)` that sizes it for a dataset. `DirectKind` then gives it everything else the pipeline
needs: training by stage `baseline`, the model file, loading, and evaluation at a parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hyperinr.models.model_file import load_weights, read_model_file, save_model_file


@torch.no_grad()
def evaluate_direct(
    model: nn.Module, theta01: torch.Tensor, coords01: torch.Tensor
) -> torch.Tensor:
    """The one way to query such a network: theta [1 or B, P], x [B, D] in [0, 1] -> [B, C]
    in [0, 1]; the model's own value convention stays inside it."""
    theta = theta01.to(coords01.device, torch.float32).reshape(-1, model.n_params)
    if theta.shape[0] == 1:
        theta = theta.expand(len(coords01), -1)
    return model.from_native(model(theta, coords01.float()).float())


class DirectKind:
    """The registry's implementation (hyperinr.models.registry.KindImpl) of a network trained
    on the frames. `build(cfg, meta)` makes the untrained network for a dataset (meta: the
    dataset's n_params, n_spatial, n_channels, periodic)."""

    generates = False

    def __init__(
        self,
        file_kind: str,
        label: str,
        network_class: type[nn.Module],
        build: Callable[[Any, Any], nn.Module],
    ) -> None:
        self.file_kind, self.label = file_kind, label
        self.network_class, self._build = network_class, build

    def build(self, cfg: Any, meta: Any) -> nn.Module:
        return self._build(cfg, meta)

    def save(self, path: str | Path, model: nn.Module, extra: dict[str, Any]) -> None:
        """model.pt: the architecture, the weights and `extra` (dims, provenance, dataset hash)."""
        save_model_file(path, self.file_kind, model, {"arch": model.arch(), **extra})

    def load(self, path: str | Path, device: torch.device) -> tuple[nn.Module, dict[str, Any]]:
        """(network in eval mode on `device`, the whole saved state); one-line errors naming
        `path` when it is not such a model file or its weights do not fit."""
        state = read_model_file(path, self.file_kind, self.label)
        try:
            model = self.network_class(**state["arch"])
        except (TypeError, ValueError, KeyError) as err:
            raise ValueError(
                f"{path}: recorded {self.label} architecture is invalid ({err})"
            ) from None
        load_weights(path, model, state)
        return model.to(device).eval(), state

    def field(self, network: nn.Module, theta01: np.ndarray):
        device = next(network.parameters()).device
        theta = torch.as_tensor(theta01, dtype=torch.float32, device=device).reshape(1, -1)
        return lambda x: evaluate_direct(network, theta, x)

    def n_outputs(self, network: nn.Module) -> int:
        return network.n_outputs
