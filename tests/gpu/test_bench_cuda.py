"""benchmarks/bench_inference.py runs on CUDA and reports finite, positive rates."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_inference_on_cuda():
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_inference.py"), "--device", "cuda",
           "--batch", "65536", "--rounds", "3"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    print(out)  # shown with pytest -s, and by benchmarks/gpu_check.sh on failure
    assert ", device cuda" in out.splitlines()[0]
    rates = re.findall(r"^(coordnet .+|hyperinr INR .+?)\s+([\d,]+)\s+INR / this", out, re.M)
    assert len(rates) == 3, out
    assert all(int(r.replace(",", "")) > 0 for _, r in rates), out
    latency = re.search(r"median ([\d.]+) ms, p95 ([\d.]+) ms", out)
    assert latency and 0 < float(latency[1]) <= float(latency[2]), out
