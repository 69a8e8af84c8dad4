"""The tiny workflow (config/test.yaml) end to end with runtime.device: cuda.

tests/gpu/cuda.yaml is a second --configfile; Snakemake merges config files recursively
(snakemake.utils.update_config), so it changes runtime.device and nothing else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CUDA_CONFIG = Path(__file__).resolve().parent / "cuda.yaml"
RESULTS = "results/tgv16_test"

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


def test_tiny_workflow_on_cuda(tmp_path):
    work = tmp_path / "wf"
    work.mkdir()
    for name in ("Snakefile", "rules", "workflow", "config", "envs"):  # as tests/test_workflow
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2",
           "--configfile", "config/test.yaml", str(CUDA_CONFIG)]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    report = work / RESULTS / "report"
    for name in ("summary.md", "metrics.csv"):
        assert (report / name).stat().st_size > 0, name
    for stage in ("hyperinr", "teacher"):
        info = json.loads((work / RESULTS / stage / "info.json").read_text())
        assert info["device"].startswith("cuda"), (stage, info["device"])


def test_tiny_dgs_workflow_on_cuda(tmp_path):
    """The DGS task on CUDA: rule scene renders shadow volumes there, rule shadows renders the
    sweep with the shadow INRs there."""
    work = tmp_path / "wf"
    work.mkdir()
    for name in ("Snakefile", "rules", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2",
           "--configfile", "config/test_dgs.yaml", str(CUDA_CONFIG)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"snakemake failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    report = work / "results/dgs_test/report"
    assert "Fig. 16" in (report / "summary.md").read_text()
    info = json.loads((work / "results/dgs_test/hyperinr/info.json").read_text())
    assert info["device"].startswith("cuda")
