"""GPU suite: every test below this directory is marked ``gpu`` and skipped without CUDA.

Run all of it with ``python -m pytest tests/gpu`` on a CUDA machine, or the checks one by one
with ``benchmarks/gpu_check.sh`` (one summary line per check).  Nothing here imports
tinycudann at collection time: only the tcnn parity test tries it, and skips if it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
NO_CUDA = "torch.cuda.is_available() is False: the GPU suite needs a CUDA device"


def pytest_collection_modifyitems(config, items):
    skip = None if torch.cuda.is_available() else pytest.mark.skip(reason=NO_CUDA)
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.gpu)
            if skip is not None:
                item.add_marker(skip)


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())
