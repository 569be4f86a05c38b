"""An installed third-party plugin takes part in every stage: its device (register_devices) records with typed
parameters, its observation kind (register_observations) is stored, and its lifecycle hooks
(on_train_step_end, on_checkpoint_saved, on_eval_episode_end) are called with the run directory and config."""

import os

import numpy as np
import pytest

from roboil.store import EpisodeStore
from conftest import run_cli


@pytest.fixture
def plugin_env(hello_plugin_path, tmp_path):
    log = tmp_path / "hooks.log"
    return {"PYTHONPATH": os.pathsep.join([str(hello_plugin_path), os.environ.get("PYTHONPATH", "")]),
            "ROBOIL_HELLO_LOG": str(log), "ROBOIL_DISABLE_PLUGINS": "hello-broken,hello-clash"}, log


def test_plugin_device_and_observation_kind_record_into_the_store(plugin_env, tmp_path):
    env, log = plugin_env
    path = tmp_path / "joy.zarr"
    run_cli("record", "--task", "fetch-reach", "--device", "hello-joystick", "--episodes", 2, "--out", path,
            "obs.clock.scale=0.5", "device.push_steps=4", env=env, check=True)
    store = EpisodeStore.open(path)
    assert store.n_episodes == 2 and list(store.episode_lengths) == [4, 4]  # the device ended each episode
    assert store.features["clock"].kind == "clock"
    np.testing.assert_allclose(store.episode(1)["clock"][:, 0], [0, 0.5, 1.0, 1.5])
    assert all(a["source"] == "hello-joystick" and a["acted_by"] == [["hello-joystick", 4]]
               for a in store.episode_attrs())
    assert (store.episode(0)["action"][:, 0] == 1.0).all()
    assert log.read_text().splitlines() == ["joystick closed after 2 takes"]


def test_device_can_discard_an_episode(plugin_env, tmp_path):
    env, _ = plugin_env
    path = tmp_path / "joy.zarr"
    result = run_cli("record", "--task", "fetch-reach", "--device", "hello-joystick", "--episodes", 3, "--out", path,
                     "device.discard_take=2", env=env, check=True)
    assert '"recorded": 3, "discarded": 1' in result.stdout  # the episodes asked for, however many takes it took
    # the dropped take's start (seed 1) is not reused: a discarded start moves on, as a person's discard does
    assert [a["seed"] for a in EpisodeStore.open(path).episode_attrs()] == [0, 2, 3]


@pytest.mark.parametrize("override, message", [
    ("device.push_stepz=3", "unknown config key 'device.push_stepz'; valid keys in device: discard_take, push_steps"),
    ("device.push_steps=many", "config key 'device.push_steps' must be int, got 'many'"),
    ("obs.clock.scale=[1]", "config key 'obs.clock.scale' must be float"),
])
def test_typed_device_and_observation_params_give_one_line_errors(plugin_env, tmp_path, override, message):
    env, _ = plugin_env
    result = run_cli("record", "--task", "fetch-reach", "--device", "hello-joystick", "--episodes", 1,
                     "--out", tmp_path / "x.zarr", "obs.clock.scale=1", override, env=env)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists()


def test_unknown_device_lists_the_plugin_devices(plugin_env, tmp_path):
    env, _ = plugin_env
    result = run_cli("record", "--task", "fetch-reach", "--device", "wiimote", "--episodes", 1,
                     "--out", tmp_path / "x.zarr", env=env)
    assert result.returncode == 2
    assert "unknown device 'wiimote'; valid: gamepad, hello-joystick, keyboard, replay, scripted, spacemouse" in result.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_lifecycle_hooks_fire_during_train_and_eval(plugin_env, tmp_path):
    env, log = plugin_env
    store = tmp_path / "reach.zarr"
    run_cli("record", "--task", "fetch-reach", "--episodes", 3, "--out", store, env=env, check=True)
    run = tmp_path / "run"
    run_cli("train", "configs/fetch_reach/gcbc.yaml", f"data.path={store}", "train.steps=20",
            "train.checkpoint_every=10", "algorithm.hidden_dims=[16]", "--out", run, env=env, check=True)
    run_cli("eval", run, "--episodes", 3, "--envs", 2, env=env, check=True)
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [l[1] for l in lines if l[0] == "train_step"] == [str(s) for s in range(1, 21)]
    assert {l[3] for l in lines if l[0] == "train_step"} == {str(run)}
    assert [(l[1], l[3]) for l in lines if l[0] == "checkpoint"] == [("10", "fetch-reach"), ("20", "fetch-reach")]
    assert sorted(l[1] for l in lines if l[0] == "eval_episode") == ["100000", "100001", "100002"]
    assert {l[3] for l in lines if l[0] == "eval_episode"} == {str(run)}
