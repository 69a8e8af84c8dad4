import glob
import json
import os
from pathlib import Path

from snakemake.utils import validate

from hyperinr.cluster.gpus import TRAINING_RULES, training_launcher, workflow_training_gpus
from hyperinr.cluster.polaris import preflight_or_exit
from hyperinr.config import Config, ConfigError, upgrade_renamed_keys
from hyperinr.data.simulate import simulation_file
from hyperinr.infra.provenance import stage_slice, training_rule
from hyperinr.models import registry
from hyperinr.sweeps import (
    MODEL_SWEEPS,
    SWEEP_MODELS,
    SWEEPS,
    TARGET_MODES,
    variant_config,
    variants,
)
from hyperinr.tasks import check_config, scene_files


# renamed keys first (one deprecation line each); the --configfile layers tell an old key of
# the user's over config/config.yaml's new one (an override) from both in one file (an error)
upgrade_renamed_keys(config, later=workflow.config_settings.overwrite_config)
validate(config, schema="../workflow/schemas/config.schema.yaml", set_default=False)
CFG = Config.from_dict(config)
# the schema states no defaults: every key the rules read comes from the dataclasses'
config.update(CFG.to_dict())
check_config(CFG)  # what the task cannot do fails here, naming the key
TASK = config["dataset"]["task"]

RESULTS = f"results/{config['dataset']['name']}"
LOGS = f"logs/{config['dataset']['name']}"
REPORT = f"{RESULTS}/report"
BASELINES = list(registry.names_trained_by("baseline"))  # Sec. 6.3's INRs (rule baseline)
MODE_MODELS = [f"hyperinr_{m}" for m in TARGET_MODES]  # the target_modes rule's models
SWEEP_NAMES = (*SWEEPS, *MODEL_SWEEPS)  # targets ablation_<sweep> (rules/ablation.smk)
VARIANT = r"[a-z_0-9]+-\d+"  # a sweep's variant of HyperINR, `<key>-<value>`


# ---------------------------------------------------------------------------------- paths ---
# Spelled here once. A rule that consumes another rule's fixed output names it as
# rules.<rule>.output.<key>; these helpers serve the outputs themselves and the wildcard ones.
DATASET = f"{RESULTS}/dataset.zarr"


def model_file(name):
    """A trained model: teacher, teacher_validation, hyperinr, hyperinr_<mode>, a baseline, or
    ablation/<variant or sweep model>."""
    return f"{RESULTS}/{name}/model.pt"


def model_info(name):
    return f"{RESULTS}/{name}/info.json"


def prediction(method, prefix=""):
    """The prediction store of `method`; prefix "ablation/" for a sweep's models (rule predict
    serves both through its {prefix} wildcard)."""
    return f"{RESULTS}/{prefix}predictions/{method}.zarr"


def prediction_info(method, prefix=""):
    return f"{RESULTS}/{prefix}predictions/{method}.json"


def benchmark_file(rule_name, wildcards=""):
    """Snakemake's measurements of one job (wall time, max_rss, ...): size a rule's mem_mb
    from their max_rss (docs/cluster.md). A wildcard rule's jobs: one file each in its folder."""
    name = f"{rule_name}/{wildcards}" if wildcards else rule_name
    return f"{LOGS}/benchmarks/{name}.tsv"


# ------------------------------------------------------------------------------ resources ---
# What a scheduler sees, one entry per rule: gpu, runtime (minutes), mem_mb (size it from the
# rule's benchmark file). Config `resources.<rule>` overrides an entry, Snakemake's own
# --set-resources (and a profile's set-resources) override both; a training rule's gpu is
# trainer()'s. Every GPU rule needs its GPU partition in workflow/profiles/slurm.
_TRAINING = {"gpu": 1, "runtime": 240, "mem_mb": 32000}
_ONE_GPU = {"gpu": 1, "runtime": 60, "mem_mb": 16000}
_SCORING = {"gpu": 0, "runtime": 60, "mem_mb": 16000}  # PSNR/SSIM of every frame and method
DEFAULT_RESOURCES = {
    "simulate": {"gpu": 0, "runtime": 30, "mem_mb": 4000},
    "scene": _ONE_GPU,
    "ingest": {"gpu": 0, "runtime": 60, "mem_mb": 8000},
    "teacher": _TRAINING,
    "teacher_validation": {**_TRAINING, "runtime": 120},
    "baseline": _TRAINING,
    "distill_set_shard": _ONE_GPU,
    "distill_set": {"gpu": 0, "runtime": 60, "mem_mb": 8000},  # the gather: check + link
    "distill": {**_TRAINING, "mem_mb": 64000},  # the pipeline's HyperINR and the sweeps' variants
    "predict": _ONE_GPU,  # every model's frames (LERP: gpu 0)
    "evaluate": _SCORING,
    "report": {"gpu": 0, "runtime": 15, "mem_mb": 4000},
    "target_modes": _SCORING,
    "view_gain": {"gpu": 0, "runtime": 15, "mem_mb": 4000},
    "shadows": _ONE_GPU,
    "speed": _ONE_GPU,
    "renders": _ONE_GPU,
    "explore_snapshots": {"gpu": 1, "runtime": 30, "mem_mb": 8000},
    "ablation_model": {**_TRAINING, "mem_mb": 64000},
    **{f"ablation_{sweep}": _SCORING for sweep in SWEEP_NAMES},
    "ablation_shared_mlp_render": _ONE_GPU,
}
_unknown = sorted(set(config["resources"]) - set(DEFAULT_RESOURCES))
if _unknown:
    raise ConfigError(
        f"resources.{_unknown[0]} names no rule of this workflow ({', '.join(DEFAULT_RESOURCES)})"
    )


def trainer(rule_name):
    """Launcher, GPUs and threads of a training job (hyperinr.cluster.gpus.TRAINING_RULES).

    GPUs: runtime.gpus_per_job if above 1, else resources.<rule>.gpu if configured, else a whole
    node where the profile declares one (the polaris profiles: 4), else 1
    (hyperinr.cluster.gpus.workflow_training_gpus, which also sets the runtime.gpus_per_job the
    stage's config slice records). Above 1 the stage runs data-parallel under torchrun,
    one process per GPU of one node (docs/cluster.md, Multi-GPU), with n x runtime.threads threads.
    """
    n = workflow_training_gpus(config, rule_name)
    threads = config["runtime"]["threads"]
    return {"launcher": training_launcher(n), "gpu": n, "threads": max(1, n) * threads}


def stage_processes(stage):
    """Processes the rule of training stage `stage` starts (trainer()), which the stage's
    config slice records as runtime.gpus_per_job (hyperinr.infra.provenance.stage_slice reads
    no environment: the count is passed); None for any other stage."""
    name = training_rule(stage)  # not `rule`: a Snakemake keyword
    return None if name is None else trainer(name)["gpu"]


def resources_of(rule_name, **override):
    """Requests of the rule named by `rule_name`, i.e. its DEFAULT_RESOURCES entry under the
    config's resources.<rule>, a training rule's gpu from trainer(), then `override` (callables
    too)."""
    req = {**DEFAULT_RESOURCES[rule_name], **config["resources"].get(rule_name, {})}
    if rule_name in TRAINING_RULES:
        req["gpu"] = trainer(rule_name)["gpu"]
    return {**req, **override}


# Polaris profiles (they declare HYPERINR_NODE_GPUS): a rule's request that no queue accepts
# (hyperinr.cluster.polaris) stops the run here, in one line naming the rule, before any submit.
preflight_or_exit(config, DEFAULT_RESOURCES, workflow.resource_settings.overwrite_resources)


# The conda envs' post-deploy scripts (envs/*.post-deploy.sh) install this package from here:
# Snakemake runs them from copies in .snakemake/conda/, in its own environment (conda.py).
os.environ.update(HYPERINR_WORKFLOW_DIR=str(Path(workflow.basedir).resolve()))


wildcard_constraints:
    method="|".join(["lerp", *registry.method_names(), *MODE_MODELS, *SWEEP_MODELS, VARIANT]),
    prefix="(ablation/)?",
    model="|".join(["hyperinr", *MODE_MODELS, f"ablation/{VARIANT}"]),
    baseline="|".join(BASELINES),
    shard=r"\d+",
    amodel="|".join(SWEEP_MODELS),


# --------------------------------------------------------------------------- rule inputs ---
def stage_config(stage):
    """The config keys `stage` reads (hyperinr.infra.provenance.STAGE_READS), as JSON: a rule's params
    hold exactly these, so changing any other key reruns nothing, and the stage records the
    same slice in its provenance. Threads go by --threads {threads} (they change no result)."""
    return json.dumps(stage_slice(config, stage, stage_processes(stage)), sort_keys=True)


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


def parent_of(name):
    """Param: the directory of output `name` (derived, so it follows the output anywhere)."""
    return lambda wildcards, output: str(Path(output[name]).parent)


def infos_arg(wildcards, input):
    return " ".join(f"--info {p}" for p in input.infos)


def pred_args(preds):
    """--pred METHOD=STORE for each of `preds` (method -> prediction store)."""
    return " ".join(f"--pred {m}={p}" for m, p in preds.items())


def predictions(methods=None):
    """Method -> prediction store, of evaluate.methods by default."""
    methods = config["evaluate"]["methods"] if methods is None else methods
    return {m: prediction(m) for m in methods}


# Predictions (rule predict) of the pipeline's methods (prefix "") and the sweeps' models
# (prefix "ablation/")
def model_for(wildcards):
    """The trained model a prediction needs (LERP needs none)."""
    if wildcards.method == "lerp":
        return []
    return model_file(f"{wildcards.prefix}{wildcards.method}")


def predict_method(wildcards):
    """LERP is named; a model predicts as the kind its file records (hyperinr.models.registry),
    so no rule keeps a list of which directory holds which kind."""
    return "--method lerp" if wildcards.method == "lerp" else ""


def predict_gpu(wildcards):
    """LERP interpolates the frames on the CPU: no GPU."""
    return 0 if wildcards.method == "lerp" else resources_of("predict")["gpu"]


def predict_config(wildcards):
    """Every model kind's prediction reads one slice (stage predict); LERP its weights' keys."""
    return stage_config("predict_lerp" if wildcards.method == "lerp" else "predict")


# Distillation (rule distill) of the pipeline's HyperINR, hyperinr_<mode> and the sweeps'
# ablation/<variant>
def on_demand():
    """hyperinr.target_source: on_demand trains on the teacher directly; no distillation set."""
    return config["hyperinr"]["target_source"] == "on_demand"


def n_shards():
    """Shards of distill_set.shard_size parameters (rule distill_set_shard)."""
    ds = config["distill_set"]
    return -(-ds["n_samples"] // ds["shard_size"])


def distill_mode(model):
    """`hyperinr` and the sweeps' variants train the configured targets_mode, `hyperinr_<mode>`
    that mode (rule target_modes compares them, all from one teacher and one distillation set)."""
    _, sep, mode = model.partition("_")
    if model.startswith("ablation/") or not sep:
        return config["hyperinr"]["targets_mode"]
    return mode


def targets_inputs(mode):
    """What HyperINR distils from in targets_mode `mode`: the distillation set (or, targets
    on_demand, the teacher it would be computed from); the teacher too when the mode needs its
    outputs at the training frames; the validation teacher when corrected chooses its shrinkage."""
    inputs = {"dataset": rules.ingest.output.store}
    if mode == "ground_truth":  # the training frames alone
        return inputs
    if not on_demand():
        inputs["distill_set"] = rules.distill_set.output.store
    if on_demand() or mode != "teacher":
        inputs["teacher"] = rules.teacher.output.model
    if mode == "corrected" and config["hyperinr"]["shrinkage"] is None:
        inputs["validation_teacher"] = rules.teacher_validation.output.model
    return inputs


def distill_inputs(wildcards):
    return targets_inputs(distill_mode(wildcards.model))


def distill_config(wildcards):
    """stage_config("distill") of this model: a variant's one changed hyperinr key (and
    ablation.steps; hyperinr.sweeps.variant_config), or a hyperinr_<mode>'s targets_mode."""
    name = wildcards.model
    if name.startswith("ablation/"):
        cfg = variant_config(config, name.removeprefix("ablation/"))
    else:
        cfg = json.loads(json.dumps(config))
        cfg["hyperinr"]["targets_mode"] = distill_mode(name)
    return json.dumps(stage_slice(cfg, "distill", stage_processes("distill")), sort_keys=True)


def distill_sources(wildcards, input):
    flags = {"distill_set": "--distill-set", "teacher": "--teacher",
             "validation_teacher": "--validation-teacher"}
    return " ".join(f"{flag} {input[key]}" for key, flag in flags.items() if key in input.keys())


# the report and what it includes
def stage_infos():
    """The info.json of every stage behind the report, in pipeline order (its provenance and
    cost tables)."""
    methods = config["evaluate"]["methods"]
    infos = [model_info(b) for b in BASELINES if b in methods]
    if {"teacher", "hyperinr"} & set(methods):
        infos.append(rules.teacher.output.info)
    if "hyperinr" in methods:
        needs = targets_inputs(config["hyperinr"]["targets_mode"])
        if "validation_teacher" in needs:
            infos.append(rules.teacher_validation.output.info)  # its cost, its frames
        if "distill_set" in needs:
            infos.append(rules.distill_set.output.info)
        infos.append(model_info("hyperinr"))
    infos += [prediction_info(m) for m in methods]
    infos.append(rules.evaluate.output.provenance)
    return infos


def task_sections():
    """Markdown sections summary.md includes: the speed figures (with a teacher and a
    HyperINR), the Fig. 13 test (nvs), the shadow renders and their timings (dgs, with a scene
    to render)."""
    methods = config["evaluate"]["methods"]
    sections = []
    if {"teacher", "hyperinr"} <= set(methods):
        sections.append(rules.speed.output.md)
    if TASK == "tsr":
        sections.append(rules.renders.output.md)
    if TASK == "nvs" and "lerp" in methods:
        sections.append(rules.view_gain.output.md)
    if TASK == "dgs" and config["scene"]["activate"] and "hyperinr" in methods:
        sections.append(rules.shadows.output.md)
    return sections


def all_outputs():
    out = rules.report.output
    return [out.summary, rules.evaluate.output.metrics, out.plot, out.slices, *task_sections()]


def explore_inputs():
    """Rule explore_snapshots: the HyperINR model, the dataset, the evaluated networks beside it
    (the explorer lists them), and the scene of a DGS run (its base volume)."""
    inputs = {"dataset": rules.ingest.output.store, "model": model_file("hyperinr")}
    for m in config["evaluate"]["methods"]:
        if m in ("teacher", *BASELINES):
            inputs[m] = model_file(m)
    if TASK == "dgs" and config["scene"]["activate"]:
        inputs["scene"] = rules.scene.output.frames
    return inputs


def render_inputs():
    """Rule renders: HyperINR and the teacher render through their networks, the rest (LERP,
    baselines) from their predicted volumes."""
    methods = config["evaluate"]["methods"]
    inputs = {"dataset": rules.ingest.output.store}
    for m in ("hyperinr", "teacher"):
        if m in methods:
            inputs[m] = model_file(m)
    others = [m for m in methods if m not in ("hyperinr", "teacher")]
    inputs["predictions"] = list(predictions(others).values())
    return inputs


def render_args(wildcards, input):
    args = [f"--{m} {input[m]}" for m in ("hyperinr", "teacher") if m in input.keys()]
    others = [m for m in config["evaluate"]["methods"] if m not in ("hyperinr", "teacher")]
    args += [f"--pred {m}={p}" for m, p in zip(others, input.predictions)]
    return " ".join(args)


# the sweeps (rules/ablation.smk)
def sweep_models(sweep):
    """The models of a sweep (hyperinr.sweeps): a model sweep's models, or the variants of
    HyperINR (`<key>-<value>`); each lives in ablation/<name>/."""
    if sweep in MODEL_SWEEPS:
        return list(MODEL_SWEEPS[sweep])
    return [v.name for v in variants(CFG.ablation, sweep)]


def sweep_predictions(sweep):
    return {m: prediction(m, "ablation/") for m in sweep_models(sweep)}
