"""Where in parameter space things sit: encoder positions and distillation parameters.

One home for both, because the paper builds them the same way (Sec. 3 and 5): evenly along a
1-D axis for TSR; Poisson-disk (plus Gaussian-kernel samples, Fig. 5) in n-D.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc


def encoder_positions(n_encoders: int, n_param_dims: int, seed: int = 0) -> np.ndarray:
    """[N, P] in [0, 1]: evenly spaced in 1-D (TSR); Poisson-disk samples (scipy) in n-D."""
    if n_encoders < 1:
        raise ValueError("hyperinr.n_encoders must be >= 1")
    if n_param_dims == 1:
        return np.linspace(0.0, 1.0, n_encoders).reshape(-1, 1)
    radius = 0.7 * n_encoders ** (-1.0 / n_param_dims)
    engine = qmc.PoissonDisk(d=n_param_dims, radius=radius, seed=seed)
    return engine.random(n_encoders)


def distill_params(n: int, n_param_dims: int) -> np.ndarray:
    """Normalised distillation parameters [N_D, P]: uniform along a 1-D axis (the TSR recipe)."""
    if n < 2:
        raise ValueError("distill_set.n_params must be >= 2")
    if n_param_dims != 1:
        raise NotImplementedError("n-D distillation sets (NVS/DGS) are not implemented yet")
    return np.linspace(0.0, 1.0, n).reshape(-1, 1)
