"""Explorer frame times: is orbiting a generated INR interactive, and what does skipping buy?

The explorer (`hyperinr explore`) promises interactive frames on a 2-core CPU from a small
preview while dragging, a refined frame when idle, per-field caches and empty-space skipping.
This measures exactly what the browser app calls, `Explorer.render_frame`, side by side in one
run (interleaved rounds, medians after a warm-up), for the preview and the refined frame of
`hyperinr.explore.server.Quality`, each with and without skipping:

- first frame: a fresh explorer, so generation + (with skipping) the occupancy grid's build;
- orbiting: the cached field, the camera's phi moved every round so no image is reused;
- network evaluations per frame (`FrameResult.field_evals`) and the skipping ratio;
- the renderer's samples/s (evaluations / render time) against the ceiling, the INR's raw
  inference on random points of the same count (`hyperinr.load(model).generate(...)`).

Goals (the explorer's issue) print as PASS/FAIL: on a CPU preview <= 150 ms and refined
<= 1.5 s; on CUDA >= 30 frames/s for the refined frame (512x512 on an A100: gpu_check.sh);
skipping >= 2x fewer network evaluations. `--strict` exits 1 when a timing goal fails (the
evaluation count is the model's and transfer function's, the same on every device).

    python benchmarks/bench_explore.py [--model results/<ds>/hyperinr/model.pt] [--repeats 5]
        [--sizes 128 256] [--device auto] [--preset cool-warm] [--threads 2] [--out table.md]
        [--strict]
"""

from __future__ import annotations  # noqa: I001  (hyperinr is imported before torch on purpose)

import argparse
import statistics
import sys
import time
from pathlib import Path

import hyperinr
import torch

from hyperinr.infra.device import configure_threads
from hyperinr.explore import open_explorer
from hyperinr.explore.frames import PRESETS, Explorer, FrameRequest, build_occupancy
from hyperinr.explore.server import Quality
from hyperinr.render import Camera

DEFAULT_MODEL = Path("results/tgv64_vorticity/hyperinr/model.pt")
FALLBACK_MODEL = Path("results/tgv16_test/hyperinr/model.pt")
PHI_STEP = 7.0  # degrees the camera orbits between rounds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, fn, *args):
    """(fn(*args), seconds), the device's queued work included."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn(*args)
    _sync(device)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs=2,
        default=(128, 256),
        metavar=("PREVIEW", "REFINED"),
        help="frame heights (square frames)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--preset",
        default="cool-warm",
        choices=list(PRESETS),
        help="the explorer's transfer-function preset (default: its default)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--param", type=float, nargs="+",
                        help="physical parameter values (default: the middle of each range)")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a timing goal of this device fails"
    )
    args = parser.parse_args()
    model = args.model
    if not model.is_file() and model == DEFAULT_MODEL and FALLBACK_MODEL.is_file():
        print(f"note: {DEFAULT_MODEL} not found (default run not made here); "
              f"measuring the tiny test model {FALLBACK_MODEL}")  # fmt: skip
        model = FALLBACK_MODEL
    configure_threads(args.threads)

    ex = open_explorer(model, siblings=False, device=args.device)
    device, method = ex.device, next(iter(ex.models))
    params = (
        tuple(args.param) if args.param else tuple((lo + hi) / 2 for lo, hi in ex.space.ranges)
    )
    q = Quality()
    cases = {  # name -> (height, steps, skip)
        f"{stage} {h}x{h}, {steps} steps, {'skip' if skip else 'no skip'}": (h, steps, skip)
        for stage, h, steps in (
            ("preview", args.sizes[0], q.preview_steps),
            ("refined", args.sizes[1], q.refined_steps),
        )
        for skip in (True, False)
    }

    def request(h: int, steps: int, skip: bool, phi: float) -> FrameRequest:
        camera = Camera(60, phi, 2.2, 40, h, h)
        return FrameRequest(method, params, camera, args.preset, n_steps=steps, skip_empty=skip)

    def fresh() -> Explorer:  # the session's models, empty caches
        return Explorer(ex.ds, ex.models, device=device)

    # first frames (fresh caches) and orbiting frames (cached field), interleaved rounds
    first: dict[str, list[float]] = {n: [] for n in cases}
    frame: dict[str, list[float]] = {n: [] for n in cases}
    render_s: dict[str, list[float]] = {n: [] for n in cases}
    evals: dict[str, list[int]] = {n: [] for n in cases}
    gen_ms: list[float] = []
    for h, steps, skip in cases.values():  # warm-up (allocator, numba JIT)
        ex.render_frame(request(h, steps, skip, 35.0))
    for r in range(args.repeats):
        phi = 35.0 + PHI_STEP * (r + 1)
        for name, (h, steps, skip) in cases.items():
            res, secs = _timed(device, fresh().render_frame, request(h, steps, skip, 35.0))
            first[name].append(secs)
            gen_ms.append(res.generate_ms)
            res, secs = _timed(device, ex.render_frame, request(h, steps, skip, phi))
            assert res.cached
            frame[name].append(secs)
            render_s[name].append(res.render_ms / 1e3)
            evals[name].append(res.field_evals)

    # the occupancy grid's build on its own (what skipping adds to a first frame)
    tf = PRESETS[args.preset]
    g = hyperinr.load(model, device=device).generate(*params)
    occ_s = []
    for _ in range(args.repeats):
        occ, secs = _timed(device, build_occupancy, g.scalar_field(0), tf)
        occ_s.append(secs)

    # the ceiling: the INR's raw inference on random points, one frame's evaluations at a time
    raw: dict[str, list[float]] = {n: [] for n in cases}
    for name in cases:
        x = torch.rand(int(statistics.median(evals[name])), 3, device=device)
        g.values01(x[:1024])
        for _ in range(args.repeats):
            _, secs = _timed(device, g.values01, x)
            raw[name].append(len(x) / secs)

    med = {n: statistics.median(v) for n, v in frame.items()}
    ev = {n: statistics.median(v) for n, v in evals.items()}
    lines = [
        "| frame | first frame (ms) | orbiting frame (ms) | frames/s | network evals/frame "
        "| renderer samples/s | INR raw samples/s | renderer / raw |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in cases:
        rate = ev[name] / statistics.median(render_s[name])
        ceiling = statistics.median(raw[name])
        lines.append(
            f"| {name} | {statistics.median(first[name]) * 1e3:,.1f} | {med[name] * 1e3:,.1f} "
            f"| {1 / med[name]:.1f} | {ev[name]:,.0f} | {rate:,.0f} | {ceiling:,.0f} "
            f"| {rate / ceiling:.2f} |"
        )
    names = list(cases)  # preview skip, preview no skip, refined skip, refined no skip
    ratios = {names[i].split(",")[0]: ev[names[i + 1]] / max(ev[names[i]], 1) for i in (0, 2)}
    frame_no = ex.frame_at(params)
    at = (
        "not a dataset frame"
        if frame_no is None
        else f"dataset frame {frame_no}: PSNR vs the ground truth, once per generated field"
    )
    print(
        f"{model}: {method}, {ex.space.names} = {params} ({at}), "
        f"preset {args.preset}, camera theta 60, phi 35 + {PHI_STEP:g}/round, distance 2.2, "
        f"fov 40; device {device}, threads {args.threads}, median of {args.repeats} interleaved "
        "rounds after a warm-up"
    )
    print(
        f"first frame = fresh caches: generation median {statistics.median(gen_ms):.2f} ms; "
        f"occupancy grid build ({occ.resolution}^3 cells, {occ.field_evals:,} evaluations, "
        f"{occ.fraction:.0%} occupied) median {statistics.median(occ_s) * 1e3:.1f} ms"
    )
    table = "\n".join(lines)
    print(table)
    for stage, ratio in ratios.items():
        print(f"{stage}: skipping evaluates the network {ratio:.2f}x less")

    p, rf = names[0], names[2]  # the explorer's own path: skipping on, orbiting
    hp, hr = args.sizes
    goals = [  # (goal, met, a timing goal of this device)
        (f"refined {hr}x{hr} >= 30 frames/s (A100)", 1 / med[rf] >= 30, True)
    ] if device.type == "cuda" else [
        (f"preview {hp}x{hp} <= 150 ms", med[p] <= 0.150, True),
        (f"refined {hr}x{hr} <= 1.5 s", med[rf] <= 1.5, True),
    ]  # fmt: skip
    for stage, ratio in ratios.items():
        goals.append((f"skipping >= 2x fewer network evaluations ({stage})", ratio >= 2.0, False))
    for goal, ok, _ in goals:
        print(f"{'PASS' if ok else 'FAIL'} {goal}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")
    if args.strict and not all(ok for _, ok, timing in goals if timing):
        sys.exit(1)


if __name__ == "__main__":
    main()
