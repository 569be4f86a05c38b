"""End-effector commands -> classic-control actions: only the command's x (its translation's first entry, in
[-1, 1]) counts, as a push or a torque along x; y, z, rotation and the gripper mean nothing here.

Discrete actions are Python ints, as the experts return them; the pendulum's torque is a float32 array (1,).
"""

from __future__ import annotations

import numpy as np


def _x(command) -> float:
    return float(np.clip(command.translation[0], -1.0, 1.0))


class _Controller:
    def __init__(self, env):
        self.env = env

    def reset(self) -> None:
        pass


class CartPoleController(_Controller):
    """Push right (1) when x > 0, left (0) when x < 0. CartPole has no "no push": at x == 0 the controller
    alternates left, right, left, ... (starting left after each reset), so letting go of the keys pushes with a
    zero mean force (a +-10 N chatter at 50 Hz) instead of always pushing one way."""

    def __init__(self, env):
        super().__init__(env)
        self.reset()

    def reset(self) -> None:
        self.next_idle = 0

    def __call__(self, command) -> int:
        x = _x(command)
        if x > 0:
            return 1
        if x < 0:
            return 0
        action, self.next_idle = self.next_idle, 1 - self.next_idle
        return action


def _by_sign(x: float) -> int:
    """0 for x < 0, 1 for x == 0, 2 for x > 0: the left / none / right (or -1 / 0 / +1 torque) actions."""
    return int(np.sign(x)) + 1


class AcrobotController(_Controller):
    """Torque on the elbow joint -1 / 0 / +1 (actions 0 / 1 / 2) by the sign of x."""

    def __call__(self, command) -> int:
        return _by_sign(_x(command))


class MountainCarController(_Controller):
    """Push left / none / right (actions 0 / 1 / 2) by the sign of x."""

    def __call__(self, command) -> int:
        return _by_sign(_x(command))


class PendulumController(_Controller):
    """Torque = x times the env's largest torque (2 N m); positive turns counter-clockwise."""

    def __call__(self, command) -> np.ndarray:
        max_torque = float(self.env.unwrapped.max_torque)
        return np.array([_x(command) * max_torque], dtype=np.float32)
