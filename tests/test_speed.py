"""The speed harness: ratios from one interleaved run, and the speed.csv rows of real models."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest

from hyperinr.evaluate.speed import measure_speed, side_by_side, write_speed
from hyperinr.models.coordnet import CoordNet, save_teacher
from hyperinr.models.hyperinr import HyperINR, save_hyperinr
from hyperinr.param_space.positions import encoder_positions

ENCODING = {"otype": "HashGrid", "n_levels": 4, "n_features_per_level": 2,
            "log2_hashmap_size": 12, "base_resolution": 4, "per_level_scale": 2.0}  # fmt: skip
NETWORK = {"otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "None",
           "n_neurons": 32, "n_hidden_layers": 2}  # fmt: skip


class CountedClock:
    """A stand-in for time.perf_counter that moves only when a case says it did work: the
    timings side_by_side sees are exact, whatever the machine's load."""

    def __init__(self):
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def case(self, name: str, costs: list[float]):
        """A case whose successive calls cost `costs` seconds (warm-up calls first)."""
        costs = iter(costs)

        def fn():
            self.calls.append(name)
            self.now += next(costs)

        return fn


@pytest.fixture
def clock(monkeypatch) -> CountedClock:
    fake = CountedClock()
    monkeypatch.setattr(time, "perf_counter", fake)  # read through the module by the timers
    return fake


def test_ratio_of_two_functions_of_known_relative_cost(clock):
    med = side_by_side({"a": clock.case("a", [1.0] * 9), "b": clock.case("b", [3.0] * 9)},
                       rounds=7, warmup=2)  # fmt: skip
    assert clock.calls.count("a") == clock.calls.count("b") == 9  # warm-up + rounds, once each
    assert med == {"a": 1.0, "b": 3.0}
    with pytest.raises(ValueError, match="rounds"):
        side_by_side({"a": clock.case("a", [0.0])}, rounds=0)


def test_medians_skip_warm_up_and_outliers(clock):
    """The slow first calls (compilation, allocation) and one stalled round do not move the
    figure: a mean, or timing the warm-up, would."""
    med = side_by_side({"a": clock.case("a", [100.0, 100.0, 1.0, 2.0, 50.0])}, rounds=3, warmup=2)
    assert med == {"a": 2.0}


def test_case_order_rotates_per_round(clock):
    cases = {n: clock.case(n, [1.0] * 4) for n in "abc"}
    side_by_side(cases, rounds=3, warmup=1)
    rounds = clock.calls[3:]  # after one warm-up call each
    assert [rounds[i : i + 3] for i in (0, 3, 6)] == [list("abc"), list("bca"), list("cab")]


def test_speed_rows_of_saved_models(tmp_path):
    teacher = CoordNet(4, 1, (16, 16), 1)
    save_teacher(tmp_path / "t.pt", teacher, {"dims": [4, 4, 4], "dataset_hash": "x"})
    hyper = HyperINR(encoder_positions(3, 1), 3, 1, ENCODING, NETWORK, 2)
    save_hyperinr(tmp_path / "h.pt", hyper, {})
    info = tmp_path / "info.json"
    info.write_text(json.dumps({"stage": "teacher", "wall_seconds": 12.5}))
    rows = measure_speed(
        np.linspace(0, 1, 5)[:, None], tmp_path / "t.pt", tmp_path / "h.pt", [info],
        "cpu", 1, rounds=2, batches=(1024,),
    )  # fmt: skip
    by = {(r["figure"], r["case"]): r for r in rows}
    inr, tea = by[("inference bandwidth", "inr")], by[("inference bandwidth", "teacher")]
    # the ratio is the teacher's time over the INR's: the same as the rates' ratio
    assert inr["ratio"] == pytest.approx(inr["value"] / tea["value"], rel=0.01)
    latency = [r for r in rows if r["figure"] == "generation latency"]
    assert len(latency) == 2 and all(r["value"] > 0 for r in latency)
    assert "1-D bracket" in latency[0]["case"]
    assert by[("stage wall time", "teacher")]["value"] == 12.5
    write_speed(rows, tmp_path / "speed.csv", tmp_path / "speed.md")
    with open(tmp_path / "speed.csv") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
    assert "inference bandwidth" in (tmp_path / "speed.md").read_text()
