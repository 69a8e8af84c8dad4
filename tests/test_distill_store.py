"""The distillation-set store (`hyperinr.data.distill_store`): reads through the public
zarr-python API only, decoding each parameter straight into the caller's buffer."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import zarr

import hyperinr
from hyperinr.data.distill_store import (
    DISTILL_SET_LAYOUT_VERSION,
    PARAMS01_DIMS,
    SET_KIND,
    DistillSet,
    create_arrays,
    digest,
)

PACKAGE = Path(hyperinr.__file__).parent


def zarr_core_uses(source: str) -> list[str]:
    """`import zarr.core...`, `from zarr.core... import`, `from zarr import core` and
    `zarr.core` attribute access in `source` (zarr.core is private: zarr's versioning policy
    does not cover it, and zarr 3.1 moved the buffers out of it)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[:2] == ["zarr", "core"]]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[:2] == ["zarr", "core"]:
                found.append(node.module)
            elif parts == ["zarr"] and any(a.name == "core" for a in node.names):
                found.append("from zarr import core")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "core"
            and isinstance(node.value, ast.Name)
            and node.value.id == "zarr"
        ):
            found.append("zarr.core")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "from zarr.core.buffer import default_buffer_prototype",
        "import zarr.core.buffer as b",
        "from zarr import core",
        "import zarr\nx = zarr.core.buffer.default_buffer_prototype()",
        "def f():\n    from zarr.core.common import ChunkCoords\n",
    ],
)
def test_the_checker_finds_zarr_core(source):
    assert zarr_core_uses(source)


def test_the_checker_allows_public_zarr():
    src = (
        "import zarr\nimport zarr.storage\nfrom zarr.buffer import cpu\n"
        "from zarr.codecs import ZstdCodec\n'''zarr.core is private'''\nzarr.open_group('x')\n"
    )
    assert zarr_core_uses(src) == []


def test_no_module_imports_zarr_core():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20 and PACKAGE / "data" / "distill_store.py" in files
    bad = {
        str(f.relative_to(PACKAGE.parent)): uses
        for f in files
        if (uses := zarr_core_uses(f.read_text()))
    }
    assert bad == {}, f"private zarr.core used (use the public zarr API): {bad}"


def make_set(path: Path, mode: str, n: int = 4, n_points: int = 30) -> dict[str, np.ndarray]:
    """A minimal published set written by hand (not by the stage), and its arrays."""
    rng = np.random.default_rng(1)
    root = zarr.open_group(path, mode="w", zarr_format=3)
    values, coords = create_arrays(root, n, n_points, 2, 3, np.float16, mode)
    data = {"values": rng.random((n, n_points, 2)).astype(np.float16)}
    if coords is not None:
        data["coords"] = rng.random((n, n_points, 3)).astype(np.float32)
    values[...] = data["values"]
    if coords is not None:
        coords[...] = data["coords"]
    params01 = rng.random((n, 1))
    root.create_array("params01", data=params01, dimension_names=PARAMS01_DIMS)
    root.attrs.update({
        "kind": SET_KIND,
        "layout_version": DISTILL_SET_LAYOUT_VERSION,
        "mode": mode,
        "dims": [n_points, 1, 1] if mode == "full" else [5, 5, 5],
        "checksums": {k: [digest(v[j]) for j in range(n)] for k, v in data.items()},
    })
    return data


@pytest.mark.parametrize("mode", ["full", "subset"])
def test_read_into_fills_the_callers_buffer_in_place(tmp_path, mode):
    data = make_set(tmp_path / "s.zarr", mode)
    s = DistillSet(tmp_path / "s.zarr")
    # the loaders' layout: one preallocated block, one slot per parameter
    values = np.full((4, 30, 2), -1, np.float16)
    coords = np.full((4, 30, 3), -1, np.float32) if mode == "subset" else None
    for j in (2, 0):
        s.read_into(j, values[j], None if coords is None else coords[j])
    for j, filled in ((0, True), (1, False), (2, True), (3, False)):
        if filled:
            np.testing.assert_array_equal(values[j], data["values"][j])
            if coords is not None:
                np.testing.assert_array_equal(coords[j], data["coords"][j])
        else:  # neighbouring slots untouched
            assert (values[j] == -1).all() and (coords is None or (coords[j] == -1).all())


def test_read_into_rejects_a_chunk_that_is_not_what_was_written(tmp_path):
    make_set(tmp_path / "s.zarr", "full")
    s = DistillSet(tmp_path / "s.zarr")
    s.checksums["values"][1] = "0" * 64
    with pytest.raises(ValueError, match="parameter 1 fails its SHA-256"):
        s.read_into(1, np.empty((30, 2), np.float16))
    s.read_into(2, np.empty((30, 2), np.float16))  # the others still read
