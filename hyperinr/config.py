"""Typed configuration for every stage: one home for defaults, one for valid values.

Defaults live here, in the dataclasses, and nowhere else: the schema states none, and the
workflow fills its `config` from `Config.from_dict(config).to_dict()` (rules/common.smk), so a
partial `teacher: {train: {steps: 9}}` keeps the teacher's lr 1e-5 through Snakemake and the
CLI alike. The tiny-cuda-nn blocks (`encoding`, `network`) state only what they change over
tcnn's own defaults (hyperinr.encoding._config, hyperinr.models.mlp).

Valid values (types, enums, ranges, patterns) live in `workflow/schemas/config.schema.yaml`:
Snakemake validates against it, and so does `from_dict` (the CLI, the rules, the tests), so
`hyperinr <verb>` run by hand rejects what the workflow rejects, in one line naming the key.
The schema and these dataclasses name the same keys by construction: loading the schema
compares its property tree with the dataclass fields and fails naming the first difference.

Renamed keys (`RENAMED_KEYS`) keep working: `upgrade_renamed_keys` moves an old spelling to
its new name with a one-line deprecation message.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, misspelled or of the wrong type."""


def _hashgrid(**changes: Any) -> dict[str, Any]:
    """A HashGrid block: tcnn's defaults (hyperinr.encoding._config) with `changes` over them."""
    from hyperinr.encoding._config import fill_hashgrid_config

    return fill_hashgrid_config({"otype": "HashGrid", **changes})


def _mlp(**changes: Any) -> dict[str, Any]:
    """A network block: tcnn's defaults (hyperinr.models.network_config) with `changes`."""
    from hyperinr.models.network_config import network_config

    return network_config(changes)


@dataclass(frozen=True)
class RawFormat:
    """How to read headerless binary volumes (instant-vnr / Open SciVis style)."""

    dims: tuple[int, ...] = ()  # x, y, z (fastest first), as in the usual .raw metadata
    dtype: str = "<f4"  # numpy dtype string with endianness
    header_bytes: int = 0
    axis_order: str = "zyx"  # order of axes in the file, slowest first


@dataclass(frozen=True)
class ParamsConfig:
    """Scene parameter of every frame: inline values or a sidecar JSON file.

    Inline `values` win over a `sidecar`: the default dataset's sidecar reaches every user
    config (Snakemake merges --configfile over config/config.yaml; the CLI builds over these
    defaults), so values given inline must not clash with it (ingest says it ignores it)."""

    names: tuple[str, ...] = ("t",)
    values: tuple[tuple[float, ...], ...] | None = None
    sidecar: str | None = None
    # declared [min, max] per parameter (physical units); None: the frames' own min/max. A
    # periodic parameter needs one (its period is max - min), and values outside fail ingest.
    ranges: tuple[tuple[float, float], ...] | None = None
    periodic: tuple[str, ...] = ()  # names of periodic parameters (an azimuth in degrees)


@dataclass(frozen=True)
class SplitConfig:
    """Which frames the teacher may see; every frame is evaluated."""

    train_every: int | None = 4
    train_indices: tuple[int, ...] | None = None
    train_first: int | None = None  # the first N frames train (generated scenes list them first)


@dataclass(frozen=True)
class DatasetConfig:
    name: str = "tgv64_vorticity"
    task: str = "tsr"
    format: str = "hdf5"
    files: tuple[str, ...] = ("resources/tgv64/tgv.h5",)
    hdf5_dataset: str = "vorticity"
    raw: RawFormat = field(default_factory=RawFormat)
    params: ParamsConfig = field(
        default_factory=lambda: ParamsConfig(sidecar="resources/tgv64/params.json")
    )
    split: SplitConfig = field(default_factory=SplitConfig)


@dataclass(frozen=True)
class SimulateConfig:
    """The default dataset: Taylor-Green vortex simulated by fluidsim (ns3d); or, with
    flow forced_turbulence, stationary forced turbulence (hyperinr/data/simulate.py)."""

    activate: bool = True
    flow: str = "taylor_green"  # taylor_green | forced_turbulence
    resolution: int = 64
    reynolds: float = 1600.0  # 1 / nu
    t_end: float = 10.0
    n_frames: int = 41
    dt: float = 0.02
    fields: tuple[str, ...] = ("vorticity", "pressure")
    output_dir: str = "resources/tgv64"
    # forced_turbulence only
    seed: int = 0  # numpy's global RNG, which fluidsim's random forcing draws from
    spinup: float = 10.0  # time run from rest before the first frame (to stationarity)
    forcing_rate: float = 1.0  # total energy injection rate
    forcing_kmin: float = 1.0  # forced wavenumber shell, in units of the box's 2 pi / L = 1
    forcing_kmax: float = 3.0


@dataclass(frozen=True)
class SceneConfig:
    """The NVS / DGS datasets, rendered by the workflow from one real volume (hyperinr.scene).

    NVS: images of the volume from `n_train` + `n_test` view directions; DGS: shadow volumes
    (transmittance toward a directional light) for `n_theta` x `n_phi` light directions, of
    which `n_train` evenly spread ones train. The volume is frame `frame` of an HDF5 dataset
    (default: the simulated Taylor-Green vortex), resampled to `resolution`^3 and normalised
    to [0, 1] by its own min/max.
    """

    activate: bool = False
    volume_file: str = "resources/tgv32/tgv.h5"
    volume_dataset: str = "vorticity"
    frame: int = -1
    resolution: int = 32
    output_dir: str = "resources/scene"
    transfer_function: dict[str, Any] | None = None  # hyperinr.render.TransferFunction keys
    n_steps: int = 96  # samples per primary ray across the box diagonal
    shadow_steps: int = 64  # samples per secondary (shadow) ray
    # NVS
    image_size: int = 64
    camera_distance: float = 2.2
    fov_deg: float = 40.0
    theta_range: tuple[float, float] = (30.0, 150.0)  # polar angles of the views (degrees)
    # DGS
    n_theta: int = 5
    n_phi: int = 30
    light_theta_range: tuple[float, float] = (30.0, 150.0)
    view_deg: tuple[float, float] = (65.0, 20.0)  # (theta, phi) of the camera of the DGS renders
    # both
    n_train: int = 100
    n_test: int = 100  # NVS only; DGS evaluates every light direction


@dataclass(frozen=True)
class TrainConfig:
    """Shared knobs of the one training loop (teacher and HyperINR)."""

    steps: int = 2000
    batch_size: int = 8192
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    lr_decay: float = 1.0  # multiply the learning rate by this over the whole run (exponential)
    checkpoint_every: int = 500
    log_every: int = 100
    loss: str = "l1"


@dataclass(frozen=True)
class TeacherConfig:
    widths: tuple[int, ...] = (64, 128, 256)
    hidden_blocks: int = 10
    # wrapping scene parameters (an azimuth) enter as (cos, sin): hyperinr.models.coordnet
    periodic_inputs: bool = True
    param_scale: float = 1.0  # factor on the parameter inputs (their sine frequency)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(lr=1e-5, eps=1e-8, weight_decay=1e-6)
    )


@dataclass(frozen=True)
class GaussianConfig:
    """n-D sampling around the training parameters: `count` samples in all, spread over them,
    with standard deviation `sigma` in normalised parameter units (Sec. 3, Fig. 5)."""

    count: int = 0
    sigma: float = 0.05


@dataclass(frozen=True)
class DistillSetConfig:
    """The teacher's outputs at N_D parameters, computed in shards of `shard_size` parameters."""

    n_samples: int = 100  # N_D (was n_params)
    dtype: str = "float16"
    batch_size: int = 65536
    shard_size: int = 8  # parameters per shard (one Snakemake job each)
    # full: the whole grid per parameter | subset: random points per parameter (was mode)
    coverage: str = "full"
    points_per_param: int = 65536  # random coordinates per parameter (coverage subset only)
    # n-D only (Fig. 5): n_samples = Poisson-disk + gaussian.count + uniform parameters
    gaussian: GaussianConfig = field(default_factory=lambda: GaussianConfig(sigma=0.03))
    uniform: int = 0


@dataclass(frozen=True)
class ShrinkageValidationConfig:
    """The validation teacher that chooses the shrinkage a (hyperinr/training/targets.py): the
    teacher's architecture and schedule, trained without every other interior training frame,
    for `steps_fraction` of the teacher's steps. Scoring the main teacher at frames it trained
    on measures nothing (its error there is ~0, so the curve always ends at a = 1)."""

    steps_fraction: float = 0.1


@dataclass(frozen=True)
class HyperINRConfig:
    n_encoders: int = 24
    encoding: dict[str, Any] = field(
        default_factory=lambda: _hashgrid(
            n_levels=8, n_features_per_level=4, log2_hashmap_size=15, base_resolution=4
        )
    )
    network: dict[str, Any] = field(default_factory=lambda: _mlp(n_hidden_layers=4))
    k_nearest: int = 4
    idw_power: float = 1.0  # Shepard exponent p of the n-D weights (Eq. 4; the paper's p = 1)
    # n-D only: n_encoders = Poisson-disk + encoder_gaussian.count positions; or explicit ones
    encoder_gaussian: GaussianConfig = field(default_factory=GaussianConfig)
    positions: tuple[tuple[float, ...], ...] | None = None  # normalised [N, P]; wins if given
    # precomputed (the distillation set) | on_demand (the teacher) (was targets)
    target_source: str = "precomputed"
    targets_mode: str = "teacher"  # teacher | corrected | hybrid (hyperinr/training/targets.py)
    shrinkage: float | None = None  # a of targets_mode corrected; None: the validation teacher's
    shrinkage_validation: ShrinkageValidationConfig = field(
        default_factory=ShrinkageValidationConfig
    )
    hybrid_fraction: float = 0.25  # ground-truth share of each batch (targets_mode hybrid)
    buffer_mb: int = 2048  # host memory for the set; a larger set is streamed from disk
    loader_threads: int = 2  # background threads reading the set when streaming
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-3, eps=1e-10))


@dataclass(frozen=True)
class NeurCompConfig:
    """NeurComp (Lu et al. 2021): `n_blocks` residual blocks of `width`; a null width is chosen
    so the parameter count is nearest `budget` (null: the configured teacher's own count)."""

    n_blocks: int = 10
    width: int | None = None
    budget: int | None = None


@dataclass(frozen=True)
class HashINRConfig:
    """HashINR (Sec. 6.3): HashGrid over x, OneBlob (n_bins) per parameter, then the MLP; the
    table size T = 2^log2_hashmap_size sets its budget (the paper's equal budget: 2^17)."""

    encoding: dict[str, Any] = field(
        default_factory=lambda: _hashgrid(
            n_levels=8, n_features_per_level=4, log2_hashmap_size=17, base_resolution=4
        )
    )
    n_bins: int = 16
    network: dict[str, Any] = field(default_factory=lambda: _mlp(n_hidden_layers=4))


@dataclass(frozen=True)
class BaselinesConfig:
    """The paper's comparison INRs (Sec. 6.3), trained on the training frames directly (no
    distillation) when evaluate.methods names them; `train` is CPU-sized (~1-2 min each on the
    default 64^3 data). One schedule serves both: lr 5e-4 is what NeurComp's sines tolerate
    (1e-3 stalls it at the median on the default data); HashINR would take a larger one."""

    neurcomp: NeurCompConfig = field(default_factory=NeurCompConfig)
    hashinr: HashINRConfig = field(default_factory=HashINRConfig)
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=1000, batch_size=4096, lr=5e-4, lr_decay=0.1, checkpoint_every=250
        )
    )


@dataclass(frozen=True)
class PredictConfig:
    """Inference of every method's frames (stage predict; was evaluate.batch_size)."""

    batch_size: int = 65536


@dataclass(frozen=True)
class StoreConfig:
    """Chunk layout of the frames arrays the pipeline writes (dataset and prediction stores).

    Frames are cut into `chunk`^D spatial chunks (a frame no bigger stays one chunk); with
    `shard`, the chunks of one `chunk`-deep slab along the frame's first axis share one Zarr v3
    shard, so a 1024^3 frame is 16 files rather than 4096 and every writer writes whole shards.
    """

    chunk: int = 64
    shard: bool = True


@dataclass(frozen=True)
class EvaluateConfig:
    methods: tuple[str, ...] = ("hyperinr", "teacher", "lerp")  # model kinds, plugins' too
    slice_frames: tuple[int, ...] | None = None  # unseen frames shown in the slice grid


@dataclass(frozen=True)
class AblationConfig:
    """The paper's Sec. 6 sweeps as workflow targets (rules/ablation.smk, hyperinr.sweeps).

    The encoder and hash sweeps reuse the pipeline's teacher and distillation set and change
    one HyperINR key of the configured model; the architecture and shared-MLP sweeps train
    their models on the training frames (the paper's Sec. 6.2-6.3 setting, no teacher).
    `steps` (None: each model's configured steps) shortens every run alike, so a sweep
    compares like with like within a CPU budget.
    """

    steps: int | None = None
    # ablation_architectures (Fig. 7A-B): every model's trainable parameters nearest `budget`
    # (None: the configured teacher's count); HyperINR reaches it with `budget_encoders`
    # encoders (the paper's 6) and the table size T that fits
    budget: int | None = None
    budget_encoders: int = 6
    encoders: tuple[int, ...] = (2, 4, 8, 16, 24, 32)  # Fig. 9A-B: N along time
    n_levels: tuple[int, ...] = (1, 2, 4, 8, 16)  # Fig. 10: L
    n_features_per_level: tuple[int, ...] = (1, 2, 4, 8)  # Fig. 10: F
    log2_hashmap_size: tuple[int, ...] = (10, 11, 12, 13, 14, 15)  # Fig. 10: log2 T


@dataclass(frozen=True)
class RenderConfig:
    """The report's volume renderings of TSR frames (rule renders, the paper's Fig. 1)."""

    transfer_function: dict[str, Any] | None = None  # hyperinr.render keys; None: its default
    image_size: int = 96
    n_steps: int = 96  # samples per ray across the box diagonal
    view_deg: tuple[float, float] = (60.0, 35.0)  # camera (theta, phi) in degrees
    camera_distance: float = 2.2
    fov_deg: float = 40.0
    frames: tuple[int, ...] | None = None  # None: the midpoints of 3 training intervals


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 2
    seed: int = 0
    gpus_per_job: int = 1  # > 1: teacher and distill run data-parallel under torchrun (DDP)
    memory_mb: int = 4096  # what ingest, predict and evaluate may hold (checked before start)
    dask_scheduler: str = "threads"  # threads | tcp://host:port | a scheduler file (.json)


@dataclass(frozen=True)
class Config:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill_set: DistillSetConfig = field(default_factory=DistillSetConfig)
    hyperinr: HyperINRConfig = field(default_factory=HyperINRConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    resources: dict[str, Any] = field(default_factory=dict)  # scheduler hints, read by rules only

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """`data` (any part of a config) over the defaults: renamed keys upgraded, checked
        against the schema (one line naming the first bad key), then typed."""
        if not isinstance(data, dict):
            raise ConfigError(f"config: expected a mapping, got {type(data).__name__}")
        data = upgrade_renamed_keys(copy.deepcopy(data))
        check_against_schema(data)
        return _build(cls, data, "config")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    def section_hash(self, *sections: str) -> str:
        """Hash of the named sections: stored with each artifact so a stale one is never reused."""
        plain = self.to_dict()
        blob = json.dumps({s: plain[s] for s in sections}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML/JSON config file, checked; every error names the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    try:
        # renamed per file, before files are layered: a user's old `distill_set.n_params`
        # over a base file's new `n_samples` is an override, not two names for one key
        upgrade_renamed_keys(data)
        Config.from_dict(data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return data


def load_config(path: str | Path) -> Config:
    return Config.from_dict(read_config_file(path))


# Old dotted key -> its new name. Each old name collided with another meaning (`targets`
# beside `targets_mode`; `n_params` is also the number of parameter dimensions; `mode`;
# a batch size under `evaluate` that only predict reads).
RENAMED_KEYS: dict[str, str] = {
    "hyperinr.targets": "hyperinr.target_source",
    "distill_set.mode": "distill_set.coverage",
    "distill_set.n_params": "distill_set.n_samples",
    "evaluate.batch_size": "predict.batch_size",
}
_WARNED: set[str] = set()


def upgrade_renamed_keys(
    data: dict[str, Any], where: str = "config", later: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Move every old key of RENAMED_KEYS in `data` to its new name, in place (and return
    `data`), printing one deprecation line per old key and process on stderr.

    Old and new name in one mapping is an error, unless `later` says which came last: the
    workflow's `config` is config/config.yaml merged with the user's --configfile layers
    (`later`, Snakemake's overwrite_config), so a user's old key over the shipped file's new
    one is an override, as it would be with the same name.
    """
    for old, new in RENAMED_KEYS.items():
        if not _has(data, old):
            continue
        if old not in _WARNED:
            _WARNED.add(old)
            print(f"hyperinr: config key {old} is deprecated, use {new}", file=sys.stderr)
        if _has(data, new):
            in_later = (_has(later, old), _has(later, new)) if later is not None else None
            if in_later not in ((True, False), (False, True)):
                raise ConfigError(
                    f"{where}: both {old} and {new} given; {old} is the old "
                    f"name of {new}, keep only {new}"
                )
            if in_later == (False, True):  # the later layer's new key wins
                _pop(data, old)
                continue
        value = _pop(data, old)
        *parents, leaf = new.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def _has(data: Any, dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _pop(data: dict[str, Any], dotted: str) -> Any:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data[key]
    return data.pop(leaf)


SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def check_against_schema(data: dict[str, Any]) -> None:
    """Raise ConfigError naming the first key of `data` the schema rejects (unknown key, wrong
    type, value outside its enum or range), in one line."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(data))
    if error is not None:
        raise ConfigError(_describe(error))


def allowed_values(dotted: str) -> tuple[Any, ...]:
    """The values the schema allows for key `dotted` (its enum): for code that enumerates
    them (rule target_modes trains one model per targets_mode) without a list of its own."""
    node: Any = _validator().schema
    for key in dotted.split("."):
        node = node.get("properties", {}).get(key)
        if node is None:
            raise KeyError(f"{SCHEMA_PATH}: no key {dotted}")
    return tuple(node["enum"])


@functools.cache
def _validator() -> Any:
    """The schema's validator, built once: the schema checked for defaults (their home is
    this module) and for keys that differ from the dataclasses' fields."""
    import jsonschema

    try:
        schema = yaml.safe_load(SCHEMA_PATH.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{SCHEMA_PATH}: config schema not found (hyperinr reads it from its source tree: "
            "install the package editable, pip install -e .)"
        ) from None
    _check_schema(schema, Config(), "")
    cls = jsonschema.validators.validator_for(schema)
    # tuples are lists here (configs built in Python), as in the dataclasses themselves
    checker = cls.TYPE_CHECKER.redefine("array", lambda _, value: isinstance(value, (list, tuple)))
    return jsonschema.validators.extend(cls, type_checker=checker)(schema)


def _check_schema(node: dict[str, Any], default: Any, where: str) -> None:
    """Fail naming the first key the schema and `default` (a dataclass, or a dict block such
    as `hyperinr.encoding`) do not share, and any default stated by the schema."""
    if "default" in node:
        raise ConfigError(
            f"{SCHEMA_PATH}: {where or 'the top level'} states a default; "
            "defaults live in hyperinr/config.py"
        )
    for sub in (node.get("items"), node.get("additionalProperties")):
        if isinstance(sub, dict):
            _check_schema(sub, None, f"{where}[]")
    props = node.get("properties") or {}
    prefix = f"{where}." if where else ""
    if dataclasses.is_dataclass(default):
        names = [f.name for f in dataclasses.fields(default)]
    elif isinstance(default, dict) and default and props:
        names = list(default)
    else:
        names = None
    if names is not None:
        for name in names:
            if name not in props:
                raise ConfigError(
                    f"{SCHEMA_PATH}: key {prefix}{name} (hyperinr/config.py) is "
                    "missing from the schema"
                )
        for name in props:
            if name not in names:
                raise ConfigError(
                    f"{SCHEMA_PATH}: key {prefix}{name} is not a field of hyperinr/config.py"
                )
    for name, sub in props.items():
        value = None
        if names is not None:
            value = getattr(default, name) if dataclasses.is_dataclass(default) else default[name]
        _check_schema(sub, value, f"{prefix}{name}")


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "boolean": "true/false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def _describe(error: Any) -> str:
    """One line in this module's style, `config.<dotted key>: problem`."""
    where = "config"
    for part in error.absolute_path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    value, schema = error.instance, error.schema
    if error.validator == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(k for k in value if k not in allowed)
        if unknown and allowed:
            return f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(allowed)})"
    if error.validator == "type":
        types_ = error.validator_value
        types_ = types_ if isinstance(types_, list) else [types_]
        wanted = " or ".join(_TYPE_WORDS.get(t, t) for t in types_)
        return f"{where}: expected {wanted}, got {value!r}"
    if error.validator == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        return f"{where}: {value!r} is not one of {allowed}"
    return f"{where}: {error.message}"


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _build(cls: type, data: Any, where: str, base: Any = None) -> Any:
    """`data` over `base` (the field's own default): a partial `train:` block keeps the
    section's defaults (teacher lr 1e-5, HyperINR eps 1e-10), and a partial `encoding:` or
    `network:` mapping keeps the section's other keys, exactly as schema validation does."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    base = cls() if base is None else base
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        allowed = ", ".join(sorted(names))
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: {allowed})")
    kwargs = {}
    for name, value in data.items():
        default = getattr(base, name)
        if dataclasses.is_dataclass(default) and isinstance(value, dict):
            kwargs[name] = _build(type(default), value, f"{where}.{name}", default)
        elif isinstance(default, dict) and isinstance(value, dict):
            # dict-typed fields (hyperinr.encoding, hyperinr.network, resources) merge too: an
            # encoding block naming only n_levels keeps the section's T, F, R1, b, not tcnn's
            kwargs[name] = merge_dicts(default, _coerce(hints[name], value, f"{where}.{name}"))
        else:
            kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    return dataclasses.replace(base, **kwargs)


def merge_dicts(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged over `base`, recursively (nested mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            if args and args[-1] is Ellipsis and isinstance(value, (int, float)):
                # a number where the schema allows one (dataset.params.values: a frame's single
                # parameter): a list of one
                value = [value]
            else:
                raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        if args and args[-1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {tp!r}")
