"""Slab-wise prediction on CUDA (issue 19): a slab's values are the whole grid's there too,
and the predict stage writes the same frames whatever the store's chunks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import zarr
from _synthetic import smooth_field, write_dataset

from hyperinr.config import Config, StoreConfig
from hyperinr.grid import field_values, n_voxels
from hyperinr.models.hyperinr import HyperINR, load_hyperinr, save_hyperinr
from hyperinr.stages.predict import predict

ENC = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2, "log2_hashmap_size": 12,
       "base_resolution": 4, "per_level_scale": 2.0}  # fmt: skip
NET = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
       "n_neurons": 64, "n_hidden_layers": 2}  # fmt: skip
DIMS = (24, 20, 18)
TIMES = np.array([0.0, 1.0, 2.0, 3.0, 4.0])


def _run(root):
    physical = smooth_field(TIMES[:, None] / 4.0, DIMS)
    write_dataset(root / "dataset.zarr", physical, TIMES[:, None], [0, 2, 4], param_names=["t"])
    model = HyperINR(np.array([[0.0], [0.5], [1.0]]), 3, 1, ENC, NET, k_nearest=2)
    meta = {"dims": list(DIMS), "param_names": ["t"], "param_range": [[0.0, 4.0]],
            "value_range": [float(physical.min()), float(physical.max())]}  # fmt: skip
    save_hyperinr(root / "model.pt", model, meta)
    return root


def test_flat_ranges_equal_the_whole_grid_on_cuda(tmp_path, cuda):
    root = _run(tmp_path)
    model, _ = load_hyperinr(root / "model.pt", cuda)
    field = model.generate(np.array([0.3]))
    whole = field_values(field, DIMS, 1, 1000, cuda)
    cuts = [0, 7, 360, 361, 2999, n_voxels(DIMS)]
    pieces = [
        field_values(field, DIMS, 1, 1000, cuda, flat_range=(a, b))
        for a, b in zip(cuts[:-1], cuts[1:])
    ]
    assert np.array_equal(np.concatenate(pieces), whole)
    cpu_model, _ = load_hyperinr(root / "model.pt", torch.device("cpu"))
    cpu = field_values(cpu_model.generate(np.array([0.3])), DIMS, 1, 1000, torch.device("cpu"))
    np.testing.assert_allclose(whole, cpu, rtol=1e-4, atol=1e-6)


def test_predict_stage_chunked_equals_unchunked_on_cuda(tmp_path, cuda):
    root = _run(tmp_path)
    base = Config.from_dict({"runtime": {"device": "cuda"}, "predict": {"batch_size": 1000}})
    outs = []
    for name, store in (("whole", StoreConfig()), ("chunked", StoreConfig(chunk=4, shard=True))):
        out = root / f"{name}.zarr"
        predict(replace(base, store=store), None, root / "dataset.zarr", root / "model.pt", out)
        outs.append(np.asarray(zarr.open_group(str(out), mode="r")["frames"][...]))
    assert np.array_equal(outs[0], outs[1])
