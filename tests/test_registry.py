"""The model registry (hyperinr.models.registry): one home for the kinds of model.

The toy kind below lives in its own module, registered through the `hyperinr.models` entry-point
group of a distribution that exists only in a temporary directory: adding it touches nothing
in the package, and the workflow test trains, predicts and evaluates it through Snakemake.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperinr.models import registry
from hyperinr.models.coordnet import CoordNet, save_teacher
from tests._workflow import LOCAL_ENV, copy_workflow

TOY_MODULE = '''
"""A toy model kind: a linear map of (theta, x), trained on the frames by rule baseline."""
import torch
from torch import nn

from hyperinr.models.direct import DirectKind
from hyperinr.models.registry import ModelKind


class ToyLinear(nn.Module):
    kind = "toy"

    def __init__(self, n_params, n_spatial, n_outputs):
        super().__init__()
        self.n_params, self.n_spatial, self.n_outputs = n_params, n_spatial, n_outputs
        self.linear = nn.Linear(n_params + n_spatial, n_outputs)

    def forward(self, theta01, coords01):
        return self.linear(torch.cat([theta01, coords01], dim=1))

    @staticmethod
    def to_native(values01):
        return values01

    @staticmethod
    def from_native(output):
        return output

    def arch(self):
        return {"n_params": self.n_params, "n_spatial": self.n_spatial,
                "n_outputs": self.n_outputs}


IMPL = DirectKind("toy", "toy linear model", ToyLinear,
                  lambda cfg, meta: ToyLinear(meta.n_params, meta.n_spatial, meta.n_channels))
KIND = ModelKind("toy", "toy", "toy linear model", "toy_kind:IMPL", "baseline",
                 ("baselines.train", "runtime.seed", "runtime.device", "runtime.gpus_per_job"))
'''


def install_toy(where: Path) -> Path:
    """toy_kind.py and a dist-info declaring its entry point, importable from `where`."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "toy_kind.py").write_text(textwrap.dedent(TOY_MODULE))
    info = where / "toy_kind-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-kind\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[hyperinr.models]\ntoy = toy_kind:KIND\n")
    return where


@pytest.fixture
def toy_on_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(install_toy(tmp_path / "plugins")))
    registry.kinds.cache_clear()
    yield tmp_path / "plugins"
    sys.modules.pop("toy_kind", None)
    registry.kinds.cache_clear()


def test_builtin_kinds_and_their_names():
    assert set(registry.kinds()) == {"teacher", "hyperinr", "neurcomp", "hashinr", "independent"}
    assert registry.get("coordnet").name == "teacher"  # by the file's kind
    assert registry.get("independent_inrs") is registry.get("independent")  # old name
    assert registry.method_names()[-1] == "lerp"
    assert registry.names_trained_by("baseline") == ("neurcomp", "hashinr")
    with pytest.raises(ValueError, match=r"unknown model kind 'resnet' \(one of teacher, "):
        registry.get("resnet")


def test_every_builtin_kind_names_a_loadable_implementation():
    for kind in registry.kinds().values():
        impl = kind.impl()
        assert callable(impl.load) and callable(impl.field) and isinstance(impl.generates, bool)


def test_the_registry_imports_no_heavy_module():
    """The Snakefile imports it while parsing (issue 17: parse time)."""
    heavy = "('torch', 'matplotlib', 'skimage', 'zarr')"
    code = ("import sys, hyperinr.models.registry as r; r.kinds(); "
            f"print(sorted(m for m in {heavy} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_plugin_kind_registers_through_its_entry_point(toy_on_path):
    assert "toy" in registry.kinds() and "toy" in registry.method_names()
    assert registry.names_trained_by("baseline") == ("neurcomp", "hashinr", "toy")
    assert registry.get("toy").impl().file_kind == "toy"


def test_a_plugin_may_not_take_a_builtin_name(tmp_path, monkeypatch):
    where = install_toy(tmp_path / "p")
    (where / "toy_kind-0.1.dist-info/entry_points.txt").write_text(
        "[hyperinr.models]\nclash = toy_kind:CLASH\n"
    )
    with open(where / "toy_kind.py", "a") as fh:
        fh.write('\nCLASH = ModelKind("teacher", "x", "x", "toy_kind:IMPL", "baseline")\n')
    monkeypatch.syspath_prepend(str(where))
    registry.kinds.cache_clear()
    try:
        with pytest.raises(ValueError, match="entry point clash: model kind 'teacher' is taken"):
            registry.kinds()
    finally:
        sys.modules.pop("toy_kind", None)
        registry.kinds.cache_clear()


@pytest.mark.slow  # two CLI processes, each importing torch
def test_predict_reads_the_kind_from_the_file_and_refuses_another(tmp_path):
    """`hyperinr predict` without --method predicts as the file's kind; a --method naming
    another kind is a one-line error naming the file."""
    from tests._synthetic import smooth_field, write_dataset

    params = np.linspace(0.0, 1.0, 5)[:, None]
    ds = write_dataset(tmp_path / "ds.zarr", smooth_field(params, (8, 8, 8)), params, [0, 2, 4])
    torch.manual_seed(0)
    net = CoordNet(4, 1, (8,), 0)
    model = tmp_path / "teacher.pt"
    save_teacher(model, net, {"dims": [8, 8, 8]})
    out = tmp_path / "pred.zarr"
    base = [sys.executable, "-m", "hyperinr.cli", "predict", "--dataset", str(ds),
            "--model", str(model), "--out"]  # fmt: skip
    ok = subprocess.run([*base, str(out)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.with_suffix(".json").read_text())["method"] == "teacher"
    bad = subprocess.run([*base, str(tmp_path / "p2.zarr"), "--method", "hashinr"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode != 0
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert lines[-1].endswith(f"{model}: a teacher model file, not hashinr"), bad.stderr
    assert not (tmp_path / "p2.zarr").exists()


@pytest.mark.slow
@pytest.mark.workflow
def test_a_toy_kind_trains_predicts_and_is_evaluated_through_the_workflow(tmp_path):
    """Issue 17: a new kind touches only its own module and the registry (here: an entry point
    of a throw-away distribution); the rules, the CLI and the stages take it from there."""
    plugins = install_toy(tmp_path / "plugins")
    work = copy_workflow(tmp_path / "wf")
    (work / "config/toy.yaml").write_text("evaluate:\n  methods: [toy, lerp]\n")
    env = dict(LOCAL_ENV)
    env["PYTHONPATH"] = os.pathsep.join([str(plugins), env.get("PYTHONPATH", "")])
    target = "results/tgv16_test/report/metrics.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "--cores", "2", "--configfile",
         "config/test.yaml", "config/toy.yaml"],
        cwd=work, capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = work / "results/tgv16_test/toy/model.pt"
    assert model.is_file() and (work / "results/tgv16_test/toy/info.json").is_file()
    with open(work / target) as fh:
        rows = [r for r in csv.DictReader(fh) if r["method"] == "toy"]
    assert len(rows) == 9
    psnr = np.array([float(r["psnr"]) for r in rows])
    assert np.isfinite(psnr).all() and math.isfinite(psnr.mean())
