"""The conda environments deploy from where Snakemake puts them (`--sdm conda`).

Snakemake creates an env from a copy of its file, `.snakemake/conda/<hash>.yaml` (or under
--conda-prefix), then runs the post-deploy script beside the file from a copy too, with the env
activated, in Snakemake's own working directory and environment (snakemake/deployment/conda.py,
`Env.create` and `Env.execute_deployment_script`). So a path relative to envs/ (the old
`pip: -e ..`) points into .snakemake/, and the script must learn the workflow's directory from
Snakemake's process: rules/common.smk exports it as HYPERINR_WORKFLOW_DIR.

conda itself cannot be installed here (no network to its channels), so the test runs Snakemake's
real deployment code with a stand-in `conda` on PATH: it answers Snakemake's checks and
"creates" an env by putting a `pip` into it that records its arguments. Everything else (the
copies, the hash names, the activation, the script's working directory) is Snakemake's own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "rules", "workflow", "config", "envs", "pyproject.toml")
ENV_FILES = ("hyperinr.yaml", "sim.yaml")
POST_DEPLOY = ROOT / "envs" / "hyperinr.post-deploy.sh"
INSTALL = ["install", "--no-deps", "--no-build-isolation", "--editable"]

FAKE_CONDA = r"""#!/bin/sh
# conda stand-in for Snakemake's env deployment (tests/test_envs.py)
here="$(cd "$(dirname "$0")/.." && pwd)"
case "$1 $2" in
  "info --json") printf '{"conda_prefix": "%s", "platform": "linux-64"}\n' "$here" ;;
  "--version "*) echo "conda 24.7.1" ;;
  "config --get") echo '{"get": {"channel_priority": "strict"}}' ;;
  "clean -y") ;;
  "env create")
    prefix=""
    while [ $# -gt 0 ]; do
      case "$1" in --prefix) prefix="$2"; shift ;; esac
      shift
    done
    mkdir -p "$prefix/bin" && cp "$here/recording-pip" "$prefix/bin/pip" ;;
  *) echo "fake conda: unexpected: $*" >&2; exit 2 ;;
esac
"""
ACTIVATE = 'PATH="$1/bin:$PATH"\nexport PATH\n'  # `source <conda>/bin/activate <env>`
RECORDING_PIP = """#!/bin/sh
"{python}" -c 'import json, os, sys
print(json.dumps({{"pip": sys.argv[1], "argv": sys.argv[2:], "cwd": os.getcwd()}}))' "$0" "$@" \\
    >> "$PIP_RECORD"
"""


def fake_conda(root: Path) -> Path:
    """A conda 'installation' at `root`: bin/conda, bin/activate and the pip it installs."""
    (root / "bin").mkdir(parents=True)
    for path, text in (
        (root / "bin" / "conda", FAKE_CONDA),
        (root / "bin" / "activate", ACTIVATE),
        (root / "recording-pip", RECORDING_PIP.format(python=sys.executable)),
    ):
        path.write_text(text)
        path.chmod(0o755)
    return root / "bin"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """`snakemake --sdm conda --conda-create-envs-only` of the tiny config, run from a working
    directory that is not the workflow's (so nothing can lean on the current directory)."""
    tmp = tmp_path_factory.mktemp("envs")
    workflow, run = tmp / "workflow", tmp / "run"
    workflow.mkdir()
    for name in WORKFLOW:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workflow / name)
    shutil.copytree(ROOT / "config", run / "config")  # --configfile is read from the cwd
    record = tmp / "pip.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERINR_")}
    env["PATH"] = os.pathsep.join([str(fake_conda(tmp / "conda")), env["PATH"]])
    env["PIP_RECORD"] = str(record)
    prefix = tmp / "conda-envs"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(workflow / "Snakefile"), "--sdm", "conda",
         "--conda-create-envs-only", "--conda-prefix", str(prefix), "--cores", "1",
         "--configfile", "config/test.yaml"],
        cwd=run, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in record.read_text().splitlines()]
    return {"workflow": workflow, "run": run, "prefix": prefix, "records": records}


def test_each_env_installs_the_workflows_package_from_its_post_deploy_copy(deployed):
    """One pip call per env (hyperinr.yaml: the training rules; sim.yaml: rule simulate), the
    env's own pip (activated), the workflow's absolute directory, no dependencies from PyPI."""
    workflow, prefix = deployed["workflow"], deployed["prefix"]
    records = deployed["records"]
    assert len(records) == len(ENV_FILES), records
    for rec in records:
        assert rec["argv"] == [*INSTALL, str(workflow)], rec
        assert Path(rec["pip"]).parent.parent.parent == prefix  # <prefix>/<hash>/bin/pip
        assert rec["cwd"] == str(deployed["run"])  # Snakemake's cwd: not where the package is
    assert (workflow / "pyproject.toml").is_file()


def test_the_deployed_copies_resolve_nothing_relative_to_their_new_home(deployed):
    """Snakemake's copies in the conda prefix: each env file and its post-deploy script, with
    no path in them that would be read relative to .snakemake/conda/ (the old `-e ..`)."""
    prefix = deployed["prefix"]
    copies = sorted(p.read_text() for p in prefix.glob("*.yaml"))
    assert copies == sorted((ROOT / "envs" / name).read_text() for name in ENV_FILES)
    for text in copies:
        deps = yaml.safe_load(text)["dependencies"]
        assert all(isinstance(d, str) for d in deps), deps  # no `pip:` section
        assert not any("/" in d or d.startswith(".") for d in deps), deps
    scripts = list(prefix.glob("*.post-deploy.sh"))
    assert len(scripts) == len(ENV_FILES)
    assert all(s.read_text() == POST_DEPLOY.read_text() for s in scripts)
    assert len(list(prefix.glob("*.env_setup_done"))) == len(ENV_FILES)


def test_post_deploy_outside_snakemake_fails_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERINR_")}
    res = subprocess.run(["sh", str(POST_DEPLOY)], env=env, capture_output=True, text=True)
    assert res.returncode != 0 and res.stderr.count("\n") == 1, res.stderr
    assert "HYPERINR_WORKFLOW_DIR" in res.stderr and "--sdm conda" in res.stderr
    env["HYPERINR_WORKFLOW_DIR"] = str(tmp_path)  # not a checkout of the package
    res = subprocess.run(["sh", str(POST_DEPLOY)], env=env, capture_output=True, text=True)
    assert res.returncode == 1 and "no pyproject.toml" in res.stderr, res.stderr


# The sim env has fluidsim (which brings matplotlib, scipy, xarray, dask), pyfftw, h5py, numpy,
# pyyaml and jsonschema: none of the training stack.
NOT_IN_SIM_ENV = ("torch", "zarr", "skimage", "numba", "tqdm", "snakemake")
WITHOUT = textwrap.dedent(
    """
    import importlib.abc, sys
    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {absent!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}} (not in envs/sim.yaml)")
    sys.meta_path.insert(0, Absent())
    from hyperinr.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_simulate_runs_with_only_the_sim_envs_packages(tmp_path):
    """`hyperinr simulate` (rule simulate's command) on a tiny grid, with every package the sim
    env lacks made unimportable: the verb needs fluidsim and h5py, not torch."""
    # find_spec, not importorskip: importing fluidsim in this process patches h5netcdf.File
    # (hyperinr/data/simulate.py undoes it only around its own simulations), which would break
    # every later test that opens NetCDF through xarray
    if importlib.util.find_spec("fluidsim") is None:
        pytest.skip("pip install -e '.[sim]'")
    out = tmp_path / "sim"
    cfg = {"simulate": {"activate": True, "resolution": 16, "t_end": 0.5, "n_frames": 2,
                        "output_dir": str(out)}}  # fmt: skip
    res = subprocess.run(
        [sys.executable, "-c", WITHOUT.format(absent=set(NOT_IN_SIM_ENV)), "simulate",
         "--config-json", json.dumps(cfg), "--out-dir", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "tgv.h5").is_file() and (out / "params.json").is_file()
    sim_env = yaml.safe_load((ROOT / "envs" / "sim.yaml").read_text())["dependencies"]
    names = {d.split(">")[0].split("=")[0] for d in sim_env}
    assert not names & {"pytorch", "torch", "zarr", "scikit-image", "snakemake"}, names
