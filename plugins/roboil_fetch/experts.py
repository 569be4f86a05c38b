"""Scripted experts for the gymnasium-robotics Fetch tasks (Reach, Push, PickAndPlace).

Every expert is a (near-)Markovian function of the observation dict: phases such as
"behind the block" or "block grasped" are recomputed from positions and finger width
at every step, so a behaviour-cloned MLP that sees the same observation can imitate
it. Motion is proportional control towards a target point, saturated to [-1, 1] without
bending its direction; phase changes are blended with linear ramps instead of hard
switches. The experts keep no state between steps and do not use their rng.
"""

from __future__ import annotations

import numpy as np

STEP = 0.05  # metres of gripper-target motion per unit action (fixed inside the env)


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at x <= lo, 1 at x >= hi, linear in between (hi < lo flips the direction)."""
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def _action(delta: np.ndarray, gain: float, grip: float = 0.0) -> np.ndarray:
    """Proportional move towards `delta` (metres). Saturation scales the whole move
    (clipping each axis alone would bend the path, e.g. into the block)."""
    move = gain * np.asarray(delta, dtype=np.float64) / STEP
    move /= max(1.0, float(np.abs(move).max()))
    return np.clip(np.append(move, grip), -1.0, 1.0).astype(np.float32)


class _Expert:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng  # kept for the interface; the experts are deterministic

    def reset(self) -> None:
        pass  # stateless: everything is derived from the observation


class ReachExpert(_Expert):
    GAIN = 1.5  # the arm covers ~60% of the commanded step, so >1 removes most lag

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        grip = obs["observation"][0:3]
        return _action(obs["desired_goal"] - grip, self.GAIN)


class PushExpert(_Expert):
    """Get behind the block (lifting over it when needed) and push it along block->goal."""

    # Closed fingers span ~0.028 x 0.032 m around the grip site and reach 0.019 m below
    # it; the block is a 0.05 m cube (half-diagonal 0.035 m when it has turned).
    CONTACT = 0.040  # gripper-centre distance from block centre when touching its face
    BEHIND = 0.080  # approach point behind the block, clear of it
    CLEAR = 0.060  # straight low paths closer than this to the block would hit it
    LIFT = 0.075  # height above the push height that clears the block top
    Z_OFF = -0.005  # push just below the block centre, fingertips just above the table
    GAIN = 1.2
    PUSH_FRAC = 0.5  # advance only part of the remaining distance: the block slides on

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ob = obs["observation"]
        grip, obj, goal = ob[0:3], ob[3:6], obs["desired_goal"]
        to_goal = goal[:2] - obj[:2]
        dist = float(np.linalg.norm(to_goal))
        u = to_goal / max(dist, 1e-6)  # push direction
        n = np.array([-u[1], u[0]])  # lateral direction
        rel = grip[:2] - obj[:2]
        along, lat = float(rel @ u), float(rel @ n)
        push_z = obj[2] + self.Z_OFF

        # How well the gripper sits behind the block, low, on the push line (0..1).
        aligned = (
            _ramp(abs(lat), 0.02, 0.01)
            * _ramp(along, -0.025, -0.035)
            * _ramp(grip[2] - push_z, 0.02, 0.01)
        )

        # Approach: go to the point behind the block; lift while the straight low
        # path there would run into the block (unless the gripper is already behind it
        # on the push line, where it just slides along the line), and only move
        # sideways once high enough.
        behind = obj[:2] - self.BEHIND * u
        on_line = _ramp(abs(lat), 0.03, 0.02) * _ramp(along, -0.035, -0.045)
        path_clear = _seg_dist(grip[:2], behind, obj[:2])
        lift = _ramp(path_clear, self.CLEAR + 0.015, self.CLEAR) * (1.0 - on_line)
        high = _ramp(grip[2] - push_z, self.LIFT - 0.035, self.LIFT - 0.01)
        xy_scale = 1.0 - lift * (1.0 - high)
        approach_xy = grip[:2] + xy_scale * (behind - grip[:2])
        approach_z = push_z + lift * self.LIFT

        # Push: stay on the block->goal line and advance by a fraction of the remaining
        # distance, so the speed (and the block's slide after contact) falls to zero
        # as the block reaches the goal.
        push_xy = obj[:2] + (self.PUSH_FRAC * dist - self.CONTACT) * u

        # Near the goal u is ill-defined: stop pushing once the block is there, and do
        # not walk around the block to fix an error already well inside the tolerance.
        push = np.append(push_xy - grip[:2], push_z - grip[2]) * _ramp(dist, 0.008, 0.015)
        approach = np.append(approach_xy - grip[:2], approach_z - grip[2]) * _ramp(dist, 0.02, 0.035)
        delta = aligned * push + (1 - aligned) * approach
        return _action(delta, self.GAIN)


def _seg_dist(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> float:
    """Distance from point p to segment a-b (2-D)."""
    ab = b - a
    t = float(np.clip((p - a) @ ab / max(ab @ ab, 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + t * ab - p))


class PickAndPlaceExpert(_Expert):
    """Hover over the block with open fingers, descend, close, carry it to the goal."""

    HOVER = 0.06  # height above the block centre while lining up (fingertips clear it)
    CARRY_LIFT = 0.04  # keep the block this far off the table until it is over the goal
    REST_Z = 0.425  # block centre height when it rests on the table
    GAIN = 1.5

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        ob = obs["observation"]
        grip, obj, goal = ob[0:3], ob[3:6], obs["desired_goal"]
        width = float(ob[9] + ob[10])  # ~0.1 open, ~0.048 on the block, ~0 empty
        rel = obj - grip
        dxy, dz = float(np.linalg.norm(rel[:2])), float(rel[2])

        # Close when the block is centred between the open fingers; keep closing while
        # fingers are shut at block width with the block still between them, so a block
        # that shifts a little in the hand is not dropped.
        centred = _ramp(dxy, 0.02, 0.01) * _ramp(abs(dz), 0.02, 0.01)
        # Fingers reach 0.019 m below the grip site and 0.06 m above it.
        between = _ramp(dxy, 0.04, 0.03) * _ramp(dz, -0.045, -0.035) * _ramp(dz, 0.06, 0.05)
        held = between * _ramp(width, 0.08, 0.065) * _ramp(width, 0.02, 0.03)
        close = max(centred, held)

        # Reach: line up above the block first, descend as the xy error vanishes.
        reach = rel + np.array([0.0, 0.0, self.HOVER * _ramp(dxy, 0.01, 0.03)])
        # Carry: move so that the block (not the gripper) goes to the goal, lifted off
        # the table on the way so it does not drag.
        to_goal = float(np.linalg.norm(goal[:2] - obj[:2]))
        carry_z = max(goal[2], self.REST_Z + self.CARRY_LIFT * _ramp(to_goal, 0.02, 0.05))
        carry = np.append(goal[:2], carry_z) - obj
        delta = held * carry + (1 - held) * reach
        return _action(delta, self.GAIN, grip=1.0 - 2.0 * close)
