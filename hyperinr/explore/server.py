"""`hyperinr explore`: the browser app, on viser.

viser (the base of nerfstudio's viewer) gives what this needs and nothing we would have to
maintain ourselves: a websocket server and a prebuilt client shipped in its wheel (works offline
and through one SSH-tunnelled port), GUI controls per client, a per-client orbit camera, and a
background-image channel for frames rendered on the server. The rendering itself is the
project's ray marcher (`frames.Explorer.render_frame`), so what the browser shows is what
`--snapshot` writes.

Each connected browser gets its own controls, camera and render thread. Changes only bump a
version number; the thread renders a small preview for the newest state, and once nothing has
changed for `idle_seconds` it renders the refined frame (progressive refinement). A change that
arrives while a frame is rendering makes that frame stale: it is still shown (it is the newest
picture there is) and the next one starts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hyperinr.explore.frames import (
    GROUND_TRUTH,
    LERP,
    PRESETS,
    Explorer,
    FrameRequest,
    FrameResult,
    camera_from_pose,
    pose_from_camera,
)
from hyperinr.render import Camera

log = logging.getLogger("hyperinr.explore")
MAX_MARKS = 12


@dataclass(frozen=True)
class Quality:
    preview: int = 128  # image height while the user drags
    refined: int = 256  # image height once idle
    preview_steps: int = 48
    refined_steps: int = 128
    idle_seconds: float = 0.3


def _marks(values: np.ndarray) -> tuple[float, ...]:
    """Slider marks at the training values of one parameter (at most MAX_MARKS, evenly picked)."""
    uniq = np.unique(np.round(values, 9))
    if uniq.size > MAX_MARKS:
        uniq = uniq[np.linspace(0, uniq.size - 1, MAX_MARKS).round().astype(int)]
    return tuple(float(v) for v in uniq)


def status_markdown(names: tuple[str, ...], req: FrameRequest, res: FrameResult, stage: str,
                    camera: bool = True) -> str:  # fmt: skip
    """The live figures under the controls (the browser test reads them)."""
    h, w = res.image.shape[:2]
    method = req.method
    params = ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, req.params, strict=True))
    lines = [
        f"**{method}** at {params} ({stage} {w}x{h})",
        f"generation: {res.generate_ms:.2f} ms{' (cached)' if res.cached else ''}",
        f"render: {res.render_ms:.0f} ms, {res.field_evals:,} network evaluations",
    ]
    if res.psnr_db is not None:
        lines.append(f"PSNR vs ground truth (frame {res.frame}): {res.psnr_db:.2f} dB")
    elif method != GROUND_TRUTH:
        lines.append("no ground truth at this parameter (not a dataset frame)")
    if res.note:
        lines.append(res.note)
    if camera:
        c = req.camera
        lines.append(f"same frame: --camera theta={c.theta_deg:.4f},phi={c.phi_deg:.4f},"
                     f"distance={c.distance:.4f},fov={c.fov_deg:.4f} --size {c.width}x{c.height}")
    return "  \n".join(lines)


class ClientSession:
    """One browser: its controls, its camera, and the thread that renders for it."""

    def __init__(self, server: Any, client: Any, explorer: Explorer, quality: Quality,
                 lock: threading.Lock, initial: FrameRequest) -> None:  # fmt: skip
        self.server, self.client, self.ex = server, client, explorer
        self.q, self.lock = quality, lock
        self.req = initial
        self._snapped: tuple[float, ...] | None = initial.params  # the last snapped-to parameter
        self.version = 0
        self.changed = threading.Event()
        self.alive = True
        self._build_gui()
        if explorer.needs_camera:
            client.camera.on_update(lambda _cam: self.bump())
        self.thread = threading.Thread(target=self._loop, name=f"explore-{client.client_id}",
                                       daemon=True)  # fmt: skip
        self.thread.start()
        self.bump()

    # -- controls ------------------------------------------------------------------------------

    def _build_gui(self) -> None:
        gui, ex = self.client.gui, self.ex
        train = ex.training_params()
        self.sliders = []
        for j, (name, (lo, hi)) in enumerate(zip(ex.space.names, ex.space.ranges, strict=True)):
            step = (hi - lo) / 1000 if hi > lo else 1.0
            s = gui.add_slider(name, min=lo, max=hi, step=step, initial_value=self.req.params[j],
                               marks=_marks(train[:, j]) if train.size else None,
                               hint="snaps to training parameters (marks)")  # fmt: skip
            s.on_update(lambda _e: self._on_param())
            self.sliders.append(s)
        self.method = gui.add_dropdown("method", ex.method_names, initial_value=self.req.method)
        self.method.on_update(lambda _e: self.set(method=self.method.value))
        self.compare = gui.add_dropdown("compare with LERP", ("single", "split", "side by side"),
                                        initial_value=self.req.compare)  # fmt: skip
        self.compare.on_update(lambda _e: self.set(compare=self.compare.value))
        if ex.needs_camera:
            if ex.task != "dgs":
                self.preset = gui.add_dropdown("transfer function", tuple(PRESETS),
                                               initial_value=self.req.preset)  # fmt: skip
                self.preset.on_update(lambda _e: self.set(preset=self.preset.value))
            self.opacity = gui.add_slider("opacity scale", min=0.1, max=4.0, step=0.05,
                                          initial_value=self.req.opacity_scale)  # fmt: skip
            self.opacity.on_update(lambda _e: self.set(opacity_scale=float(self.opacity.value)))
            self.skip = gui.add_checkbox("empty-space skipping", self.req.skip_empty)
            self.skip.on_update(lambda _e: self.set(skip_empty=bool(self.skip.value)))
        self.status = gui.add_markdown("rendering ...")
        self.image = gui.add_image(np.zeros((8, 8, 3), np.uint8), label="frame", format="png")

    def _on_param(self) -> None:
        raw = tuple(float(s.value) for s in self.sliders)
        snapped = self.ex.snap(raw, leaving=self._snapped)
        if snapped != raw:
            self._snapped = snapped
            for s, v in zip(self.sliders, snapped, strict=True):
                if float(s.value) != v:
                    s.value = v  # re-enters here with the snapped value
            return
        if self._snapped is not None and self.ex.snap(raw) != self._snapped:
            self._snapped = None  # left the snapped parameter's reach: it snaps again
        self.set(params=snapped)

    def set(self, **changes: Any) -> None:
        self.req = replace(self.req, **changes)
        self.bump()

    def bump(self) -> None:
        self.version += 1
        self.changed.set()

    # -- rendering -----------------------------------------------------------------------------

    def _camera(self, height: int) -> Camera:
        cam = self.client.camera
        aspect = float(getattr(cam, "aspect", 1.0) or 1.0)
        width = int(round(height * min(max(aspect, 0.25), 4.0)))
        return camera_from_pose(np.asarray(cam.position), np.asarray(cam.look_at), float(cam.fov),
                                (width, height))  # fmt: skip

    def _request(self, stage: str) -> FrameRequest:
        height = self.q.preview if stage == "preview" else self.q.refined
        steps = self.q.preview_steps if stage == "preview" else self.q.refined_steps
        if not self.ex.needs_camera:
            return self.req
        return replace(self.req, camera=self._camera(height), n_steps=steps)

    def _show(self, req: FrameRequest, res: FrameResult, stage: str) -> None:
        with self.client.atomic():
            self.client.scene.set_background_image(res.image, format="png")
            self.image.image = res.image
            self.status.content = status_markdown(self.ex.space.names, req, res, stage,
                                                  self.ex.needs_camera)  # fmt: skip

    def _render(self, stage: str) -> bool:
        """Render and show one frame; False when the client went away."""
        req = self._request(stage)
        try:
            with self.lock:
                res = self.ex.render_frame(req)
        except ValueError as err:  # e.g. the ground truth between frames
            self.status.content = f"**{req.method}**: {err}"
            return True
        if not self.alive:
            return False
        self._show(req, res, stage)
        return True

    def _loop(self) -> None:
        try:
            while self.alive:
                if not self.changed.wait(timeout=1.0):
                    continue
                self.changed.clear()
                seen = self.version
                if not self.ex.needs_camera:  # NVS: the predicted image is the frame
                    if not self._render("image"):
                        return
                    continue
                if not self._render("preview"):
                    return
                # refine once the state has been still for idle_seconds
                if self.changed.wait(timeout=self.q.idle_seconds) or self.version != seen:
                    continue
                self._render("refined")
        except Exception:  # a dead render thread must say why, not vanish
            log.exception("explore: rendering failed")


def initial_request(ex: Explorer, params: tuple[float, ...] | None, method: str,
                    camera: Camera) -> FrameRequest:  # fmt: skip
    if params is None:
        mids = [0.5 * (lo + hi) for lo, hi in ex.space.ranges]
        params = tuple(mids)
    if method not in ex.method_names:
        raise ValueError(f"explore: method '{method}' (one of {', '.join(ex.method_names)})")
    return FrameRequest(method=method, params=tuple(float(v) for v in params), camera=camera)


def serve(
    explorer: Explorer,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    quality: Quality = Quality(),
    initial: FrameRequest,
    ready: threading.Event | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the app until interrupted (or `stop` is set: tests)."""
    try:
        import viser
    except ImportError:
        raise ValueError("hyperinr explore needs viser: pip install 'hyperinr[explore]'") from None

    server = viser.ViserServer(host=host, port=port, label="hyperinr explore", verbose=False)
    position, look_at = pose_from_camera(initial.camera)
    server.scene.set_up_direction("+z")
    server.initial_camera.position = tuple(position)
    server.initial_camera.look_at = tuple(look_at)
    server.initial_camera.fov = float(np.radians(initial.camera.fov_deg))
    if explorer.needs_camera:  # the volume's box, so orbiting has something to hold on to
        corners = np.array([[x, y, z] for x in (-.5, .5) for y in (-.5, .5) for z in (-.5, .5)])
        edges = [(a, b) for a in range(8) for b in range(a + 1, 8)
                 if np.sum(np.abs(corners[a] - corners[b]) > 0) == 1]  # fmt: skip
        segments = np.array([[corners[a], corners[b]] for a, b in edges])
        server.scene.add_line_segments("box", segments, colors=(160, 160, 160), line_width=1.0)
    lock = threading.Lock()
    sessions: dict[int, ClientSession] = {}

    @server.on_client_connect
    def _connect(client: Any) -> None:
        sessions[client.client_id] = ClientSession(server, client, explorer, quality, lock, initial)

    @server.on_client_disconnect
    def _disconnect(client: Any) -> None:
        s = sessions.pop(client.client_id, None)
        if s is not None:
            s.alive = False
            s.changed.set()

    print(f"hyperinr explore: http://{host}:{server.get_port()}  (Ctrl-C to stop)", flush=True)
    if ready is not None:
        ready.set()
    try:
        while stop is None or not stop.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for s in sessions.values():
            s.alive = False
            s.changed.set()
        server.stop()


__all__ = ["LERP", "Quality", "initial_request", "serve", "status_markdown"]
