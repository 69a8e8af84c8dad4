"""Package attributes imported on first use (PEP 562).

Packages whose submodules pull in heavy libraries (torch, zarr, matplotlib) export their names
lazily, so importing the package for one light name (the Snakefile, the sim environment's
`hyperinr simulate`) does not load the rest.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level __getattr__ for `package`: name -> submodule `homes[name]`, imported when
    the name is first used. The value is then bound in the package itself, because importing
    a submodule sets the package's attribute of the submodule's name (submodule `ingest` would
    otherwise shadow the function `ingest` it defines)."""

    def __getattr__(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
