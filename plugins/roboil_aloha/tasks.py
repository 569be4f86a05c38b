"""The two ALOHA tasks: where their objects start and their strict success tests."""

from __future__ import annotations

import mujoco
import numpy as np

from .env import TABLE_TOP, Contacts, arm_geoms, finger_geoms

LIFT = 0.03  # an object counts as lifted when its centre is this far above where it rests on the table
UPRIGHT = np.array([1.0, 0.0, 0.0, 0.0])


def _rests_at(half_height: float) -> float:
    return TABLE_TOP + half_height


def _lifted(data: mujoco.MjData, body: str, half_height: float) -> bool:
    return data.body(body).xpos[2] > _rests_at(half_height) + LIFT


class TransferCube:
    """The right arm picks the cube up and hands it to the left arm. Success: the cube is off the table, held
    between both fingers of the left gripper, and touches nothing of the right arm."""

    xml = "bimanual_viperx_transfer_cube.xml"
    object_joints = ("red_box_joint",)
    object_bodies = ("box",)
    cube_half = 0.02

    def sample_objects(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        xy = rng.uniform([0.0, 0.4], [0.2, 0.6])  # the ranges of the ACT paper's scripted data
        return {"red_box_joint": np.r_[xy, _rests_at(self.cube_half), UPRIGHT]}

    def expert_phases(self):
        from .expert import transfer_cube_phases

        return transfer_cube_phases()

    def is_success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        contacts = Contacts(model, data)
        cube = ["red_box"]
        return (_lifted(data, "box", self.cube_half)
                and not contacts.touch_any(cube, ["table"])
                and all(contacts.touch("red_box", finger) for finger in finger_geoms("left"))
                and not contacts.touch_any(cube, arm_geoms(model, "right")))


class Insertion:
    """The left arm picks the socket up, the right arm the peg, and they insert the peg into the socket in the
    air. Success: both are off the table and the peg's end is at least ``DEPTH`` inside the socket's tube,
    along its axis."""

    xml = "bimanual_viperx_insertion.xml"
    object_joints = ("red_peg_joint", "blue_socket_joint")
    object_bodies = ("peg", "socket")
    peg_half_height = 0.01
    socket_half_height = 0.022  # its walls' outer faces
    peg_half_length = 0.06
    socket_half_length = 0.06
    socket_inner_half = 0.018  # the tube's inside, across
    peg_half_width = 0.01
    DEPTH = 0.01
    ALIGNED = np.cos(np.deg2rad(20))

    def sample_objects(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        peg = rng.uniform([0.1, 0.4], [0.2, 0.6])
        socket = rng.uniform([-0.2, 0.4], [-0.1, 0.6])
        return {"red_peg_joint": np.r_[peg, _rests_at(self.peg_half_height), UPRIGHT],
                "blue_socket_joint": np.r_[socket, _rests_at(self.socket_half_height), UPRIGHT]}

    def expert_phases(self):
        from .expert import insertion_phases

        return insertion_phases()

    def inserted(self, data: mujoco.MjData) -> bool:
        socket_rot = data.body("socket").xmat.reshape(3, 3)
        peg_axis = data.body("peg").xmat.reshape(3, 3)[:, 0]
        if abs(peg_axis @ socket_rot[:, 0]) < self.ALIGNED:
            return False
        ends = data.body("peg").xpos + np.outer([-1, 1], peg_axis) * self.peg_half_length
        local = (ends - data.body("socket").xpos) @ socket_rot  # both ends in the socket's frame
        end = local[np.argmin(np.abs(local[:, 0]))]  # the end nearer the socket's centre
        lateral = self.socket_inner_half - self.peg_half_width + 0.002
        return bool(abs(end[0]) <= self.socket_half_length - self.DEPTH
                    and abs(end[1]) <= lateral and abs(end[2]) <= lateral)

    def is_success(self, model: mujoco.MjModel, data: mujoco.MjData) -> bool:
        contacts = Contacts(model, data)
        socket = [f"socket-{i}" for i in range(1, 5)] + ["pin"]
        return (_lifted(data, "peg", self.peg_half_height) and _lifted(data, "socket", self.socket_half_height)
                and not contacts.touch_any(["red_peg"] + socket, ["table"])
                and self.inserted(data))


TASKS = {"transfer-cube": TransferCube, "insertion": Insertion}
