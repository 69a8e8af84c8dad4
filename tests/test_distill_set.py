"""Sharded, resumable distillation-set precomputation (rules distill_set_shard + distill_set).

Tiny case: an 8^3 dataset of 5 frames and an untrained 2-block CoordNet teacher; sets of 10
parameters in shards of 4 (shards of 4, 4 and 2 parameters).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from hyperinr.cli import main
from hyperinr.config import Config
from hyperinr.data.store import open_dataset, write_dataset
from hyperinr.infra import provenance
from hyperinr.models.coordnet import CoordNet, save_teacher, teacher_values
from hyperinr.stages import distill_set as ds_mod
from hyperinr.stages.distill_set import (
    build_distill_set,
    build_shard,
    default_shards_dir,
    prepare,
    shard_path,
    verify_shard,
)
from hyperinr.training.loader import DistillSet

DIMS = (8, 8, 8)
CFG = {
    "teacher": {"widths": [8, 8], "hidden_blocks": 0},
    "distill_set": {"n_samples": 10, "shard_size": 4, "dtype": "float16", "batch_size": 200},
    "runtime": {"threads": 1, "device": "cpu", "seed": 0},
}


def make_config(**distill_set) -> Config:
    data = json.loads(json.dumps(CFG))
    data["distill_set"].update(distill_set)
    return Config.from_dict(data)


def make_case(root: Path, dims=DIMS, widths=(8, 8), seed=0) -> tuple[Path, Path]:
    """A dataset store (frames drawn with `seed`) and an untrained teacher made for it."""
    root.mkdir(parents=True, exist_ok=True)
    n = 5
    rng = np.random.default_rng(seed)
    frames = [rng.random(dims).astype(np.float32) for _ in range(n)]
    dataset = write_dataset(
        root / "dataset.zarr",
        frames,
        shape=(n, *dims),
        value_range=(0.0, 1.0),
        params=np.linspace(0, 2, n).reshape(-1, 1),
        param_names=["t"],
        train_indices=[0, 2, 4],
        source_dtype="float32",
        provenance={"test": True},
    )
    torch.manual_seed(0)
    model = CoordNet(1 + len(dims), 1, tuple(widths), 0)
    teacher = root / "teacher.pt"
    content = open_dataset(dataset).content_hash
    save_teacher(teacher, model, {"dataset_hash": content, "dims": list(dims)})
    return dataset, teacher


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("case"))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` by relative name (the shards' timing sidecars excluded)."""
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(Path(path).rglob("*"))
        if p.is_file() and p.name != "info.json"
    }


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hyperinr.cli", *args], capture_output=True, text=True,
        timeout=timeout,
    )


def test_set_holds_the_teachers_volumes(case, tmp_path):
    dataset, teacher = case
    cfg = make_config(dtype="float32")
    out = build_distill_set(cfg, dataset, teacher, tmp_path / "distill_set.zarr")
    s = DistillSet(out)
    assert (s.n_params, s.n_points, s.n_channels) == (10, 512, 1)
    assert sorted(p.name for p in default_shards_dir(out).iterdir()) == [
        "shard_0.zarr", "shard_1.zarr", "shard_2.zarr"
    ]
    ctx = prepare(cfg, dataset, teacher)
    for j in (0, 5, 9):
        want = teacher_values(ctx.model, torch.from_numpy(ctx.params01[j]), DIMS, 100, ctx.device)
        got = np.empty((512, 1), np.float32)
        s.read_into(j, got)
        np.testing.assert_array_equal(got, want)
    attrs = zarr.open_group(out, mode="r").attrs
    assert attrs["bytes"] == 10 * 512 * 4 and attrs["disk_bytes"] > 0
    assert attrs["teacher_sha256"] == provenance.sha256_file(teacher)
    assert attrs["produced_by"]["inputs"] == {
        "dataset": open_dataset(dataset).content_hash,
        "teacher": provenance.sha256_file(teacher),
    }
    info = json.loads((tmp_path / "distill_set_info.json").read_text())
    assert info["stage"] == "distill_set" and info["n_shards"] == 3
    assert info["recomputed_by_gather"] == [0, 1, 2]


def test_subset_mode_stores_points_and_their_coordinates(case, tmp_path):
    dataset, teacher = case
    cfg = make_config(coverage="subset", points_per_param=100, dtype="float32")
    out = build_distill_set(cfg, dataset, teacher, tmp_path / "distill_set.zarr")
    s = DistillSet(out)
    assert s.mode == "subset" and (s.n_params, s.n_points) == (10, 100)
    ctx = prepare(cfg, dataset, teacher)
    values, coords = np.empty((100, 1), np.float32), np.empty((100, 3), np.float32)
    s.read_into(7, values, coords)
    assert coords.min() >= 0 and coords.max() < 1
    want = teacher_values(ctx.model, torch.from_numpy(ctx.params01[7]), DIMS, 64, ctx.device,
                          coords)
    np.testing.assert_array_equal(values, want)
    other = np.empty((100, 3), np.float32)
    s.read_into(8, np.empty((100, 1), np.float32), other)
    assert not np.array_equal(coords, other)  # a fresh subset per parameter


_KILLER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hyperinr.stages import distill_set as m
    from hyperinr.cli import main

    marker, kill_shard = Path(sys.argv[1]), int(sys.argv[2])
    real = m.write_chunk
    def write_chunk(array, index, data):
        real(array, index, data)
        if f"shard_{kill_shard}.zarr.tmp-" in str(array.store) and index == 1:
            marker.write_text("mid-write")
            time.sleep(60)  # killed here: shard half written
    m.write_chunk = write_chunk
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.slow
def test_killed_mid_shard_then_rerun_is_byte_identical(case, tmp_path):
    dataset, teacher = case
    cfg_json = json.dumps(CFG)
    args = ["distill-set", "--config-json", cfg_json, "--dataset", str(dataset),
            "--teacher", str(teacher)]
    ref = tmp_path / "ref" / "distill_set.zarr"
    proc = _cli(*args, "--out", str(ref))
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "run" / "distill_set.zarr"
    marker = tmp_path / "marker"
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    victim = subprocess.Popen(
        [sys.executable, str(script), str(marker), "1", *args, "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert victim.poll() is None and time.monotonic() < deadline, "never reached shard 1"
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    shards = default_shards_dir(out)
    assert (shards / "shard_0.zarr").exists() and not (shards / "shard_1.zarr").exists()
    assert list(shards.glob(".shard_1.zarr.tmp-*")), "the kill left a half-written temporary"
    assert not out.exists()
    done_before = (shards / "shard_0.zarr" / "zarr.json").stat().st_mtime_ns

    proc = _cli(*args, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert (shards / "shard_0.zarr" / "zarr.json").stat().st_mtime_ns == done_before  # kept
    assert not list(shards.glob(".shard_*.tmp-*"))
    assert tree(out) == tree(ref)
    assert tree(shards) == tree(default_shards_dir(ref))
    info = json.loads((out.parent / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == [1, 2]


def test_corrupt_shard_is_detected_and_recomputed(case, tmp_path):
    dataset, teacher = case
    cfg = make_config()
    out = build_distill_set(cfg, dataset, teacher, tmp_path / "distill_set.zarr")
    ref = tree(out)
    ctx = prepare(cfg, dataset, teacher)
    chunk = shard_path(default_shards_dir(out), 1) / "values" / "c" / "2" / "0" / "0"
    with open(chunk, "r+b") as fh:  # bit rot in place (the published set shares this file)
        fh.seek(chunk.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    assert verify_shard(ctx, 0, shard_path(default_shards_dir(out), 0)) is None
    reason = verify_shard(ctx, 1, shard_path(default_shards_dir(out), 1))
    assert reason is not None and reason.startswith("corrupt")

    build_distill_set(cfg, dataset, teacher, out)
    info = json.loads((tmp_path / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == [1]
    assert tree(out) == ref


def test_corrupt_chunk_is_never_read_by_the_loader(case, tmp_path):
    dataset, teacher = case
    out = build_distill_set(make_config(), dataset, teacher, tmp_path / "distill_set.zarr")
    chunk = out / "values" / "c" / "3" / "0" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[5] ^= 0x01
    chunk.unlink()
    chunk.write_bytes(bytes(raw))
    s = DistillSet(out)
    with pytest.raises(ValueError, match="parameter 3 is corrupt"):
        s.read_into(3, np.empty((512, 1), np.float16))
    (out / "values" / "c" / "4" / "0" / "0").unlink()  # a missing chunk reads as NaN fill
    with pytest.raises(ValueError, match="parameter 4 fails its SHA-256"):
        s.read_into(4, np.empty((512, 1), np.float16))


def test_config_change_forces_recompute(case, tmp_path):
    dataset, teacher = case
    out = tmp_path / "distill_set.zarr"
    build_distill_set(make_config(), dataset, teacher, out)
    build_distill_set(make_config(), dataset, teacher, out)
    info = json.loads((tmp_path / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == []  # same config: every shard reused
    old_hash = DistillSet(out).attrs["produced_by"]["hash"]

    cfg = make_config(dtype="float32")
    ctx = prepare(cfg, dataset, teacher)
    reason = verify_shard(ctx, 0, shard_path(default_shards_dir(out), 0))
    assert reason is not None and reason.startswith("stale (dtype")
    build_distill_set(cfg, dataset, teacher, out)
    info = json.loads((tmp_path / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == [0, 1, 2]
    s = DistillSet(out)
    assert s.attrs["produced_by"]["hash"] != old_hash and s.values_dtype == np.float32

    # a seed change alters subset coordinates, so it is part of the set's hash too
    a = make_config(coverage="subset")
    b = Config.from_dict({**a.to_dict(), "runtime": {**a.to_dict()["runtime"], "seed": 1}})
    assert provenance.record("distill_set", a, {}) != provenance.record("distill_set", b, {})


def test_teacher_that_does_not_match_is_a_one_line_error(tmp_path, capsys):
    dataset, teacher = make_case(tmp_path / "a")
    _, other_data = make_case(tmp_path / "c", seed=1)
    _, other_dims = make_case(tmp_path / "d", dims=(4, 4, 4))
    for bad, what in ((other_data, "another dataset"), (other_dims, "another dataset layout")):
        rc = main(["distill-set", "--config-json", json.dumps(CFG), "--dataset", str(dataset),
                   "--teacher", str(bad), "--out", str(tmp_path / "out.zarr")])
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert rc == 1 and len(lines) == 1 and str(bad) in lines[0] and what in lines[0], err
    assert not (tmp_path / "out.zarr").exists()
    assert not (tmp_path / "distill_set").exists()


def test_disk_full_is_a_clear_error_and_publishes_nothing(case, tmp_path, monkeypatch):
    dataset, teacher = case
    cfg = make_config()
    real = ds_mod.write_chunk
    calls = {"n": 0}

    def full_disk(array, index, data):
        calls["n"] += 1
        if calls["n"] == 6:  # inside the second shard
            raise OSError(errno.ENOSPC, "No space left on device")
        real(array, index, data)

    monkeypatch.setattr(ds_mod, "write_chunk", full_disk)
    out = tmp_path / "distill_set.zarr"
    with pytest.raises(OSError, match="disk full") as err:
        build_distill_set(cfg, dataset, teacher, out)
    assert err.value.errno == errno.ENOSPC and "shard_1.zarr" in str(err.value)
    assert not out.exists() and not (tmp_path / "distill_set_info.json").exists()
    shards = default_shards_dir(out)
    assert sorted(p.name for p in shards.iterdir()) == ["shard_0.zarr"]  # no partial shard 1

    monkeypatch.setattr(ds_mod, "write_chunk", real)
    build_distill_set(cfg, dataset, teacher, out)  # space again: resumes from shard 1
    info = json.loads((tmp_path / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == [1, 2]


def test_disk_full_via_the_cli_is_one_line(case, tmp_path, monkeypatch, capsys):
    dataset, teacher = case

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ds_mod, "write_chunk", full)
    out = tmp_path / "shard_0.zarr"
    rc = main(["distill-set-shard", "--config-json", json.dumps(CFG), "--dataset", str(dataset),
               "--teacher", str(teacher), "--shard", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "disk full" in err, err
    assert not out.exists() and not list(tmp_path.glob(".shard_0.zarr.tmp-*"))


@pytest.mark.slow
def test_parallel_shard_jobs_lose_nothing(case, tmp_path):
    """Two processes write shards of one set at once; the gather finds every one intact."""
    dataset, teacher = case
    cfg_json = json.dumps(CFG)
    shards = tmp_path / "par" / "distill_set" / "shards"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(
                f"""
                import sys
                from hyperinr.cli import main
                for shard in {list(which)}:
                    rc = main(["distill-set-shard", "--config-json", {cfg_json!r},
                               "--dataset", {str(dataset)!r}, "--teacher", {str(teacher)!r},
                               "--shard", str(shard),
                               "--out", {str(shards)!r} + f"/shard_{{shard}}.zarr"])
                    if rc:
                        sys.exit(rc)
                """
            )],
            stderr=subprocess.PIPE, text=True,
        )
        for which in ((0, 2), (1,))
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    out = tmp_path / "par" / "distill_set.zarr"
    build_distill_set(make_config(), dataset, teacher, out)
    info = json.loads((out.parent / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == []  # all made by the two jobs
    ref = build_distill_set(make_config(), dataset, teacher, tmp_path / "one" / "distill_set.zarr")
    assert tree(out) == tree(ref)
    a, b = DistillSet(out), DistillSet(ref)
    for j in range(10):
        x, y = np.empty((512, 1), np.float16), np.empty((512, 1), np.float16)
        a.read_into(j, x)
        b.read_into(j, y)
        np.testing.assert_array_equal(x, y)


def test_shard_verb_skips_an_intact_shard_and_rejects_a_bad_index(case, tmp_path):
    dataset, teacher = case
    cfg = make_config()
    out = tmp_path / "shard_2.zarr"
    build_shard(cfg, dataset, teacher, 2, out)
    stamp = (out / "zarr.json").stat().st_mtime_ns
    build_shard(cfg, dataset, teacher, 2, out)
    assert (out / "zarr.json").stat().st_mtime_ns == stamp
    assert zarr.open_group(out, mode="r")["values"].shape == (2, 512, 1)  # the last, short shard
    with pytest.raises(ValueError, match="shard 3 does not exist"):
        build_shard(cfg, dataset, teacher, 3, tmp_path / "shard_3.zarr")


# --------------------------------------------------------------------------- publish fallback


def _published(path: Path) -> tuple[dict[str, bytes], dict]:
    """Every file of a published set, with the root zarr.json parsed and its `storage` attr
    (how the chunks got there, the one thing allowed to differ) split off."""
    files = tree(path)
    meta = json.loads(files.pop("zarr.json"))
    storage = meta["attributes"].pop("storage")
    return files, {"meta": meta, "storage": storage}


@pytest.mark.parametrize("coverage", ["full", "subset"])
def test_publish_without_hard_links_equals_the_linked_set(case, tmp_path, monkeypatch, coverage):
    """Links that fail with an OSError fall back to copies through the array API: the same
    chunk bytes, checksums, content hash, values and coords, and the same xarray Dataset."""
    dataset, teacher = case
    extra = {"coverage": "subset", "points_per_param": 50} if coverage == "subset" else {}
    cfg = make_config(**extra)
    ref = build_distill_set(cfg, dataset, teacher, tmp_path / "ref" / "distill_set.zarr")
    shards = default_shards_dir(ref)

    tried = []

    def no_links(src, dst):
        tried.append(src)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(ds_mod, "link_chunk", no_links)
    out = build_distill_set(cfg, dataset, teacher, tmp_path / "copy" / "distill_set.zarr",
                            shards_dir=shards)
    info = json.loads((out.parent / "distill_set_info.json").read_text())
    assert info["recomputed_by_gather"] == []  # published from the very shards of `ref`
    n_arrays = 2 if coverage == "subset" else 1
    assert len(tried) == 10 * n_arrays  # the fast path was tried for every chunk, then left

    ref_files, ref_rest = _published(ref)
    out_files, out_rest = _published(out)
    assert (ref_rest["storage"], out_rest["storage"]) == ("hardlink", "zarr")
    assert info["storage"] == "zarr"
    assert out_files == ref_files  # chunk files and array metadata byte for byte
    assert out_rest["meta"] == ref_rest["meta"]  # attrs incl. checksums, content_sha256
    chunks = [p for name in ("values", "coords") for p in (out / name).rglob("c/**/*")
              if p.is_file()]
    assert len(chunks) == 10 * n_arrays and all(p.stat().st_nlink == 1 for p in chunks)
    assert (ref / "values" / "c" / "0" / "0" / "0").stat().st_nlink == 2  # ref: linked

    a, b = DistillSet(ref), DistillSet(out)
    assert a.content_hash == b.content_hash and a.checksums == b.checksums
    n_dims = 3 if coverage == "subset" else None
    for j in range(10):
        (x, cx), (y, cy) = [
            (np.empty((s.n_points, 1), np.float16),
             None if n_dims is None else np.empty((s.n_points, n_dims), np.float32))
            for s in (a, b)
        ]
        a.read_into(j, x, cx)
        b.read_into(j, y, cy)
        np.testing.assert_array_equal(x, y)
        if n_dims is not None:
            np.testing.assert_array_equal(cx, cy)

    xr = pytest.importorskip("xarray")
    xa, xb = xr.open_zarr(ref), xr.open_zarr(out)
    assert (xa.attrs["storage"], xb.attrs["storage"]) == ("hardlink", "zarr")
    xb.attrs["storage"] = "hardlink"
    xr.testing.assert_identical(xa, xb)


def test_publish_across_file_systems_copies_through_zarr(case, tmp_path):
    """Shards on another file system (tmpfs), where os.link really fails (EXDEV)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second file system to put the shards on")
    import tempfile

    dataset, teacher = case
    cfg = make_config()
    ref = build_distill_set(cfg, dataset, teacher, tmp_path / "ref" / "distill_set.zarr")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        shards = Path(other) / "shards"
        out = build_distill_set(cfg, dataset, teacher, tmp_path / "x" / "distill_set.zarr",
                                shards_dir=shards)
        assert (out.parent / "distill_set_info.json").exists()
    ref_files, ref_rest = _published(ref)
    out_files, out_rest = _published(out)
    assert (ref_rest["storage"], out_rest["storage"]) == ("hardlink", "zarr")
    assert out_files == ref_files and out_rest["meta"] == ref_rest["meta"]


def _pair(src_store, dst_store, level: int = 3):
    """A 3-parameter source array (in `src_store`, zstd `level`) and an empty 5-parameter set."""
    from zarr.codecs import BytesCodec, Crc32cCodec, ZstdCodec

    from hyperinr.data.distill_store import create_arrays

    src = zarr.open_group(src_store, mode="w", zarr_format=3).create_array(
        "values", shape=(3, 20, 1), chunks=(1, 20, 1), dtype=np.float16, fill_value=np.nan,
        serializer=BytesCodec(), compressors=[ZstdCodec(level=level), Crc32cCodec()],
        dimension_names=("sample", "point", "channel"),
    )
    data = np.random.default_rng(0).random((3, 20, 1)).astype(np.float16)
    for k in range(3):
        ds_mod.write_chunk(src, k, data[k])
    dst, _ = create_arrays(zarr.open_group(dst_store, mode="w", zarr_format=3), 5, 20, 1, 3,
                           np.float16, "full")
    return src, dst, data


def _chunk_bytes(root: Path, j: int) -> bytes:
    return (root / "values" / "c" / str(j) / "0" / "0").read_bytes()


def test_place_chunk_links_only_local_alike_encoded_files(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ds_mod, "link_chunk", lambda s, d: (calls.append(s), os.link(s, d)))

    # local and alike: a hard link of the very file
    src, dst, data = _pair(tmp_path / "a.zarr", tmp_path / "b.zarr")
    assert ds_mod._linkable(src, dst)
    assert ds_mod._place_chunk(src, 1, dst, 4, True) == "hardlink" and len(calls) == 1
    linked = tmp_path / "b.zarr" / "values" / "c" / "4" / "0" / "0"
    assert linked.samefile(tmp_path / "a.zarr" / "values" / "c" / "1" / "0" / "0")
    np.testing.assert_array_equal(dst[4], data[1])

    # a source that is not a directory store: copied through the array API, same bytes
    mem, dst2, data2 = _pair(zarr.storage.MemoryStore(), tmp_path / "c.zarr")
    assert not ds_mod._linkable(mem, dst2)
    assert ds_mod._place_chunk(mem, 1, dst2, 4, False) == "zarr" and len(calls) == 1
    np.testing.assert_array_equal(data2, data)
    assert _chunk_bytes(tmp_path / "c.zarr", 4) == linked.read_bytes()

    # another encoding (a shard of another code version): never linked, re-encoded as dst's
    odd, dst3, _ = _pair(tmp_path / "d.zarr", tmp_path / "e.zarr", level=19)
    assert not ds_mod._linkable(odd, dst3)
    assert ds_mod._place_chunk(odd, 1, dst3, 4, False) == "zarr"
    assert _chunk_bytes(tmp_path / "e.zarr", 4) == linked.read_bytes()

    # local and alike, but the chunk file is not where expected: not linked, copied
    src4, dst4, _ = _pair(tmp_path / "f.zarr", tmp_path / "g.zarr")
    (tmp_path / "f.zarr" / "values" / "c" / "2" / "0" / "0").rename(tmp_path / "elsewhere")
    assert ds_mod._place_chunk(src4, 2, dst4, 0, True) == "zarr" and len(calls) == 1
    assert not (tmp_path / "g.zarr" / "values" / "c" / "0" / "0" / "0").exists()  # NaN fill
