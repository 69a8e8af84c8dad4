"""Evaluation: per-frame metrics, the report and its figures (LERP, a predictor, is
hyperinr.models.lerp).

Submodules are imported on first use so that `import hyperinr.evaluate` stays cheap (the
report pulls in matplotlib, the metrics scikit-image).
"""

from __future__ import annotations

from hyperinr._lazy import lazy_getattr

_EXPORTS = {
    "evaluate": "metrics",
    "frame_metrics": "metrics",
    "read_metrics": "metrics",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
