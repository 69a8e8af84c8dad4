"""Publish files and directories atomically: write beside the target, then rename.

A killed job, a full disk or a bad input must never leave something at the final path that a
later stage (or Snakemake's timestamp check) would take for a finished result.

Guarantees, by kind of target (a "crash" is the process dying at any instant; surviving power
loss additionally depends on the filesystem committing renames, which this module does not
force with fsync):

* Files: one ``os.replace``, atomic on POSIX. The target is always either the complete old file
  or the complete new one and is never missing once it has existed.
* Directories (Zarr stores) on Linux, where ``renameat2(RENAME_EXCHANGE)`` works (local
  filesystems such as ext4, xfs, btrfs, tmpfs): the finished temporary and the target are
  swapped in one system call, then the old tree (now under the temporary's name) is removed.
  The target is never missing and is always either the complete old or the complete new tree.
  A crash during that removal only leaves a ``.<name>.tmp-*`` sibling, which
  `clean_stale_temporaries` deletes.
* Directories where the exchange is unsupported (not Linux, glibc without ``renameat2``, or a
  filesystem answering ENOSYS/EINVAL/EOPNOTSUPP, as some network filesystems do): two renames,
  ``target -> .<name>.old-*`` then ``tmp -> target``. Never a mix still holds, but between the two
  renames (microseconds) the target is missing: a concurrent reader or Snakemake can see no
  output there. If the second rename fails the old tree is moved back before the error is
  raised. If the process dies between the two, the old tree survives as ``.<name>.old-*`` and
  the next `atomic_path` (directories) or `clean_stale_temporaries` call on that target moves it
  back (the new result, unfinished as far as anyone can tell, is lost and must be recomputed).
  ``.old-*`` siblings are removed only when the target exists, so the only copy is never deleted.

In every case a reader that is already inside the old tree when it is replaced (an open Zarr
group reading chunks by path) may see the old tree's files disappear or later reads resolve
into the new tree; only lookups of the target path itself are covered above. Two processes
publishing the same target at once are not supported (each result is complete, but which one
wins is unspecified).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import glob
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 1 << 1
# errno values meaning "this kernel/filesystem cannot exchange": fall back to two renames.
_EXCHANGE_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP})


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


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's renameat2 (2.28+), or None where there is none to call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap the names `a` and `b` (both must exist); OSError(ENOSYS) if unavailable."""
    fn = _renameat2()
    if fn is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(a), None, str(b))
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a), None, str(b))


def _old_siblings(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.old-*"))


def _recover(target: Path) -> None:
    """Undo a crash between the fallback's two renames: if `target` is missing but an old tree
    survived as `.<name>.old-*`, move it back; once `target` exists, the leftovers go."""
    if not target.parent.exists():
        return
    olds = _old_siblings(target)
    if not olds:
        return
    if not os.path.lexists(target):
        with contextlib.suppress(OSError):  # someone else restored or published it meanwhile
            os.rename(olds[0], target)
    if os.path.lexists(target):
        for old in _old_siblings(target):
            _remove(old)


def _replace_dir_two_renames(tmp: Path, target: Path) -> None:
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(old, target)
        raise
    _remove(old)


def _publish_dir(tmp: Path, target: Path) -> None:
    if not os.path.lexists(target):
        os.replace(tmp, target)
        return
    try:
        _exchange(tmp, target)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not os.path.lexists(target):
            os.replace(tmp, target)  # removed since we looked: nothing to swap with
            return
        if exc.errno not in _EXCHANGE_UNSUPPORTED:
            raise
        _replace_dir_two_renames(tmp, target)
        return
    _remove(tmp)  # now the old tree


@contextlib.contextmanager
def atomic_path(target: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `target`; on success it replaces `target`, on error it goes.

    Files are published with one atomic rename. Directories (Zarr stores) are swapped with the
    old one in a single atomic ``renameat2(RENAME_EXCHANGE)`` on Linux, then the old tree is
    removed: the target is never missing, and a crash leaves either the old or the new result,
    never a mix. Where the exchange is unsupported, two renames are used instead: still never a
    mix, but the target is missing for the instant between them, and a crash there leaves the
    old tree as ``.<name>.old-*``, which the next call (or `clean_stale_temporaries`) moves back.
    See the module docstring for details.
    """
    target = Path(target)
    if is_dir:
        _recover(target)
    tmp = _tmp_sibling(target, is_dir)
    try:
        yield tmp
        if is_dir:
            _publish_dir(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        _remove(tmp)
        raise


def clean_stale_temporaries(target: str | Path) -> None:
    """Remove temporaries a killed run left beside `target` (they are never read).

    An old tree a crash left as ``.<name>.old-*`` while `target` is missing is moved back to
    `target` instead (it is the only complete copy); once `target` exists, such leftovers are
    removed.
    """
    target = Path(target)
    if not target.parent.exists():
        return
    _recover(target)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        _remove(stale)
