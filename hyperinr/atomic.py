"""Publish files and directories atomically: write beside the target, then rename.

A killed job, a full disk or a bad input must never leave something at the final path that a
later stage (or Snakemake's timestamp check) would take for a finished result.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(target: Path, is_dir: bool) -> Path:
    """mkstemp/mkdtemp make private (0600/0700) files; results on a shared project filesystem
    must get the permissions the user's umask asks for, like any other file they write."""
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if is_dir:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        path.chmod(0o777 & ~_umask())
        return path
    fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())
    return Path(name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; on success it replaces `target`, on error it goes.

    Directories (Zarr stores) are swapped with two renames; the old one is removed only after
    the new one is in place, so a crash leaves either the old or the new result, never a mix.
    """
    target = Path(target)
    tmp = _tmp_sibling(target, is_dir)
    try:
        yield tmp
        if is_dir and target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def clean_stale_temporaries(target: str | Path) -> None:
    """Remove temporaries a killed run left beside `target` (they are never read)."""
    target = Path(target)
    if not target.parent.exists():
        return
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        _remove(stale)
