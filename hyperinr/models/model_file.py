"""The one on-disk form of a trained model: a torch file holding a dict tagged by `kind`.

Teacher and HyperINR files differ in how the model is rebuilt, not in how they are written,
read and checked, so both go through here (atomic write; one-line errors naming the file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from hyperinr.atomic import atomic_path


def save_model_file(path: str | Path, kind: str, model: nn.Module, fields: dict[str, Any]) -> None:
    """Write {"kind", "state_dict" (on the CPU), **fields} atomically."""
    state = {
        "kind": kind,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **fields,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_model_file(path: str | Path, kind: str, label: str) -> dict[str, Any]:
    """The saved dict, checked to be a `kind` file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable {label} checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ValueError(f"{path}: not a {label} model file")
    return state


def load_weights(path: str | Path, model: nn.Module, state: dict[str, Any]) -> None:
    """Load `state`'s weights into `model`; a mismatch is a one-line error naming the file."""
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"{path}: weights do not match the recorded model ({first})") from None
