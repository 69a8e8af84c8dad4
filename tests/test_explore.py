"""`hyperinr explore` and `hyperinr export` on the tiny config's trained model.

The browser test drives the real app in Debian's chromium (playwright with executable_path: its
own browser download cannot work offline): it moves the parameter slider through the page's own
control, waits for the refined frame, and checks the frame changed, equals `--snapshot` at the
same parameter and camera, and that the live timings are shown. Screenshots are kept in
tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import io
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests._workflow import LOCAL_ENV, ROOT, snakemake

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
RESULTS = "results/tgv16_test"

pytestmark = [pytest.mark.slow, pytest.mark.workflow]


def hyperinr_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "hyperinr.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600, env=LOCAL_ENV)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_export_formats_open_in_vtk_and_xarray(tiny_run, tmp_path):
    import xarray as xr
    from vtkmodules.util.numpy_support import vtk_to_numpy
    from vtkmodules.vtkIOXML import vtkXMLImageDataReader

    import hyperinr

    model = tiny_run / RESULTS / "hyperinr" / "model.pt"
    expected = hyperinr.load(model, device="cpu").generate(t=1.5).volume()
    for fmt in ("vti", "nc", "npz", "raw"):
        hyperinr_cli("export", "--model", str(model), "--param", "t=1.5", "--format", fmt,
                     "--out", f"v.{fmt}", cwd=tmp_path)  # fmt: skip
    reader = vtkXMLImageDataReader()
    reader.SetFileName(str(tmp_path / "v.vti"))
    reader.Update()
    img = reader.GetOutput()
    assert img.GetDimensions() == (16, 16, 16)
    got = vtk_to_numpy(img.GetPointData().GetArray("value")).reshape(16, 16, 16)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with xr.open_dataset(tmp_path / "v.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["value"].values, expected, rtol=1e-6)
        assert float(ds["t"]) == 1.5
    np.testing.assert_allclose(np.load(tmp_path / "v.npz", allow_pickle=False)["value"], expected)
    raw = np.fromfile(tmp_path / "v.raw", dtype="<f4").reshape(16, 16, 16)
    np.testing.assert_allclose(raw, expected, rtol=1e-6)


def test_rule_explore_snapshots(tiny_clone):
    """The optional target: a strip per method across t, with PSNR where t is a frame."""
    import csv

    snakemake(tiny_clone, targets=("explore_snapshots",))
    with open(tiny_clone / RESULTS / "report/explore_snapshots.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["method"] for r in rows[::6]] == ["hyperinr", "teacher", "lerp"]
    assert [float(r["t"]) for r in rows[:6]] == [0.0, 0.8, 1.6, 2.4, 3.2, 4.0]
    at_frames = [r for r in rows if r["frame"] != ""]
    assert at_frames and all(float(r["psnr_vs_ground_truth"]) > 0 for r in at_frames)
    assert (tiny_clone / RESULTS / "report/explore_snapshots.png").stat().st_size > 1000


def test_snapshot_without_a_browser(tiny_run, tmp_path):
    out = tmp_path / "snap.png"
    proc = hyperinr_cli("explore", "--model", f"{RESULTS}/hyperinr/model.pt", "--snapshot",
                        str(out), "--param", "t=2.5", "--size", "48x32", "--method", "lerp",
                        cwd=tiny_run)  # fmt: skip
    assert "PSNR" in proc.stdout  # t = 2.5 is a dataset frame: the ground truth exists
    img = _png(out.read_bytes())
    assert img.shape == (32, 48, 3) and img.std() > 0


def _blob_png(page) -> bytes:
    src = page.locator("img[src^='blob:']").last.get_attribute("src")
    data = page.evaluate(
        "async (src) => Array.from(new Uint8Array(await (await fetch(src)).arrayBuffer()))", src
    )
    return bytes(data)


def _wait_status(page, *needles: str, timeout: float = 120.0) -> str:
    end = time.time() + timeout
    text = ""
    while time.time() < end:
        text = page.locator("body").inner_text()
        if all(n in text for n in needles):
            return text
        page.wait_for_timeout(250)
    raise AssertionError(f"status never showed {needles}; page says:\n{text[-1500:]}")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_browser_slider_changes_the_frame_and_matches_the_snapshot(tiny_run, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hyperinr.cli", "explore", "--model",
         f"{RESULTS}/hyperinr/model.pt", "--port", str(port)],
        cwd=tiny_run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=LOCAL_ENV,
    )  # fmt: skip
    try:
        line = server.stdout.readline()
        assert f":{port}" in line, line
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.goto(f"http://127.0.0.1:{port}")
            _wait_status(page, "t = 2 ", "refined")  # the midpoint, t = 2: a training frame
            before = _png(_blob_png(page))
            page.screenshot(path=str(ARTIFACTS / "explore_before.png"))
            slider = page.locator("[role=slider]").first
            slider.focus()
            for _ in range(125):  # step (4 - 0) / 1000 -> t = 2.5, an unseen dataset frame
                page.keyboard.press("ArrowRight")
            text = _wait_status(page, "t = 2.5 ", "refined")
            after_png = _blob_png(page)
            page.screenshot(path=str(ARTIFACTS / "explore_after.png"))
            browser.close()
        after = _png(after_png)
        assert before.shape == after.shape
        assert np.abs(before.astype(int) - after.astype(int)).mean() > 0.5  # the image changed
        assert re.search(r"generation: [\d.]+ ms", text), text
        assert re.search(r"render: \d+ ms", text), text
        assert "PSNR vs ground truth (frame 5)" in text
        cam, size = re.search(r"--camera (\S+) --size (\S+)", text).groups()
        snap = tmp_path / "snap_browser.png"
        hyperinr_cli("explore", "--model", f"{RESULTS}/hyperinr/model.pt", "--snapshot",
                     str(snap), "--param", "t=2.5", "--camera", cam, "--size", size,
                     cwd=tiny_run)  # fmt: skip
        ref = _png(snap.read_bytes())
        shutil.copy(snap, ARTIFACTS / "explore_snapshot.png")
        assert ref.shape == after.shape
        diff = np.abs(ref.astype(int) - after.astype(int))
        # the browser's camera comes back through its own float rounding (4 decimals printed)
        assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 3, (diff.mean(), diff.max())
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
