"""The schema (what Snakemake validates) and the dataclasses (what the package trusts) agree."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hyperinr.cli import build_config
from hyperinr.config import Config, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def _schema_defaults(node: dict) -> object:
    """Defaults a validator fills into an empty config, computed from the schema alone."""
    if node.get("type") == "object" and "properties" in node and node.get("default") == {}:
        return {k: _schema_defaults(v) for k, v in node["properties"].items()}
    return node.get("default")


def test_schema_defaults_equal_dataclass_defaults():
    from_schema = {k: _schema_defaults(v) for k, v in SCHEMA["properties"].items()}
    assert from_schema == Config().to_dict()


def test_schema_and_dataclasses_name_the_same_keys():
    def keys(node, prefix=""):
        out = set()
        for k, v in node.get("properties", {}).items():
            if v.get("default") == {} and "properties" in v:
                out |= keys(v, f"{prefix}{k}.")
            else:
                out.add(prefix + k)
        return out

    def dc_keys(obj, prefix=""):
        out = set()
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                out |= dc_keys(value, f"{prefix}{f.name}.")
            else:
                out.add(prefix + f.name)
        return out

    assert keys(SCHEMA) == dc_keys(Config())


@pytest.mark.parametrize(
    "name", ["config/config.yaml", "config/test.yaml", "config/paper/tsr_pressure.yaml"]
)
def test_shipped_configs_load(name):
    cfg = load_config(ROOT / name)
    assert cfg.dataset.name


def test_misspelled_key_is_named():
    with pytest.raises(ConfigError, match="unknown key 'n_encoder'"):
        Config.from_dict({"hyperinr": {"n_encoder": 3}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"teacher\.train\.steps: expected an integer"):
        Config.from_dict({"teacher": {"train": {"steps": "many"}}})
    with pytest.raises(ConfigError, match=r"runtime\.threads"):
        Config.from_dict({"runtime": {"threads": True}})


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher:\n  hidden_blockz: 3\n")
    with pytest.raises(ConfigError, match=str(bad)):
        build_config([str(bad)], None)
    with pytest.raises(ConfigError, match="not found"):
        build_config([str(tmp_path / "missing.yaml")], None)


def test_json_overrides_files(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("teacher:\n  hidden_blocks: 3\n")
    cfg = build_config([str(base)], '{"teacher": {"widths": [8]}}')
    assert cfg.teacher.hidden_blocks == 3 and cfg.teacher.widths == (8,)


def test_section_hash_tracks_only_its_sections():
    a = Config()
    b = Config.from_dict({"hyperinr": {"n_encoders": 5}})
    assert a.section_hash("teacher") == b.section_hash("teacher")
    assert a.section_hash("hyperinr") != b.section_hash("hyperinr")


@pytest.mark.workflow
@pytest.mark.parametrize(
    "override, needle",
    [
        ("teacher:\n  hidden_blockz: 3\n", "hidden_blockz"),
        ("hyperinr:\n  n_encoders: many\n", "n_encoders"),
    ],
)
def test_snakemake_schema_rejects_before_any_job(tmp_path, override, needle):
    bad = tmp_path / "bad.yaml"
    bad.write_text(override)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


def test_partial_nested_block_keeps_section_defaults():
    """A `train:` block naming only `steps` must not reset the section's own lr/eps defaults."""
    cfg = Config.from_dict(
        {"teacher": {"train": {"steps": 7}}, "hyperinr": {"train": {"steps": 9}}}
    )
    assert cfg.teacher.train.steps == 7 and cfg.teacher.train.lr == 1e-5
    assert cfg.teacher.train.weight_decay == 1e-6
    assert cfg.hyperinr.train.steps == 9 and cfg.hyperinr.train.eps == 1e-10


def test_partial_encoding_and_network_blocks_keep_section_defaults():
    """`encoding:` naming only n_levels keeps HyperINR's T, F, R1, b (not tiny-cuda-nn's own
    2^19, 2, 16, ...); the same for `network:`."""
    defaults = Config().hyperinr
    cfg = Config.from_dict(
        {"hyperinr": {"encoding": {"n_levels": 16}, "network": {"n_hidden_layers": 2}}}
    )
    assert cfg.hyperinr.encoding == {**defaults.encoding, "n_levels": 16}
    assert cfg.hyperinr.encoding["log2_hashmap_size"] == 15
    assert cfg.hyperinr.encoding["n_features_per_level"] == 4
    assert cfg.hyperinr.encoding["base_resolution"] == 4
    assert cfg.hyperinr.network == {**defaults.network, "n_hidden_layers": 2}
    assert Config().hyperinr.encoding["n_levels"] == 8  # the default itself is untouched


def test_partial_encoding_block_over_a_file_keeps_the_file_values(tmp_path):
    """Config files layered by the CLI merge dict-typed keys too (as Snakemake merges files)."""
    base = tmp_path / "base.yaml"
    base.write_text("hyperinr:\n  encoding:\n    per_level_scale: 1.5\n")
    over = tmp_path / "over.yaml"
    over.write_text("hyperinr:\n  encoding:\n    n_levels: 16\n")
    enc = build_config([str(base), str(over)], None).hyperinr.encoding
    assert enc == {**Config().hyperinr.encoding, "per_level_scale": 1.5, "n_levels": 16}


def _snakemake_validated(data: dict) -> dict:
    """`data` after the workflow's own check: snakemake.utils.validate fills schema defaults."""
    from snakemake.utils import validate

    validate(data, schema=str(ROOT / "workflow/schemas/config.schema.yaml"))
    return data


@pytest.mark.parametrize(
    "user",
    [
        {},
        {"hyperinr": {"encoding": {"n_levels": 16}}},
        {"hyperinr": {"encoding": {"log2_hashmap_size": 12}, "network": {"n_neurons": 32}}},
        {"hyperinr": {"network": {"activation": "Sigmoid"}, "train": {"steps": 5}}},
    ],
)
def test_partial_blocks_mean_the_same_through_snakemake_and_config(user):
    """A partial encoding/network block gives the same values whether the schema (Snakemake)
    or Config.from_dict (the CLI) fills in the rest, and the rules' JSON rebuilds that Config."""
    import copy

    through_schema = _snakemake_validated(copy.deepcopy(user))
    expected = Config.from_dict(user).to_dict()
    for block in ("encoding", "network"):
        assert through_schema["hyperinr"][block] == expected["hyperinr"][block]
    assert Config.from_dict(through_schema).to_dict() == expected


def test_schema_per_key_defaults_equal_the_block_defaults():
    props = SCHEMA["properties"]["hyperinr"]["properties"]
    for block in ("encoding", "network"):
        per_key = {k: v["default"] for k, v in props[block]["properties"].items()}
        assert per_key == props[block]["default"] == getattr(Config().hyperinr, block)
