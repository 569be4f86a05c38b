"""Tasks ``aloha-transfer-cube`` and ``aloha-insertion``: the bimanual ALOHA scenes (two ViperX 300s arms,
models from the gym-aloha package) stepped with ``mujoco`` directly at 50 Hz.

Actions are 14-d joint positions (6 joints and a gripper opening in [0, 1] per arm, left then right);
episodes last 400 steps; the objects start at random positions (the ACT paper's ranges). Observations:
``joints`` (the 14 measured joint positions), ``objects`` (each object's position and quaternion, for
state-only policies) and the cameras ``top``, ``left_wrist`` and ``right_wrist`` through the ``pixels``
kind (``top`` by default). Success is strict (see ``tasks.py``): the cube held off the table by both left
fingers and nothing of the right arm; the peg at least 1 cm inside the socket's tube, both off the table.
The episode metric ``lifted`` (in ``roboil eval``'s report) is the share of the task's objects off the table at
the episode's end, held by either arm: progress short of success, e.g. a cube picked up but not handed over.
The scripted experts follow grasp-point waypoints through each arm's inverse kinematics.

State (``get_state``): the MuJoCo integration state alone; the env keeps nothing else between steps (the objects'
sampled poses are in ``qpos``, the joint targets in ``ctrl``, the tasks have no step counter). Teleop
(``teleop.py``): either arm's grasp point moves at up to 0.15 m/s and turns at up to 1 rad/s through its IK.
"""

from __future__ import annotations

import functools

import numpy as np

import roboil
from roboil import TaskSpec, TeleopSpec, env_scene, env_state, restore_env_state

EPISODE_STEPS = 400  # 8 s at 50 Hz, as the ACT paper's scripted episodes


def make_env(task_name: str, render_mode=None):
    from .env import AlohaEnv  # mujoco loads only when an env is built
    from .tasks import TASKS

    return AlohaEnv(TASKS[task_name](), render_mode=render_mode)


def make_expert(task_name: str, rng):
    from .expert import BimanualExpert
    from .tasks import TASKS

    return BimanualExpert(TASKS[task_name](), rng)


def set_state(env, state: np.ndarray):
    restore_env_state(env, state)  # the whole state is in MuJoCo: no Python-side episode state
    return env.unwrapped._obs()


def make_controller(env):
    from .teleop import AlohaController

    return AlohaController(env)


@roboil.hookimpl
def register_tasks():
    summaries = {
        "transfer-cube": "bimanual ALOHA: the right arm picks a cube and hands it to the left (strict hold check)",
        "insertion": "bimanual ALOHA: pick a peg and a socket, insert the peg in the air (strict depth check)",
    }
    return [TaskSpec(
        name=f"aloha-{name}",
        make_env=functools.partial(make_env, name),
        make_expert=functools.partial(make_expert, name),
        observations={"proprio": {}, "pixels": {"cameras": ["top"], "height": 96, "width": 128}},
        max_episode_steps=EPISODE_STEPS,
        episode_metrics=("lifted",),
        fps=50.0,
        get_state=env_state,
        set_state=set_state,
        scene=env_scene,
        teleop=TeleopSpec(make_controller=make_controller, arms=("left", "right"), rotation=True),
        summary=summary,
    ) for name, summary in summaries.items()]
