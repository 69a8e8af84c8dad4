"""Input encodings with tiny-cuda-nn semantics (HashGrid, OneBlob), built from tcnn JSON dicts."""

from __future__ import annotations

from typing import Any

import torch

from .hashgrid import HashGrid, blend_tables
from .oneblob import OneBlob

__all__ = ["HashGrid", "OneBlob", "blend_tables", "make_encoding"]


def make_encoding(n_input_dims: int, config: dict[str, Any], **kwargs: Any) -> torch.nn.Module:
    """Build the encoding named by ``config["otype"]`` (case-insensitive, as tcnn).

    ``kwargs`` go to the HashGrid constructor (seed, generator, backend, device).
    """
    if not isinstance(config, dict) or not isinstance(config.get("otype"), str):
        raise ValueError("make_encoding: config must be a dict with a string 'otype'")
    otype = config["otype"].lower()
    if otype in ("hashgrid", "grid"):
        return HashGrid(n_input_dims, config, **kwargs)
    if otype == "oneblob":
        if kwargs:
            raise ValueError(f"make_encoding: OneBlob takes no options, got {sorted(kwargs)}")
        return OneBlob(n_input_dims, config)
    raise ValueError(f"make_encoding: unsupported otype {config['otype']!r} "
                     "(supported: HashGrid, Grid with type Hash, OneBlob)")
