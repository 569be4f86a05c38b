"""An installed third-party plugin takes part in every stage: its device (register_devices) records, its
observation kind (register_observations) is stored, and its lifecycle hooks (on_train_step_end, on_checkpoint_saved, on_eval_episode_end) are called."""

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
    env, _ = plugin_env
    path = tmp_path / "joy.zarr"
    run_cli("record", "--task", "fetch-reach", "--device", "hello-joystick", "--episodes", 2, "--out", path,
            "obs.clock.scale=0.5", env=env, check=True)
    store = EpisodeStore.open(path)
    assert store.n_episodes == 2 and list(store.episode_lengths) == [5, 5]  # the device ended each episode
    assert store.features["clock"].kind == "clock"
    np.testing.assert_allclose(store.episode(1)["clock"][:, 0], [0, 0.5, 1.0, 1.5, 2.0])
    assert all(a["source"] == "hello-joystick" for a in store.episode_attrs())
    assert (store.episode(0)["action"][:, 0] == 1.0).all()


def test_unknown_device_lists_the_plugin_devices(plugin_env, tmp_path):
    env, _ = plugin_env
    result = run_cli("record", "--task", "fetch-reach", "--device", "wiimote", "--episodes", 1,
                     "--out", tmp_path / "x.zarr", env=env)
    assert result.returncode == 2
    assert "unknown device 'wiimote'; valid: scripted, hello-joystick" in result.stderr
    assert not (tmp_path / "x.zarr").exists()


def test_lifecycle_hooks_fire_during_train_and_eval(plugin_env, tmp_path):
    env, log = plugin_env
    store = tmp_path / "reach.zarr"
    run_cli("record", "--task", "fetch-reach", "--episodes", 3, "--out", store, env=env, check=True)
    run = tmp_path / "run"
    run_cli("train", "configs/fetch_reach/gcbc.yaml", f"data.path={store}", "train.steps=20",
            "train.checkpoint_every=10", "algorithm.hidden_dims=[16]", "--out", run, env=env, check=True)
    run_cli("eval", run, "--episodes", 3, "--envs", 2, env=env, check=True)
    lines = log.read_text().splitlines()
    assert [l.split()[1] for l in lines if l.startswith("train_step")] == [str(s) for s in range(1, 21)]
    assert [l.split()[1] for l in lines if l.startswith("checkpoint")] == ["10", "20"]
    assert sorted(l.split()[1] for l in lines if l.startswith("eval_episode")) == ["100000", "100001", "100002"]
