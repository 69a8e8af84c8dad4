"""Where a model's initial weights come from: a torch.Generator seeded by its config.

Every model (CoordNet, the baselines, HyperINR, the independent INRs) takes `seed`
(runtime.seed) and draws every initial weight from generators it seeds itself, never from
torch's global generator: its weights are a function of its config alone, whatever else drew
random numbers in the process before (a test, a benchmark, another model). The draws are the
ones the global generator gave when the stages seeded it with runtime.seed right before
building the model, so models trained before keep their weights bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def seeded(seed: int) -> torch.Generator:
    """A CPU generator seeded `seed`: the stream torch.manual_seed(seed) starts (weights are
    drawn on the CPU and moved, so the stream does not depend on the training device)."""
    return torch.Generator().manual_seed(int(seed))


def empty_linear(n_in: int, n_out: int, bias: bool = True) -> nn.Linear:
    """An nn.Linear with no initialisation at all (nn.Linear's own draws from the global
    generator): on the CPU, where the seeded CPU generator can fill it (the model is moved
    after), or on the meta device inside `with torch.device("meta")` (counting parameters)."""
    layer = nn.Linear(n_in, n_out, bias=bias, device="meta")
    if torch.get_default_device().type == "meta":
        return layer
    return layer.to_empty(device="cpu")


def torch_linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear(n_in, n_out) with torch's default initialisation drawn from `generator`:
    the same draws, in the same order, as nn.Linear.reset_parameters (kaiming_uniform_ with
    a = sqrt(5) for the weight, then U(+-1/sqrt(fan_in)) for the bias)."""
    layer = empty_linear(n_in, n_out)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(n_in) if n_in > 0 else 0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer
