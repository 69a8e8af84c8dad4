"""How time, memory and I/O grow with the volume: ingest, predict (LERP, HyperINR), evaluate.

    python benchmarks/bench_scale.py [--sizes 64 128 256 512] [--frames 8] [--memory-mb 512]

For every edge N: N^3 x `--frames` float32 frames (a smooth travelling wave plus noise, one
.npy file per frame, written slab by slab) go through the real CLI stages, each in its own
process under `runtime.memory_mb` = `--memory-mb`, `store.chunk` = `--chunk`:
`hyperinr ingest`, `hyperinr predict --method lerp`, `hyperinr predict` of an untrained HyperINR
of the default architecture (speed does not depend on the weights; up to `--hyperinr-max`,
since at ~1.3 M points/s on this CPU a 512^3 x 8 run is 15 minutes) and `hyperinr evaluate`
of both predictions on `--threads` threads and, up to `--speedup-max`, on 1 thread (the
parallel speed-up, same run). Per stage: wall time (process start to exit), peak RSS (the
process's own ru_maxrss), bytes read / written (/proc/self/io rchar / wchar: every byte
through read/write calls, cached or not) and throughput = bytes read per second as a ratio to
a plain sequential read of the same stage's input files, timed in the same run just before.
Growth exponents: least-squares slopes of log(time) and log(peak RSS) against log(voxels).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hyperinr.infra.memory import process_rss_bytes

STAGES = ("ingest", "predict_lerp", "predict_hyperinr", "evaluate", "evaluate_1thread")


# --------------------------------------------------------------------------- child process


def _io() -> dict[str, int]:
    try:
        fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
        return {"rchar": int(fields["rchar"]), "wchar": int(fields["wchar"])}
    except OSError:  # not Linux
        return {"rchar": -1, "wchar": -1}


#: What each verb imports, loaded before the clock starts: the time exponents are about the
#: work, not the ~1.5 s of imports every stage pays once (the wall column keeps them).
VERB_MODULES = {
    "ingest": ("hyperinr.data.ingest",),
    "predict_lerp": ("hyperinr.models.lerp",),
    "predict": ("hyperinr.stages.predict",),
    "evaluate": ("hyperinr.evaluate.metrics",),
}


def run_child(record: str, argv: list[str]) -> None:
    """Runs one CLI stage in this process and records what it cost (the parent reads it)."""
    import importlib

    from hyperinr.cli import main

    verb = "predict_lerp" if argv[:3] == ["predict", "--method", "lerp"] else argv[0]
    for module in VERB_MODULES.get(verb, ()):
        importlib.import_module(module)
    io0, t0 = _io(), time.perf_counter()
    code = main(argv)
    wall = time.perf_counter() - t0
    io1 = _io()
    peak = process_rss_bytes()  # VmHWM: this process's own peak
    Path(record).write_text(
        json.dumps(
            {
                "code": code or 0,
                "stage_seconds": wall,
                "peak_rss_mb": peak / 2**20,
                "read_bytes": io1["rchar"] - io0["rchar"],
                "written_bytes": io1["wchar"] - io0["wchar"],
            }
        )
    )


# --------------------------------------------------------------------------- parent


def write_source(root: Path, n: int, frames: int, seed: int = 0) -> list[Path]:
    """N^3 float32 frames as .npy files, written slab by slab (this process stays small)."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(0.0, 1.0, n, dtype=np.float32)
    files = []
    for f in range(frames):
        path = root / f"frame_{f:03d}.npy"
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n, n))
        t = f / max(1, frames - 1)
        for a in range(0, n, 16):
            z = axis[a : a + 16, None, None]
            slab = np.sin(2 * np.pi * (axis[None, None, :] + 0.5 * t)) * np.cos(
                2 * np.pi * axis[None, :, None]
            ) * (1.0 + z)
            out[a : a + 16] = slab + 0.05 * rng.standard_normal(slab.shape, dtype=np.float32)
        out.flush()
        del out
        files.append(path)
    return files


def plain_read_seconds(paths: list[Path]) -> tuple[float, int]:
    """Time to read every file under `paths` sequentially, 16 MiB at a time (the baseline a
    stage's I/O is compared with)."""
    files = [p for root in paths for p in ([root] if root.is_file() else sorted(root.rglob("*")))]
    total, t0 = 0, time.perf_counter()
    for p in files:
        if p.is_file():
            with open(p, "rb", buffering=0) as fh:
                while block := fh.read(1 << 24):
                    total += len(block)
    return time.perf_counter() - t0, total


def stage(
    work: Path, name: str, argv: list[str], inputs: list[Path], fallback_mb: int | None = None
) -> dict:
    """Runs a stage; when its runtime.memory_mb check refuses it (the one-line error), records
    the refusal and, with `fallback_mb`, measures it again under that bound."""
    plain_s, plain_bytes = plain_read_seconds(inputs)
    record = work / f"{name}.cost.json"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", str(record), "--", *argv],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    cost = json.loads(record.read_text()) if record.exists() else {"code": proc.returncode}
    refused = "runtime.memory_mb=" in proc.stderr and "cannot hold" in proc.stderr
    if refused and fallback_mb is not None:
        retry = [*argv, "--config-json", json.dumps({"runtime": {"memory_mb": fallback_mb}})]
        if "--config-json" in argv:  # merge: the CLI takes one --config-json
            k = argv.index("--config-json")
            cfg = json.loads(argv[k + 1])
            cfg["runtime"] = {**cfg.get("runtime", {}), "memory_mb": fallback_mb}
            retry = [*argv[: k + 1], json.dumps(cfg), *argv[k + 2 :]]
        out = stage(work, name, retry, inputs)
        return {**out, "refused_at_mb": proc.stderr.strip().splitlines()[-1],
                "bound_mb": fallback_mb}  # fmt: skip
    if proc.returncode != 0 or cost["code"] != 0:
        sys.exit(f"bench_scale: {name} failed ({cost['code']}):\n{proc.stderr[-3000:]}")
    stage_bps = cost["read_bytes"] / cost["stage_seconds"]
    plain_bps = plain_bytes / plain_s if plain_s > 0 else math.nan
    return {**cost, "wall_seconds": wall, "plain_read_bytes": plain_bytes,
            "throughput_ratio": stage_bps / plain_bps}  # fmt: skip


def make_model(dataset: Path, out: Path) -> None:
    """An untrained HyperINR of the default architecture for `dataset` (as rule distill
    builds it): predict's speed does not depend on the weights."""
    from hyperinr.config import Config
    from hyperinr.models.hyperinr import HyperINR, save_hyperinr
    from hyperinr.stages.common import load_dataset_meta
    from hyperinr.stages.distill import encoder_positions_for

    cfg = Config()
    meta, store = load_dataset_meta(dataset)
    model = HyperINR(
        encoder_positions_for(cfg, meta), meta.n_spatial, meta.n_channels,
        cfg.hyperinr.encoding, cfg.hyperinr.network, cfg.hyperinr.k_nearest,
        seed=cfg.runtime.seed, power=cfg.hyperinr.idw_power,
    )  # fmt: skip
    save_hyperinr(out, model, {
        "dims": list(meta.dims), "param_names": list(meta.param_names),
        "param_range": store.param_range, "value_range": list(meta.value_range),
    })  # fmt: skip


def run_size(work: Path, n: int, args: argparse.Namespace, out: dict[str, dict]) -> None:
    """Every stage at edge n into `out` (filled as stages finish: a failure keeps the rest)."""
    src = work / "source"
    src.mkdir(parents=True)
    write_source(src, n, args.frames)
    frames = args.frames
    cfg = {
        "dataset": {
            "name": f"scale{n}", "task": "tsr", "format": "npy",
            "files": [str(src / "frame_*.npy")],
            "params": {"names": ["t"], "values": [[float(i)] for i in range(frames)],
                       "sidecar": None},
            "split": {"train_every": 2},
        },
        "store": {"chunk": args.chunk},
        "predict": {"batch_size": args.batch_size},
        "runtime": {"memory_mb": args.memory_mb, "threads": args.threads, "device": "cpu"},
    }  # fmt: skip
    js = json.dumps(cfg)
    ds, lerp, hyp = work / "dataset.zarr", work / "lerp.zarr", work / "hyperinr.zarr"
    fb = args.fallback_memory_mb
    out["ingest"] = stage(
        work, "ingest", ["ingest", "--config-json", js, "--out", str(ds)], [src], fb
    )
    shutil.rmtree(src)  # disk: the source is not needed any more
    out["predict_lerp"] = stage(
        work, "predict_lerp",
        ["predict", "--method", "lerp", "--config-json", js, "--dataset", str(ds),
         "--out", str(lerp)], [ds], fb,
    )  # fmt: skip
    if n <= args.hyperinr_max:
        make_model(ds, work / "model.pt")
        model_cfg = {**cfg, "runtime": {**cfg["runtime"], "memory_mb": args.model_memory_mb}}
        out["predict_hyperinr"] = stage(
            work, "predict_hyperinr",
            ["predict", "--config-json", json.dumps(model_cfg), "--threads", str(args.threads),
             "--dataset",
             str(ds), "--model", str(work / "model.pt"), "--out", str(hyp)], [ds],
        )  # fmt: skip
    stores = [ds, lerp]
    # the same work at every size (the metrics' cost does not depend on the method): LERP's
    # store, which exists at every size; HyperINR's predictions are timed above
    evaluate = ["evaluate", "--config-json", js, "--dataset", str(ds), "--pred", f"lerp={lerp}"]
    out["evaluate"] = stage(
        work, "evaluate",
        [*evaluate, "--threads", str(args.threads), "--out", str(work / "m.csv")], stores, fb,
    )  # fmt: skip
    if n <= args.speedup_max and args.threads > 1:
        out["evaluate_1thread"] = stage(
            work, "evaluate_1thread", [*evaluate, "--threads", "1", "--out",
                                       str(work / "m1.csv")], stores, fb,
        )  # fmt: skip
        if (work / "m.csv").read_text() != (work / "m1.csv").read_text():
            sys.exit(f"bench_scale: {n}^3: 1-thread and {args.threads}-thread metrics differ")


def slope(xs: list[float], ys: list[float]) -> float:
    if len(xs) < 2:
        return math.nan
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_child(sys.argv[2], sys.argv[4:])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--memory-mb", type=int, default=512)
    p.add_argument("--chunk", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    # HyperINR predict's process floor is ~450 MB here (torch, its thread pool, numba's
    # kernels, the model): under 512 MB the batch's ~1.2 kB a point must stay small
    p.add_argument("--batch-size", type=int, default=16384)
    # ... and the 65 MB model file is memory-mapped on top: the check refuses 512 for it
    p.add_argument("--model-memory-mb", type=int, default=640)
    # a stage whose check refuses --memory-mb is recorded as refused, then timed under this
    p.add_argument("--fallback-memory-mb", type=int, default=2048)
    p.add_argument("--fit-from", type=int, default=128, help="also fit exponents from this size")
    p.add_argument("--hyperinr-max", type=int, default=256)
    p.add_argument("--speedup-max", type=int, default=256)
    p.add_argument("--work", type=Path, default=None, help="scratch dir (default: a temp dir)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()

    results: dict[int, dict[str, dict]] = {}
    failures: dict[int, str] = {}
    for n in args.sizes:
        need = 3.2 * n**3 * 4 * args.frames  # source + dataset + predictions (uncompressed)
        base = args.work or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        if shutil.disk_usage(base).free < need:
            print(f"{n}^3: skipped, needs ~{need / 2**30:.1f} GiB free in {base}")
            continue
        work = Path(tempfile.mkdtemp(prefix=f"scale{n}_", dir=base))
        results[n] = {}
        try:
            run_size(work, n, args, results[n])
        except SystemExit as err:  # a failed stage: report it with what was measured
            failures[n] = str(err)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"{n}^3 x {args.frames} {'FAILED' if n in failures else 'done'}", flush=True)

    print(f"\nframes {args.frames}, store.chunk {args.chunk}, runtime.memory_mb "
          f"{args.memory_mb}, threads {args.threads}, predict.batch_size {args.batch_size}")
    print(f"{'size':>5} {'stage':<17} {'time s':>8} {'peak RSS MB':>12} {'read MB':>9} "
          f"{'written MB':>10} {'read/s vs plain':>15}")  # fmt: skip
    for n, stages in results.items():
        for name in STAGES:
            if name in stages:
                r = stages[name]
                print(f"{n:>4}^3 {name:<17} {r['stage_seconds']:>8.2f} {r['peak_rss_mb']:>12.0f} "
                      f"{r['read_bytes'] / 2**20:>9.0f} {r['written_bytes'] / 2**20:>10.0f} "
                      f"{r['throughput_ratio']:>15.3f}")  # fmt: skip
    print("\ngrowth exponents vs voxels (log-log slope: time, peak RSS), sizes used")
    for name in STAGES:
        every = [n for n in results if name in results[n]]
        for sizes in (every, [n for n in every if n >= args.fit_from]):
            if len(sizes) >= 2:
                vox = [n**3 for n in sizes]
                t = slope(vox, [results[n][name]["stage_seconds"] for n in sizes])
                m = slope(vox, [results[n][name]["peak_rss_mb"] for n in sizes])
                print(f"  {name:<17} time {t:5.2f}   memory {m:5.2f}   {sizes}")
    for n, stages in results.items():
        for name, r in stages.items():
            if "refused_at_mb" in r:
                print(f"{n}^3 {name}: refused under {args.memory_mb} MB ({r['refused_at_mb']}); "
                      f"timed under {r['bound_mb']} MB")
    for n, stages in results.items():
        if "evaluate_1thread" in stages:
            one, many = stages["evaluate_1thread"], stages["evaluate"]
            speed = one["stage_seconds"] / many["stage_seconds"]
            print(f"evaluate {n}^3: {args.threads} threads {speed:.2f}x faster than 1")
    bound = {"predict_hyperinr": args.model_memory_mb}
    over = [(n, s) for n, st in results.items() for s, r in st.items()
            if r["peak_rss_mb"] > r.get("bound_mb", bound.get(s, args.memory_mb))]  # fmt: skip
    print(f"peak RSS over runtime.memory_mb ({args.memory_mb}; HyperINR predict "
          f"{args.model_memory_mb}): {over or 'none'}")
    for n, message in failures.items():
        print(f"{n}^3 failed: {message}")
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"work": str(args.work),
                                         "json": str(args.json)}, "results": results,
                                         "failures": failures}, indent=1))  # fmt: skip
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
