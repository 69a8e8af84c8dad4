import glob
import json
from pathlib import Path

from snakemake.utils import validate

from hyperinr.config import Config
from hyperinr.data.target_modes import MODES as TARGET_MODES
from hyperinr.provenance import stage_slice
from hyperinr.tasks import check_config, scene_files


validate(config, schema="../workflow/schemas/config.schema.yaml")
check_config(Config.from_dict(config))  # what the task cannot do fails here, naming the key
TASK = config["dataset"]["task"]

RESULTS = f"results/{config['dataset']['name']}"
LOGS = f"logs/{config['dataset']['name']}"
MODEL_METHODS = ["teacher", "hyperinr"]

# Requests a scheduler sees; config `resources.<rule>` overrides any of them.
DEFAULT_RESOURCES = {
    "simulate": {"gpu": 0, "runtime": 30, "mem_mb": 4000},
    "scene": {"gpu": 1, "runtime": 60, "mem_mb": 16000},
    "ingest": {"gpu": 0, "runtime": 60, "mem_mb": 8000},
    "teacher": {"gpu": 1, "runtime": 240, "mem_mb": 32000},
    "distill_set_shard": {"gpu": 1, "runtime": 60, "mem_mb": 16000},
    "distill_set": {"gpu": 0, "runtime": 60, "mem_mb": 8000},  # the gather: check + link
    "distill": {"gpu": 1, "runtime": 240, "mem_mb": 64000},
    "predict": {"gpu": 1, "runtime": 60, "mem_mb": 16000},
    "evaluate": {"gpu": 0, "runtime": 60, "mem_mb": 16000},
    "report": {"gpu": 0, "runtime": 15, "mem_mb": 4000},
}


MODE_MODELS = [f"hyperinr_{m}" for m in TARGET_MODES]  # the target_modes rule's models


wildcard_constraints:
    method="|".join(["hyperinr", "teacher", "lerp", *MODE_MODELS]),
    model="|".join(["hyperinr", *MODE_MODELS]),
    shard=r"\d+",


def resource(rule_name, key):
    """Scheduler request of one rule: config value, else the default above."""
    return config["resources"].get(rule_name, {}).get(key, DEFAULT_RESOURCES[rule_name][key])


def trainer(rule_name):
    """Launcher, GPUs and threads of a training job (rules teacher and distill).

    runtime.gpus_per_job n > 1: the stage runs data-parallel under torchrun, one process per
    GPU of one node (docs/cluster.md, Multi-GPU), and the job asks for n GPUs (this wins over
    resources.<rule>.gpu) and n x runtime.threads threads. Otherwise the plain `hyperinr` verb.
    """
    n = config["runtime"]["gpus_per_job"]
    threads = config["runtime"]["threads"]
    if n > 1:
        launcher = f"torchrun --standalone --nproc_per_node {n} -m hyperinr.cli"
        return {"launcher": launcher, "gpu": n, "threads": n * threads}
    return {"launcher": "hyperinr", "gpu": resource(rule_name, "gpu"), "threads": threads}


def stage_config(stage):
    """The config keys `stage` reads (hyperinr.provenance.STAGE_READS), as JSON: a rule's params
    hold exactly these, so changing any other key reruns nothing, and the stage records the
    same slice in its provenance. Threads go by --threads {threads} (they change no result)."""
    return json.dumps(stage_slice(config, stage), sort_keys=True)


def dataset_files():
    """Frames the ingest reads: the rendered scene (NVS/DGS), the simulation's output, or the
    user's files as configured."""
    sim = config["simulate"]
    if config["scene"]["activate"]:
        return list(scene_files(config["scene"]["output_dir"]))
    if sim["activate"]:
        return [f"{sim['output_dir']}/tgv.h5", f"{sim['output_dir']}/params.json"]
    files = []
    for pattern in config["dataset"]["files"]:
        matches = sorted(glob.glob(pattern))
        files.extend(matches or [pattern])  # a missing file is reported by Snakemake, by name
    sidecar = config["dataset"]["params"]["sidecar"]
    if sidecar and config["dataset"]["params"]["values"] is None:
        files.append(sidecar)
    return files


def model_for(wildcards):
    """The trained model a prediction needs (LERP needs none); hyperinr_<mode> models live in
    their own directory."""
    if wildcards.method == "lerp":
        return []
    return f"{RESULTS}/{wildcards.method}/model.pt"


def predict_kind(wildcards):
    """The predict verb's --method: hyperinr_<mode> models predict like hyperinr."""
    return "hyperinr" if wildcards.method.startswith("hyperinr") else wildcards.method


def predictions():
    return {m: f"{RESULTS}/predictions/{m}.zarr" for m in config["evaluate"]["methods"]}


def pred_args():
    return " ".join(f"--pred {m}={p}" for m, p in predictions().items())


def stage_infos():
    infos = [f"{RESULTS}/predictions/{m}.json" for m in config["evaluate"]["methods"]]
    infos.append(f"{RESULTS}/report/metrics.provenance.json")
    methods = set(config["evaluate"]["methods"])
    if methods & {"teacher", "hyperinr"}:
        infos.insert(0, f"{RESULTS}/teacher/info.json")
    if "hyperinr" in methods:
        infos[1:1] = [f"{RESULTS}/distill_set_info.json", f"{RESULTS}/hyperinr/info.json"]
        if on_demand():
            infos.remove(f"{RESULTS}/distill_set_info.json")
    return infos


def on_demand():
    """hyperinr.targets: on_demand trains on the teacher directly; no distillation set."""
    return config["hyperinr"]["targets"] == "on_demand"


def distill_shards():
    """One Zarr store per shard of distill_set.shard_size parameters (rule distill_set_shard)."""
    ds = config["distill_set"]
    n = -(-ds["n_params"] // ds["shard_size"])
    return [f"{RESULTS}/distill_set/shards/shard_{i}.zarr" for i in range(n)]


def distill_mode(wildcards):
    """`hyperinr` trains the configured targets_mode; `hyperinr_<mode>` that mode (rule
    target_modes compares them, all from one teacher and one distillation set)."""
    _, sep, mode = wildcards.model.partition("_")
    return mode if sep else config["hyperinr"]["targets_mode"]


def distill_inputs(wildcards):
    """The distillation set (or, targets on_demand, the teacher it would be computed from);
    the teacher too when the targets mode needs its outputs at the training frames."""
    inputs = {"dataset": f"{RESULTS}/dataset.zarr"}
    if not on_demand():
        inputs["distill_set"] = f"{RESULTS}/distill_set.zarr"
    if on_demand() or distill_mode(wildcards) != "teacher":
        inputs["teacher"] = f"{RESULTS}/teacher/model.pt"
    return inputs


def distill_config(wildcards):
    """stage_config("distill") with the mode of this model directory."""
    cfg = json.loads(json.dumps(config))
    cfg["hyperinr"]["targets_mode"] = distill_mode(wildcards)
    return json.dumps(stage_slice(cfg, "distill"), sort_keys=True)


def distill_sources(wildcards, input):
    args = [f"--distill-set {input.distill_set}"] if "distill_set" in input.keys() else []
    if "teacher" in input.keys():
        args.append(f"--teacher {input.teacher}")
    return " ".join(args)


def target_mode_predictions():
    """What the target_modes rule compares (HyperINR taught in every mode, the teacher, LERP)."""
    methods = [*MODE_MODELS, "teacher", "lerp"]
    return {m: f"{RESULTS}/predictions/{m}.zarr" for m in methods}


def task_sections():
    """Markdown sections the task adds to summary.md: the Fig. 13 test (nvs), the shadow
    renders and their timings (dgs, with a scene to render)."""
    if TASK == "nvs" and "lerp" in config["evaluate"]["methods"]:
        return [f"{RESULTS}/report/view_gain.md"]
    if TASK == "dgs" and config["scene"]["activate"]:
        return [f"{RESULTS}/report/shadows.md"]
    return []


def all_outputs():
    return [
        f"{RESULTS}/report/summary.md",
        f"{RESULTS}/report/metrics.csv",
        f"{RESULTS}/report/psnr_ssim.png",
        f"{RESULTS}/report/slices.png",
        *task_sections(),
    ]


def shadow_predictions():
    """The shadow renders use every evaluated method's shadow volumes."""
    return {m: f"{RESULTS}/predictions/{m}.zarr" for m in config["evaluate"]["methods"]}


def parent_of(name):
    """Param: the directory of output `name` (derived, so it follows the output anywhere)."""
    return lambda wildcards, output: str(Path(output[name]).parent)
