"""End-effector commands -> ALOHA actions: a target grasp-point pose per arm, moved by the commands and turned
into joint targets by the arm's inverse kinematics (``ik.py``, as the scripted expert does)."""

from __future__ import annotations

import numpy as np

from .env import CONTROL_HZ
from .expert import TIP_CLEARANCE
from .ik import ArmIK

# A full command moves the grasp point 3 mm and turns the gripper 1.1 degrees per 50 Hz tick: slow enough to line
# a 4 cm cube up between the fingers by keyboard, fast enough to cross the 0.4 m between the cubes' area and the
# hand-over point in under 3 s and turn the gripper a quarter turn in 1.6 s.
SPEED = 0.15  # m/s
ANGULAR_SPEED = 1.0  # rad/s
# Where the grasp points may go (world, m): above the table with a downward gripper's fingertips clear of it
# (the expert's TIP_CLEARANCE), over the table and within the arms' reach. Poses in the box that an arm cannot
# reach are caught by the IK check below.
WORKSPACE_LOW = np.array([-0.45, 0.1, TIP_CLEARANCE])
WORKSPACE_HIGH = np.array([0.45, 0.9, 0.5])
# A target the IK misses by more than this (out of reach, or a joint at its limit) is replaced by the pose the
# IK did reach, so a command held against the limit stops the arm there instead of winding the target up.
REACHED_POSITION = 1e-3  # m
REACHED_ANGLE = 1e-2  # rad
# The expert's IK pulls the forearm roll towards 0 with weight 1e-3 (one IK branch for all its demonstrations).
# Near the rest pose, whose wrist is almost straight, that pull leaves the IK 3 mm off a target turned 0.02 rad
# about the vertical: more than REACHED_POSITION, so every tick of a turn would give way to it and drag the
# grasp point sideways. A command moves the target a step from the last solution, so the branch is kept by
# continuity; a weight of 1e-5 still stops the forearm roll and wrist rotation drifting apart, 0.1 mm off.
REST_WEIGHT = 1e-5
ARMS = ("left", "right")


def axis_angle(rotation_vector: np.ndarray) -> np.ndarray:
    """The rotation matrix of a rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(rotation_vector))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rotation_vector / angle
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * k @ k


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two rotation matrices."""
    return float(np.arccos(np.clip((np.trace(a.T @ b) - 1.0) / 2.0, -1.0, 1.0)))


def orthonormal(rot: np.ndarray) -> np.ndarray:
    """The rotation nearest ``rot`` (removes the rounding that repeated products accumulate)."""
    u, _, vt = np.linalg.svd(rot)
    return u @ vt


class AlohaController:
    """Keeps per arm a target grasp-point pose and joint targets, both taken from the measured joints on
    ``reset()``. Each tick moves the commanded arm's target by ``translation * SPEED / fps`` and turns it about
    the world axes by ``rotation * ANGULAR_SPEED / fps`` (about the grasp point), solves the IK from that arm's
    joint targets, and sets its gripper to the command's opening (-1 closed .. 1 open -> the action's 0 .. 1, the
    expert's range). The other arm's joint and gripper targets stay as they were."""

    def __init__(self, env):
        self.env = env.unwrapped
        self.ik = tuple(ArmIK(self.env.model, arm) for arm in ARMS)  # own MjData: the env's data is not touched
        for ik in self.ik:
            ik.rest_weights = np.where(ik.rest_weights > 0, REST_WEIGHT, 0.0)
        self.step, self.turn = SPEED / CONTROL_HZ, ANGULAR_SPEED / CONTROL_HZ
        self.reset()

    def reset(self) -> None:
        joints = self.env.joints().astype(np.float64)
        self.joints = [joints[0:6].copy(), joints[7:13].copy()]
        self.grips = [float(joints[6]), float(joints[13])]
        self.poses = [self.ik[arm].tcp(self.joints[arm]) for arm in range(2)]

    def __call__(self, command) -> np.ndarray:
        arm = int(command.arm)
        if arm not in (0, 1):
            raise ValueError(f"ALOHA has arms 0 (left) and 1 (right), got arm {arm}")
        ik = self.ik[arm]
        position, rot = self.poses[arm]
        translation = np.clip(np.asarray(command.translation, dtype=np.float64), -1.0, 1.0)
        rotation = np.clip(np.asarray(command.rotation, dtype=np.float64), -1.0, 1.0)
        position = np.clip(position + translation * self.step, WORKSPACE_LOW, WORKSPACE_HIGH)
        rot = orthonormal(axis_angle(rotation * self.turn) @ rot)
        joints = ik.solve(self.joints[arm], position, rot)
        reached, reached_rot = ik.tcp(joints)
        if (np.linalg.norm(reached - position) > REACHED_POSITION
                or rotation_angle(reached_rot, rot) > REACHED_ANGLE):
            position, rot = reached, reached_rot
        self.poses[arm], self.joints[arm] = (position, rot), joints
        self.grips[arm] = (float(np.clip(command.gripper, -1.0, 1.0)) + 1.0) / 2.0
        return np.r_[self.joints[0], self.grips[0], self.joints[1], self.grips[1]].astype(np.float32)

    def grippers(self, action: np.ndarray) -> tuple[float, float]:
        """The opening (-1 closed .. 1 open) each arm's gripper is commanded to by ``action``."""
        return 2.0 * float(action[6]) - 1.0, 2.0 * float(action[13]) - 1.0
