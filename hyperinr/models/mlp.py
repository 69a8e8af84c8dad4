"""The shared MLP: tiny-cuda-nn's FullyFusedMLP as plain torch (bias-free linear layers).

tcnn's fused MLPs have no bias terms; keeping that here means exported weights mean the same
thing in both frameworks. The hash-grid features give the network its offsets instead.

Initialisation follows tcnn, not torch's nn.Linear default (kaiming_uniform with a = sqrt(5),
i.e. U(+-1/sqrt(fan_in))). tcnn (src/fully_fused_mlp.cu and src/cutlass_mlp.cu,
``initialize_params``) calls ``GPUMatrix::initialize_xavier_uniform`` (include/tiny-cuda-nn/
gpu_matrix.h) on every weight matrix for non-sine activations: Glorot/Xavier uniform,
U(+-sqrt(6 / (fan_in + fan_out))), where fan_in/fan_out are the matrix's cols/rows *as tcnn
stores them*. tcnn pads widths to multiples of 16 (``REQUIRED_ALIGNMENT``): the last matrix
has ``padded_output_width`` = next multiple of 16 of n_outputs rows, and the first one has as
many columns as the encoding's (or, for a bare network, the identity encoding's) padded
output width, a multiple of lcm(16, F) = 16 for F in {1, 2, 4, 8}
(network_with_input_encoding.h, ``set_alignment``). So the bound of layer n_in -> n_out is
sqrt(6 / (pad16(n_in) + pad16(n_out))); the padded rows/columns themselves do not exist here.
Only the distribution matches (tests/test_mlp.py): tcnn draws from its own pcg32 stream. Sine
activations (tcnn's SIREN init) are not supported by this MLP.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hyperinr.models.network_config import ACTIVATIONS, network_config
from hyperinr.models.seeding import empty_linear, seeded

_MODULES = {"ReLU": nn.ReLU, "None": nn.Identity, "Sigmoid": nn.Sigmoid}
_ACTIVATIONS = {name: _MODULES[name] for name in ACTIVATIONS}  # the names' one home
#: tcnn's FullyFusedMLP/CutlassMLP REQUIRED_ALIGNMENT: layer widths are padded to multiples.
TCNN_ALIGNMENT = 16


def tcnn_padded(width: int) -> int:
    """`width` rounded up to tcnn's alignment, as tcnn allocates the matrix (next_multiple)."""
    return -(-int(width) // TCNN_ALIGNMENT) * TCNN_ALIGNMENT


def tcnn_init_bound(n_in: int, n_out: int) -> float:
    """Half-width b of tcnn's U(-b, b) init of an n_in -> n_out weight matrix (Xavier uniform)."""
    return math.sqrt(6.0 / (tcnn_padded(n_in) + tcnn_padded(n_out)))


class MLP(nn.Module):
    """n_in -> n_hidden_layers x n_neurons -> n_out; `layers` are the tcnn weight matrices.

    Weights start as tcnn's do (module docstring): U(+-tcnn_init_bound(n_in, n_out)) per layer,
    drawn from `generator` (hyperinr.models.seeding: the owning model seeds it from its config;
    None: a generator seeded 0, e.g. for an MLP whose weights are loaded next), never from
    torch's global generator.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        config: dict[str, Any],
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = network_config(config)
        width = int(self.config["n_neurons"])
        depth = int(self.config["n_hidden_layers"])
        sizes = [n_inputs] + [width] * depth + [n_outputs]
        gen = seeded(0) if generator is None else generator
        self.layers = nn.ModuleList(
            empty_linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:])
        )
        with torch.no_grad():
            for layer in self.layers:
                bound = tcnn_init_bound(layer.in_features, layer.out_features)
                layer.weight.uniform_(-bound, bound, generator=gen)
        self.activation = _ACTIVATIONS[self.config["activation"]]()
        self.output_activation = _ACTIVATIONS[self.config["output_activation"]]()
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            h = self.activation(layer(h))
        return self.output_activation(self.layers[-1](h))
