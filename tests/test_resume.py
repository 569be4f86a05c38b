"""Resuming a run: bit-identical to an uninterrupted one on CPU, metrics without duplicates, and one-line
refusals for what cannot be resumed safely."""

import json
import os
import re

import pytest
from safetensors.torch import load_file

from roboil.checkpoint import load_policy
from roboil.config import load_config
from roboil.errors import RoboilError
from roboil.record import record
from roboil.train import train

CONFIG = "configs/fetch_reach/gcbc.yaml"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reach.zarr"
    record("fetch-reach", 3, path, progress=False)
    return path


def config(store, *overrides):
    return load_config(CONFIG, [f"data.path={store}", "train.steps=20", "train.checkpoint_every=10",
                                "train.log_every=1", "train.batch_size=32", "algorithm.hidden_dims=[32]",
                                "algorithm.relabel_prob=0.5", "algorithm.dropout=0.1", *overrides])


def metrics(run):
    return [(m["step"], m["loss"]) for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(store, tmp_path, ema):
    whole = train(config(store, f"train.ema_decay={ema}"), tmp_path / "whole", progress=False)
    partial = tmp_path / "partial"
    train(config(store, f"train.ema_decay={ema}", "train.steps=10"), partial, progress=False)
    with open(partial / "metrics.jsonl", "a") as f:  # steps a killed run logged after its last checkpoint
        f.write(json.dumps({"step": 11, "loss": 9.0}) + "\n")
    resumed = train(config(store, f"train.ema_decay={ema}"), partial, progress=False)
    assert metrics(partial) == metrics(tmp_path / "whole")  # every step's loss, each once
    a, b = load_file(whole / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    meta = json.loads((resumed / "meta.json").read_text())
    assert meta["resumes"] == [{"step": 10, "changed": {"train.steps": [10, 20]}}]


def test_only_the_newest_checkpoint_keeps_the_optimizer_state(store, tmp_path):
    """Every checkpoint keeps its weights (to evaluate or compare); resuming needs only the newest one's state."""
    run = tmp_path / "run"
    train(config(store, "train.steps=30"), run, progress=False)
    resumed = train(config(store, "train.steps=40"), run, progress=False)
    checkpoints = sorted((run / "checkpoints").glob("step_*"))
    assert [c.name for c in checkpoints] == [f"step_000000{n}0" for n in (1, 2, 3, 4)]
    assert [(c / "training_state.pt").exists() for c in checkpoints] == [False, False, False, True]
    assert checkpoints[-1] == resumed
    for checkpoint in checkpoints:
        load_policy(checkpoint)


def test_resume_refuses_a_changed_model_or_data(store, tmp_path):
    train(config(store, "train.steps=10"), tmp_path, progress=False)
    with pytest.raises(RoboilError, match=r"cannot resume .* with a changed algorithm.hidden_dims: \[32\] -> \[64\] "
                                          r"\(the algorithm's settings define the model and how it learns, so they "
                                          r"stay as the run began\); undo the change, or train into"):
        train(config(store, "algorithm.hidden_dims=[64]"), tmp_path, progress=False)
    with pytest.raises(RoboilError, match=r"cannot resume .* with a changed data.only_success: True -> False "
                                          r"\(the model or its data would change\); undo the change, or train into"):
        train(config(store, "data.only_success=false"), tmp_path, progress=False)


@pytest.mark.parametrize("damage, message", [
    (lambda ckpt: (ckpt / "training_state.pt").unlink(), "training_state.pt' is missing"),
    (lambda ckpt: (ckpt / "training_state.pt").write_bytes(b"\0" * 10), "training_state.pt' is damaged"),
    (lambda ckpt: (ckpt.parent / "last").write_text(""), "names '', not a checkpoint of this run"),
    (lambda ckpt: (ckpt.parent / "last").write_text("../../other/checkpoints/step_00000010"), "not a checkpoint of this run"),
])
def test_damaged_resume_state_is_a_one_line_error_not_a_restart(store, tmp_path, damage, message):
    checkpoint = train(config(store, "train.steps=10"), tmp_path / "run", progress=False)
    damage(checkpoint)
    with pytest.raises(RoboilError, match=message):
        train(config(store), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 10  # nothing trained is lost


def test_a_first_checkpoint_that_never_completed_starts_the_run_afresh(store, tmp_path):
    """A kill or a full disk during the first save leaves only ``step_N.partial``: nothing to resume from."""
    partial = tmp_path / "run" / "checkpoints" / "step_00000010.partial"
    partial.mkdir(parents=True)
    checkpoint = train(config(store, "train.steps=10"), tmp_path / "run", progress=False)
    assert checkpoint.name == "step_00000010" and not partial.exists()
    assert metrics(tmp_path / "run")[0][0] == 1


def test_offline_loop_uses_the_models_parameter_groups(store, tmp_path, monkeypatch):
    """A group with its own learning rate (here 0: a frozen first layer, as for a pretrained backbone)."""
    from roboil_gcbc.model import GCBCPolicy

    def groups(self):
        first = list(self.mlp[0].parameters())
        rest = [p for p in self.parameters() if all(p is not q for q in first)]
        return [{"params": first, "lr": 0.0}, {"params": rest}]

    monkeypatch.setattr(GCBCPolicy, "parameter_groups", groups)
    untrained = train(config(store, "train.steps=1", "train.lr=1e-12"), tmp_path / "a", progress=False)
    trained = train(config(store, "train.steps=5"), tmp_path / "b", progress=False)
    a, b = load_file(untrained / "model.safetensors"), load_file(trained / "model.safetensors")
    assert (a["mlp.0.weight"] == b["mlp.0.weight"]).all()  # same seed, same init, never updated
    assert not (a["mlp.3.weight"] == b["mlp.3.weight"]).all()  # the output layer learned


def test_loops_counting_env_steps_checkpoint_when_they_pass_a_multiple(tmp_path):
    from roboil.train import TrainContext

    context = TrainContext(load_config(CONFIG, ["train.steps=10000", "train.checkpoint_every=5000"]), tmp_path)
    steps = range(2048, 10241, 2048)  # what a PPO-style loop with 2048-step rollouts counts
    assert [s for s in steps if context.should_checkpoint(s)] == [6144, 10240]


def test_a_state_that_cannot_be_resumed_safely_is_refused_when_saved():
    import numpy as np

    from roboil.train import check_loadable

    check_loadable({"step_count": 3, "mean": [0.5, 1.0], "weights": {"w": __import__("torch").zeros(2)}})
    with pytest.raises(RoboilError, match="training state's 'running_mean' \\(ndarray\\) cannot be saved safely"):
        check_loadable({"running_mean": np.zeros(3)})


def test_a_missing_last_resumes_from_the_newest_checkpoint(store, tmp_path):
    """A kill between a checkpoint's rename and writing ``last`` (or a deleted ``last``): the newest complete
    step_N is the one to resume from, counted as a number (nine digits from step 100,000,000)."""
    from roboil.checkpoint import latest_checkpoint

    run = tmp_path / "run"
    train(config(store), run, progress=False)
    (run / "checkpoints" / "last").unlink()
    resumed = train(config(store, "train.steps=30"), run, progress=False)
    assert resumed.name == "step_00000030" and [s for s, _ in metrics(run)] == list(range(1, 31))
    far = tmp_path / "far" / "checkpoints"
    for name in ("step_99999744", "step_100000000", "step_100000000.partial"):
        (far / name).mkdir(parents=True)
    assert latest_checkpoint(far.parent).name == "step_100000000"
    (far / "last").write_text("step_100000000")
    assert latest_checkpoint(far.parent).name == "step_100000000"


def test_a_resumed_run_takes_a_changed_learning_rate_and_weight_decay(store, tmp_path):
    import torch

    run = tmp_path / "run"
    train(config(store, "train.steps=10"), run, progress=False)
    resumed = train(config(store, "train.steps=11", "train.lr=1e-5", "train.weight_decay=0.1"), run, progress=False)
    fresh = train(config(store, "train.steps=11", "train.lr=1e-5"), tmp_path / "fresh", progress=False)
    logged = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged[-1] == json.loads((fresh.parent.parent / "metrics.jsonl").read_text().splitlines()[-1])["lr"]
    groups = torch.load(resumed / "training_state.pt", weights_only=True)["algorithm"]["optimizer"]["param_groups"]
    assert [(g["initial_lr"], g["weight_decay"]) for g in groups] == [(1e-5, 0.1)] * len(groups)


def test_turning_the_weight_average_on_at_resume_starts_it_from_the_weights(store, tmp_path):
    run = tmp_path / "run"
    train(config(store, "train.steps=10"), run, progress=False)
    resumed = train(config(store, "train.ema_decay=0.9"), run, progress=False)
    assert resumed.name == "step_00000020"


def test_a_metrics_line_torn_by_a_kill_is_dropped_on_resume(store, tmp_path):
    run = tmp_path / "run"
    train(config(store, "train.steps=10"), run, progress=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "ti')
    train(config(store), run, progress=False)
    assert [s for s, _ in metrics(run)] == list(range(1, 21))


def test_resume_refuses_a_store_that_changed_since(store, tmp_path, capsys):
    import shutil

    copy = tmp_path / "reach.zarr"
    shutil.copytree(store, copy)
    train(config(copy, "train.steps=10"), tmp_path / "run", progress=False)
    record("fetch-reach", 1, copy, seed=50, progress=False)
    capsys.readouterr()
    with pytest.raises(RoboilError, match=r"has 4 episodes \(\d+ steps\), the run being resumed trained on 3 "
                                          r"\(\d+\).*resume with the store as it was, or train into a new --out"):
        train(config(copy), tmp_path / "run", progress=False)
    assert "resumed" not in capsys.readouterr().err  # refused before it says it resumed


def terminate(process) -> None:
    """What `kill PID`, `timeout` or a cluster scheduler's preemption does."""
    import signal

    process.send_signal(signal.SIGTERM)


def test_a_second_sigterm_leaves_the_stop_to_the_first(monkeypatch):
    """A scheduler's SIGTERM and torchrun's, passing it on, come milliseconds apart: taken as a second Ctrl-C, the
    second one stopped the training at once, unsaved."""
    import signal

    from roboil import errors
    from roboil.cli import _terminate_as_interrupted

    monkeypatch.setattr(errors, "_interrupted", False)  # and so back as it was after the test
    try:
        with errors.interrupts_deferred():
            _terminate_as_interrupted(signal.SIGTERM, None)
            assert errors.interrupted()  # flagged: the loop saves its step, then stops
            _terminate_as_interrupted(signal.SIGTERM, None)
    except KeyboardInterrupt:
        pytest.fail("the second SIGTERM stopped it at once")
    assert errors.interrupted()


@pytest.mark.parametrize("interrupt", ["ctrl_c", "sigterm"])
def test_ctrl_c_saves_the_step_it_came_at_and_the_same_command_resumes(store, tmp_path, interrupt):
    """Nothing trained is lost to Ctrl-C, or to SIGTERM (which killed the process at once before): the step it
    came at is saved (however far the last checkpoint was)."""
    import sys

    from conftest import ctrl_c, interrupt_training

    run = tmp_path / "run"
    command = [sys.executable, "-m", "roboil.cli", "train", CONFIG, f"data.path={store}", "train.steps=100000",
               "train.checkpoint_every=100000", "train.log_every=1", "algorithm.hidden_dims=[32]", "--out", str(run)]
    returncode, stderr = interrupt_training(command, run, interrupt={"ctrl_c": ctrl_c, "sigterm": terminate}[interrupt])
    assert returncode == 130 and "the same command resumes from there" in stderr, stderr
    assert "roboil: Ctrl-C: saving at the end of this step, then stopping" in stderr  # said at once: a step may be long
    logged = [s for s, _ in metrics(run)]
    saved = sorted((run / "checkpoints").glob("step_*"))
    assert len(saved) == 1 and saved[0].name == f"step_{logged[-1]:08d}" and logged[-1] >= 20
    assert (saved[0] / "training_state.pt").is_file()
    overrides = [f"data.path={store}", f"train.steps={logged[-1] + 5}", "train.checkpoint_every=100000",
                 "train.log_every=1", "algorithm.hidden_dims=[32]"]
    resumed = train(load_config(CONFIG, overrides), run, progress=False)
    assert resumed.name == f"step_{logged[-1] + 5:08d}"
    assert [s for s, _ in metrics(run)] == list(range(1, logged[-1] + 6))


def test_a_training_stopped_at_once_says_what_the_run_holds(store, tmp_path, monkeypatch, capsys):
    """A second Ctrl-C stops at once, unsaved (or while the step is being saved): the only line was "roboil:
    interrupted", and whether the step had been saved was anyone's guess."""
    from roboil.train import TrainContext

    log = TrainContext.log

    def second_ctrl_c_at_step_7(context, step, metrics):
        if step == 7:
            raise KeyboardInterrupt
        log(context, step, metrics)

    monkeypatch.setattr(TrainContext, "log", second_ctrl_c_at_step_7)
    overrides = [f"data.path={store}", "train.steps=10", "train.log_every=1", "algorithm.hidden_dims=[8]"]
    for every, said in ((100, "roboil: no checkpoint was saved; the same command starts the run over"),
                        (5, f"roboil: the run's last checkpoint is {tmp_path / 'run5' / 'checkpoints' / 'step_00000005'}; "
                            "the same command resumes from there")):
        with pytest.raises(KeyboardInterrupt):
            train(load_config(CONFIG, [*overrides, f"train.checkpoint_every={every}"]), tmp_path / f"run{every}",
                  progress=False)
        assert capsys.readouterr().err.splitlines()[-1] == said


def test_a_second_training_into_a_run_being_trained_is_refused_until_the_first_ends(store, tmp_path):
    """Two trainers of one run interleaved their metrics and checkpoints; the lock dies with its process."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from conftest import run_cli

    run = tmp_path / "run"
    common = [f"data.path={store}", "train.checkpoint_every=100000", "train.log_every=1", "algorithm.hidden_dims=[32]",
              "--out", str(run)]
    first = subprocess.Popen([sys.executable, "-m", "roboil.cli", "train", CONFIG, "train.steps=100000", *common],
                             stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (run / "metrics.jsonl").is_file():
            time.sleep(0.1)
        second = run_cli("train", CONFIG, "train.steps=10", *common)
        holder = f"pid {first.pid} on {socket.gethostname()} since 20"
        assert second.returncode == 2 and re.search(
            f"roboil: error: '{re.escape(str(run))}' is in use by another process training it "
            f"\\({re.escape(holder)}[-0-9: ]+ UTC\\); wait for it to end or stop it, or pass another --out\n",
            second.stderr), second.stderr
    finally:
        first.send_signal(signal.SIGKILL)  # as the kernel's out-of-memory killer
        first.wait()
    after = run_cli("train", CONFIG, "train.steps=10", *common)
    assert after.returncode == 0 and f"roboil: note: the last process training it ({holder}" in after.stderr
    assert "was killed before it could stop" in after.stderr  # it said nothing of it before
    assert [s for s, _ in metrics(run)] == list(range(1, 11))
    again = run_cli("train", CONFIG, "train.steps=11", *common)  # a run that ended as runs do leaves no note
    assert again.returncode == 0 and "note" not in again.stderr, again.stderr


def test_a_training_refused_before_it_writes_leaves_no_run_directory(tmp_path):
    with pytest.raises(RoboilError):
        train(load_config(CONFIG, [f"data.path={tmp_path / 'missing.zarr'}"]), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_run_on_a_filesystem_without_locks_trains_with_a_warning(store, tmp_path, monkeypatch, capsys):
    """NFS without lockd or Lustre mounted noflock refuse flock: training there worked before the lock."""
    import errno

    import roboil.errors

    def no_locks(path, shared):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(roboil.errors, "try_lock", no_locks)
    assert train(config(store, "train.steps=2"), tmp_path / "run", progress=False).name == "step_00000002"
    assert f"roboil: warning: '{tmp_path / 'run'}' cannot be locked (No locks available)" in capsys.readouterr().err


def test_the_same_store_named_from_elsewhere_resumes_and_another_algorithm_is_named(store, tmp_path, monkeypatch):
    import os

    run = tmp_path / "run"
    train(config(store, "train.steps=10"), run, progress=False)
    elsewhere = config(os.path.relpath(store, store.parent))  # named from the store's own directory
    diffusion = load_config("configs/fetch_push/diffusion_state.yaml", [f"data.path={store}", "task=fetch-reach"])
    monkeypatch.chdir(store.parent)
    assert train(elsewhere, run, progress=False).name == "step_00000020"
    with pytest.raises(RoboilError, match=r"changed algorithm.name: gcbc -> diffusion \(the model"):
        train(diffusion, run, progress=False)


def test_a_copy_of_the_store_at_another_path_resumes_and_another_store_there_is_refused(store, tmp_path, capsys):
    """Stores move between disks and machines: the same episodes at a new path are the same data."""
    import shutil

    run, moved, other = tmp_path / "run", tmp_path / "moved.zarr", tmp_path / "other.zarr"
    train(config(store, "train.steps=10"), run, progress=False)
    shutil.copytree(store, moved)
    capsys.readouterr()
    assert train(config(moved), run, progress=False).name == "step_00000020"
    assert f"data.path: {store} -> {moved}" in capsys.readouterr().err
    record("fetch-reach", 3, other, seed=7, progress=False)
    with pytest.raises(RoboilError, match=r"changed data.path: .*moved.zarr -> .*other.zarr \(the model or its data"):
        train(config(other, "train.steps=30"), run, progress=False)


def test_a_finished_run_says_there_is_nothing_to_train_and_its_time_goes_on(store, tmp_path, capsys):
    run = tmp_path / "run"
    train(config(store, "train.steps=10"), run, progress=False)
    train(config(store, "train.steps=10"), run, progress=False)
    assert "has trained 10 steps already (train.steps=10): nothing to train" in capsys.readouterr().err
    first = json.loads((run / "checkpoints" / "step_00000010" / "meta.json").read_text())["train_seconds"]
    train(config(store), run, progress=False)
    times = [json.loads(line)["time"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert times == sorted(times) and times[10] >= first


def test_an_episode_store_is_no_run_directory(store):
    with pytest.raises(RoboilError, match="is a zarr store \\(episodes\\?\\), not a run directory"):
        train(config(store), store, progress=False)


@pytest.mark.parametrize("only_success", [True, False])
def test_a_store_without_episodes_to_train_on_is_one_line_with_a_fix_that_applies(store, tmp_path, only_success):
    from roboil.store import EpisodeStore, array_layout

    source = EpisodeStore.open(store)
    EpisodeStore.create(tmp_path / "empty.zarr", source.features,
                        {k: array_layout(source.array(k)) for k in source.features}, source.attrs).close()
    with pytest.raises(RoboilError) as refused:
        train(config(tmp_path / "empty.zarr", f"data.only_success={str(only_success).lower()}"), tmp_path / "run",
              progress=False)
    # no episode at all: data.only_success=false would not help, so it is not offered
    assert str(refused.value) == f"store '{tmp_path / 'empty.zarr'}' has no episodes to train on; record some"
