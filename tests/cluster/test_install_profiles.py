"""hyperinr.cluster.profiles.install_profiles, and `snakemake --profile polaris` by name."""

from __future__ import annotations

import os

import pytest
from clusterlib import PROFILES, TOY_SNAKEFILE

from hyperinr.cluster.profiles import install_profiles, user_profile_dir

NAMES = {"polaris", "polaris-allocation", "slurm", "slurm-local"}


def test_links_every_profile_and_is_idempotent(tmp_path):
    dest = tmp_path / "snakemake"
    said: list[str] = []
    links = install_profiles(dest, log=said.append)
    assert {p.name for p in links} == NAMES
    for link in links:
        assert link.is_symlink() and link.resolve() == (PROFILES / link.name).resolve()
        assert (link / "config.v8+.yaml").is_file()
    assert sum(line.startswith("installed:") for line in said) == len(NAMES)
    said.clear()
    assert install_profiles(dest, log=said.append) == links
    assert sum(line.startswith("up to date:") for line in said) == len(NAMES)


def test_conflicts_are_kept_unless_forced(tmp_path):
    dest = tmp_path / "snakemake"
    (dest / "polaris").mkdir(parents=True)
    (dest / "polaris" / "config.yaml").write_text("jobs: 1\n")
    (dest / "slurm").symlink_to(tmp_path)
    said: list[str] = []
    links = install_profiles(dest, log=said.append)
    assert {p.name for p in links} == {"polaris-allocation", "slurm-local"}
    assert sum(line.startswith("skipped:") for line in said) == 2
    links = install_profiles(dest, force=True, log=said.append)
    assert {p.name for p in links} == NAMES
    backups = list(dest.glob("polaris.bak-*"))
    assert len(backups) == 1 and (backups[0] / "config.yaml").read_text() == "jobs: 1\n"


def test_default_destination_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert user_profile_dir() == tmp_path / "xdg" / "snakemake"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_profile_dir() == tmp_path / "home" / ".config" / "snakemake"


def test_snakemake_finds_installed_profile_by_name(tmp_path, run_snakemake):
    """`snakemake --profile polaris`, verbatim, after install_profiles."""
    pytest.importorskip("snakemake_executor_plugin_cluster_generic")
    xdg = tmp_path / "xdg"
    install_profiles(xdg / "snakemake", log=lambda _: None)
    work = tmp_path / "work"
    work.mkdir()
    (work / "Snakefile").write_text(TOY_SNAKEFILE.read_text())
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(xdg),
        "HOME": str(tmp_path),
        "HYPERINR_PBS_ACCOUNT": "P",
    }
    res = run_snakemake(["--profile", "polaris", "-n"], work, env, timeout=60)
    assert res.returncode == 0, res.tail()
    assert "Using profile polaris for setting default command line arguments" in res.output
    assert "rule teacher:" in res.output and "gpu=1" in res.output


def test_profile_scripts_resolve_to_absolute_paths_through_the_link(tmp_path, monkeypatch):
    from snakemake.profiles import ProfileConfigFileParser

    # parsing runs the profile's YTE definitions here, which set HYPERINR_NODE_GPUS in this
    # process: recorded so that it is undone after the test, never seen by a later one
    monkeypatch.setenv("HYPERINR_NODE_GPUS", "4")
    (link,) = [p for p in install_profiles(tmp_path, log=lambda _: None) if p.name == "polaris"]
    with open(link / "config.v8+.yaml") as f:
        parsed = ProfileConfigFileParser().parse(f)
    for key, script in [
        ("cluster-generic-submit-cmd", "pbs_submit.py"),
        ("cluster-generic-status-cmd", "pbs_status.py"),
        ("cluster-generic-cancel-cmd", "pbs_cancel.py"),
    ]:
        assert parsed[key] == str(link / script)
        assert os.access(parsed[key], os.X_OK)
