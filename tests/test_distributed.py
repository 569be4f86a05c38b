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


ACT_PIXELS = """
task: pusht
algorithm: {name: act, chunk_size: 16, n_action_steps: 8, dim_model: 16, n_heads: 2, dim_feedforward: 32,
            n_encoder_layers: 1, n_vae_encoder_layers: 1, dropout: 0.0, use_vae: false}
encoders: {pixels: {crop_ratio: 1.0}}
data: {obs_keys: [rgb_top, agent_pos], only_success: false}
train: {batch_size: 16, log_every: 1, checkpoint_every: 100, warmup_steps: 1}
"""


def test_act_from_pixels_with_padded_chunks_takes_the_steps_of_one_process(tmp_path):
    """ACT reads the pixel encoder's feature maps and never its spatial-softmax head (parameters without a
    gradient, which plain DDP refuses at its second step), and its 16-step chunks run past the ends of PushT's
    short episodes: the padded steps must weigh alike in the whole batch and in each process's half of it."""
    path = tmp_path / "pusht.zarr"
    record("pusht", 2, path, obs_overrides={"pixels": {"height": 40, "width": 40}}, max_steps=20, progress=False)
    config = tmp_path / "act.yaml"
    config.write_text(ACT_PIXELS)
    args = [f"data.path={path}", "train.steps=4"]
    train(load_config(config, args), tmp_path / "one", progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "roboil.cli", "train", str(config), *args, "--out", str(tmp_path / "two")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    single, double = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert [s for s, _ in double] == [1, 2, 3, 4]
    torch.testing.assert_close(torch.tensor([l for _, l in double]), torch.tensor([l for _, l in single]),
                               rtol=1e-4, atol=1e-6)


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


def test_on_gpus_the_process_group_also_takes_cpu_tensors_and_a_gpu_per_process_is_checked(monkeypatch):
    """The logged metrics are averaged as a CPU tensor, which NCCL alone refuses: the group must pair it with gloo.
    (No GPU here: CUDA's device calls are replaced, the backend roboil asks for is what is checked.)"""
    from roboil import distributed

    asked = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", asked.append)
    assert distributed.start(Ranks(rank=1, size=2, local_rank=1), torch.device("cuda")) == torch.device("cuda", 1)
    assert "cpu:gloo" in asked[0] and "cuda:nccl" in asked[0]
    with pytest.raises(RoboilError, match="process 2 of this machine has no GPU of its own .*has 2.*--nproc_per_node"):
        distributed.start(Ranks(rank=2, size=3, local_rank=2), torch.device("cuda"))


@pytest.mark.parametrize("interrupt", ["ctrl_c", "sigterm"])
def test_ctrl_c_under_torchrun_saves_the_step_every_process_stopped_at(store, tmp_path, interrupt):
    """Ctrl-C reaches torchrun, which passes it on to its processes: they agree on a step, the first process saves
    it, and the same command resumes from there. Before, up to checkpoint_every steps were lost. So does a
    SIGTERM to torchrun (a scheduler's preemption), which it passes on as SIGTERM: that killed them at once."""
    import signal

    from conftest import ctrl_c, interrupt_training

    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "roboil.cli", "train", CONFIG, f"data.path={store}", "train.steps=100000", *OVERRIDES,
               "train.checkpoint_every=100000", "--out", str(run)]
    _, stderr = interrupt_training(command, run, interrupt=ctrl_c if interrupt == "ctrl_c" else
                                   lambda torchrun: torchrun.send_signal(signal.SIGTERM))
    saved = sorted((run / "checkpoints").glob("step_*"))
    logged = [step for step, _ in losses(run)]
    assert len(saved) == 1 and saved[0].name == f"step_{logged[-1]:08d}" and logged[-1] >= 20, stderr[-3000:]
    assert (saved[0] / "training_state.pt").is_file()
    assert stderr.count("roboil: stopped at step") == 1 and stderr.count("roboil: Ctrl-C: saving") == 1, stderr
    resumed = torchrun(store, run, logged[-1] + 5)
    assert resumed.returncode == 0 and f"resumed from step {logged[-1]}" in resumed.stderr, resumed.stderr[-2000:]
