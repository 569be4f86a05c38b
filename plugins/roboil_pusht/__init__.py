"""Task ``pusht``: push a T-shaped block onto a fixed target pose with a round pusher (our MuJoCo scene in
``assets/pusht``). Success when the block covers at least 95% of the target area; the final coverage is
reported too. The scripted expert is multimodal: it goes around the block on a side it picks at random.

State (``get_state``): the MuJoCo integration state alone; the env keeps nothing else (the target pose is fixed,
the block and pusher start poses are in ``qpos``, the held target in ``ctrl``, no step counter). Teleop
(``teleop.py``): the command's x and y move the pusher's target at up to 0.2 m/s.
"""

from __future__ import annotations

import functools

import numpy as np

import roboil
from roboil import TaskSpec, TeleopSpec, env_scene, env_state, restore_env_state

from .env import PushTEnv
from .expert import PushTExpert
from .teleop import PushTController


MAX_EPISODE_STEPS = 300  # 30 s at 10 Hz, as diffusion_policy's PushT
FPS = 10.0


def set_state(env, state: np.ndarray):
    restore_env_state(env, state)  # the whole state is in MuJoCo: no Python-side episode state
    return env.unwrapped._obs()


@roboil.hookimpl
def register_tasks():
    return [TaskSpec(
        name="pusht",
        make_env=PushTEnv,
        make_expert=PushTExpert,
        observations={"proprio": {}, "pixels": {"cameras": ["top"], "height": 96, "width": 96}},
        episode_metrics=("coverage",),
        max_episode_steps=MAX_EPISODE_STEPS,
        fps=FPS,
        get_state=env_state,
        set_state=set_state,
        scene=env_scene,
        teleop=TeleopSpec(make_controller=functools.partial(PushTController, fps=FPS), arms=("arm",), rotation=False),
        summary="MuJoCo PushT: T block to a target pose (coverage >= 0.95), multimodal scripted expert",
    )]
