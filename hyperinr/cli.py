"""`hyperinr <verb>`: one verb per pipeline stage, so every stage runs without Snakemake too.

Argument parsing only: each verb builds the typed config and calls one package function.
Expected failures (bad config, bad data, mismatched files) end as one line on stderr naming the
file and the problem, with exit status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hyperinr.config import (
    Config,
    ConfigError,
    merge_dicts,
    read_config_file,
    upgrade_renamed_keys,
)
from hyperinr.models import registry

log = logging.getLogger("hyperinr")


def build_config(files: list[str], json_text: str | None, threads: int | None = None) -> Config:
    """Config files merged in order, then inline JSON (what Snakemake rules pass: the slice the
    stage reads, hyperinr.infra.provenance.STAGE_READS) on top, then --threads."""
    data: dict[str, Any] = {}
    for name in files:
        data = merge_dicts(data, read_config_file(name))
    if json_text:
        try:
            layer = json.loads(json_text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--config-json is not valid JSON ({err})") from None
        if not isinstance(layer, dict):
            raise ConfigError(f"--config-json: expected a JSON object, got {type(layer).__name__}")
        # renamed keys per layer (as read_config_file does per file): an old key here
        # overrides a file's new one
        data = merge_dicts(data, upgrade_renamed_keys(layer, "--config-json"))
    if threads is not None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        data = merge_dicts(data, {"runtime": {"threads": max(1, threads // world)}})
    return Config.from_dict(data)


def _cmd_simulate(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.data.simulate import simulate

    out_dir = Path(args.out_dir) if args.out_dir else None
    print(simulate(cfg.simulate, out_dir))


def _cmd_scene(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.data.scene import write_scene
    from hyperinr.infra.device import configure_threads, resolve_device

    configure_threads(cfg.runtime.threads)
    scene = cfg.scene if not args.out_dir else replace(cfg.scene, output_dir=args.out_dir)
    write_scene(cfg.dataset.task, scene, resolve_device(cfg.runtime.device))


def _cmd_ingest(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.data.ingest import ingest

    ingest(
        cfg.dataset,
        Path(args.out),
        config_hash=cfg.section_hash("dataset"),
        store=cfg.store,
        memory_mb=cfg.runtime.memory_mb,
    )


def _cmd_teacher(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.stages.teacher import train_teacher

    train_teacher(cfg, Path(args.dataset), Path(args.out_dir), validation=args.validation)


def _cmd_baseline(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.stages.baseline import train_baseline

    train_baseline(cfg, args.model, Path(args.dataset), Path(args.out_dir))


def _cmd_ablation_train(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.stages.ablation_models import train_ablation_model

    train_ablation_model(cfg, args.model, Path(args.dataset), Path(args.out_dir))


def _cmd_distill_set_shard(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.stages.distill_set import build_shard

    build_shard(cfg, Path(args.dataset), Path(args.teacher), args.shard, Path(args.out))


def _cmd_distill_set(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.stages.distill_set import build_distill_set

    shards = Path(args.shards_dir) if args.shards_dir else None
    build_distill_set(cfg, Path(args.dataset), Path(args.teacher), Path(args.out), shards)


def _cmd_distill(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.stages.distill import distill_hyperinr

    distill_hyperinr(
        cfg,
        Path(args.dataset),
        Path(args.distill_set) if args.distill_set else None,
        Path(args.out_dir),
        teacher=Path(args.teacher) if args.teacher else None,
        validation_teacher=Path(args.validation_teacher) if args.validation_teacher else None,
    )


def _cmd_predict(cfg: Config, args: argparse.Namespace) -> None:
    if args.method == "lerp":
        from hyperinr.models.lerp import lerp_predict

        out = Path(args.out)
        lerp_predict(
            Path(args.dataset),
            out,
            k=cfg.hyperinr.k_nearest,
            power=cfg.hyperinr.idw_power,
            info_path=out.with_suffix(".json"),
            store=cfg.store,
            memory_mb=cfg.runtime.memory_mb,
        )
        return
    from hyperinr.stages.predict import predict

    if not args.model:
        method = args.method or "(the model file's kind)"
        raise ConfigError(f"predict --method {method} needs --model")
    predict(cfg, args.method, Path(args.dataset), Path(args.model), Path(args.out))


def _pairs(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            raise ConfigError(f"--pred expects METHOD=PATH, got '{item}'")
        out[name] = Path(path)
    return out


def _cmd_evaluate(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.metrics import evaluate

    evaluate(
        Path(args.dataset),
        _pairs(args.pred),
        Path(args.out),
        threads=cfg.runtime.threads,
        memory_mb=cfg.runtime.memory_mb,
        dask_scheduler=cfg.runtime.dask_scheduler,
    )


def _cmd_report(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.report import write_report

    write_report(
        Path(args.dataset),
        Path(args.metrics),
        _pairs(args.pred),
        [Path(p) for p in args.info],
        Path(args.out_dir),
        slice_frames=list(cfg.evaluate.slice_frames) if cfg.evaluate.slice_frames else None,
        sections=[Path(p) for p in args.section],
    )


def _cmd_view_gain(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.view_gain import write_view_gain

    result = write_view_gain(
        Path(args.dataset), Path(args.metrics), Path(args.out_png), Path(args.out_md)
    )
    print(json.dumps(result, indent=1))


def _cmd_render_shadows(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.shadows import render_shadows

    render_shadows(
        cfg,
        Path(args.dataset),
        Path(args.scene),
        Path(args.model),
        _pairs(args.pred),
        Path(args.out_png),
        Path(args.out_csv),
        Path(args.out_md),
    )


def _cmd_speed(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.data.store import open_dataset
    from hyperinr.evaluate.speed import measure_speed, write_speed

    rows = measure_speed(
        open_dataset(args.dataset).normalised_params(),
        Path(args.teacher),
        Path(args.model),
        [Path(p) for p in args.info],
        cfg.runtime.device,
        cfg.runtime.threads,
    )
    write_speed(rows, Path(args.out_csv), Path(args.out_md))


def _cmd_renders(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.renders import render_methods

    models = {k: Path(v) for k, v in (("hyperinr", args.hyperinr), ("teacher", args.teacher)) if v}
    render_methods(
        cfg,
        Path(args.dataset),
        models,
        _pairs(args.pred),
        Path(args.out_png),
        Path(args.out_csv),
        Path(args.out_md),
    )


def _cmd_ablation_table(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.ablation import summarise, summarise_models
    from hyperinr.sweeps import MODEL_SWEEPS

    names = [p.split("=", 1)[0] for p in args.pred] or [Path(p).parent.name for p in args.info]
    (summarise_models if args.sweep in MODEL_SWEEPS else summarise)(
        args.sweep,
        names,
        Path(args.metrics),
        [Path(p) for p in args.info],
        Path(args.reference),
        Path(args.out_csv),
        Path(args.out_png),
    )


def _cmd_compare_modes(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.evaluate.report import write_modes_summary

    print(write_modes_summary(Path(args.metrics), [Path(p) for p in args.info], Path(args.out)))


def _cmd_export(cfg: Config, args: argparse.Namespace) -> None:
    """`--format inr` (default): the standalone INR of HyperINR (hash table + MLP, tcnn-style
    JSON); `npz|vti|nc|raw`: the field sampled on the dataset's grid, for ParaView/xarray."""
    import numpy as np

    from hyperinr import api
    from hyperinr.volume_io import FORMATS, parse_param_assignments, write_volume

    model = api.load(args.model, dataset=args.dataset, device="cpu")
    theta = np.asarray(parse_param_assignments(args.param, model.param_names), dtype=np.float64)
    stem = f"{'_'.join(f'{v:g}' for v in theta)}"
    if args.format == "inr":
        if model.kind != "hyperinr":
            raise ConfigError(f"{args.model}: --format inr needs a HyperINR model ({model.kind})")
        from hyperinr.models.hyperinr import load_hyperinr

        hyper, meta = load_hyperinr(args.model, model.device)
        theta01 = model.space.to_unit(model.space.values(theta, {}, "--param"))
        inr = hyper.generate(theta01, {**meta, "param": theta.tolist()})
        print(inr.save(Path(args.out or f"inr_{stem}.npz")))
        return
    if args.format not in FORMATS:
        raise ConfigError(f"--format {args.format}: one of inr, {', '.join(FORMATS)}")
    field = model.generate(*theta)
    out = Path(args.out or f"{model.kind}_{stem}.{args.format}")
    vol = field.volume()
    names = list(model.param_names)
    print(write_volume(
        out, vol, fmt=args.format, name=args.name, param_names=names,
        param_values=theta.tolist(), spatial_ndim=len(model.dims),
        attrs={"model": str(args.model), "kind": model.kind,
               "value_range": list(model.value_range), "generate_ms": field.generate_ms},
    ))  # fmt: skip


def _cmd_explore(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.explore import open_explorer, parse_camera, parse_params, snapshot
    from hyperinr.explore.server import Quality, initial_request, serve
    from hyperinr.infra.device import configure_threads

    configure_threads(cfg.runtime.threads)
    explorer = open_explorer(args.model, dataset=args.dataset, scene=args.scene,
                             device=cfg.runtime.device)  # fmt: skip
    quality = Quality()
    size = _size(args.size) if args.size else (quality.refined, quality.refined)
    camera = parse_camera(args.camera, size)
    params = parse_params(explorer, args.param)
    req = initial_request(explorer, params, args.method, camera)
    if args.snapshot:
        from dataclasses import replace

        req = replace(req, compare=args.compare, preset=args.preset,
                      opacity_scale=args.opacity_scale, n_steps=quality.refined_steps,
                      skip_empty=not args.no_skip)  # fmt: skip
        res = snapshot(explorer, req, args.snapshot)
        psnr = "" if res.psnr_db is None else f", PSNR {res.psnr_db:.2f} dB vs frame {res.frame}"
        print(f"{args.snapshot}: {req.method} at {req.params}, generation {res.generate_ms:.2f} "
              f"ms, render {res.render_ms:.0f} ms{psnr}")  # fmt: skip
        return
    serve(explorer, host=args.host, port=args.port, quality=quality, initial=req)


def _cmd_explore_snapshots(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.explore import open_explorer
    from hyperinr.explore.strip import snapshot_strip
    from hyperinr.infra.device import configure_threads

    configure_threads(cfg.runtime.threads)
    explorer = open_explorer(args.model, dataset=args.dataset, scene=args.scene,
                             device=cfg.runtime.device)  # fmt: skip
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    rows = snapshot_strip(explorer, args.out_png, args.out_csv, methods=methods, count=args.count)
    print(f"{args.out_png}: {len(rows)} snapshots")


def _size(text: str) -> tuple[int, int]:
    """`256` or `320x256` (width x height)."""
    w, _, h = text.lower().partition("x")
    try:
        width, height = int(w), int(h or w)
    except ValueError:
        raise ConfigError(f"--size: '{text}' is not N or WxH") from None
    if width < 1 or height < 1:
        raise ConfigError(f"--size: '{text}' must be positive")
    return width, height


def _cmd_install_profiles(cfg: Config, args: argparse.Namespace) -> None:
    from hyperinr.cluster.profiles import install_profiles

    install_profiles(Path(args.dest) if args.dest else None, force=args.force)  # reports itself


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyperinr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="verb", required=True)

    def verb(name: str, fn: Callable[[Config, argparse.Namespace], None], help_: str):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", action="append", default=[], help="YAML config (repeatable)")
        p.add_argument("--config-json", help="config sections as JSON, merged last")
        p.add_argument(
            "--threads",
            type=int,
            help="threads of the whole job (overrides runtime.threads; split evenly among "
            "torchrun's processes)",
        )
        p.set_defaults(fn=fn)
        return p

    p = verb("simulate", _cmd_simulate, "generate the simulated dataset (Taylor-Green or forced)")
    p.add_argument("--out-dir")
    p = verb("scene", _cmd_scene, "render the NVS images or DGS shadow volumes (dataset.task)")
    p.add_argument("--out-dir", help="default scene.output_dir")
    p = verb("ingest", _cmd_ingest, "read frames + parameters into the Zarr dataset")
    p.add_argument("--out", required=True)
    p = verb("teacher", _cmd_teacher, "train the CoordNet teacher")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--validation", action="store_true",
        help="train the validation teacher that chooses the shrinkage (without every other "
        "interior training frame; hyperinr.shrinkage_validation)",
    )  # fmt: skip
    p = verb("baseline", _cmd_baseline, "train a comparison INR on the training frames (Sec. 6.3)")
    p.add_argument("--model", required=True, choices=registry.names_trained_by("baseline"))
    p.add_argument("--dataset", required=True)
    p.add_argument("--out-dir", required=True)
    p = verb(
        "ablation-train", _cmd_ablation_train,
        "train one model of ablation_architectures / ablation_shared_mlp on the training frames",
    )  # fmt: skip
    p.add_argument("--model", required=True, help="a model of hyperinr.sweeps.MODEL_SWEEPS")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out-dir", required=True)
    p = verb("distill-set-shard", _cmd_distill_set_shard, "compute one distillation-set shard")
    p.add_argument("--dataset", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--shard", required=True, type=int, help="shard index (0-based)")
    p.add_argument("--out", required=True, help="the shard's Zarr store (shard_<i>.zarr)")
    p = verb(
        "distill-set",
        _cmd_distill_set,
        "check every shard, compute missing/stale/corrupt ones, publish the distillation set",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--shards-dir", help="default: <out's directory>/distill_set/shards")
    p = verb("distill", _cmd_distill, "train HyperINR on the distillation set")
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--distill-set", help="the distillation set (hyperinr.target_source: precomputed)"
    )
    p.add_argument(
        "--teacher", help="the teacher (target_source on_demand; targets_mode corrected or hybrid)"
    )
    p.add_argument(
        "--validation-teacher",
        help="the validation teacher that chooses the shrinkage (corrected, shrinkage null)",
    )
    p.add_argument("--out-dir", required=True)
    p = verb("predict", _cmd_predict, "reconstruct every frame with one method")
    p.add_argument(
        "--method",
        choices=[*registry.method_names(), *registry.aliases()],
        help="default: the kind the --model file records (lerp needs no model)",
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--model")
    p.add_argument("--out", required=True)
    p = verb("evaluate", _cmd_evaluate, "PSNR/SSIM of every frame and method -> metrics.csv")
    p.add_argument("--dataset", required=True)
    p.add_argument("--pred", action="append", default=[], help="METHOD=PATH (repeatable)")
    p.add_argument("--out", required=True)
    p = verb("report", _cmd_report, "summary.md, plots and slice images")
    p.add_argument("--dataset", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--pred", action="append", default=[], help="METHOD=PATH (repeatable)")
    p.add_argument("--info", action="append", default=[], help="stage info JSON (repeatable)")
    p.add_argument(
        "--section", action="append", default=[], help="Markdown section to include (repeatable)"
    )
    p.add_argument("--out-dir", required=True)
    p = verb(
        "view-gain", _cmd_view_gain, "HyperINR - LERP PSNR over (theta, phi), t-test (Fig. 13)"
    )
    p.add_argument("--dataset", required=True)
    p.add_argument("--metrics", required=True)
    p.add_argument("--out-png", required=True)
    p.add_argument("--out-md", required=True)
    p = verb("render-shadows", _cmd_render_shadows, "DGS: render with shadows per method (Fig. 16)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--scene", required=True, help="the scene's frames.h5 (base volume, TF)")
    p.add_argument("--model", required=True, help="HyperINR model.pt (the shadow INRs)")
    p.add_argument("--pred", action="append", default=[], help="METHOD=PATH (repeatable)")
    p.add_argument("--out-png", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p = verb("speed", _cmd_speed, "inference bandwidth, generation latency, stage wall times")
    p.add_argument("--dataset", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--model", required=True, help="HyperINR model.pt")
    p.add_argument("--info", action="append", default=[], help="stage info JSON (repeatable)")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p = verb("renders", _cmd_renders, "volume renderings of unseen frames per method (Fig. 1)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--hyperinr", help="HyperINR model.pt (rendered through its INRs)")
    p.add_argument("--teacher", help="teacher model.pt (rendered through CoordNet)")
    p.add_argument("--pred", action="append", default=[], help="METHOD=PATH (volumes)")
    p.add_argument("--out-png", required=True)
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-md", required=True)
    p = verb("ablation-table", _cmd_ablation_table, "one ablation sweep's table and plot")
    p.add_argument(
        "--sweep", required=True, help="encoders | hash | architectures | shared_mlp"
    )
    p.add_argument("--metrics", required=True, help="per-frame metrics CSV of the variants")
    p.add_argument("--info", action="append", default=[], help="ablation/<variant>/info.json")
    p.add_argument("--pred", action="append", default=[], help="VARIANT=PATH (names only)")
    p.add_argument("--reference", required=True, help="the pipeline's metrics.csv")
    p.add_argument("--out-csv", required=True)
    p.add_argument("--out-png", required=True)
    p = verb("compare-modes", _cmd_compare_modes, "distillation-target modes side by side")
    p.add_argument("--metrics", required=True, help="metrics CSV of the hyperinr_<mode> models")
    p.add_argument("--info", action="append", default=[], help="hyperinr_<mode>/info.json")
    p.add_argument("--out", required=True, help="output Markdown table")
    p = verb("export", _cmd_export, "write the INR or its volume for one parameter value")
    p.add_argument("--model", required=True, help="a trained model.pt (any kind for volumes)")
    p.add_argument("--param", required=True, nargs="+", help="NAME=VALUE ... or value(s) in order")
    p.add_argument("--format", default="inr", help="inr (standalone INR .npz)|npz|vti|nc|raw")
    p.add_argument("--dataset", help="dataset.zarr (teacher/baselines; default beside the model)")
    p.add_argument("--name", default="value", help="the volume's array name")
    p.add_argument("--out", help="output path (default <kind>_<param>.<format>, inr_<param>.npz)")
    p = verb("explore", _cmd_explore, "explore the generated INR live in the browser")
    p.add_argument("--model", required=True, help="a trained model.pt (HyperINR, teacher, ...)")
    p.add_argument("--dataset", help="dataset.zarr (default: results/<ds>/dataset.zarr beside it)")
    p.add_argument("--scene", help="DGS: the scene's frames.h5 (default: the dataset's source)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback; tunnel)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--snapshot", help="render one frame to this PNG and exit (no browser)")
    p.add_argument("--param", nargs="+", help="NAME=VALUE ... or values in the dataset's order")
    p.add_argument("--camera", help="theta=60,phi=35,distance=2.2,fov=40 (degrees)")
    p.add_argument("--size", help="snapshot size: N or WxH (default 256)")
    p.add_argument("--method", default="hyperinr", help="hyperinr|teacher|lerp|ground truth|...")
    p.add_argument("--compare", default="single", choices=("single", "split", "side by side"))
    p.add_argument("--preset", default="cool-warm", help="transfer-function preset")
    p.add_argument("--opacity-scale", type=float, default=1.0)
    p.add_argument("--no-skip", action="store_true", help="render without empty-space skipping")
    p = verb("explore-snapshots", _cmd_explore_snapshots,
             "a strip of explorer snapshots across the parameter range (report)")  # fmt: skip
    p.add_argument("--model", required=True, help="HyperINR model.pt (siblings join)")
    p.add_argument("--dataset", help="dataset.zarr (default: beside the model)")
    p.add_argument("--scene", help="DGS: the scene's frames.h5")
    p.add_argument("--methods", help="comma-separated (default: every method but ground truth)")
    p.add_argument("--count", type=int, default=6, help="parameters across the range")
    p.add_argument("--out-png", required=True)
    p.add_argument("--out-csv", required=True)
    p = verb("install-profiles", _cmd_install_profiles, "link cluster profiles for --profile NAME")
    p.add_argument("--dest", help="default ~/.config/snakemake")
    p.add_argument("--force", action="store_true")
    return parser


# Verbs that compute on runtime.device: each takes its GPU slot(s) of a packed cluster node as
# it starts (hyperinr.infra.device.claim_gpus), the one place a process claims a GPU. Not
# distill-set: its rule is local (a gather on the node Snakemake runs on, which has no slot of
# a compute node to take; a shard it must recompute runs on that node's own device).
DEVICE_VERBS = frozenset({
    "scene", "teacher", "baseline", "ablation-train", "distill-set-shard", "distill",
    "predict", "render-shadows", "speed", "renders", "explore", "explore-snapshots",
})  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from hyperinr.cluster.gpus import SlotError

    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        cfg = build_config(args.config, args.config_json, args.threads)
        if args.verb in DEVICE_VERBS and getattr(args, "method", None) != "lerp":
            from hyperinr.infra.device import claim_gpus  # torch: not for the light verbs

            claim_gpus(cfg.runtime.device)  # before anything touches CUDA
        args.fn(cfg, args)
    except (
        ConfigError, ValueError, FileNotFoundError, NotImplementedError, OSError, SlotError
    ) as err:  # fmt: skip
        print(f"hyperinr {args.verb}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
