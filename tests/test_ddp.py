"""Data-parallel training (hyperinr.training.distributed + hyperinr/training/loop.py) on 2 or 4
CPU processes (gloo).

The DDP tests start this very file under torchrun (`python -m torch.distributed.run
--standalone --nproc_per_node N tests/test_ddp.py MODE OUT`, 1 thread per process, bounded by a
timeout that kills torchrun's whole process group); each rank runs `_worker` and rank 0 writes
what it measured to OUT. Calls to the writers (train.save_checkpoint, and the teacher stage's
save_teacher and write_info) are recorded per rank in OUT/writes-rank<r>.txt.

Equal samples, by design: the comparison batch function builds the global batch of step s
(GLOBAL samples, from a generator seeded by s alone) and hands rank r the r-th slice of
`rank_batch_size(GLOBAL)` samples. Run in 1 process (world 1) the same function returns the
whole batch, so 2 ranks x batch GLOBAL/2 and 1 process x batch GLOBAL see the same samples at
every step, and DDP's mean of the two per-rank mean gradients is the 1-process mean gradient up
to float summation order: the loss curves and weights must agree to float tolerance.

Resume, bit for bit: with 2 ranks any all-reduce gives the same bits (a + b = b + a); from 3
ranks on the order of the sum matters, and DDP's default all-reduce sums an element in an order
that depends on its place in a bucket, whose layout changes after a process's first step. The
4-rank test fails on a loop without `distributed.ordered_mean_hook` (measured: weights differ by
~3e-8 after 40 steps of the toy below; ~0.02 for the teacher of config/test.yaml).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hyperinr.config import TrainConfig
from hyperinr.training import distributed
from hyperinr.training.loop import rank_batch_size, train

ROOT = Path(__file__).resolve().parents[1]
GLOBAL = 64  # global batch: 2 ranks x 32 or 1 process x 64
CMP = TrainConfig(
    steps=60, batch_size=GLOBAL, lr=1e-2, lr_decay=0.5, checkpoint_every=20, log_every=1
)
RES = TrainConfig(steps=40, batch_size=GLOBAL, lr=1e-2, checkpoint_every=10, log_every=5)
KILL_AT = 25  # the killed run stops here (last checkpoint: step 20)
RANKS4 = 4  # the resume test: enough ranks for the order of a sum to matter
LOSS_RTOL = 1e-4  # measured: max relative difference of the per-step losses ~1e-7
TIMEOUT = 240  # seconds per torchrun launch (one takes ~10-20 s on 2 busy cores)


class Killed(Exception):
    pass


def _toy_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))


def _wide_model() -> torch.nn.Module:
    """More weights than the toy: more elements whose rounding can differ (resume test)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip


def _target(x: torch.Tensor) -> torch.Tensor:
    return x.sum(dim=1, keepdim=True).sin()


def sliced_batches(step: int, gen: torch.Generator):
    """Step s's global batch, fixed by s alone; rank r gets slice r (1 process: all of it)."""
    x = torch.rand(GLOBAL, 3, generator=torch.Generator().manual_seed(10_000 + step))
    b, r = rank_batch_size(GLOBAL), distributed.rank()
    x = x[r * b : (r + 1) * b]
    return (x,), _target(x)


def random_batches(kill_at: int | None = None):
    """Batches drawn from the loop's generator (seed + rank): what the stages do."""

    def fn(step: int, gen: torch.Generator):
        if step == kill_at:
            raise Killed
        x = torch.rand(rank_batch_size(GLOBAL), 3, generator=gen)
        return (x,), _target(x)

    return fn


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# ----------------------------------------------------------------------------- worker (per rank)


def _record_writes(out: Path, rank: int) -> None:
    """Record every checkpoint/model/info write with the rank that made it."""
    import hyperinr.stages.common as common_mod
    import hyperinr.stages.teacher as teacher_mod
    import hyperinr.training.loop as train_mod

    def log(what: str) -> None:
        with open(out / f"writes-rank{rank}.txt", "a") as f:
            f.write(what + "\n")

    save_checkpoint, save_teacher, write_info = (
        train_mod.save_checkpoint,
        teacher_mod.save_teacher,
        common_mod.write_info,  # the stages publish through common.train_and_publish
    )

    def recording_save(path, state):
        log(f"checkpoint {Path(path).name} {state['step']}")
        save_checkpoint(path, state)

    def recording_model(path, *args, **kwargs):
        log(f"model {Path(path).name}")
        return save_teacher(path, *args, **kwargs)

    def recording_info(path, *args, **kwargs):
        log(f"info {Path(path).name}")
        return write_info(path, *args, **kwargs)

    train_mod.save_checkpoint = recording_save
    teacher_mod.save_teacher = recording_model
    common_mod.write_info = recording_info


def _worker(mode: str, out: Path, *args: str) -> int:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    _record_writes(out, rank)
    if mode == "stage":  # the teacher stage through the CLI, as rules/teacher.smk runs it
        from hyperinr.cli import main

        return main(["teacher", *args])
    cpu = distributed.init(torch.device("cpu"))
    result: dict = {}
    if mode == "resume":  # an uninterrupted run vs one killed at KILL_AT and resumed
        model = _wide_model()
        train(model, random_batches(), RES, cpu, out / "whole.pt", tag="res")
        result["whole"] = _params(model)
        try:
            train(_wide_model(), random_batches(KILL_AT), RES, cpu, out / "killed.pt", tag="res")
        except Killed:
            pass
        result["killed"] = torch.load(out / "killed.pt", weights_only=False)
        resumed = _wide_model()
        for p in resumed.parameters():  # nothing of the fresh init may survive the resume
            torch.nn.init.zeros_(p)
        r = train(resumed, random_batches(), RES, cpu, out / "killed.pt", tag="res")
        result["resumed_from"] = r.resumed_from
        result["resumed"] = _params(resumed)
        result["losses"] = r.losses
        if distributed.is_main():
            torch.save(result, out / "result.pt")
        distributed.barrier()
        distributed.cleanup()
        return 0
    model = _toy_model()
    r = train(model, sliced_batches, CMP, cpu, out / "cmp.pt", tag="cmp")
    result["cmp"] = {"losses": r.losses, "params": _params(model)}

    model = _toy_model()
    train(model, random_batches(), RES, cpu, out / "whole.pt", tag="res")
    result["whole"] = _params(model)
    try:
        train(_toy_model(), random_batches(KILL_AT), RES, cpu, out / "killed.pt", tag="res")
    except Killed:
        pass
    # what the killed job left, before the resume overwrites it
    result["killed"] = torch.load(out / "killed.pt", weights_only=False)
    resumed = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    r = train(resumed, random_batches(), RES, cpu, out / "killed.pt", tag="res")
    result["resumed_from"] = r.resumed_from
    result["resumed"] = _params(resumed)
    if distributed.is_main():
        torch.save(result, out / "result.pt")
    distributed.barrier()
    distributed.cleanup()
    return 0


# ----------------------------------------------------------------------------- driver


def _torchrun(tmp_path: Path, *args: str, nproc: int = 2) -> str:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one node: loopback, whatever the hostname says
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc_per_node", str(nproc)]
    proc = subprocess.Popen(
        [*cmd, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout kills torchrun and workers
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT} s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-6000:]
    return out


def _writes(tmp_path: Path) -> dict[int, list[str]]:
    return {
        r: (tmp_path / f"writes-rank{r}.txt").read_text().split("\n")[:-1]
        for r in range(RANKS4)
        if (tmp_path / f"writes-rank{r}.txt").exists()
    }


@pytest.mark.slow
def test_two_ranks_match_one_process_only_rank0_writes_and_resume(tmp_path):
    _torchrun(tmp_path, __file__, "toy", str(tmp_path))
    res = torch.load(tmp_path / "result.pt", weights_only=False)

    # 2 ranks x 32 == 1 process x 64 on the same samples
    ref = _toy_model()
    single = train(ref, sliced_batches, CMP, torch.device("cpu"), tmp_path / "one.pt", tag="cmp")
    steps2, loss2 = zip(*res["cmp"]["losses"])
    steps1, loss1 = zip(*single.losses)
    assert steps1 == steps2 == tuple(range(1, CMP.steps + 1))
    loss1, loss2 = np.array(loss1), np.array(loss2)
    rel = np.abs(loss2 - loss1) / np.abs(loss1)
    print(f"loss curves: max rel diff {rel.max():.2e}; first {loss1[0]:.5f}, last {loss1[-1]:.5f}")
    assert rel.max() < LOSS_RTOL
    assert loss1[-1] < 0.5 * loss1[0]  # it did train
    for a, b in zip(ref.parameters(), res["cmp"]["params"]):
        torch.testing.assert_close(b, a.detach(), rtol=1e-4, atol=1e-5)

    # only rank 0 wrote checkpoints: every 20 (cmp) / 10 (res) steps, never at the last step
    writes = _writes(tmp_path)
    assert 1 not in writes, writes.get(1)
    expected = (
        [f"checkpoint cmp.pt {s}" for s in (20, 40)]
        + [f"checkpoint whole.pt {s}" for s in (10, 20, 30)]
        + [f"checkpoint killed.pt {s}" for s in (10, 20)]
        + [f"checkpoint killed.pt {s}" for s in (30,)]
    )
    assert writes[0] == expected

    # the killed run's checkpoint holds both ranks' generators; the resume continues exactly
    killed = res["killed"]
    assert killed["step"] == 20 and killed["world_size"] == 2 and len(killed["generators"]) == 2
    assert torch.equal(killed["generator"], killed["generators"][0])
    assert not torch.equal(killed["generators"][0], killed["generators"][1])
    assert res["resumed_from"] == 20
    for a, b in zip(res["whole"], res["resumed"]):
        assert torch.equal(a, b)

    # a single process may resume a 2-process checkpoint (rank 0's generator, same weights)
    torch.save(killed, tmp_path / "to_one.pt")
    r = train(
        torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)),
        random_batches(),
        RES,
        torch.device("cpu"),
        tmp_path / "to_one.pt",
        tag="res",
    )
    assert r.resumed_from == 20 and r.steps == RES.steps


@pytest.mark.slow
def test_four_ranks_resume_bit_exactly(tmp_path):
    """Killed at step 25 of 40 (last checkpoint 20) and resumed on 4 ranks: the same weights,
    bit for bit, as an uninterrupted 4-rank run (the 2-rank resume above cannot show this)."""
    _torchrun(tmp_path, __file__, "resume", str(tmp_path), nproc=RANKS4)
    res = torch.load(tmp_path / "result.pt", weights_only=False)
    killed = res["killed"]
    assert killed["step"] == 20 and killed["world_size"] == RANKS4
    assert len({bytes(g.numpy()) for g in killed["generators"]}) == RANKS4  # one per rank
    assert res["resumed_from"] == 20
    diffs = [(a - b).abs().max().item() for a, b in zip(res["whole"], res["resumed"])]
    print(f"4-rank resume: max |uninterrupted - resumed| per tensor {diffs}")
    assert all(torch.equal(a, b) for a, b in zip(res["whole"], res["resumed"])), diffs
    writes = _writes(tmp_path)
    assert 1 not in writes and writes[0][-1] == "checkpoint killed.pt 30"


@pytest.mark.slow
def test_teacher_stage_on_two_ranks_writes_once(tmp_path):
    from _synthetic import smooth_field, write_dataset

    from hyperinr.models.coordnet import load_teacher

    t = np.linspace(0.0, 1.0, 5)[:, None]
    dataset = write_dataset(tmp_path / "dataset.zarr", smooth_field(t, (6, 6, 6)), t, [0, 2, 4])
    cfg = {
        "teacher": {
            "widths": [8, 16],
            "hidden_blocks": 1,
            "train": {"steps": 20, "batch_size": 64, "checkpoint_every": 10, "log_every": 5},
        },
        "runtime": {"device": "cpu", "threads": 1, "seed": 0, "gpus_per_job": 2},
    }
    out_dir = tmp_path / "teacher"
    args = ["--config-json", json.dumps(cfg), "--dataset", str(dataset), "--out-dir", str(out_dir)]
    _torchrun(tmp_path, __file__, "stage", str(tmp_path), *args)

    writes = _writes(tmp_path)
    assert 1 not in writes, writes.get(1)
    assert writes[0] == [
        "checkpoint checkpoint.pt 10",
        "model model.pt",
        "info info.json",
    ]
    info = json.loads((out_dir / "info.json").read_text())
    assert info["processes"] == 2 and info["steps"] == 20 and np.isfinite(info["final_loss"])
    model, state = load_teacher(out_dir / "model.pt", torch.device("cpu"))
    assert state["arch"]["widths"] == [8, 16]
    # finished: the checkpoint is gone (rank 0 removed it after publishing model.pt)
    assert sorted(p.name for p in out_dir.iterdir()) == ["info.json", "model.pt"]


def test_single_process_helpers_are_no_ops():
    assert "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] == "1"
    cpu = torch.device("cpu")
    assert distributed.init(cpu) == cpu
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    distributed.barrier()
    assert distributed.all_reduce_mean(1.5) == 1.5
    assert distributed.all_gather_object("x") == ["x"]
    assert rank_batch_size(8191) == 8191
    distributed.cleanup()
    assert not torch.distributed.is_initialized()


def test_cli_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "hyperinr.cli", "teacher", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--out-dir" in proc.stdout


if __name__ == "__main__":  # a torchrun worker: MODE OUT [ARGS...]
    sys.exit(_worker(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:]))
