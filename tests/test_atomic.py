"""atomic_path / clean_stale_temporaries: what a reader or a crash can observe."""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from hyperinr.infra import atomic
from hyperinr.infra.atomic import atomic_path, clean_stale_temporaries


def _exchange_works(directory: Path) -> bool:
    a, b = directory / "probe-a", directory / "probe-b"
    a.mkdir()
    b.mkdir()
    try:
        atomic._exchange(a, b)
    except OSError as exc:
        if exc.errno in atomic._EXCHANGE_UNSUPPORTED:
            return False
        raise
    finally:
        for p in (a, b):
            p.rmdir()
    return True


@pytest.fixture
def needs_exchange(tmp_path: Path) -> None:
    if not _exchange_works(tmp_path):
        pytest.skip("renameat2(RENAME_EXCHANGE) unsupported here")


@pytest.fixture(params=[errno.ENOSYS, errno.EINVAL])
def no_exchange(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend the kernel/filesystem cannot exchange, so the two-rename fallback runs."""

    def unsupported(a: Path, b: Path) -> None:
        raise OSError(request.param, os.strerror(request.param), str(a))

    monkeypatch.setattr(atomic, "_exchange", unsupported)
    return request.param


def _write_dir(tmp: Path, version: int) -> None:
    (tmp / "sub").mkdir()
    (tmp / "data.txt").write_text(f"version {version}\n")
    (tmp / "sub" / "chunk").write_bytes(bytes([version % 256]) * 64)


def _leftovers(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*"))


def _hammer(target: Path, n: int) -> tuple[int, int, set[str]]:
    """Replace the directory `target` n times while a thread polls it; return
    (polls, polls that found the target or its file missing, contents seen)."""
    with atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 0)
    stop = threading.Event()
    counts = {"polls": 0, "missing": 0}
    seen: set[str] = set()

    def reader() -> None:
        data = target / "data.txt"
        while not stop.is_set():
            counts["polls"] += 1
            try:
                present = target.exists()
                seen.add(data.read_text())  # one open(): resolves in the old or the new tree
            except FileNotFoundError:
                present = False
            if not present:
                counts["missing"] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in range(1, n + 1):
            with atomic_path(target, is_dir=True) as tmp:
                _write_dir(tmp, version)
    finally:
        stop.set()
        thread.join()
    assert (target / "data.txt").read_text() == f"version {n}\n"
    assert not _leftovers(target)
    return counts["polls"], counts["missing"], seen


# ---------------------------------------------------------------------------- (1) no gap


def test_exchange_reader_never_sees_directory_missing(tmp_path: Path, needs_exchange) -> None:
    polls, missing, seen = _hammer(tmp_path / "store.zarr", 300)
    assert polls > 0
    assert missing == 0, f"target missing in {missing} of {polls} polls"
    assert seen <= {f"version {v}\n" for v in range(301)}  # always a complete version


def test_fallback_reader_sees_the_gap(tmp_path: Path, no_exchange, monkeypatch) -> None:
    """The same reader against the two-rename fallback (the old code) does see the target
    missing; the gap is widened to 2 ms so this does not depend on thread timing."""
    target = tmp_path / "store.zarr"
    real_replace = os.replace

    def slow_replace(src, dst) -> None:
        real_replace(src, dst)
        if Path(src) == target:  # target moved aside: the window the exchange removes
            time.sleep(0.002)

    monkeypatch.setattr(atomic.os, "replace", slow_replace)
    polls, missing, _ = _hammer(target, 30)
    assert missing > 0, "expected the two-rename fallback to leave the target missing"
    assert (target / "data.txt").read_text() == "version 30\n"


def test_exchange_keeps_inode_of_new_tree(tmp_path: Path, needs_exchange) -> None:
    target = tmp_path / "store.zarr"
    with atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 1)
    with atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 2)
        new_inode = tmp.stat().st_ino
    assert target.stat().st_ino == new_inode
    assert (target / "data.txt").read_text() == "version 2\n"
    assert not _leftovers(target)


# ---------------------------------------------------------------------------- (2) errors


@pytest.mark.parametrize("fallback", [False, True])
def test_exception_leaves_old_directory_and_no_temporaries(
    tmp_path: Path, monkeypatch, fallback: bool
) -> None:
    if fallback:
        monkeypatch.setattr(
            atomic, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError(errno.ENOSYS, "x"))
        )
    target = tmp_path / "store.zarr"
    with atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 1)
    inode = target.stat().st_ino
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 2)
        raise RuntimeError("boom")
    assert target.stat().st_ino == inode
    assert (target / "data.txt").read_text() == "version 1\n"
    assert (target / "sub" / "chunk").read_bytes() == bytes([1]) * 64
    assert not _leftovers(target)


def test_exception_on_first_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "new" / "store.zarr"
    with pytest.raises(KeyboardInterrupt), atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 1)
        raise KeyboardInterrupt
    assert not target.exists()
    assert not _leftovers(target)


def test_other_exchange_errors_propagate_and_keep_old(tmp_path: Path, monkeypatch) -> None:
    def denied(a: Path, b: Path) -> None:
        raise OSError(errno.EACCES, "denied", str(a))

    monkeypatch.setattr(atomic, "_exchange", denied)
    target = tmp_path / "store.zarr"
    target.mkdir()
    _write_dir(target, 1)
    with pytest.raises(PermissionError), atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 2)
    assert (target / "data.txt").read_text() == "version 1\n"
    assert not _leftovers(target)


# ---------------------------------------------------------------------------- (3) fallback


def test_fallback_publishes_new_content(tmp_path: Path, no_exchange) -> None:
    target = tmp_path / "store.zarr"
    for version in (1, 2, 3):
        with atomic_path(target, is_dir=True) as tmp:
            _write_dir(tmp, version)
        assert (target / "data.txt").read_text() == f"version {version}\n"
        assert (target / "sub" / "chunk").read_bytes() == bytes([version]) * 64
        assert not _leftovers(target)


def test_fallback_second_rename_failure_restores_old(tmp_path: Path, no_exchange, monkeypatch):
    target = tmp_path / "store.zarr"
    with atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 1)
    real_replace = os.replace

    def failing_replace(src, dst) -> None:
        if Path(dst) == target and Path(src).name.startswith(".store.zarr.tmp-"):
            raise OSError(errno.EIO, "disk gone")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"), atomic_path(target, is_dir=True) as tmp:
        _write_dir(tmp, 2)
    assert (target / "data.txt").read_text() == "version 1\n"
    assert not _leftovers(target)


def _crash_between_renames(target: Path) -> Path:
    """The state a kill between the fallback's two renames leaves: old tree aside, target
    missing, finished-or-not temporary beside it."""
    old = target.with_name(f".{target.name}.old-4242-deadbeef")
    old.mkdir(parents=True)
    _write_dir(old, 1)
    tmp = target.with_name(f".{target.name}.tmp-abc123")
    tmp.mkdir()
    _write_dir(tmp, 2)
    return old


def test_clean_stale_temporaries_restores_old_tree_after_crash(tmp_path: Path) -> None:
    target = tmp_path / "store.zarr"
    _crash_between_renames(target)
    clean_stale_temporaries(target)
    assert (target / "data.txt").read_text() == "version 1\n"
    assert not _leftovers(target)


def test_next_atomic_path_restores_then_replaces_after_crash(tmp_path: Path) -> None:
    target = tmp_path / "store.zarr"
    _crash_between_renames(target)
    with atomic_path(target, is_dir=True) as tmp:
        assert (target / "data.txt").read_text() == "version 1\n"  # restored before writing
        _write_dir(tmp, 3)
    assert (target / "data.txt").read_text() == "version 3\n"
    assert [p.name for p in _leftovers(target)] == [".store.zarr.tmp-abc123"]  # left for clean
    clean_stale_temporaries(target)
    assert not _leftovers(target)


def test_stale_old_tree_removed_when_target_exists(tmp_path: Path) -> None:
    target = tmp_path / "store.zarr"
    target.mkdir()
    _write_dir(target, 2)
    old = _crash_between_renames(target)  # killed after the second rename, before the removal
    clean_stale_temporaries(target)
    assert not old.exists()
    assert (target / "data.txt").read_text() == "version 2\n"
    assert not _leftovers(target)


# ---------------------------------------------------------------------------- (4) files


def test_file_targets_use_one_replace(tmp_path: Path, monkeypatch) -> None:
    def never(a: Path, b: Path) -> None:
        raise AssertionError("files must not go through the directory exchange")

    monkeypatch.setattr(atomic, "_exchange", never)
    target = tmp_path / "deep" / "model.pt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".model.pt.tmp-")
        tmp.write_text("one")
    assert target.read_text() == "one"
    with atomic_path(target) as tmp:
        tmp.write_text("two")
    assert target.read_text() == "two"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("three")
        raise ValueError
    assert target.read_text() == "two"
    assert not _leftovers(target)


def test_clean_stale_temporaries_removes_tmp_files_only(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    target.write_text("done")
    (tmp_path / ".model.pt.tmp-x1").write_text("partial")
    (tmp_path / ".other.pt.tmp-x2").write_text("someone else's")
    clean_stale_temporaries(target)
    clean_stale_temporaries(tmp_path / "missing-parent" / "x")  # no error
    assert target.read_text() == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.tmp-x2", "model.pt"]


# ---------------------------------------------------------------------------- (5) umask


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
@pytest.mark.parametrize("fallback", [False, True])
def test_permissions_follow_umask(tmp_path: Path, monkeypatch, mask: int, fallback: bool) -> None:
    if fallback:
        monkeypatch.setattr(
            atomic, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError(errno.EINVAL, "x"))
        )
    previous = os.umask(mask)
    try:
        store, file = tmp_path / "store.zarr", tmp_path / "info.json"
        for _ in range(2):  # first publish, then replace an existing target
            with atomic_path(store, is_dir=True) as tmp:
                _write_dir(tmp, 1)
            with atomic_path(file) as tmp:
                tmp.write_text("{}")
            assert stat.S_IMODE(store.stat().st_mode) == 0o777 & ~mask
            assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~mask
    finally:
        os.umask(previous)


# ---------------------------------------------------------------------------- the syscall


def test_exchange_swaps_two_directories(tmp_path: Path, needs_exchange) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    atomic._exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"
    with pytest.raises(FileNotFoundError):
        atomic._exchange(a, tmp_path / "missing")
