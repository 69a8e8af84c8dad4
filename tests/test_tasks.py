"""A config that asks for something its task cannot do fails before any job runs, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperinr.config import Config, ConfigError, merge_dicts, read_config_file
from hyperinr.tasks import check_config

ROOT = Path(__file__).resolve().parents[1]


def _config(name: str, **over) -> Config:
    data = merge_dicts(read_config_file(ROOT / "config/config.yaml"), {})
    if name != "config":
        data = merge_dicts(data, read_config_file(ROOT / f"config/{name}.yaml"))
    return Config.from_dict(merge_dicts(data, over))


@pytest.mark.parametrize(
    "name", ["config", "nvs", "dgs", "test_nvs", "test_dgs", "test", "paper/nvs", "paper/dgs"]
)
def test_shipped_configs_pass(name):
    check_config(_config(name))


@pytest.mark.parametrize(
    ("name", "over", "key", "needle"),
    [
        ("nvs", {"hyperinr": {"k_nearest": 200}}, "hyperinr.k_nearest", "exceeds the 177"),
        ("nvs", {"dataset": {"params": {"names": ["theta"]}}}, "dataset.params.names", "needs 2"),
        (
            "config",
            {"hyperinr": {"encoder_gaussian": {"count": 3}}},
            "hyperinr.encoder_gaussian.count",
            "n-D sampling only",
        ),
        ("config", {"distill_set": {"uniform": 3}}, "distill_set.uniform", "n-D sampling only"),
        (
            "dgs",
            {"hyperinr": {"encoder_gaussian": {"count": 206}}},
            "hyperinr.encoder_gaussian.count",
            "leaves no Poisson-disk",
        ),
        (
            "dgs",
            {"distill_set": {"gaussian": {"count": 950}}},
            "distill_set.gaussian.count",
            "leave no Poisson-disk",
        ),
        (
            "dgs",
            {"hyperinr": {"positions": [[0.1, 0.2], [0.3, 0.4], [0.1, 0.2]]}},
            "hyperinr.positions",
            "duplicate encoder position [0.1, 0.2]",
        ),
        ("dgs", {"hyperinr": {"positions": [[0.1], [0.3]]}}, "hyperinr.positions", "[N][2]"),
        ("dgs", {"scene": {"n_train": 200}}, "scene.n_train", "exceeds the 150"),
        ("nvs", {"ablation": {"budget_encoders": 3}}, "ablation.budget_encoders", "k_nearest=4"),
        (
            "dgs",
            {"dataset": {"split": {"train_first": 30}}},
            "dataset.split.train_first",
            "scene.n_train",
        ),
        ("dgs", {"dataset": {"files": ["x.h5"]}}, "dataset.files", "resources/dgs/frames.h5"),
        ("dgs", {"dataset": {"params": {"periodic": ["psi"]}}}, "dataset.params.periodic", "'psi'"),
        (
            "nvs",
            {"dataset": {"params": {"ranges": [[0, 1]]}}},
            "dataset.params.ranges",
            "1 ranges for 2",
        ),
        (
            "nvs",
            {"dataset": {"params": {"ranges": [[0, 180], [360, 0]]}}},
            "dataset.params.ranges",
            "empty",
        ),
        ("config", {"scene": {"activate": True}}, "scene.activate", "task tsr"),
        ("dgs", {"scene": {"transfer_function": {"positions": [0.0, 0.2, 0.7, 0.5, 1.0]}}},
         "scene.transfer_function.positions", "not increasing"),
    ],
)
def test_impossible_configs_name_the_key(name, over, key, needle):
    with pytest.raises(ConfigError) as info:
        check_config(_config(name, **over))
    message = str(info.value)
    assert message.startswith(f"{key}:") and needle in message and "\n" not in message
