"""A process claims its GPU once, where its CLI verb starts; choosing the device claims none."""

from __future__ import annotations

import os

import pytest
import torch

from hyperinr import cli
from hyperinr.infra import device


@pytest.fixture
def packed_node(monkeypatch, tmp_path):
    """A Polaris node as the profile declares it, for a job that asked for no GPU (its claim
    hides CUDA and locks nothing); CUDA_VISIBLE_DEVICES comes back as it was."""
    monkeypatch.setenv("HYPERINR_NODE_GPUS", "4")
    monkeypatch.setenv("HYPERINR_JOB_GPUS", "0")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "unset by the test")  # recorded, then removed
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    return tmp_path


def test_resolve_device_is_a_pure_choice(packed_node):
    assert device.resolve_device("cpu") == torch.device("cpu")
    assert device.resolve_device("auto").type in ("cpu", "cuda")
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not list(packed_node.iterdir())  # no slot directory, no lock


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line():
    with pytest.raises(RuntimeError, match="runtime.device is 'cuda' but CUDA is not available"):
        device.resolve_device("cuda")


def test_claim_gpus_only_for_auto_and_cuda(packed_node):
    assert device.claim_gpus("cpu") is None and device.claim_gpus("cuda:1") is None
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert device.claim_gpus("auto") == ""  # the job asked for none: CUDA hidden
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.parametrize(
    "argv, claims",
    [
        (["teacher", "--dataset", "missing.zarr", "--out-dir", "out"], ["auto"]),
        (["predict", "--dataset", "missing.zarr", "--model", "missing.pt", "--out", "p.zarr"],
         ["auto"]),
        (["evaluate", "--dataset", "missing.zarr", "--out", "m.csv"], []),
    ],
)  # fmt: skip
def test_the_cli_claims_where_a_device_verb_starts(monkeypatch, tmp_path, argv, claims):
    seen: list[str] = []
    monkeypatch.setattr(device, "claim_gpus", seen.append)
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 1  # the missing dataset, after the claim
    assert seen == claims


def test_a_device_verb_takes_its_slot_as_it_starts(packed_node, monkeypatch):
    monkeypatch.chdir(packed_node)
    assert cli.main(["teacher", "--dataset", "missing.zarr", "--out-dir", "out"]) == 1
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # claimed (none: a CPU job) by main
