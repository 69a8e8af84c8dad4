"""A standalone INR: one hash-grid table plus the MLP, loadable without the hypernetwork.

This is what HyperINR hands out (`generate(theta)`) and what `hyperinr export` writes: an
`.npz` holding tiny-cuda-nn-style JSON (`encoding`, `network` blocks with tcnn key names) and
the raw weights: the flat hash-grid table in tcnn's documented parameter layout and one bias-free
[n_out, n_in] matrix per MLP layer. Loading it back (`INR.load`) reproduces the pipeline's
predictions (tests/test_workflow.py); the table's parity with tcnn's own encoding is checked
by tests/gpu when ``tinycudann`` imports. Loading the file into tcnn or a renderer is not
tested here: tcnn's MLP stores its matrices padded to multiples of 16 (src/fully_fused_mlp.cu),
so the weights would need padding first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hyperinr.encoding import HashGrid
from hyperinr.infra.atomic import atomic_path
from hyperinr.models.mlp import MLP

FORMAT = "hyperinr-inr/1"


@dataclass
class INR:
    """x [B, D] in [0, 1] -> values [B, n_outputs] in [0, 1] (the package's value range)."""

    encoding: HashGrid
    table: torch.Tensor  # [encoding.n_params]
    network: MLP
    metadata: dict[str, Any] = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.encoding(x, self.table))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        config = {
            "format": FORMAT,
            "n_input_dims": self.encoding.n_input_dims,
            "n_output_dims": self.network.n_outputs,
            "encoding": self.encoding.config,
            "network": self.network.config,
            "hyperinr": self.metadata,
            "weights": {
                "encoding.params": "flat float32 table, levels back to back, F per entry",
                "network.layers.i": "float32 [n_out, n_in] per layer, no bias (tcnn MLP)",
            },
        }
        arrays = {"encoding.params": self.table.detach().cpu().float().numpy()}
        for i, layer in enumerate(self.network.layers):
            arrays[f"network.layers.{i}"] = layer.weight.detach().cpu().float().numpy()
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, config=np.array(json.dumps(config, indent=1)), **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> INR:
        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: not a readable INR file ({err})") from None
        with data:
            config = json.loads(str(data["config"]))
            if config.get("format") != FORMAT:
                raise ValueError(f"{path}: not a hyperinr INR file (format {config.get('format')})")
            encoding = HashGrid(config["n_input_dims"], config["encoding"], own_table=False)
            network = MLP(encoding.n_output_dims, config["n_output_dims"], config["network"])
            with torch.no_grad():
                for i, layer in enumerate(network.layers):
                    layer.weight.copy_(torch.from_numpy(data[f"network.layers.{i}"]))
            table = torch.from_numpy(data["encoding.params"]).to(device)
        return cls(encoding, table, network.to(device), config.get("hyperinr", {}))


class GeneratingKind:
    """The registry's view (hyperinr.models.registry.KindImpl) of a model whose field at a
    parameter is a generated standalone INR (the paper's generation step, timed apart)."""

    generates = True

    def __init__(self, load) -> None:
        self._load = load

    def load(self, path, device):
        return self._load(path, device)

    def field(self, network, theta01: np.ndarray) -> INR:
        return network.generate(np.asarray(theta01, dtype=np.float64))

    def n_outputs(self, network) -> int:
        return network.n_outputs
