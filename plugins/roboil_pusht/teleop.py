"""End-effector commands -> PushT actions. The action is the pusher's absolute target position (x, y), clipped to
the workspace; the controller integrates the command's x and y velocity onto it."""

from __future__ import annotations

import numpy as np

from .env import WORKSPACE

# 0.2 m/s: the expert's pushing speed (V_PUSH, 2 cm per 10 Hz step). A keyboard gives full speed or none, so this
# is the speed of every keyboard move: the pusher (2.5 cm radius) lines up on a face within a step or two, and
# crosses the 0.8 m workspace in 4 s.
SPEED = 0.2  # m/s
# The target may lead the pusher by at most this much: its PD (kp 1000 N/m, forces up to 30 N) saturates at
# 3 cm, and beyond that a target pushed on against the block, or a wall, would wind up and jump the pusher when
# it comes free. Unhindered, the pusher trails its target by ~4 mm at SPEED.
MAX_LEAD = 0.03  # m


class PushTController:
    def __init__(self, env, fps: float):
        self.env = env.unwrapped
        self.step = SPEED / fps
        self.reset()

    def _pusher(self) -> np.ndarray:
        return self.env.data.qpos[self.env._pusher_adr].astype(np.float64)

    def reset(self) -> None:
        self.target = self._pusher()

    def __call__(self, command) -> np.ndarray:
        velocity = np.clip(np.asarray(command.translation[:2], dtype=np.float64), -1.0, 1.0)
        target = np.clip(self.target + velocity * self.step, -WORKSPACE, WORKSPACE)
        pusher = self._pusher()
        lead = target - pusher
        distance = float(np.linalg.norm(lead))
        if distance > MAX_LEAD:
            target = pusher + lead * (MAX_LEAD / distance)
        self.target = target
        return target.astype(np.float32)
