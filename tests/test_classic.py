"""The classic-control tasks: the experts earn the returns the plugin states, the success tests on hand-made
states, headless rendering, and the core's episode limit as the only one."""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

from roboil.envs import ObservedEnv
from roboil.plugins import registry
from roboil_classic import pendulum_upright
from roboil_classic.experts import EXPERT_RETURNS

TASKS = ("cartpole", "acrobot", "mountain-car", "pendulum")
MEASURED_SEEDS = range(1000, 1100)  # the seeds EXPERT_RETURNS was measured on


def make_env(task: str, render_mode=None) -> gym.Env:
    return registry().get("task", task).make_env(render_mode=render_mode)


def expert_episode(env: ObservedEnv, expert, seed: int) -> tuple[float, bool]:
    env.reset(seed=seed)
    expert.reset()
    total, done = 0.0, False
    while not done:
        action = expert.act(env.raw_obs)
        if isinstance(env.action_space, gym.spaces.Discrete):
            assert isinstance(action, int) and env.action_space.contains(action)
        else:
            assert action.dtype == np.float32 and action.shape == (1,)
        _, reward, terminated, truncated, info = env.step(action)
        total += reward
        done = terminated or truncated
    return total, info["is_success"]


@pytest.mark.parametrize("task", TASKS)
def test_experts_earn_the_stated_returns(task):
    """All the seeds of the table (deterministic experts: exact up to rounding), played as the recorder does."""
    env = ObservedEnv(task, {"proprio": {}})
    expert = env.task.make_expert(np.random.default_rng(0))
    returns, successes = zip(*(expert_episode(env, expert, seed) for seed in MEASURED_SEEDS))
    env.close()
    assert np.mean(returns) == pytest.approx(EXPERT_RETURNS[task], abs=0.01)
    assert all(successes)
    if task == "cartpole":
        assert min(returns) == 500.0


def step_from(env: gym.Env, state, action):
    """Reset, then put the env in a hand-made state and step it once."""
    env.reset(seed=0)
    env.unwrapped.state = np.array(state, dtype=np.float64)
    return env.step(action)


def test_cartpole_success_is_the_pole_still_up():
    env = make_env("cartpole")
    assert env.reset(seed=0)[1]["is_success"] is True
    _, _, terminated, _, info = step_from(env, [0.0, 0.0, 0.05, 0.0], 1)
    assert not terminated and info["is_success"] is True
    _, _, terminated, _, info = step_from(env, [0.0, 0.0, 0.25, 0.0], 1)  # past the 12 degree limit
    assert terminated and info["is_success"] is False
    _, _, terminated, _, info = step_from(env, [2.39, 1.0, 0.0, 0.0], 1)  # off the track
    assert terminated and info["is_success"] is False


@pytest.mark.parametrize("task, at_goal, away, action", [
    ("acrobot", [np.pi, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], 1),  # both links straight up / hanging
    ("mountain-car", [0.49, 0.03], [-0.5, 0.0], 2),  # just below the flag, driving up / in the valley
])
def test_goal_tasks_succeed_when_they_terminate(task, at_goal, away, action):
    env = make_env(task)
    assert env.reset(seed=0)[1]["is_success"] is False
    _, _, terminated, _, info = step_from(env, at_goal, action)
    assert terminated and info["is_success"] is True
    _, _, terminated, _, info = step_from(env, away, action)
    assert not terminated and info["is_success"] is False


def test_pendulum_success_is_upright_and_still():
    env = make_env("pendulum")
    no_torque = np.zeros(1, dtype=np.float32)
    assert step_from(env, [0.0, 0.0], no_torque)[4]["is_success"] is True  # balanced exactly at the top
    assert step_from(env, [np.pi, 0.0], no_torque)[4]["is_success"] is False  # hanging
    assert step_from(env, [0.0, 3.0], no_torque)[4]["is_success"] is False  # swinging through the top

    def obs(angle, velocity):
        return np.array([np.cos(angle), np.sin(angle), velocity], dtype=np.float32)

    assert pendulum_upright(obs(-0.19, 0.95), False)
    assert not pendulum_upright(obs(0.21, 0.0), False)
    assert not pendulum_upright(obs(0.0, -1.05), False)


@pytest.mark.parametrize("task", TASKS)
def test_rgb_array_frames(task):
    env = make_env(task, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    env.close()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.min() < frame.max()  # something is drawn


def test_headless_rendering_prints_nothing():
    """A fresh process with no display: SDL would print "XDG_RUNTIME_DIR is invalid or not set" on its own."""
    unset = ("SDL_VIDEODRIVER", "XDG_RUNTIME_DIR", "DISPLAY", "WAYLAND_DISPLAY")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    code = ("from roboil.plugins import registry\n"
            "env = registry().get('task', 'pendulum').make_env(render_mode='rgb_array')\n"
            "env.reset(seed=0)\n"
            "assert env.render().shape == (500, 500, 3)\n"
            "env.close()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


@pytest.mark.parametrize("task, action", [("cartpole", None), ("acrobot", 1), ("mountain-car", 1),
                                          ("pendulum", np.zeros(1, dtype=np.float32))])
def test_the_core_applies_the_only_time_limit(task, action):
    """The env has no TimeLimit of its own; ObservedEnv ends an episode that never terminates at the task's length
    (cartpole balanced by its expert, the others given no push or torque)."""
    env = make_env(task)
    while isinstance(env, gym.Wrapper):
        assert not isinstance(env, gym.wrappers.TimeLimit)
        env = env.env
    assert env.spec is None  # not gym.make: no registered max_episode_steps

    observed = ObservedEnv(task, {"proprio": {}})
    expert = observed.task.make_expert(np.random.default_rng(0))
    observed.reset(seed=0)
    limit = observed.task.max_episode_steps
    for steps in range(1, 2 * limit):  # bounded, so a missing limit fails instead of hanging
        _, _, terminated, truncated, _ = observed.step(expert.act(observed.raw_obs) if action is None else action)
        assert not terminated
        if truncated:
            break
    assert steps == limit
    observed.close()


def test_an_offline_algorithm_trains_on_a_discrete_task_and_its_checkpoint_acts(tmp_path):
    """A discrete action is one index per step in the store: batches and statistics hold it as one dimension,
    so the checkpoint's normalizer has the shape training gave it (loading used to refuse the weights)."""
    from roboil.checkpoint import load_runner
    from roboil.config import load_config
    from roboil.record import record
    from roboil.train import train

    store = tmp_path / "cartpole.zarr"
    record("cartpole", 2, store, progress=False)
    config = load_config("configs/fetch_reach/gcbc.yaml", [
        "task=cartpole", f"data.path={store}", "data.obs_keys=null", "algorithm.goal_conditioned=false",
        "algorithm.hidden_dims=[16]", "train.steps=2", "train.batch_size=8"])
    runner, _, _ = load_runner(train(config, tmp_path / "run", progress=False))
    runner.reset(1)
    action = runner.act({"state": np.zeros((1, 4), np.float32)})
    assert action.shape == (1, 1) and int(action[0, 0]) in (0, 1)  # the index, as one number
