"""Gymnasium's classic-control tasks, each with a scripted expert (``experts.py``); the observation is the env's
state vector, stored as ``state``. Success is ``info["is_success"]`` at the last step; expert returns are means
over seeds 1000..1099 (``EXPERT_RETURNS``), on all of which every expert succeeds.

- ``cartpole``: push left / right, 500 steps. Success: the pole is still up (the step did not terminate).
  LQR expert, return 500.
- ``acrobot``: torque -1 / 0 / +1, 500 steps. Success: the tip got above the line (the env terminated).
  Energy-pumping expert, return -81.7.
- ``mountain-car``: push left / none / right, 200 steps. Success: the car reached the flag (the env terminated).
  Push-along-the-velocity expert, return -104.6.
- ``pendulum``: torque in [-2, 2], 200 steps. Success: upright, abs(angle) <= 0.2 rad and abs(velocity) <= 1
  rad/s. Energy swing-up + LQR expert, return -160.2.

State (``get_state``): the env's ``state`` plus what else its next steps read: CartPole's
``steps_beyond_terminated`` (NaN for None), Acrobot's state dtype (its reset state is float32, which its
observation's cos and sin then compute in float32), Pendulum's ``last_u`` (the torque arrow drawn; NaN for None).
Teleop (``teleop.py``): the x of an end-effector command pushes or turns (see each controller).
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import gymnasium as gym
import numpy as np
from gymnasium.envs.classic_control import AcrobotEnv, CartPoleEnv, MountainCarEnv, PendulumEnv

import roboil
from roboil import TaskSpec, TeleopSpec

from .experts import AcrobotExpert, CartPoleExpert, MountainCarExpert, PendulumExpert
from .teleop import AcrobotController, CartPoleController, MountainCarController, PendulumController

# Balanced at the top, not swinging through it. The expert ends within 1e-9 rad of upright (settled by step 76 at
# the latest on seeds 0..999), far inside these bounds; from any state inside them its stabiliser keeps the
# pendulum up except at the far corner (0.2 rad, moving away at 1 rad/s), where 2 N m no longer stops the fall.
UPRIGHT_ANGLE = 0.2  # rad
UPRIGHT_VELOCITY = 1.0  # rad/s


def pole_balanced(obs: np.ndarray, terminated: bool) -> bool:
    """CartPole: the pole is still up and the cart on the track (termination is the fall)."""
    return not terminated


def goal_reached(obs: np.ndarray, terminated: bool) -> bool:
    """Acrobot and MountainCar: the env terminates exactly when the goal is reached."""
    return bool(terminated)


def pendulum_upright(obs: np.ndarray, terminated: bool) -> bool:
    """Pendulum (obs = cos, sin, angular velocity): near the top and nearly still."""
    cos, sin, velocity = obs
    return bool(abs(np.arctan2(sin, cos)) <= UPRIGHT_ANGLE and abs(velocity) <= UPRIGHT_VELOCITY)


class SuccessInfo(gym.Wrapper):
    """Puts ``is_success`` in ``info`` at reset and at every step, from the task's success test."""

    def __init__(self, env: gym.Env, is_success: Callable[[np.ndarray, bool], bool]):
        super().__init__(env)
        self.is_success = is_success

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "is_success": self.is_success(obs, False)}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "is_success": self.is_success(obs, terminated)}


def make_env(env_class: type[gym.Env], is_success: Callable[[np.ndarray, bool], bool],
             render_mode: str | None = None) -> gym.Env:
    """The env class itself, not ``gym.make``: no registered TimeLimit, the core applies the task's."""
    if render_mode == "rgb_array":
        # gymnasium draws these frames on an off-screen pygame Surface but still calls pygame.display.init(),
        # where SDL probes Wayland/X11 and, without a desktop session, prints "XDG_RUNTIME_DIR is invalid or not
        # set". SDL's dummy video driver needs no display; setdefault keeps a driver the user chose.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return SuccessInfo(env_class(render_mode=render_mode), is_success)


def _none_as_nan(value) -> float:
    return np.nan if value is None else float(value)


def _nan_as_none(value: float):
    return None if np.isnan(value) else value


# Per env class: get_state(env) -> numbers, set_state(env, numbers) -> observation (of its unwrapped env)
def _cartpole_get(env: CartPoleEnv) -> np.ndarray:
    return np.r_[env.state, _none_as_nan(env.steps_beyond_terminated)]


def _cartpole_set(env: CartPoleEnv, state: np.ndarray) -> np.ndarray:
    env.state = state[:4].copy()
    steps = _nan_as_none(state[4])
    env.steps_beyond_terminated = None if steps is None else int(steps)
    return np.array(env.state, dtype=np.float32)  # as its reset and step


def _acrobot_get(env: AcrobotEnv) -> np.ndarray:
    return np.r_[env.state, float(np.asarray(env.state).dtype == np.float32)]


def _acrobot_set(env: AcrobotEnv, state: np.ndarray) -> np.ndarray:
    env.state = state[:4].astype(np.float32 if state[4] else np.float64)
    return env._get_ob()


def _mountain_car_get(env: MountainCarEnv) -> np.ndarray:
    return np.array(env.state, dtype=np.float64)  # an array after reset, a tuple of scalars after a step


def _mountain_car_set(env: MountainCarEnv, state: np.ndarray) -> np.ndarray:
    env.state = state.copy()
    return np.array(env.state, dtype=np.float32)  # as its reset and step


def _pendulum_get(env: PendulumEnv) -> np.ndarray:
    return np.r_[env.state, _none_as_nan(env.last_u)]


def _pendulum_set(env: PendulumEnv, state: np.ndarray) -> np.ndarray:
    env.state = state[:2].copy()
    env.last_u = _nan_as_none(state[2])
    return env._get_obs()


STATES = {
    CartPoleEnv: (_cartpole_get, _cartpole_set, 5),
    AcrobotEnv: (_acrobot_get, _acrobot_set, 5),
    MountainCarEnv: (_mountain_car_get, _mountain_car_set, 2),
    PendulumEnv: (_pendulum_get, _pendulum_set, 3),
}


def get_state(env: gym.Env) -> np.ndarray:
    unwrapped = env.unwrapped
    return np.asarray(STATES[type(unwrapped)][0](unwrapped), dtype=np.float64)


def set_state(env: gym.Env, state: np.ndarray) -> np.ndarray:
    unwrapped = env.unwrapped
    _, restore, size = STATES[type(unwrapped)]
    state = np.asarray(state, dtype=np.float64)
    if state.shape != (size,):
        raise ValueError(f"a {type(unwrapped).__name__} state has {size} numbers, got shape {state.shape}")
    return restore(unwrapped, state)


def _task(name, env_class, is_success, expert, controller, steps, fps, summary) -> TaskSpec:
    return TaskSpec(name=name, make_env=functools.partial(make_env, env_class, is_success), make_expert=expert,
                    observations={"proprio": {}}, max_episode_steps=steps, fps=fps, get_state=get_state,
                    set_state=set_state, teleop=TeleopSpec(make_controller=controller, arms=("arm",), rotation=False),
                    summary=summary)


@roboil.hookimpl
def register_tasks():
    return [
        _task("cartpole", CartPoleEnv, pole_balanced, CartPoleExpert, CartPoleController,
              500, 50.0,  # tau = 0.02 s
              "gymnasium CartPole: balance the pole for 500 steps (2 actions), LQR expert"),
        _task("acrobot", AcrobotEnv, goal_reached, AcrobotExpert, AcrobotController,
              500, 5.0,  # dt = 0.2 s
              "gymnasium Acrobot: swing the tip above the line (3 torques), energy-pumping expert"),
        _task("mountain-car", MountainCarEnv, goal_reached, MountainCarExpert, MountainCarController,
              200, 30.0,  # its render_fps
              "gymnasium MountainCar: drive up to the flag (3 actions), push-along-velocity expert"),
        _task("pendulum", PendulumEnv, pendulum_upright, PendulumExpert, PendulumController,
              200, 20.0,  # dt = 0.05 s
              "gymnasium Pendulum: swing up and hold upright (torque in [-2, 2]), energy + LQR expert"),
    ]
