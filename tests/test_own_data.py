"""The README's "Your own data" example, verbatim, runs through ingest: by hand and by Snakemake.

The YAML is parsed out of README.md (so this test breaks when the README changes), and three
raw volumes matching it are written where its glob looks. The example gives its parameter
values inline while the default config names a sidecar: inline values must win in both paths
(Snakemake merges --configfile over config/config.yaml; the CLI builds over the defaults).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hyperinr.config import Config
from hyperinr.data import open_dataset

ROOT = Path(__file__).resolve().parents[1]


def _readme_yaml_after(paragraph: str) -> str:
    """The first ```yaml block after `paragraph` in README.md, verbatim."""
    text = (ROOT / "README.md").read_text()
    start = text.find(paragraph)
    assert start >= 0, f'README.md has no "{paragraph}" paragraph'
    match = re.compile(r"```yaml\n(.*?)```", re.S).search(text, start)
    assert match, f'no ```yaml block after "{paragraph}" in README.md'
    return match.group(1)


def readme_example() -> str:
    """The ```yaml block under "Your own data" in README.md, verbatim."""
    return _readme_yaml_after("Your own data")


def _env() -> dict[str, str]:
    """The environment of a user whose shell finds this venv's `hyperinr` and `snakemake`."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture
def own_data(tmp_path) -> tuple[Path, dict]:
    """A working directory holding own.yaml (the README's block) and the raw files it names."""
    text = readme_example()
    (tmp_path / "own.yaml").write_text(text)
    doc = yaml.safe_load(text)
    ds = doc["dataset"]
    assert ds["format"] == "raw" and ds["raw"]["dims"] == [128, 128, 128]
    n = len(ds["params"]["values"])
    pattern = ds["files"][0]  # data/vortices/vorts*.raw
    assert pattern.count("*") == 1
    rng = np.random.default_rng(0)
    dtype = np.dtype(ds["raw"]["dtype"])
    for i in range(1, n + 1):
        path = tmp_path / pattern.replace("*", str(i))
        path.parent.mkdir(parents=True, exist_ok=True)
        # x fastest: shape (z, y, x) for axis_order zyx
        rng.random(tuple(ds["raw"]["dims"][::-1]), dtype=np.float32).astype(dtype).tofile(path)
    return tmp_path, doc


def _check_store(store: Path, doc: dict) -> None:
    ds = open_dataset(store)
    values = [float(v) for v in doc["dataset"]["params"]["values"]]
    assert values == [1.0, 2.0, 3.0]
    assert ds.params[:, 0].tolist() == values
    assert ds.frames.shape == (3, 128, 128, 128)
    # train_every 5 over 3 frames: frame 0 and the last frame
    assert list(ds.train_indices) == [0, 2]


def test_readme_example_parses_into_the_config():
    doc = yaml.safe_load(readme_example())
    cfg = Config.from_dict(doc)
    assert cfg.simulate.activate is False
    assert cfg.dataset.params.values == ((1.0,), (2.0,), (3.0,))
    # the built-in default's sidecar is inherited; ingest ignores it (inline values win)
    assert cfg.dataset.params.sidecar is not None


def test_readme_example_through_the_cli(own_data):
    work, doc = own_data
    out = work / "vortices.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "hyperinr.cli", "ingest", "--config", "own.yaml", "--out", str(out)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_store(out, doc)
    ignored = [line for line in proc.stderr.splitlines() if "ignored" in line]
    assert len(ignored) == 1 and "sidecar" in ignored[0], proc.stderr


@pytest.mark.slow
@pytest.mark.workflow
def test_readme_example_through_snakemake(own_data):
    work, doc = own_data
    for name in ("Snakefile", "rules", "workflow", "config", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", "own.yaml"]
    proc = subprocess.run(
        [*cmd, "--until", "ingest"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    name = doc["dataset"]["name"]
    log = work / f"logs/{name}/ingest.log"
    log_text = log.read_text() if log.exists() else "(no ingest log)"
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{log_text}"
    _check_store(work / f"results/{name}/dataset.zarr", doc)
    assert "sidecar resources/tgv64/params.json ignored" in log_text
    assert not (work / "resources").exists()  # simulate.activate false: nothing simulated


def readme_memory_example() -> str:
    """The ```yaml block after "Volumes of real size" in README.md, verbatim."""
    return _readme_yaml_after("Volumes of real size")


def test_readme_memory_example_ingests_own_data_by_slabs(own_data):
    """The README's own-data example with its memory block added: ingest runs under the bound
    in 64-deep sharded slabs, and a bound no process can meet is refused in one line."""
    work, doc = own_data
    (work / "memory.yaml").write_text(readme_memory_example())
    cfg = Config.from_dict(yaml.safe_load(readme_memory_example()))
    assert (cfg.store.chunk, cfg.runtime.memory_mb) == (64, 512)
    out = work / "vortices.zarr"
    cmd = [sys.executable, "-m", "hyperinr.cli", "ingest", "--config", "own.yaml",
           "--config", "memory.yaml", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _check_store(out, doc)
    frames = open_dataset(out).frames
    assert frames.chunks == (1, 64, 64, 64) and frames.shards == (1, 64, 128, 128)
    tight = work / "tight.zarr"
    proc = subprocess.run(
        [*cmd[:-1], str(tight), "--config-json", '{"runtime": {"memory_mb": 64}}'],
        cwd=work, capture_output=True, text=True, timeout=300, env=_env(),
    )  # fmt: skip
    assert proc.returncode == 1 and not tight.exists()
    # one error line (the log's note that the inline values win over the sidecar precedes it)
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("hyperinr ingest: error: ingest: runtime.memory_mb=64 cannot hold")
