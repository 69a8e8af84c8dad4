"""A stage's config slice records the process count it is given, and nothing from the
environment: the same arguments give the same provenance on a laptop and on a Polaris node."""

from __future__ import annotations

import pytest

from hyperinr.config import Config
from hyperinr.infra.provenance import record, stage_slice

TRAINING = ["teacher", "teacher_validation", "distill", "baseline_neurcomp", "ablation_hyperinr"]


@pytest.mark.parametrize("stage", TRAINING)
def test_a_training_slice_records_the_processes_passed(stage):
    plain = Config().to_dict()
    assert stage_slice(plain, stage)["runtime"]["gpus_per_job"] == 1  # the config's own
    assert stage_slice(plain, stage, processes=4)["runtime"]["gpus_per_job"] == 4
    assert stage_slice(plain, stage, processes=0)["runtime"]["gpus_per_job"] == 1  # gpu 0: CPU
    assert stage_slice(Config(), stage) == stage_slice(plain, stage)


def test_other_stages_ignore_the_process_count():
    plain = Config().to_dict()
    assert stage_slice(plain, "predict", processes=4) == stage_slice(plain, "predict")


def test_the_environment_changes_no_slice(monkeypatch):
    plain = Config().to_dict()
    before = {s: stage_slice(plain, s) for s in TRAINING}
    records = {s: record(s, plain, {"dataset": "abc"}) for s in TRAINING}
    monkeypatch.setenv("HYPERINR_NODE_GPUS", "4")
    monkeypatch.setenv("HYPERINR_JOB_GPUS", "4")
    assert {s: stage_slice(plain, s) for s in TRAINING} == before
    assert {s: record(s, plain, {"dataset": "abc"}) for s in TRAINING} == records
