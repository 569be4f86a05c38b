"""Data-parallel training under torchrun, on CPU with gloo: two processes take the steps one process takes with
the same config (the global batch split between them), only rank 0 writes, and a resumed run continues exactly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from roboil.config import load_config
from roboil.distributed import Ranks
from roboil.errors import RoboilError
from roboil.record import record
from roboil.train import train

CONFIG = "configs/fetch_reach/gcbc.yaml"
# relabeling and dropout draw random numbers per row: off, so the loss is a function of the batch alone
OVERRIDES = ["train.checkpoint_every=10", "train.log_every=1", "train.batch_size=32", "algorithm.hidden_dims=[32]",
             "algorithm.relabel_prob=0", "algorithm.dropout=0"]
# float32 sums over 16 rows twice instead of 32 once, and the gradient all-reduce: rounding only
TOLERANCE = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reach.zarr"
    record("fetch-reach", 3, path, progress=False)
    return path


def torchrun(store, run: Path, steps: int, processes: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
         "-m", "roboil.cli", "train", CONFIG, f"data.path={store}", f"train.steps={steps}", *OVERRIDES,
         "--out", str(run)], env=env, capture_output=True, text=True, timeout=300)


def losses(run: Path) -> list[tuple[int, float]]:
    return [(m["step"], m["loss"]) for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_two_processes_take_the_steps_of_one_with_the_same_global_batch(store, tmp_path):
    one = train(load_config(CONFIG, [f"data.path={store}", "train.steps=20", *OVERRIDES]), tmp_path / "one",
                progress=False)
    done = torchrun(store, tmp_path / "two", 20)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("checkpoint:") == 1  # rank 0 alone says it
    single, double = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _ in double] == list(range(1, 21))  # each step logged once, by rank 0
    torch.testing.assert_close(torch.tensor([l for _, l in double]), torch.tensor([l for _, l in single]),
                               **TOLERANCE)
    a, b = load_file(one / "model.safetensors"), load_file(tmp_path / "two" / "checkpoints" / "step_00000020" /
                                                            "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], **TOLERANCE)
    state = torch.load(tmp_path / "two" / "checkpoints" / "step_00000020" / "training_state.pt", weights_only=True)
    assert len(state["random"]) == 2  # every process's random state, to resume each where it was
    meta = json.loads((tmp_path / "two" / "checkpoints" / "step_00000020" / "meta.json").read_text())
    assert meta["processes"] == 2


def test_a_resumed_two_process_run_continues_as_if_never_stopped(store, tmp_path):
    whole = torchrun(store, tmp_path / "whole", 20)
    assert whole.returncode == 0, whole.stderr[-2000:]
    for steps in (10, 20):
        part = torchrun(store, tmp_path / "part", steps)
        assert part.returncode == 0, part.stderr[-2000:]
    assert "resumed from step 10" in part.stderr
    assert losses(tmp_path / "part") == losses(tmp_path / "whole")


def test_a_global_batch_that_does_not_split_is_one_line():
    with pytest.raises(RoboilError, match=r"train.batch_size=30 does not split over 4 processes.*multiple of 4"):
        Ranks(rank=1, size=4).batch_rows(30)
    assert Ranks(rank=1, size=4).batch_rows(32) == slice(8, 16)


def test_an_algorithm_with_its_own_loop_is_refused_under_torchrun(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    config = load_config("configs/cartpole/gail_state_only.yaml", [])
    with pytest.raises(RoboilError, match="its own training loop, which trains in one process; run it without"):
        train(config, tmp_path / "run", progress=False)
