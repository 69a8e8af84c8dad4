"""Physical parameter values -> the package's [0, 1]^P, the one normalisation of parameters.

Kept apart from the grid (which needs torch) so the stores, LERP and evaluation, which never
run a network, do not import torch (its import alone is ~200 MB of a stage's memory bound).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def normalise_params(params: Any, param_range: Any) -> np.ndarray:
    """Physical parameter values [..., P] -> [0, 1] per parameter, by a recorded range [P, 2].

    The one parameter normalisation: datasets, LERP, the stages and `hyperinr export` all map
    through it, so a parameter means the same position everywhere. A zero span maps to 0.
    """
    prange = np.asarray(param_range, dtype=np.float64).reshape(-1, 2)
    lo, hi = prange[:, 0], prange[:, 1]
    span = np.where(hi > lo, hi - lo, 1.0)
    return (np.asarray(params, dtype=np.float64) - lo) / span
