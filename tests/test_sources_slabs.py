"""Slab reads of every format: the same values as slicing the whole frame, checked ranges, and
(for the formats read with read(2): raw, npy, HDF5) only the slab's bytes read from disk."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hyperinr.config import DatasetConfig, ParamsConfig, RawFormat
from hyperinr.data.errors import DataError
from hyperinr.data.sources import FrameSource, open_source

FILL = -32768


def _arr(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def _raw(tmp: Path, name: str, frames, dtype: str, order: str, header: int) -> FrameSource:
    """Frames (z, y, x) or (y, x) written in file axis order `order` (slowest first)."""
    letters = "xyz"[: frames[0].ndim]
    files = []
    for i, frame in enumerate(frames):
        perm = tuple(letters[::-1].index(c) for c in order)
        path = tmp / f"{name}_{i}.raw"
        path.write_bytes(b"\xab" * header + frame.transpose(perm).astype(dtype).tobytes())
        files.append(str(path))
    raw = RawFormat(dims=frames[0].shape[::-1], dtype=dtype, header_bytes=header, axis_order=order)
    return open_source(
        DatasetConfig(format="raw", files=tuple(files), raw=raw, params=ParamsConfig())
    )


def _npy(tmp: Path, name: str, frames, stack: bool, fortran: bool = False) -> FrameSource:
    def save(path: Path, a: np.ndarray) -> str:
        np.save(path, np.asfortranarray(a) if fortran else a)
        return str(path)

    if stack:
        files = (save(tmp / f"{name}.npy", np.stack(frames)),)
    else:
        files = tuple(save(tmp / f"{name}_{i}.npy", f) for i, f in enumerate(frames))
    return open_source(DatasetConfig(format="npy", files=files, params=ParamsConfig()))


def _h5(tmp: Path, name: str, frames, stack: bool, chunks=None) -> FrameSource:
    arrays = [np.stack(frames)] if stack else frames
    files = []
    for i, a in enumerate(arrays):
        path = tmp / f"{name}_{i}.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("g/v", data=a, chunks=chunks)
        files.append(str(path))
    cfg = DatasetConfig(
        format="hdf5", files=tuple(files), hdf5_dataset="g/v", params=ParamsConfig()
    )
    return open_source(cfg)


def _packed(frames, scale: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """int16 packing of frames in [0, 1) with some fill values, and the decoded truth."""
    packed = np.stack([np.round(f * 1000).astype(np.int16) for f in frames])
    packed.reshape(-1)[::7] = FILL
    truth = packed * scale + 3.0
    truth[packed == FILL] = np.nan
    return packed, list(truth.astype(np.float32))


def _nc_h5py(tmp: Path, frames) -> tuple[FrameSource, list[np.ndarray]]:
    packed, truth = _packed(frames, float(np.float32(0.002)))  # a float32 attribute
    path = tmp / "h5py.nc"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("temp", data=packed, chunks=(1, 2, *packed.shape[2:]))
        ds.attrs["scale_factor"] = np.float32(0.002)
        ds.attrs["add_offset"] = 3.0
        ds.attrs["_FillValue"] = np.int16(FILL)
    cfg = DatasetConfig(
        format="netcdf", files=(str(path),), hdf5_dataset="temp", params=ParamsConfig()
    )
    return open_source(cfg), truth


def _nc_h5netcdf(tmp: Path, frames) -> tuple[FrameSource, list[np.ndarray]]:
    h5netcdf = pytest.importorskip("h5netcdf")
    packed, truth = _packed(frames, 0.002)
    files = []
    for i, p in enumerate(packed):  # one frame per file
        path = tmp / f"h5netcdf_{i}.nc"
        with h5netcdf.File(path, "w") as f:
            f.dimensions = {"z": p.shape[0], "y": p.shape[1], "x": p.shape[2]}
            var = f.create_variable("temp", ("z", "y", "x"), dtype="i2", fillvalue=FILL)
            var[...] = p
            var.attrs["scale_factor"] = 0.002
            var.attrs["add_offset"] = 3.0
        files.append(str(path))
    cfg = DatasetConfig(
        format="netcdf", files=tuple(files), hdf5_dataset="temp", params=ParamsConfig()
    )
    return open_source(cfg), truth


VOL = (7, 5, 6)  # (z, y, x), every axis a different size


def _build(case: str, tmp: Path) -> tuple[FrameSource, list[np.ndarray]]:
    """(source, the frames it must read) for one format and layout."""
    frames = [_arr(i, VOL) for i in range(3)]
    f32 = [f.astype(np.float32) for f in frames]
    if case == "raw_f4_zyx":
        return _raw(tmp, case, frames, "<f4", "zyx", 0), f32
    if case == "raw_be_i2_zyx_header":
        ints = [(f * 30000 - 15000).astype(">i2") for f in frames]
        return _raw(tmp, case, ints, ">i2", "zyx", 13), [a.astype(np.float32) for a in ints]
    if case == "raw_be_f8_xyz_header":  # z fastest on disk: strided slabs
        return _raw(tmp, case, frames, ">f8", "xyz", 16), f32
    if case == "raw_u2_yzx":  # z in the middle on disk
        ints = [(f * 60000).astype("<u2") for f in frames]
        return _raw(tmp, case, ints, "<u2", "yzx", 0), [a.astype(np.float32) for a in ints]
    if case == "raw_f4_2d":
        images = [f[0] for f in frames]
        return _raw(tmp, case, images, "<f4", "yx", 4), [a.astype(np.float32) for a in images]
    if case == "npy_per_file_f8":
        return _npy(tmp, case, frames, stack=False), f32
    if case == "npy_stack_f4":
        return _npy(tmp, case, f32, stack=True), f32
    if case == "npy_stack_fortran":
        return _npy(tmp, case, f32, stack=True, fortran=True), f32
    if case == "npy_stack_nvs_yxc":  # images with a channel axis: slabs along y
        images = [_arr(10 + i, (8, 6, 3)).astype(np.float32) for i in range(3)]
        return _npy(tmp, case, images, stack=True), images
    if case == "npy_per_file_2d_big_endian":
        images = [f[0].astype(">f4") for f in frames]
        return _npy(tmp, case, images, stack=False), [a.astype(np.float32) for a in images]
    if case == "hdf5_stack_chunked":
        return _h5(tmp, case, f32, stack=True, chunks=(1, 2, 3, 4)), f32
    if case == "hdf5_per_file_contiguous":
        return _h5(tmp, case, frames, stack=False), f32
    if case == "netcdf_h5py_stack":
        return _nc_h5py(tmp, frames)
    if case == "netcdf_h5netcdf_per_file":
        return _nc_h5netcdf(tmp, frames)
    raise AssertionError(case)


CASES = [
    "raw_f4_zyx",
    "raw_be_i2_zyx_header",
    "raw_be_f8_xyz_header",
    "raw_u2_yzx",
    "raw_f4_2d",
    "npy_per_file_f8",
    "npy_stack_f4",
    "npy_stack_fortran",
    "npy_stack_nvs_yxc",
    "npy_per_file_2d_big_endian",
    "hdf5_stack_chunked",
    "hdf5_per_file_contiguous",
    "netcdf_h5py_stack",
    "netcdf_h5netcdf_per_file",
]


@pytest.fixture(scope="module", params=CASES)
def case(request, tmp_path_factory):
    return _build(request.param, tmp_path_factory.mktemp(request.param))


def test_whole_frames_match_what_was_written(case):
    src, truth = case
    assert src.n_frames == len(truth) and src.frame_shape == truth[0].shape
    for i, want in enumerate(truth):
        got = src.read(i)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_slabs_equal_the_sliced_frame(case, data):
    src, truth = case
    depth = src.frame_shape[0]
    i = data.draw(st.integers(0, src.n_frames - 1), label="frame")
    start = data.draw(st.integers(0, depth - 1), label="start")
    stop = data.draw(st.integers(start + 1, depth), label="stop")
    slab = src.read_slab(i, start, stop)
    assert slab.dtype == np.float32 and slab.flags.c_contiguous
    assert slab.shape == (stop - start, *src.frame_shape[1:])
    np.testing.assert_array_equal(slab, src.read(i)[start:stop])  # NaN where the frame has NaN
    np.testing.assert_array_equal(slab, truth[i][start:stop])


def test_slabs_tile_the_frame(case):
    src, _ = case
    depth = src.frame_shape[0]
    for i in range(src.n_frames):
        cuts = [0, 1, depth // 2, depth - 1, depth]
        tiled = np.concatenate([src.read_slab(i, a, b) for a, b in zip(cuts, cuts[1:])])
        np.testing.assert_array_equal(tiled, src.read(i))


@pytest.mark.parametrize(
    "i, start, stop",
    [(0, -1, 2), (0, 0, 99), (0, 3, 2), (0, 9, 9), (3, 0, 1), (-1, 0, 1)],
)
def test_out_of_range_slabs_raise(case, i, start, stop):
    src, _ = case
    with pytest.raises(IndexError, match=r"out of range|not within"):
        src.read_slab(i, start, stop)


def test_empty_slab_and_numpy_integers(case):
    src, truth = case
    assert src.read_slab(1, 2, 2).shape == (0, *src.frame_shape[1:])
    got = src.read_slab(np.int64(2), np.int32(1), np.uint16(3))
    np.testing.assert_array_equal(got, truth[2][1:3])


def test_a_truncated_raw_file_is_a_data_error(tmp_path):
    src = _raw(tmp_path, "t", [_arr(0, VOL)], "<f4", "zyx", 0)
    data = src.files[0].read_bytes()
    src.files[0].write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="t_0.raw.*truncated"):
        src.read_slab(0, 4, 7)
    np.testing.assert_array_equal(src.read_slab(0, 0, 2), _arr(0, VOL)[:2].astype(np.float32))


def test_a_changed_npy_file_is_a_data_error(tmp_path):
    src = _npy(tmp_path, "c", [_arr(i, VOL) for i in range(2)], stack=False)
    np.save(src.files[1], np.zeros((9, 5, 6)))
    with pytest.raises(DataError, match=r"c_1.npy.*\(9, 5, 6\) differs"):
        src.read_slab(1, 0, 2)


# ------------------------------------------------------------------ bytes read from disk

IO = Path("/proc/self/io")


def _rchar() -> int:
    """Bytes this process has passed through read(2)/pread(2) so far (Linux)."""
    for line in IO.read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def _bytes_read(fn) -> int:
    """Fewest bytes read by `fn` over three calls (robust to stray reads of other code)."""
    fn()  # warm-up: lazy imports, caches
    counts = []
    for _ in range(3):
        before = _rchar()
        fn()
        counts.append(_rchar() - before)
    return min(counts)


BIG = (64, 64, 64)  # one frame: 1 MiB of float32
SLAB = 64 * 64 * 4 * 2  # two rows: 32 KiB


@pytest.mark.skipif(not IO.exists(), reason="needs /proc/self/io (Linux)")
@pytest.mark.parametrize("kind", ["raw", "npy_stack", "npy_per_file", "hdf5_chunked"])
def test_a_slab_reads_only_its_bytes(tmp_path, kind):
    frames = [_arr(i, BIG).astype(np.float32) for i in range(2)]
    if kind == "raw":
        src = _raw(tmp_path, kind, frames, "<f4", "zyx", 100)
    elif kind == "npy_stack":
        src = _npy(tmp_path, kind, frames, stack=True)
    elif kind == "npy_per_file":
        src = _npy(tmp_path, kind, frames, stack=False)
    else:
        src = _h5(tmp_path, kind, frames, stack=True, chunks=(1, 2, 64, 64))
    frame_bytes = frames[0].nbytes
    whole = _bytes_read(lambda: src.read(1))
    slab = _bytes_read(lambda: src.read_slab(1, 30, 32))
    np.testing.assert_array_equal(src.read_slab(1, 30, 32), frames[1][30:32])
    # the counter sees these reads: a whole frame reads at least the frame, a slab its bytes
    assert whole >= frame_bytes, (whole, frame_bytes)
    assert slab >= SLAB, (slab, SLAB)
    # ... and a slab reads little more than itself (headers, metadata): not the frame
    assert slab <= SLAB + 24 * 1024, (slab, SLAB, whole)
