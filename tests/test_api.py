"""hyperinr's public API: load any model, generate at physical parameters, use the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

import hyperinr
from hyperinr.grid import field_values, grid_coords
from hyperinr.models.coordnet import CoordNet, save_teacher, teacher_values
from hyperinr.render import Camera
from tests._synthetic import TINY_DIMS, TINY_TIMES, tiny_hyperinr_run

DIMS, TIMES = TINY_DIMS, TINY_TIMES


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A pipeline-shaped results folder: dataset.zarr, hyperinr/model.pt, teacher/model.pt."""
    root = tmp_path_factory.mktemp("results") / "toy"
    tiny_hyperinr_run(root)
    teacher = CoordNet(4, 1, (16, 16), 1)
    save_teacher(root / "teacher" / "model.pt", teacher, {"dims": list(DIMS)})  # an older file
    return root


def test_load_reads_the_parameter_space(run):
    m = hyperinr.load(run / "hyperinr" / "model.pt")
    assert m.kind == "hyperinr"
    assert m.param_names == ("t",)
    assert m.param_range == ((0.0, 4.0),)
    assert m.dims == DIMS


def test_generate_matches_the_predict_stage_in_physical_units(run):
    """The API's one-liner equals the chain the pipeline's predict stage runs."""
    m = hyperinr.load(run / "hyperinr" / "model.pt", device="cpu")
    inr = m.generate(t=3.0)
    model, meta = hyperinr.models.hyperinr.load_hyperinr(run / "hyperinr" / "model.pt", "cpu")
    ref01 = field_values(model.generate(np.array([0.75])), DIMS, 1, 1000, torch.device("cpu"))
    lo, hi = meta["value_range"]
    np.testing.assert_allclose(inr.volume(), (lo + ref01 * (hi - lo)).reshape(DIMS), rtol=1e-6)
    assert inr.params == {"t": 3.0}
    np.testing.assert_array_equal(m.generate(3.0).volume(), inr.volume())


def test_points_and_volume_agree(run):
    inr = hyperinr.load(run / "hyperinr" / "model.pt").generate(t=1.3)
    vol = inr.volume()
    flat = np.array([0, 17, 200, vol.size - 1])
    xyz = grid_coords(DIMS)[flat].numpy()
    np.testing.assert_allclose(inr(xyz), vol.reshape(-1)[flat], rtol=1e-6)
    assert isinstance(inr(torch.from_numpy(xyz)), torch.Tensor)
    assert inr.volume(shape=(3, 4, 5)).shape == (3, 4, 5)


def test_parameter_errors_and_extrapolation_warning(run):
    m = hyperinr.load(run / "hyperinr" / "model.pt")
    with pytest.raises(ValueError, match="unknown parameter"):
        m.generate(time=1.0)
    with pytest.raises(ValueError, match="needs 1 parameter"):
        m.generate()
    with pytest.warns(UserWarning, match="outside the trained range"):
        m.generate(t=5.0)


def test_teacher_reads_its_dataset_beside_it(run):
    """A teacher file records no parameter space: the dataset beside it supplies it."""
    m = hyperinr.load(run / "teacher" / "model.pt", device="cpu")
    assert m.kind == "coordnet" and m.param_names == ("t",)
    ds = hyperinr.data.store.open_dataset(run / "dataset.zarr")
    model, _ = hyperinr.models.coordnet.load_teacher(run / "teacher" / "model.pt", "cpu")
    ref01 = teacher_values(model, torch.tensor([0.25]), DIMS, 999, torch.device("cpu"))
    np.testing.assert_allclose(
        m.generate(t=1.0).volume(), ds.to_physical(ref01).reshape(DIMS), rtol=1e-5
    )


def test_lerp_and_ground_truth(run):
    ds = hyperinr.data.store.open_dataset(run / "dataset.zarr")
    frames = [ds.physical_frame(i) for i in range(5)]
    np.testing.assert_allclose(hyperinr.lerp(run / "dataset.zarr", t=2.0).volume(), frames[2],
                               rtol=1e-6)  # fmt: skip
    # t = 1 lies halfway between training frames 0 and 2: the mean of the two (numpy reference)
    np.testing.assert_allclose(hyperinr.lerp(run / "dataset.zarr", t=1.0).volume(),
                               0.5 * (frames[0] + frames[2]), rtol=1e-5)  # fmt: skip
    gt = hyperinr.ground_truth(run / "dataset.zarr", t=3.0)
    np.testing.assert_allclose(gt.volume(), frames[3], rtol=1e-6)
    with pytest.raises(ValueError, match="no frame at"):
        hyperinr.ground_truth(run / "dataset.zarr", t=2.5)


def test_render_size_and_range(run):
    img = hyperinr.load(run / "hyperinr" / "model.pt").generate(t=1.0).render(
        Camera(60, 35), size=(24, 16), n_steps=16
    )
    assert img.shape == (16, 24, 3) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0


def test_a_model_file_carrying_code_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"kind": "hyperinr", "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError) as err:
        hyperinr.load(tmp_path / "evil.pt")
    assert str(tmp_path / "evil.pt") in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()


def test_docs_api_example_runs(run, monkeypatch, capsys):
    """docs/api.md's Python blocks, run as written against this toy run's folder."""
    text = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/api.md has no python example"
    monkeypatch.chdir(run.parent)
    code = "\n".join(blocks).replace("results/tgv64_vorticity", "toy")
    exec(compile(code, "docs/api.md", "exec"), {})
