"""One home for defaults (the dataclasses), one for valid values (the schema), and both name
the same keys by construction; renamed keys keep working with one deprecation line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hyperinr import config as config_module
from hyperinr.cli import build_config
from hyperinr.config import (
    RENAMED_KEYS,
    Config,
    ConfigError,
    load_config,
    upgrade_renamed_keys,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILE = ROOT / "workflow/schemas/config.schema.yaml"
SHIPPED = sorted(
    str(p.relative_to(ROOT))
    for pattern in ("config/*.yaml", "config/paper/*.yaml")
    for p in ROOT.glob(pattern)
)


def _schema_nodes(node: dict, where: str = ""):
    """Every schema node (object properties, list items, mapping values) with its key."""
    yield where, node
    for name, sub in node.get("properties", {}).items():
        yield from _schema_nodes(sub, f"{where}.{name}".lstrip("."))
    for sub in (node.get("items"), node.get("additionalProperties")):
        if isinstance(sub, dict):
            yield from _schema_nodes(sub, f"{where}[]")


@pytest.fixture
def fresh_schema(monkeypatch):
    """The schema loaded anew (its validator is cached per process), also after the test."""
    config_module._validator.cache_clear()
    yield
    config_module._validator.cache_clear()


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Deprecation lines print once per process: forget which were printed."""
    monkeypatch.setattr(config_module, "_WARNED", set())


# ----------------------------------------------------------------- one home for each concept


def test_schema_states_no_defaults():
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    stated = [where for where, node in _schema_nodes(schema) if "default" in node]
    assert stated == []


def _schema_copy(tmp_path, edit) -> Path:
    schema = yaml.safe_load(SCHEMA_FILE.read_text())
    edit(schema)
    path = tmp_path / "config.schema.yaml"
    path.write_text(yaml.safe_dump(schema, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        # a dataclass field the schema does not know
        (lambda s: s["properties"]["hyperinr"]["properties"].pop("idw_power"),
         "key hyperinr.idw_power (hyperinr/config.py) is missing from the schema"),
        # a schema key no dataclass field backs
        (lambda s: s["properties"]["teacher"]["properties"]["train"]["properties"].update(
            momentum={"type": "number"}),
         "key teacher.train.momentum is not a field of hyperinr/config.py"),
        # a tcnn block: the schema's keys are the default block's keys
        (lambda s: s["properties"]["hyperinr"]["properties"]["encoding"]["properties"].pop("hash"),
         "key hyperinr.encoding.hash (hyperinr/config.py) is missing from the schema"),
        # a default creeping back into the schema
        (lambda s: s["properties"]["runtime"]["properties"]["threads"].update(default=2),
         "runtime.threads states a default; defaults live in hyperinr/config.py"),
    ],
)  # fmt: skip
def test_schema_and_dataclasses_disagreeing_fails_at_load(
    tmp_path, monkeypatch, fresh_schema, edit, needle
):
    monkeypatch.setattr(config_module, "SCHEMA_PATH", _schema_copy(tmp_path, edit))
    with pytest.raises(ConfigError, match=r"config\.schema\.yaml: " + re.escape(needle)):
        Config.from_dict({})


def test_missing_schema_is_named(tmp_path, monkeypatch, fresh_schema):
    monkeypatch.setattr(config_module, "SCHEMA_PATH", tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError, match="nowhere.yaml: config schema not found"):
        Config.from_dict({})


def test_defaults_are_valid_and_keep_their_values():
    """The dataclasses' defaults pass the schema; the tcnn blocks, now stated as changes over
    tcnn's defaults, keep every value they had (the default run stays bit-identical)."""
    defaults = Config().to_dict()
    assert Config.from_dict(defaults) == Config()
    h, hashinr = Config().hyperinr, Config().baselines.hashinr
    grid = {
        "otype": "HashGrid",
        "n_levels": 8,
        "n_features_per_level": 4,
        "base_resolution": 4,
        "per_level_scale": 2.0,
        "interpolation": "Linear",
        "hash": "CoherentPrime",
    }
    assert h.encoding == {**grid, "log2_hashmap_size": 15}
    assert hashinr.encoding == {**grid, "log2_hashmap_size": 17}
    mlp = {
        "otype": "FullyFusedMLP",
        "activation": "ReLU",
        "output_activation": "None",
        "n_neurons": 64,
        "n_hidden_layers": 4,
    }
    assert h.network == mlp and hashinr.network == mlp


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_load_without_old_keys(name, capsys, fresh_warnings):
    cfg = load_config(ROOT / name)
    assert cfg.dataset.name
    assert "deprecated" not in capsys.readouterr().err


# ----------------------------------------------------------------------- messages, one line


def test_misspelled_key_is_named():
    with pytest.raises(ConfigError, match="config.hyperinr: unknown key 'n_encoder'"):
        Config.from_dict({"hyperinr": {"n_encoder": 3}})
    with pytest.raises(ConfigError, match="hyperinr.encoding: unknown key 'n_level'"):
        Config.from_dict({"hyperinr": {"encoding": {"n_level": 3}}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"teacher\.train\.steps: expected an integer"):
        Config.from_dict({"teacher": {"train": {"steps": "many"}}})
    with pytest.raises(ConfigError, match=r"runtime\.threads"):
        Config.from_dict({"runtime": {"threads": True}})


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"hyperinr": {"targets_mode": "corected"}},
         "config.hyperinr.targets_mode: 'corected' is not one of teacher, corrected, hybrid, "
         "ground_truth"),
        ({"dataset": {"task": "foo"}}, "config.dataset.task: 'foo' is not one of tsr, nvs, dgs"),
        ({"hyperinr": {"encoding": {"n_features_per_level": 3}}},
         "config.hyperinr.encoding.n_features_per_level: 3 is not one of 1, 2, 4, 8"),
        ({"runtime": {"threads": 0}}, "config.runtime.threads: 0 is less than the minimum of 1"),
        ({"runtime": {"device": "gpu"}}, "config.runtime.device: 'gpu' does not match"),
        ({"hyperinr": {"positions": [[0.5], [1.5]]}}, "config.hyperinr.positions[1][0]: 1.5"),
    ],
)  # fmt: skip
def test_values_outside_the_schema_are_named(data, needle):
    """The CLI path checks what only Snakemake's validation checked before (enums, ranges)."""
    with pytest.raises(ConfigError) as err:
        Config.from_dict(data)
    assert str(err.value).startswith(needle) and "\n" not in str(err.value)


def test_cli_rejects_a_bad_enum_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hyperinr.cli", "teacher",
         "--config-json", '{"hyperinr": {"targets_mode": "corected"}}',
         "--dataset", str(tmp_path / "x"), "--out-dir", str(tmp_path / "y")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "hyperinr teacher: error: config.hyperinr.targets_mode: 'corected' is not one of "
        "teacher, corrected, hybrid, ground_truth"
    ]
    assert not (tmp_path / "y").exists()


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


# ------------------------------------------------------------------- partial blocks, merged


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


# ------------------------------------------------------------------------------ renamed keys

OLD_VALUES = {
    "hyperinr.targets": "on_demand",
    "distill_set.mode": "subset",
    "distill_set.n_params": 7,
    "evaluate.batch_size": 1024,
}


def _nested(dotted: str, value) -> dict:
    *parents, leaf = dotted.split(".")
    out = {leaf: value}
    for key in reversed(parents):
        out = {key: out}
    return out


def _get(cfg: Config, dotted: str):
    for key in dotted.split("."):
        cfg = getattr(cfg, key)
    return cfg


@pytest.mark.parametrize("old", sorted(RENAMED_KEYS))
def test_old_key_lands_in_the_new_one_with_one_message(old, capsys, fresh_warnings):
    new = RENAMED_KEYS[old]
    cfg = Config.from_dict(_nested(old, OLD_VALUES[old]))
    again = Config.from_dict(_nested(old, OLD_VALUES[old]))
    assert _get(cfg, new) == _get(again, new) == OLD_VALUES[old]
    assert _get(Config(), new) != OLD_VALUES[old]  # the value really moved
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"hyperinr: config key {old} is deprecated, use {new}"]


@pytest.mark.parametrize("old", sorted(RENAMED_KEYS))
def test_old_and_new_key_together_fail(old, fresh_warnings):
    new = RENAMED_KEYS[old]
    data = config_module.merge_dicts(_nested(old, OLD_VALUES[old]), _nested(new, OLD_VALUES[old]))
    with pytest.raises(ConfigError, match=f"both {old} and {new} given"):
        Config.from_dict(data)


def test_old_key_over_a_file_with_the_new_one_is_an_override(tmp_path, fresh_warnings):
    """Layers are renamed one by one (CLI: files, then --config-json), so a user's old key
    over a base file's new key overrides it, as the same name would."""
    base = tmp_path / "base.yaml"
    base.write_text("distill_set:\n  n_samples: 81\n")
    user = tmp_path / "user.yaml"
    user.write_text("distill_set:\n  n_params: 40\n")
    assert build_config([str(base), str(user)], None).distill_set.n_samples == 40
    cfg = build_config([str(base)], '{"distill_set": {"n_params": 9}}')
    assert cfg.distill_set.n_samples == 9
    both = tmp_path / "both.yaml"
    both.write_text("distill_set:\n  n_params: 40\n  n_samples: 41\n")
    with pytest.raises(ConfigError, match=f"{both}: config: both distill_set.n_params"):
        build_config([str(base), str(both)], None)


def test_merged_workflow_config_tells_layers_apart(fresh_warnings):
    """Snakemake hands rules/common.smk one merged dict; its --configfile layers (`later`)
    say which of an old and a new key came last."""
    merged = {"distill_set": {"n_samples": 81, "n_params": 40}}  # base new, user old
    user = {"distill_set": {"n_params": 40}}
    assert upgrade_renamed_keys(merged, later=user) == {"distill_set": {"n_samples": 40}}
    merged = {"distill_set": {"n_samples": 9, "n_params": 40}}  # base old, user new
    user = {"distill_set": {"n_samples": 9}}
    assert upgrade_renamed_keys(merged, later=user) == {"distill_set": {"n_samples": 9}}
    merged = {"distill_set": {"n_samples": 9, "n_params": 40}}  # both from one layer
    with pytest.raises(ConfigError, match="both distill_set.n_params and distill_set.n_samples"):
        upgrade_renamed_keys(merged, later={})


# ------------------------------------------------------------ evaluate.methods: the registry


def test_methods_are_checked_against_the_registry(monkeypatch):
    """The schema leaves evaluate.methods open (plugins add model kinds); tasks.check_config
    asks hyperinr.models.registry."""
    from hyperinr.models import registry
    from hyperinr.tasks import check_config

    toy = Config.from_dict({"evaluate": {"methods": ["hyperinr", "toy"]}})
    with pytest.raises(ConfigError, match="evaluate.methods: 'toy' is not one of"):
        check_config(toy)
    monkeypatch.setattr(registry, "method_names", lambda: ("hyperinr", "teacher", "lerp", "toy"))
    check_config(toy)


# ------------------------------------------------------------------------- through Snakemake


def _dry_run(tmp_path, overrides: str, *args: str) -> subprocess.CompletedProcess:
    """`snakemake -n -p` of a copy of the workflow with `overrides` as the user's config."""
    work = tmp_path / "wf"
    work.mkdir()
    for name in ("Snakefile", "rules", "workflow", "config"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, work / name)
    (work / "user.yaml").write_text(overrides)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERINR_")}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--configfile", "user.yaml", *args],
        cwd=work, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def _teacher_slice(output: str) -> dict:
    """The teacher rule's --config-json, as printed by `snakemake -n -p`."""
    for line in output.splitlines():
        if " teacher " in line and "--config-json" in line and "--validation" not in line:
            return json.loads(line.split("--config-json '", 1)[1].split("'", 1)[0])
    raise AssertionError(f"no teacher command in:\n{output}")


@pytest.mark.workflow
@pytest.mark.parametrize(
    "override, needle",
    [
        ("teacher:\n  hidden_blockz: 3\n", "hidden_blockz"),
        ("hyperinr:\n  n_encoders: many\n", "n_encoders"),
        ("hyperinr:\n  targets_mode: corected\n", "corected"),
    ],
)
def test_snakemake_schema_rejects_before_any_job(tmp_path, override, needle):
    proc = _dry_run(tmp_path, override)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_snakemake_fills_defaults_from_the_dataclasses(tmp_path):
    """A partial teacher.train keeps the teacher's lr 1e-5 through the workflow too (the schema
    states no defaults), and the rule passes it on (config/config.yaml, which sets its own lr,
    replaced by the user's file)."""
    proc = _dry_run(tmp_path, "teacher:\n  train:\n    steps: 9\n", "--replace-workflow-config")
    assert proc.returncode == 0, proc.stderr
    train = _teacher_slice(proc.stdout)["teacher"]["train"]
    assert train["steps"] == 9 and train["lr"] == 1e-5 and train["weight_decay"] == 1e-6


@pytest.mark.workflow
def test_snakemake_upgrades_old_keys_of_a_user_config(tmp_path):
    """config/config.yaml says n_samples; the user's old n_params overrides it, with one line."""
    proc = _dry_run(tmp_path, "distill_set:\n  n_params: 12\n  shard_size: 4\n")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    message = "hyperinr: config key distill_set.n_params is deprecated, use distill_set.n_samples"
    assert out.count(message) == 1
    assert "shard_2.zarr" in out and "shard_3.zarr" not in out  # 12 parameters in shards of 4
