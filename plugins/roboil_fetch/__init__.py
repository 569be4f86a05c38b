"""Tasks ``fetch-reach``, ``fetch-push`` and ``fetch-pick-and-place`` from gymnasium-robotics (MuJoCo), each
with a scripted expert. Observations are the env's dict (``observation``, ``achieved_goal``,
``desired_goal``); the goal keys make them goal-conditioned tasks.

State (``get_state``): the MuJoCo integration state (``roboil.sim``), the goal (the only thing ``reset``
randomizes outside the simulation), and for Pick-and-Place's sake the last observation and the gripper body's
computed pose (see ``get_state``). The goal's marker follows the goal from every reset on (``FetchTask``), so the
teleop viewer and the ``pixels`` observation (which draw the scene without ``render()``) show it where it is.

Teleop: the action is already an end-effector command (a gripper-target displacement of up to 0.05 m per axis per
40 ms step, and a finger command, +1 open / -1 close), so a command's translation is the action's first three
entries (1 = the env's top speed, 1.25 m/s) and its gripper the fourth. No rotation: the env keeps the gripper
pointing down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io

import gymnasium as gym
import numpy as np

import roboil
from roboil import GoalKeys, TaskSpec, TeleopSpec

from .experts import PickAndPlaceExpert, PushExpert, ReachExpert

ENV_IDS = {
    "fetch-reach": ("FetchReach-v4", ReachExpert),
    "fetch-push": ("FetchPush-v4", PushExpert),
    "fetch-pick-and-place": ("FetchPickAndPlace-v4", PickAndPlaceExpert),
}
EPISODE_STEPS = 50  # as gymnasium-robotics registers the Fetch tasks
RENDER_SIZE = 240  # video frames; the env's default 480x480 costs 4x the render time on CPU


def make_env(env_id: str, render_mode: str | None = None):
    # gymnasium-robotics prints a notice about Adroit rewards on import (through farama-notifications, to
    # stderr), unrelated to Fetch; keep it out of every roboil command's output
    with contextlib.redirect_stderr(io.StringIO()):
        import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    # without the registered TimeLimit: the task declares its episode length and the core applies it
    spec = dataclasses.replace(gym.spec(env_id), max_episode_steps=None)
    return FetchTask(gym.make(spec, render_mode=render_mode, width=RENDER_SIZE, height=RENDER_SIZE))


class FetchTask(gym.Wrapper):
    """What ``get_state`` and the teleop viewer need of a Fetch env that it does not keep itself.

    - The goal's marker (site ``target0``) moves to the new goal at every reset: gymnasium-robotics moves it only
      in ``render()``, so a viewer that draws the scene (``TaskSpec.scene``) without calling it would show the
      previous episode's goal. The site is visual only: nothing simulated or observed depends on it.
    - The observation last returned is kept (``LAST_OBS`` on the unwrapped env) for ``get_state``: see there.
    """

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.env.unwrapped._render_callback()  # site_pos from the goal, then mj_forward (the state is unchanged)
        _remember(self.env.unwrapped, obs)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        _remember(self.env.unwrapped, obs)
        return obs, reward, terminated, truncated, info


LAST_OBS = "_roboil_last_obs"


def _remember(fetch, obs: dict) -> None:
    setattr(fetch, LAST_OBS, np.concatenate([obs["observation"], obs["achieved_goal"]]).astype(np.float64))


def _welded_bodies(fetch) -> list[int]:
    """The bodies welded to a mocap body (the gripper), found as gymnasium-robotics' reset_mocap2body_xpos does."""
    import mujoco

    model, bodies = fetch.model, []
    for kind, obj1, obj2 in zip(model.eq_type, model.eq_obj1id, model.eq_obj2id):
        if kind == mujoco.mjtEq.mjEQ_WELD:
            bodies.append(int(obj2 if model.body_mocapid[obj1] != -1 else obj1))
    return bodies


def _sizes(fetch) -> tuple[int, int, int, int]:
    """Numbers in a state: the MuJoCo state, the goal, the observation and the welded bodies' poses."""
    import mujoco

    from roboil.sim import state_kind

    space = fetch.observation_space
    return (mujoco.mj_stateSize(fetch.model, state_kind()), space["desired_goal"].shape[0],
            space["observation"].shape[0] + space["achieved_goal"].shape[0], 7 * len(_welded_bodies(fetch)))


def get_state(env) -> np.ndarray:
    """The MuJoCo integration state and the goal, plus what Pick-and-Place reads from MuJoCo's computed (not
    integrated) quantities. After ``mj_step`` the bodies' world poses are those of the last substep's start, and
    that env, unlike Reach and Push, runs no ``mj_forward`` after stepping (``render()`` does): it observes the
    state 2 ms late, and its next action moves the mocap from the gripper body's pose as last computed. A
    restored state cannot recompute either, so the state keeps the observation the env last returned
    (``observation``, then ``achieved_goal``) and the pose (``xpos``, ``xquat``) of each body welded to a mocap."""
    from roboil.sim import mujoco_state

    fetch = env.unwrapped
    last = getattr(fetch, LAST_OBS, None)
    if last is None:  # an env not made by make_env: its observation now
        obs = fetch._get_obs()
        last = np.concatenate([obs["observation"], obs["achieved_goal"]])
    welded = [np.r_[fetch.data.xpos[b], fetch.data.xquat[b]] for b in _welded_bodies(fetch)]
    return np.concatenate([mujoco_state(fetch.model, fetch.data), np.asarray(fetch.goal, dtype=np.float64), last,
                           *welded]).astype(np.float64)


def set_state(env, state: np.ndarray):
    from roboil.sim import set_mujoco_state

    fetch = env.unwrapped
    state = np.asarray(state, dtype=np.float64)
    sizes = _sizes(fetch)
    if state.shape != (sum(sizes),):
        raise ValueError(f"a {type(fetch).__name__} state has {sum(sizes)} numbers, got shape {state.shape}")
    sim, goal, last, welded = np.split(state, np.cumsum(sizes)[:-1])
    n_obs = fetch.observation_space["observation"].shape[0]
    set_mujoco_state(fetch.model, fetch.data, sim)
    fetch.goal = goal.copy()
    fetch._render_callback()  # the goal marker follows the restored goal (and mj_forward runs again)
    for body, pose in zip(_welded_bodies(fetch), welded.reshape(-1, 7)):
        fetch.data.xpos[body], fetch.data.xquat[body] = pose[:3], pose[3:]
    setattr(fetch, LAST_OBS, last.copy())
    return {"observation": last[:n_obs].copy(), "achieved_goal": last[n_obs:].copy(), "desired_goal": goal.copy()}


def scene(env):
    fetch = env.unwrapped
    return fetch.model, fetch.data


class FetchController:
    """End-effector command -> Fetch action: the env's action is a gripper-target displacement (0.05 m per unit
    per step, at most 1.25 m/s) and a finger command (+1 opens, -1 closes: the finger actuators' target is
    their position plus it), so the command's translation (a fraction of that top speed) and gripper pass
    straight through. Stateless."""

    def __init__(self, env):
        self.env = env

    def reset(self) -> None:
        pass

    def __call__(self, command) -> np.ndarray:
        action = np.r_[np.asarray(command.translation, dtype=np.float64), float(command.gripper)]
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def grippers(self, action: np.ndarray) -> tuple[float]:
        """The finger command of ``action`` (-1 closes .. 1 opens)."""
        return (float(action[3]),)


@roboil.hookimpl
def register_tasks():
    return [
        TaskSpec(
            name=name,
            make_env=functools.partial(make_env, env_id),
            make_expert=expert,
            observations={"proprio": {}},
            goal=GoalKeys(desired="desired_goal", achieved="achieved_goal"),
            max_episode_steps=EPISODE_STEPS,
            fps=25.0,  # 20 substeps of 2 ms per control step
            get_state=get_state,
            set_state=set_state,
            scene=scene,
            teleop=TeleopSpec(make_controller=FetchController, arms=("arm",), rotation=False),
            summary=f"gymnasium-robotics {env_id} with a scripted expert",
        )
        for name, (env_id, expert) in ENV_IDS.items()
    ]
