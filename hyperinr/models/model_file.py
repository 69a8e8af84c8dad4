"""The one on-disk form of a trained model: a torch file holding a dict tagged by `kind`.

Teacher and HyperINR files differ in how the model is rebuilt, not in how they are written,
read and checked, so both go through here (atomic write; one-line errors naming the file).

Files are read with `torch.load(weights_only=True)`: tensors and plain data (dict, list, tuple,
str, int, float, bool, None) only, so a model file handed over by someone else cannot run code
when it is loaded. Writers therefore store plain fields (lists, floats), never numpy objects or
instances of our classes; a file holding anything else is refused with a one-line error.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hyperinr.infra.atomic import atomic_path


def save_model_file(path: str | Path, kind: str, model: nn.Module, fields: dict[str, Any]) -> None:
    """Write {"kind", "state_dict" (on the CPU), **fields} atomically."""
    state = {
        "kind": kind,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **fields,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


_REFUSED = (  # torch's weights-only refusals; the group names what the file wanted to load
    re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)"),
    re.compile(r"reduce for unrecognized function (\S+)"),
    re.compile(r"Can only (?:create new object|build) .*?but got (\S+)"),
)


def _one_line(err: BaseException) -> str:
    """The gist of a torch.load error on one line (torch's weights-only ones span many)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:  # torch's own hint ("... WeightsUnpickler error: <the real reason>")
        if "WeightsUnpickler error:" in ln:
            reason = ln.split("WeightsUnpickler error:", 1)[1].strip()
            if reason:
                return reason[:200]
    skip = ("Weights only load failed", "In PyTorch 2.6", "Please file an issue", "Check the doc")
    rest = [ln for ln in lines if not ln.startswith(skip)]
    return ((rest or lines or [type(err).__name__])[0])[:200]


def torch_load_plain(path: str | Path, label: str) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU. A file that holds Python objects beyond
    tensors and plain data (a pickled callable, a class instance) is refused before anything in
    it runs; that and any other failure is a one-line ValueError naming the file.

    Memory-mapped (copy-on-write): tensors are read from the page cache as they are used, not
    copied in whole first, so reading a file's `kind` costs nothing and loading weights holds
    one copy of them (a default HyperINR file is 65 MB; predict runs under runtime.memory_mb).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        for pattern in _REFUSED:
            found = pattern.search(str(err))
            if found:
                raise ValueError(
                    f"{path}: refusing to load this {label} file (it holds Python objects beyond "
                    f"tensors and plain data; first: {found.group(1).rstrip('.,')}); hyperinr "
                    "writes none, so it was not written by hyperinr or was tampered with"
                ) from None
        raise ValueError(f"{path}: not a readable {label} file ({_one_line(err)})") from None
    except Exception as err:
        raise ValueError(f"{path}: not a readable {label} file ({_one_line(err)})") from None


def read_model_file(path: str | Path, kind: str, label: str) -> dict[str, Any]:
    """The saved dict, checked to be a `kind` file (loaded with weights_only=True)."""
    state = torch_load_plain(path, label)
    if not isinstance(state, dict) or state.get("kind") != kind:
        raise ValueError(f"{path}: not a {label} model file")
    return state


def load_weights(path: str | Path, model: nn.Module, state: dict[str, Any]) -> None:
    """Load `state`'s weights into `model`; a mismatch is a one-line error naming the file."""
    try:
        model.load_state_dict(state["state_dict"], assign=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"{path}: weights do not match the recorded model ({first})") from None


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (hash tables included): the quantity budgets are equalised on and
    info.json reports."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_kind(path: str | Path) -> str:
    """The `kind` a model file records: how a caller that accepts any model picks its loader."""
    state = torch_load_plain(path, "model")
    if not isinstance(state, dict) or not isinstance(state.get("kind"), str):
        raise ValueError(f"{path}: not a hyperinr model file (it records no kind)")
    return state["kind"]
