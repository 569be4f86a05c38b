"""Scripted bimanual experts: grasp-point waypoints for both arms, executed through each arm's inverse
kinematics as 14-d joint-position actions.

An episode is a list of phases. Each phase gives, per arm, a target pose computed from the objects' current
poses (so a grasp follows the object where it really is) and a duration; the commanded pose moves linearly
from where the previous phase left it to that target, and the inverse kinematics start from the previous
solution, so the joint commands are smooth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import mujoco
import numpy as np

from .env import assets_dir
from .ik import ArmIK, rotation

DOWN = np.pi / 2  # pitch of a gripper pointing straight down
TIP_CLEARANCE = 0.031  # lowest grasp-point height: the fingertips stay 2 mm above the table


@dataclass(frozen=True)
class Command:
    """One arm's commanded grasp point (world xyz), gripper orientation and opening (0 closed, 1 open)."""

    xyz: np.ndarray
    yaw: float
    pitch: float
    roll: float
    grip: float

    def toward(self, target: "Command", share: float, heading: Callable[[np.ndarray], float]) -> "Command":
        """The command ``share`` of the way to ``target``. Yaw moves relative to the arm's heading (the
        direction from its base to the grasp point): a level gripper turns only with the waist, so a yaw held
        fixed while the waist turns would have the IK roll the forearm and bend the wrist sideways instead."""
        mix = lambda a, b: a + share * (b - a)
        twist = lambda c: wrap(c.yaw - heading(c.xyz))
        xyz = mix(self.xyz, target.xyz)
        return Command(xyz, heading(xyz) + mix(twist(self), twist(target)), mix(self.pitch, target.pitch),
                       mix(self.roll, target.roll), mix(self.grip, target.grip))


def wrap(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


# A phase: its duration in steps and, per arm, the target given the objects' poses and the arm's command
# at the phase's start (None keeps the arm where it is).
Target = Callable[[dict, Command], Command] | None


@dataclass(frozen=True)
class Phase:
    steps: int
    left: Target = None
    right: Target = None


def _object_poses(objects: np.ndarray, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (position, rotation matrix) from the observation's stacked (xyz, quaternion) rows."""
    poses = {}
    for i, name in enumerate(names):
        row = np.asarray(objects[7 * i: 7 * i + 7], dtype=np.float64)
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, row[3:] / np.linalg.norm(row[3:]))
        poses[name] = (row[:3], rot.reshape(3, 3))
    return poses


class BimanualExpert:
    def __init__(self, task, rng: np.random.Generator):
        self.task = task  # the experts are deterministic: rng is part of the interface only
        model = mujoco.MjModel.from_xml_path(str(assets_dir() / task.xml))
        self.ik = (ArmIK(model, "left"), ArmIK(model, "right"))
        self.reset()

    def reset(self) -> None:
        self.phases = self.task.expert_phases()  # fresh: a phase may remember what it measured
        self.t = 0
        self.joints = None  # the last IK solutions, per arm
        self.commands = None  # per arm: the command now
        self.phase_starts = None  # per arm: the command the current phase started from
        self.phase_index = -1

    def _start(self, obs) -> None:
        joints = np.asarray(obs["joints"], dtype=np.float64)
        self.joints = [joints[0:6].copy(), joints[7:13].copy()]
        self.commands = []
        for arm, (ik, yaw) in enumerate(zip(self.ik, (0.0, np.pi))):  # at rest the arms face +x and -x
            xyz, rot = ik.tcp(self.joints[arm])
            pitch = -np.arcsin(np.clip(rot[2, 0], -1, 1))  # START_ARM's grippers point along +-x, tilted
            self.commands.append(Command(xyz, yaw, pitch, 0.0, float(joints[7 * arm + 6])))

    def act(self, obs) -> np.ndarray:
        if self.joints is None:
            self._start(obs)
        poses = _object_poses(obs["objects"], self.task.object_bodies)
        elapsed, index = self.t, 0
        while index < len(self.phases) and elapsed >= self.phases[index].steps:
            elapsed -= self.phases[index].steps
            index += 1
        if index != self.phase_index:  # a new phase starts from the commands reached
            self.phase_index, self.phase_starts = index, list(self.commands)
        if index < len(self.phases):
            phase = self.phases[index]
            share = (elapsed + 1) / phase.steps
            for arm, target in enumerate((phase.left, phase.right)):
                if target is not None:
                    start = self.phase_starts[arm]
                    self.commands[arm] = start.toward(target(poses, start), share, self.ik[arm].heading)
        action = []
        for arm in range(2):
            c = self.commands[arm]
            self.joints[arm] = self.ik[arm].solve(self.joints[arm], c.xyz, rotation(c.yaw, c.pitch, c.roll))
            action.append(np.r_[self.joints[arm], c.grip])
        self.t += 1
        return np.concatenate(action).astype(np.float32)


def above_table(xyz: np.ndarray) -> np.ndarray:
    """``xyz`` raised where needed so the fingertips of a gripper pointing down stay clear of the table."""
    return np.r_[xyz[:2], max(xyz[2], TIP_CLEARANCE)]


def at(xyz, yaw: float, pitch: float, grip: float, roll: float = 0.0) -> Command:
    return Command(np.asarray(xyz, dtype=np.float64), yaw, pitch, roll, grip)


def grip(opening: float) -> Callable[[dict, Command], Command]:
    return lambda poses, start: replace(start, grip=opening)


def transfer_cube_phases() -> list[Phase]:
    meet = np.array([0.0, 0.5, 0.22])
    cube = lambda poses: poses["box"][0]
    # the right gripper holds the cube from above by its +x half, leaving the -x half to the left gripper,
    # which comes in level, rolled a quarter turn so its fingers close on the cube's top and bottom faces
    right_grasp = np.array([0.008, 0.0, 0.012])
    left_grasp = np.array([-0.024, 0.0, 0.0])
    return [
        Phase(70, right=lambda p, s: at(cube(p) + right_grasp + [0, 0, 0.10], np.pi, DOWN, 1.0)),
        Phase(40, right=lambda p, s: at(above_table(cube(p) + right_grasp), np.pi, DOWN, 1.0)),
        Phase(25, right=grip(0.0)),
        Phase(60, left=lambda p, s: at(meet + left_grasp + [-0.10, 0, 0], 0.0, 0.0, 1.0, roll=np.pi / 2),
              right=lambda p, s: at(meet + right_grasp, np.pi, DOWN, 0.0)),
        Phase(40, left=lambda p, s: at(cube(p) + left_grasp, 0.0, 0.0, 1.0, roll=np.pi / 2)),
        Phase(25, left=grip(0.0)),
        Phase(20, right=grip(1.0)),
        Phase(40, left=lambda p, s: replace(s, xyz=s.xyz + [-0.05, 0, 0]),
              right=lambda p, s: replace(s, xyz=s.xyz + [0.0, 0, 0.08])),
    ]


def insertion_phases() -> list[Phase]:
    socket_at = np.array([-0.08, 0.5, 0.22])  # where the left arm holds the socket's centre for the insertion
    depth = 0.015  # how far the peg goes in (the socket's pin stops it at 0.02)
    reach = 0.06 + 0.06  # socket centre to peg centre when the peg's end is at the socket's mouth
    above = np.array([0.0, 0.0, 0.10])
    grasp_above = np.array([0.0, 0.0, 0.012])  # grasp points above each object's centre

    def hold(name: str, centre, yaw: float):
        """Carry object ``name`` (closed gripper) so its centre goes to ``centre(poses)``; the grasp point's
        offset from the object is measured at the phase's first step, once the arm has come to rest."""
        held = {}

        def target(poses, start):
            held.setdefault("offset", start.xyz - poses[name][0])
            return at(centre(poses) + held["offset"], yaw, DOWN, 0.0)
        return target

    peg_goal = lambda gap: lambda p: p["socket"][0] + p["socket"][1][:, 0] * (reach - depth + gap)

    return [
        Phase(70, left=lambda p, s: at(p["socket"][0] + grasp_above + above, 0.0, DOWN, 1.0),
              right=lambda p, s: at(p["peg"][0] + grasp_above + above, np.pi, DOWN, 1.0)),
        Phase(40, left=lambda p, s: at(above_table(p["socket"][0] + grasp_above), 0.0, DOWN, 1.0),
              right=lambda p, s: at(above_table(p["peg"][0] + grasp_above), np.pi, DOWN, 1.0)),
        Phase(25, left=grip(0.0), right=grip(0.0)),
        Phase(70, left=hold("socket", lambda p: socket_at, 0.0), right=hold("peg", peg_goal(0.04), np.pi)),
        Phase(15),
        Phase(30, right=hold("peg", peg_goal(0.03), np.pi)),  # re-measures the grasp: corrects the offset left by the carrying
        Phase(15),
        Phase(60, right=hold("peg", peg_goal(0.0), np.pi)),
    ]
