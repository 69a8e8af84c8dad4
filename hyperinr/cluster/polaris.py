"""The Polaris queues, and which one accepts a job of N nodes for M minutes.

One home for the limits (ALCF "Running Jobs on Polaris"): the polaris profile's submit script
picks each job's queue here, the polaris-allocation job script is checked against them, and
the PBS test double rejects what they reject. Every job gets whole nodes of 4 A100 and 32
cores; the minimum walltime everywhere is 5 minutes.

| queue         | nodes  | walltime     | notes                                           |
| ------------- | ------ | ------------ | ----------------------------------------------- |
| debug         | 1-2    | 5 min - 1 h  |                                                 |
| debug-scaling | 1-10   | 5 min - 1 h  | 1 job running/queued per user                   |
| prod          | 10-496 | 5 min - 24 h | routing: 10-24 nodes <= 3 h, 25-99 <= 6 h       |
| preemptable   | 1-10   | 5 min - 72 h | 20 jobs per project, may be killed: `-r y`      |

Automatic choice (`choose`): debug when it fits (short, 1-2 nodes), then debug-scaling (short,
up to 10 nodes), prod (10 nodes or more, within its size tier), then preemptable (long, up to 10
nodes, rerunnable). A request none of them accepts is a `QueueError` naming the request.
`place` adds the node shape (at most 4 GPUs per node) and a forced queue; the submit script
calls it for each job, and `preflight` calls it for every rule of the workflow at Snakemake's
parse time, so that an impossible request stops the run before anything is submitted.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hyperinr.cluster.gpus import TRAINING_RULES, node_gpus, workflow_training_gpus

NODE_GPUS = 4
NODE_CORES = 32
MIN_WALLTIME_MIN = 5
PREEMPTABLE_JOBS_PER_PROJECT = 20


@dataclass(frozen=True)
class Queue:
    name: str
    min_nodes: int
    max_nodes: int
    max_minutes: int
    rerunnable: bool = False  # jobs may be killed: submit with -r y and resume from checkpoints


QUEUES: dict[str, Queue] = {
    q.name: q
    for q in (
        Queue("debug", 1, 2, 60),
        Queue("debug-scaling", 1, 10, 60),
        Queue("prod", 10, 496, 24 * 60),
        Queue("preemptable", 1, 10, 72 * 60, rerunnable=True),
        Queue("demand", 1, 56, 60),
    )
}
AUTO_ORDER = ("debug", "debug-scaling", "prod", "preemptable")  # demand: by request only
PROD_TIERS = ((24, 3 * 60), (99, 6 * 60), (496, 24 * 60))  # max nodes -> max minutes


class QueueError(ValueError):
    """No Polaris queue accepts the request (one line, says what to change)."""


@dataclass(frozen=True)
class Placement:
    queue: str
    nodes: int
    minutes: int  # walltime requested (at least MIN_WALLTIME_MIN)
    rerunnable: bool


def walltime(minutes: int) -> str:
    """PBS walltime HH:MM:SS of whole minutes."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def nodes_for(gpus: int, nodes: int = 1) -> int:
    """Nodes a job needs: what it asks, and enough for its GPUs (4 per node)."""
    return max(1, nodes, -(-gpus // NODE_GPUS))


def max_minutes(queue: Queue, nodes: int) -> int:
    """The walltime limit of `queue` for a job of `nodes` (prod: by its size tier)."""
    if queue.name == "prod":
        return next((m for top, m in PROD_TIERS if nodes <= top), 0)
    return queue.max_minutes


def accepts(queue: Queue, nodes: int, minutes: int) -> bool:
    return queue.min_nodes <= nodes <= queue.max_nodes and minutes <= max_minutes(queue, nodes)


def describe(nodes: int, minutes: int) -> str:
    return f"{nodes} node(s) x {walltime(minutes)}"


def check(queue_name: str, nodes: int, minutes: int) -> Placement:
    """The placement in `queue_name`, or QueueError if that queue refuses the request."""
    minutes = max(MIN_WALLTIME_MIN, int(minutes))
    queue = QUEUES.get(queue_name)
    if queue is None:
        raise QueueError(f"unknown Polaris queue {queue_name!r} (known: {', '.join(QUEUES)})")
    if not accepts(queue, nodes, minutes):
        raise QueueError(
            f"queue {queue.name} does not accept {describe(nodes, minutes)} "
            f"({queue.min_nodes}-{queue.max_nodes} nodes, <= "
            f"{walltime(max_minutes(queue, nodes) or queue.max_minutes)})"
        )
    return Placement(queue.name, nodes, minutes, queue.rerunnable)


def choose(nodes: int, minutes: int) -> Placement:
    """The first queue of AUTO_ORDER that accepts `nodes` x `minutes`, or QueueError."""
    minutes = max(MIN_WALLTIME_MIN, int(minutes))
    for name in AUTO_ORDER:
        if accepts(QUEUES[name], nodes, minutes):
            return check(name, nodes, minutes)
    raise QueueError(
        f"no Polaris queue accepts {describe(nodes, minutes)}: at most 10 nodes x 72 h "
        "(preemptable) or 10-24 nodes x 3 h, 25-99 x 6 h, 100-496 x 24 h (prod); "
        "lower the rule's runtime or nodes"
    )


def place(gpus: int, minutes: int, nodes: int = 1, queue: str = "") -> tuple[Placement, int]:
    """(placement, GPUs per node) of one job: `queue` if given (checked), else `choose`.

    QueueError when a node would need more than its 4 GPUs or no (or not the forced) queue
    accepts nodes x minutes.
    """
    nodes, gpus = max(1, int(nodes)), max(0, int(gpus))
    per_node = math.ceil(gpus / nodes)
    if per_node > NODE_GPUS:
        raise QueueError(
            f"{gpus} GPU(s) on {nodes} node(s) is {per_node} per node; a Polaris node has "
            f"{NODE_GPUS} (set resources nodes or lower gpu)"
        )
    queue = queue.strip()
    where = check(queue, nodes, minutes) if queue else choose(nodes, minutes)
    return where, per_node


def _number(value: Any) -> int | None:
    """An integer resource (a Snakemake Resource's .value too); None if not a plain number."""
    value = getattr(value, "value", value)
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(math.ceil(float(value)))
    except (TypeError, ValueError):
        return None  # an expression or callable: evaluated per job, checked at submission


def workflow_requests(
    config: Mapping[str, Any],
    defaults: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Rule -> {gpu, runtime, nodes, pbs_queue}: what each rule of the workflow will request.

    `defaults` (DEFAULT_RESOURCES of rules/common.smk) under the config's `resources.<rule>`,
    training rules' GPUs from `workflow_training_gpus`, then Snakemake's `--set-resources` (and
    the profile's set-resources: `overrides`, Resource objects or numbers) on top.
    """
    env = os.environ if env is None else env
    overrides = overrides or {}
    configured = config.get("resources") or {}
    out: dict[str, dict[str, Any]] = {}
    for rule in dict.fromkeys([*defaults, *configured, *TRAINING_RULES, *overrides]):
        req: dict[str, Any] = {"gpu": 0, "runtime": MIN_WALLTIME_MIN, "nodes": 1}
        req.update({k: v for k, v in (defaults.get(rule) or {}).items() if k in req})
        req.update({k: v for k, v in (configured.get(rule) or {}).items() if k in req})
        if rule in TRAINING_RULES:
            req["gpu"] = workflow_training_gpus(config, rule, env)
        req["pbs_queue"] = env.get("HYPERINR_PBS_QUEUE", "")
        mapping = overrides.get(rule) or {}
        for key in ("gpu", "runtime", "nodes", "pbs_queue"):
            if key in mapping:
                value = getattr(mapping[key], "value", mapping[key])
                if key == "pbs_queue":
                    req[key] = str(value or "")
                elif (number := _number(value)) is not None:
                    req[key] = number
        out[rule] = req
    return out


class PreflightError(QueueError):
    """A rule's request no Polaris queue accepts, found before anything was submitted."""


def preflight(
    config: Mapping[str, Any],
    defaults: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """At parse time under the polaris profiles (they declare HYPERINR_NODE_GPUS; elsewhere a
    no-op): PreflightError, one line naming the rule and the reason, for the first rule whose
    request (`workflow_requests`) `place` refuses."""
    env = os.environ if env is None else env
    if not node_gpus(env):
        return
    for rule, req in workflow_requests(config, defaults, overrides, env).items():
        try:
            place(req["gpu"], req["runtime"], req["nodes"], req["pbs_queue"])
        except QueueError as err:
            raise PreflightError(
                f"rule {rule} (gpu={req['gpu']}, runtime={req['runtime']} min, "
                f"nodes={req['nodes']}): {err} (config resources.{rule}); nothing was submitted"
            ) from None


def preflight_or_exit(
    config: Mapping[str, Any],
    defaults: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any] | None = None,
) -> None:
    """`preflight` for rules/common.smk: a refusal is one line on stderr and exit status 1
    (SystemExit, which Snakemake passes through without a traceback), before any job exists."""
    try:
        preflight(config, defaults, overrides)
    except PreflightError as err:
        print(f"hyperinr: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
