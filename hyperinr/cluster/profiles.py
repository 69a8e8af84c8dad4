"""Install the repository's Snakemake profiles where ``snakemake --profile NAME`` finds them.

Snakemake looks a profile name up in ``./NAME``, then in the user's config
directory (``$XDG_CONFIG_HOME/snakemake`` or ``~/.config/snakemake``), then in
``/etc/xdg/snakemake``; never in ``workflow/profiles``.  ``install_profiles``
symlinks every ``workflow/profiles/<name>/`` into the user directory so that
``snakemake --profile polaris`` works from the repository root; the links keep
following the checkout, so ``git pull`` updates the profiles too.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

PROFILE_FILES = ("config.yaml", "profile.yaml")


def profiles_source() -> Path:
    """``workflow/profiles`` of this checkout (or of the current directory)."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root / "workflow" / "profiles"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "workflow/profiles not found: run from the hyperinr repository root "
        "(profiles ship with the repository, not the installed package)"
    )


def user_profile_dir() -> Path:
    """Where Snakemake looks for named profiles of this user."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "snakemake"


def _is_profile(path: Path) -> bool:
    return path.is_dir() and any(
        f.name in PROFILE_FILES
        or (f.name.startswith(("config.v", "profile.v")) and f.suffix == ".yaml")
        for f in path.iterdir()
    )


def install_profiles(
    dest: Path | None = None,
    force: bool = False,
    *,
    source: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Symlink each ``workflow/profiles/<name>`` to ``dest/<name>``; return the links.

    ``dest`` defaults to ``$XDG_CONFIG_HOME/snakemake`` (``~/.config/snakemake``).
    An existing link to the same profile is left alone.  Anything else already at
    ``dest/<name>`` is kept and reported unless ``force``: then a symlink or file
    is replaced and a real directory is moved aside to ``<name>.bak-<time>``.
    Every action is reported through ``log`` (one line each).  The returned list
    holds the links that now point into this checkout.
    """
    src_root = Path(source) if source is not None else profiles_source()
    dest = Path(dest) if dest is not None else user_profile_dir()
    dest.mkdir(parents=True, exist_ok=True)
    installed: list[Path] = []
    profiles = sorted(p for p in src_root.iterdir() if _is_profile(p))
    if not profiles:
        log(f"no profiles found in {src_root}")
        return installed
    for profile in profiles:
        target = profile.resolve()
        link = dest / profile.name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            log(f"up to date: {link} -> {target}")
            installed.append(link)
            continue
        if link.is_symlink() or link.exists():
            if not force:
                what = f"a link to {os.readlink(link)}" if link.is_symlink() else "not a link"
                log(f"skipped:    {link} exists ({what}); use --force to replace it")
                continue
            if link.is_dir() and not link.is_symlink():
                backup = link.with_name(f"{link.name}.bak-{time.strftime('%Y%m%d%H%M%S')}")
                shutil.move(str(link), str(backup))
                log(f"moved:      {link} -> {backup}")
            else:
                link.unlink()
                log(f"removed:    {link}")
        link.symlink_to(target, target_is_directory=True)
        log(f"installed:  {link} -> {target}")
        installed.append(link)
    names = ", ".join(p.name for p in installed) or "none"
    log(f"profiles usable as `snakemake --profile NAME`: {names}")
    return installed
