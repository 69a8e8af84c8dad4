"""Optional tiny-cuda-nn backend (CUDA only, never required).

tinycudann is imported lazily: importing it on a machine without CUDA raises EnvironmentError,
and the package must import everywhere.  The tcnn module owns a parameter of its own; we run it
statelessly through ``torch.func.functional_call`` so the caller's tensor (a module parameter or
a hypernetwork output) is what tcnn reads and what receives the gradient.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch


@functools.cache
def tcnn_module() -> Any | None:
    """The ``tinycudann`` module, or None when it is missing or unusable (no CUDA)."""
    try:
        import tinycudann  # type: ignore[import-not-found]
    except (ImportError, OSError, RuntimeError):  # EnvironmentError is OSError
        return None
    return tinycudann


@functools.cache
def _encoding(n_input_dims: int, config_json: str, device_index: int) -> torch.nn.Module:
    tcnn = tcnn_module()
    with torch.cuda.device(device_index):
        enc = tcnn.Encoding(n_input_dims, json.loads(config_json), dtype=torch.float32)
    return enc.to(torch.device("cuda", device_index))


def tcnn_forward(
    x: torch.Tensor, params: torch.Tensor, n_input_dims: int, config: dict[str, Any]
) -> torch.Tensor:
    """tcnn's encoding of x [B, D] (CUDA, float32) with the flat table ``params`` -> [B, L*F]."""
    device_index = x.device.index if x.device.index is not None else torch.cuda.current_device()
    enc = _encoding(n_input_dims, json.dumps(config, sort_keys=True), device_index)
    out = torch.func.functional_call(enc, {"params": params}, (x,))
    return out.float()
