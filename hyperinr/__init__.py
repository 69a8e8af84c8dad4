"""hyperinr: predictive implicit neural representations by knowledge distillation (HyperINR).

OpenMP threads that spin while waiting make a 2-thread torch job 10x slower as soon as another
process shares the cores (measured here: 1.5 vs 14.8 CoordNet steps/s with another job running),
and HPC nodes, Snakemake's parallel jobs and CI all share cores. Idle threads therefore sleep
(`OMP_WAIT_POLICY=PASSIVE`) unless the user chose otherwise. libgomp reads the variable once, when
torch loads it, so this must run before torch is imported: the package's entry points (the CLI)
import torch only after this module.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# The public API (docs/api.md), imported on first use: `import hyperinr` stays light for the
# Snakefile and the CLI's argument parsing, which need none of torch.
_API = ("load", "lerp", "ground_truth", "Model", "Generated")
_RENDER = ("Camera", "TransferFunction")


def __getattr__(name: str):
    if name in _API:
        from hyperinr import api

        return getattr(api, name)
    if name in _RENDER:
        from hyperinr import render

        return getattr(render, name)
    raise AttributeError(f"module 'hyperinr' has no attribute {name!r}")


__all__ = [*_API, *_RENDER, "__version__"]
