"""Input encodings with tiny-cuda-nn semantics (HashGrid, OneBlob), built from tcnn JSON dicts."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["HashGrid", "OneBlob", "blend_tables", "make_encoding"]
# imported on first use: the configuration reads tcnn's defaults from ._config while the
# Snakefile is parsed, and importing this package must not pull torch in for that
_LAZY = {"HashGrid": ".hashgrid", "blend_tables": ".hashgrid", "OneBlob": ".oneblob"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_encoding(n_input_dims: int, config: dict[str, Any], **kwargs: Any) -> Any:
    """Build the encoding named by ``config["otype"]`` (case-insensitive, as tcnn).

    ``kwargs`` go to the HashGrid constructor (seed, generator, backend, device).
    """
    if not isinstance(config, dict) or not isinstance(config.get("otype"), str):
        raise ValueError("make_encoding: config must be a dict with a string 'otype'")
    otype = config["otype"].lower()
    from .hashgrid import HashGrid
    from .oneblob import OneBlob

    if otype in ("hashgrid", "grid"):
        return HashGrid(n_input_dims, config, **kwargs)
    if otype == "oneblob":
        if kwargs:
            raise ValueError(f"make_encoding: OneBlob takes no options, got {sorted(kwargs)}")
        return OneBlob(n_input_dims, config)
    raise ValueError(f"make_encoding: unsupported otype {config['otype']!r} "
                     "(supported: HashGrid, Grid with type Hash, OneBlob)")
