"""What each of the paper's three tasks is, and the config checks that follow from it.

The stages are task-agnostic (parameters [P], spatial dims [D], channels [C] come from the
dataset); what differs is the shape of the data a task means, and which knobs make sense.
Checking those here, on the whole validated config, lets the workflow refuse a config that
asks for something its task cannot do before any job runs (rules/common.smk calls
`check_config` at parse time), with the key named, instead of after the teacher has trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hyperinr.config import Config, ConfigError
from hyperinr.models import registry


@dataclass(frozen=True)
class Task:
    """The data a task means (Table 1 of the paper)."""

    name: str
    n_params: int | None  # parameters per frame (None: any)
    n_spatial: int  # 3: volumes (z, y, x); 2: images (y, x)
    describes: str


TASKS: dict[str, Task] = {
    "tsr": Task("tsr", 1, 3, "temporal super-resolution: (t, x, y, z) -> value"),
    "nvs": Task("nvs", 2, 2, "novel view synthesis: (theta, phi, x, y) -> (r, g, b)"),
    "dgs": Task("dgs", 2, 3, "dynamic global shadows: (theta, phi, x, y, z) -> transmittance"),
}


def _fail(key: str, problem: str) -> None:
    raise ConfigError(f"{key}: {problem}")


def check_config(cfg: Config) -> None:
    """Raise ConfigError naming the first key whose value the task (or the rest) contradicts."""
    task = TASKS[cfg.dataset.task]
    params = cfg.dataset.params
    names = list(params.names)
    if task.n_params is not None and len(names) != task.n_params:
        _fail(
            "dataset.params.names",
            f"task {task.name} ({task.describes}) needs {task.n_params} parameter(s), got {names}",
        )
    for name in params.periodic:
        if name not in names:
            _fail("dataset.params.periodic", f"'{name}' is not one of dataset.params.names {names}")
    if (
        params.periodic
        and params.ranges is None
        and (params.values is not None or not params.sidecar)
    ):
        _fail(
            "dataset.params.ranges",
            f"periodic parameter(s) {list(params.periodic)} need declared ranges (the period)",
        )
    if params.ranges is not None:
        if len(params.ranges) != len(names):
            _fail("dataset.params.ranges", f"{len(params.ranges)} ranges for {len(names)} names")
        for name, (lo, hi) in zip(names, params.ranges, strict=True):
            if not hi > lo:
                _fail("dataset.params.ranges", f"range of '{name}' [{lo}, {hi}] is empty")
    _check_methods(cfg.evaluate.methods)
    _check_sampling(cfg, len(names))
    _check_scene(cfg, task)
    _check_transfer_function(cfg.render.transfer_function, "render.transfer_function")


def _check_methods(methods: tuple[str, ...]) -> None:
    """The schema cannot list the methods: plugins register model kinds of their own."""
    allowed = registry.method_names()
    for name in methods:
        if name not in allowed:
            _fail("evaluate.methods", f"'{name}' is not one of {', '.join(allowed)}")


def _check_sampling(cfg: Config, n_params: int) -> None:
    h, ds = cfg.hyperinr, cfg.distill_set
    if n_params == 1:
        for key, value in (
            ("hyperinr.encoder_gaussian.count", h.encoder_gaussian.count),
            ("distill_set.gaussian.count", ds.gaussian.count),
            ("distill_set.uniform", ds.uniform),
        ):
            if value:
                _fail(key, "n-D sampling only; a 1-D parameter is sampled evenly (set it to 0)")
        return
    n_enc = h.n_encoders
    if h.positions is not None:
        pos = np.asarray(h.positions, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != n_params:
            _fail("hyperinr.positions", f"expected [N][{n_params}] rows, got shape {pos.shape}")
        _, first, counts = np.unique(pos, axis=0, return_index=True, return_counts=True)
        if (counts > 1).any():
            row = int(first[np.argmax(counts > 1)])
            _fail("hyperinr.positions", f"duplicate encoder position {pos[row].tolist()}")
        n_enc = len(pos)
    elif h.encoder_gaussian.count >= n_enc:
        _fail(
            "hyperinr.encoder_gaussian.count",
            f"{h.encoder_gaussian.count} leaves no Poisson-disk encoders of "
            f"hyperinr.n_encoders={n_enc}",
        )
    if h.k_nearest > n_enc:
        _fail("hyperinr.k_nearest", f"{h.k_nearest} exceeds the {n_enc} encoders")
    n_budget = cfg.ablation.budget_encoders  # ablation_architectures' HyperINR
    if h.k_nearest > n_budget:
        _fail("ablation.budget_encoders", f"{n_budget} is below hyperinr.k_nearest={h.k_nearest}")
    if ds.gaussian.count + ds.uniform >= ds.n_samples:
        _fail(
            "distill_set.gaussian.count",
            f"{ds.gaussian.count} Gaussian + {ds.uniform} uniform leave no Poisson-disk "
            f"parameters of distill_set.n_samples={ds.n_samples}",
        )


def _check_scene(cfg: Config, task: Task) -> None:
    sc = cfg.scene
    if not sc.activate:
        return
    if task.name == "tsr":
        _fail("scene.activate", "rule scene renders NVS/DGS datasets; task tsr has none")
    if cfg.simulate.activate and cfg.simulate.output_dir == sc.output_dir:
        _fail("scene.output_dir", "must differ from simulate.output_dir")
    for key, (lo, hi) in (
        ("scene.theta_range", sc.theta_range),
        ("scene.light_theta_range", sc.light_theta_range),
    ):
        if not hi >= lo:
            _fail(key, f"[{lo}, {hi}] is not increasing")
    if task.name == "dgs" and sc.n_train > sc.n_theta * sc.n_phi:
        _fail("scene.n_train", f"{sc.n_train} exceeds the {sc.n_theta * sc.n_phi} light directions")
    _check_transfer_function(sc.transfer_function, "scene.transfer_function")
    frames, sidecar = scene_files(sc.output_dir)
    ds = cfg.dataset
    if list(ds.files) != [frames] or ds.format != "hdf5" or ds.hdf5_dataset != SCENE_DATASET:
        _fail(
            "dataset.files",
            f"with scene.activate the frames are [{frames}] (format hdf5, hdf5_dataset "
            f"{SCENE_DATASET}), got {list(ds.files)} ({ds.format}, {ds.hdf5_dataset})",
        )
    if ds.params.values is not None or ds.params.sidecar != sidecar:
        _fail("dataset.params.sidecar", f"with scene.activate the parameters are in {sidecar}")
    if ds.split.train_first != sc.n_train:
        _fail(
            "dataset.split.train_first",
            f"{ds.split.train_first}, but the scene lists its {sc.n_train} training frames "
            "first (scene.n_train)",
        )


SCENE_DATASET = "frames"


def scene_files(output_dir: str) -> tuple[str, str]:
    """(frames HDF5, parameter sidecar) that rule scene writes into `output_dir`."""
    return f"{output_dir}/frames.h5", f"{output_dir}/params.json"


def _check_transfer_function(mapping: dict | None, key: str) -> None:
    if mapping is None:
        return
    from hyperinr.render import TransferFunction  # torch: only when a TF is configured

    try:
        TransferFunction.from_mapping(mapping, key)
    except ValueError as err:
        raise ConfigError(str(err)) from None
