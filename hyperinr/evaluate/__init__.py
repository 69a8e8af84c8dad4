"""Evaluation: per-frame metrics, the report and its figures (LERP, a predictor, is
hyperinr.models.lerp).

Submodules are imported on first use so that `import hyperinr.evaluate` stays cheap (the
report pulls in matplotlib, the metrics scikit-image).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "evaluate": "metrics",
    "frame_metrics": "metrics",
    "read_metrics": "metrics",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
