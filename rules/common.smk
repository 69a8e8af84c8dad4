import glob
import json
from pathlib import Path

from snakemake.utils import validate

from hyperinr.cluster.gpus import training_launcher, workflow_training_gpus
from hyperinr.cluster.polaris import preflight_or_exit
from hyperinr.config import Config
from hyperinr.data.simulate import simulation_file
from hyperinr.training.targets import MODES as TARGET_MODES
from hyperinr.infra.provenance import stage_slice
from hyperinr.sweeps import MODEL_SWEEPS, PREDICT_KIND, variant_config, variants
from hyperinr.tasks import check_config, scene_files


validate(config, schema="../workflow/schemas/config.schema.yaml")
CFG = Config.from_dict(config)
check_config(CFG)  # what the task cannot do fails here, naming the key
TASK = config["dataset"]["task"]

RESULTS = f"results/{config['dataset']['name']}"
LOGS = f"logs/{config['dataset']['name']}"
BASELINES = ["neurcomp", "hashinr"]  # the paper's comparison INRs (Sec. 6.3, rule baseline)
MODEL_METHODS = ["teacher", "hyperinr", *BASELINES]

# Requests a scheduler sees; config `resources.<rule>` overrides any of them.
DEFAULT_RESOURCES = {
    "simulate": {"gpu": 0, "runtime": 30, "mem_mb": 4000},
    "scene": {"gpu": 1, "runtime": 60, "mem_mb": 16000},
    "ingest": {"gpu": 0, "runtime": 60, "mem_mb": 8000},
    "teacher": {"gpu": 1, "runtime": 240, "mem_mb": 32000},
    "teacher_validation": {"gpu": 1, "runtime": 120, "mem_mb": 32000},
    "distill_set_shard": {"gpu": 1, "runtime": 60, "mem_mb": 16000},
    "distill_set": {"gpu": 0, "runtime": 60, "mem_mb": 8000},  # the gather: check + link
    "distill": {"gpu": 1, "runtime": 240, "mem_mb": 64000},
    "predict": {"gpu": 1, "runtime": 60, "mem_mb": 16000},
    "evaluate": {"gpu": 0, "runtime": 60, "mem_mb": 16000},
    "report": {"gpu": 0, "runtime": 15, "mem_mb": 4000},
    "explore_snapshots": {"gpu": 1, "runtime": 30, "mem_mb": 8000},
}


MODE_MODELS = [f"hyperinr_{m}" for m in TARGET_MODES]  # the target_modes rule's models


wildcard_constraints:
    method="|".join(["hyperinr", "teacher", "lerp", *BASELINES, *MODE_MODELS]),
    model="|".join(["hyperinr", *MODE_MODELS]),
    baseline="|".join(BASELINES),
    shard=r"\d+",
    variant=r"[a-z_0-9]+-\d+",
    amodel="|".join(PREDICT_KIND),


def resource(rule_name, key):
    """Scheduler request of one rule: config value, else the default above."""
    return config["resources"].get(rule_name, {}).get(key, DEFAULT_RESOURCES[rule_name][key])


def baseline_resource(key):
    """Scheduler request of the baseline rule: resources.baseline.<key>, else the teacher's
    (both train one network on the training frames)."""
    return config["resources"].get("baseline", {}).get(key, resource("teacher", key))


def trainer(rule_name):
    """Launcher, GPUs and threads of a training job (rules teacher and distill).

    GPUs: runtime.gpus_per_job if above 1, else resources.<rule>.gpu if configured, else a whole
    node where the profile declares one (the polaris profiles: 4), else 1
    (hyperinr.cluster.gpus.workflow_training_gpus, which also sets the runtime.gpus_per_job the
    stage's config slice records). Above 1 the stage runs data-parallel under torchrun,
    one process per GPU of one node (docs/cluster.md, Multi-GPU), with n x runtime.threads threads.
    """
    n = workflow_training_gpus(config, rule_name)
    threads = config["runtime"]["threads"]
    return {"launcher": training_launcher(n), "gpu": n, "threads": max(1, n) * threads}


# Polaris profiles (they declare HYPERINR_NODE_GPUS): a rule's request that no queue accepts
# (hyperinr.cluster.polaris) stops the run here, in one line naming the rule, before any submit.
preflight_or_exit(config, DEFAULT_RESOURCES, workflow.resource_settings.overwrite_resources)


def stage_config(stage):
    """The config keys `stage` reads (hyperinr.infra.provenance.STAGE_READS), as JSON: a rule's params
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
        return [str(simulation_file(CFG.simulate)), f"{sim['output_dir']}/params.json"]
    files = []
    for pattern in config["dataset"]["files"]:
        matches = sorted(glob.glob(pattern))
        files.extend(matches or [pattern])  # a missing file is reported by Snakemake, by name
    sidecar = config["dataset"]["params"]["sidecar"]
    if sidecar and config["dataset"]["params"]["values"] is None:
        files.append(sidecar)
    return files


def model_for(wildcards):
    """The trained model a prediction needs (LERP needs none); hyperinr_<mode> models and the
    baselines (rule baseline) live in their own directories."""
    if wildcards.method == "lerp":
        return []
    return f"{RESULTS}/{wildcards.method}/model.pt"


def predict_kind(wildcards):
    """The predict verb's --method: hyperinr_<mode> models predict like hyperinr; teacher and
    the baselines are their own kinds."""
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
    for b in BASELINES:
        if b in methods:
            infos.insert(0, f"{RESULTS}/{b}/info.json")
    if "hyperinr" in methods:
        at = infos.index(f"{RESULTS}/teacher/info.json") + 1
        infos[at:at] = [f"{RESULTS}/distill_set_info.json", f"{RESULTS}/hyperinr/info.json"]
        if on_demand():
            infos.remove(f"{RESULTS}/distill_set_info.json")
        if "validation_teacher" in targets_inputs(config["hyperinr"]["targets_mode"]):
            infos.insert(at, f"{RESULTS}/teacher_validation/info.json")  # its cost, its frames
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


def targets_inputs(mode):
    """What HyperINR distils from in targets_mode `mode`: the distillation set (or, targets
    on_demand, the teacher it would be computed from); the teacher too when the mode needs its
    outputs at the training frames; the validation teacher when corrected chooses its shrinkage."""
    inputs = {"dataset": f"{RESULTS}/dataset.zarr"}
    if mode == "ground_truth":  # the training frames alone
        return inputs
    if not on_demand():
        inputs["distill_set"] = f"{RESULTS}/distill_set.zarr"
    if on_demand() or mode != "teacher":
        inputs["teacher"] = f"{RESULTS}/teacher/model.pt"
    if mode == "corrected" and config["hyperinr"]["shrinkage"] is None:
        inputs["validation_teacher"] = f"{RESULTS}/teacher_validation/model.pt"
    return inputs


def distill_inputs(wildcards):
    return targets_inputs(distill_mode(wildcards))


def distill_config(wildcards):
    """stage_config("distill") with the mode of this model directory."""
    cfg = json.loads(json.dumps(config))
    cfg["hyperinr"]["targets_mode"] = distill_mode(wildcards)
    return json.dumps(stage_slice(cfg, "distill"), sort_keys=True)


def distill_sources(wildcards, input):
    flags = {"distill_set": "--distill-set", "teacher": "--teacher",
             "validation_teacher": "--validation-teacher"}
    return " ".join(f"{flag} {input[key]}" for key, flag in flags.items() if key in input.keys())


def target_mode_predictions():
    """What the target_modes rule compares (HyperINR taught in every mode, the teacher, LERP)."""
    methods = [*MODE_MODELS, "teacher", "lerp"]
    return {m: f"{RESULTS}/predictions/{m}.zarr" for m in methods}


def task_sections():
    """Markdown sections summary.md includes: the speed figures (with a teacher and a
    HyperINR), the Fig. 13 test (nvs), the shadow renders and their timings (dgs, with a scene
    to render)."""
    methods = config["evaluate"]["methods"]
    sections = []
    if {"teacher", "hyperinr"} <= set(methods):
        sections.append(f"{RESULTS}/report/speed.md")
    if TASK == "tsr":
        sections.append(f"{RESULTS}/report/renders.md")
    if TASK == "nvs" and "lerp" in methods:
        sections.append(f"{RESULTS}/report/view_gain.md")
    if TASK == "dgs" and config["scene"]["activate"] and "hyperinr" in methods:
        sections.append(f"{RESULTS}/report/shadows.md")
    return sections


def all_outputs():
    return [
        f"{RESULTS}/report/summary.md",
        f"{RESULTS}/report/metrics.csv",
        f"{RESULTS}/report/psnr_ssim.png",
        f"{RESULTS}/report/slices.png",
        *task_sections(),
    ]


def explore_inputs():
    """Rule explore_snapshots: the HyperINR model, the dataset, the evaluated networks beside it
    (the explorer lists them), and the scene of a DGS run (its base volume)."""
    inputs = {"dataset": f"{RESULTS}/dataset.zarr", "model": f"{RESULTS}/hyperinr/model.pt"}
    for m in config["evaluate"]["methods"]:
        if m in ("teacher", *BASELINES):
            inputs[m] = f"{RESULTS}/{m}/model.pt"
    if TASK == "dgs" and config["scene"]["activate"]:
        inputs["scene"] = scene_files(config["scene"]["output_dir"])[0]
    return inputs


def render_inputs():
    """Rule renders: HyperINR and the teacher render through their networks, the rest (LERP,
    baselines) from their predicted volumes."""
    methods = config["evaluate"]["methods"]
    inputs = {"dataset": f"{RESULTS}/dataset.zarr"}
    for m in ("hyperinr", "teacher"):
        if m in methods:
            inputs[m] = f"{RESULTS}/{m}/model.pt"
    others = [m for m in methods if m not in ("hyperinr", "teacher")]
    inputs["predictions"] = [f"{RESULTS}/predictions/{m}.zarr" for m in others]
    return inputs


def render_args(wildcards, input):
    args = [f"--{m} {input[m]}" for m in ("hyperinr", "teacher") if m in input.keys()]
    others = [m for m in config["evaluate"]["methods"] if m not in ("hyperinr", "teacher")]
    args += [f"--pred {m}={p}" for m, p in zip(others, input.predictions)]
    return " ".join(args)


def shadow_predictions():
    """The shadow renders use every evaluated method's shadow volumes."""
    return {m: f"{RESULTS}/predictions/{m}.zarr" for m in config["evaluate"]["methods"]}


def parent_of(name):
    """Param: the directory of output `name` (derived, so it follows the output anywhere)."""
    return lambda wildcards, output: str(Path(output[name]).parent)


def ablation_variants(sweep):
    """Variant names of an ablation sweep (hyperinr.sweeps): `<key>-<value>`."""
    return [v.name for v in variants(CFG.ablation, sweep)]


def variant_inputs(wildcards):
    """A variant distils from the pipeline's own set (and teachers where the mode needs them)."""
    return targets_inputs(config["hyperinr"]["targets_mode"])


def variant_stage_config(wildcards):
    """stage_config("distill") of the variant: one hyperinr key changed (ablation.steps too)."""
    return json.dumps(stage_slice(variant_config(config, wildcards.variant), "distill"),
                      sort_keys=True)


def ablation_predictions(sweep):
    return {v: f"{RESULTS}/ablation/predictions/{v}.zarr" for v in ablation_variants(sweep)}


def model_sweep_predictions(sweep):
    """The models of a model sweep (hyperinr.sweeps.MODEL_SWEEPS) and their predictions."""
    return {m: f"{RESULTS}/ablation/predictions/{m}.zarr" for m in MODEL_SWEEPS[sweep]}


def ablation_model_kind(wildcards):
    """hyperinr predict --method of an ablation model (coordnet predicts as the teacher)."""
    return PREDICT_KIND[wildcards.amodel]


def ablation_predict_config(wildcards):
    return stage_config(f"predict_{PREDICT_KIND[wildcards.amodel]}")
