"""Tasks ``fetch-reach``, ``fetch-push`` and ``fetch-pick-and-place`` from gymnasium-robotics (MuJoCo), each
with a scripted expert. Observations are the env's dict (``observation``, ``achieved_goal``,
``desired_goal``); the goal keys make them goal-conditioned tasks."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io

import gymnasium as gym

import roboil
from roboil import GoalKeys, TaskSpec

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
    return gym.make(spec, render_mode=render_mode, width=RENDER_SIZE, height=RENDER_SIZE)


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
            summary=f"gymnasium-robotics {env_id} with a scripted expert",
        )
        for name, (env_id, expert) in ENV_IDS.items()
    ]
