"""Inverse kinematics of one ViperX arm: damped least squares on a kinematics-only copy of the model."""

from __future__ import annotations

import mujoco
import numpy as np

from .env import ARM_JOINTS

TCP_OFFSET = np.array([0.125, 0.0, 0.0])  # the grasp point between the fingers, in the gripper link's frame


def rotation(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """World rotation of a gripper frame: yaw about z, then pitch about the new y (positive tips x downward),
    then roll about the new x."""
    cz, sz, cy, sy, cx, sx = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return rz @ ry @ rx


class ArmIK:
    def __init__(self, model: mujoco.MjModel, arm: str):
        self.model, self.data = model, mujoco.MjData(model)
        joints = [model.joint(f"vx300s_{arm}/{j}") for j in ARM_JOINTS]
        self.qpos_adr = np.array([j.qposadr[0] for j in joints])
        self.dof_adr = np.array([j.dofadr[0] for j in joints])
        self.low = np.array([j.range[0] for j in joints])
        self.high = np.array([j.range[1] for j in joints])
        # The forearm may roll half a turn and the wrist turn back by as much: the same grasp on another IK
        # branch. Demonstrations split between branches give a policy actions far apart for one state, so a weak
        # pull keeps the forearm roll near its rest pose (see solve), and every solution on one branch.
        self.rest_weights = np.zeros(6)
        self.rest_weights[ARM_JOINTS.index("forearm_roll")] = 1e-3
        self.body = model.body(f"vx300s_{arm}/gripper_link").id
        self.base = model.body(f"vx300s_{arm}").pos[:2].copy()  # a child of the world: its pos is in the world

    def heading(self, xyz: np.ndarray) -> float:
        """The direction (yaw) from the arm's base to ``xyz``."""
        return float(np.arctan2(xyz[1] - self.base[1], xyz[0] - self.base[0]))

    def _forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # mj_jac reads the motion axes it computes
        rot = self.data.xmat[self.body].reshape(3, 3)
        return self.data.xpos[self.body] + rot @ TCP_OFFSET, rot.copy()

    def tcp(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Position and rotation of the grasp point for joint angles ``q``."""
        return self._forward(np.asarray(q, dtype=np.float64))

    def solve(self, q: np.ndarray, position: np.ndarray, rot: np.ndarray, iterations: int = 30,
              damping: float = 1e-2) -> np.ndarray:
        """Joint angles that put the grasp point at ``position`` with rotation ``rot``, starting from ``q``."""
        q = np.asarray(q, dtype=np.float64).copy()
        jacp, jacr = np.zeros((3, self.model.nv)), np.zeros((3, self.model.nv))
        for _ in range(iterations):
            pos, cur = self._forward(q)
            # orientation error: half the sum of the axis cross products (small-angle rotation vector)
            error = np.r_[position - pos, 0.5 * np.cross(cur, rot, axis=0).sum(axis=1)]
            if np.abs(error).max() < 1e-5:
                break
            mujoco.mj_jac(self.model, self.data, jacp, jacr, pos, self.body)
            jac = np.r_[jacp[:, self.dof_adr], jacr[:, self.dof_adr]]
            # damped least squares, plus a weak pull of the forearm roll back to zero: with the wrist straight the
            # forearm roll and the wrist rotation turn about one axis, and without it they drift apart in
            # opposite directions
            lhs = jac.T @ jac + damping ** 2 * np.eye(6) + np.diag(self.rest_weights)
            step = np.linalg.solve(lhs, jac.T @ error - self.rest_weights * q)
            q = np.clip(q + step, self.low, self.high)
        return q
