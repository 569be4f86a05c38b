"""The two ALOHA tasks: where their objects start and their strict success tests."""

from __future__ import annotations

import numpy as np

from .env import TABLE_TOP, TOUCH, Scene, finger_geoms

LIFT = 0.03  # an object counts as lifted when its centre is this far above where it rests on the table
UPRIGHT = np.array([1.0, 0.0, 0.0, 0.0])


def _rests_at(half_height: float) -> float:
    return TABLE_TOP + half_height


def _lifted(scene: Scene, body: str, half_height: float) -> bool:
    return bool(scene.data.body(body).xpos[2] > _rests_at(half_height) + LIFT)


class TransferCube:
    """The right arm picks the cube up and hands it to the left arm. Success: the cube is off the table, gripped
    between both fingers of the left gripper (each within ``TOUCH``, the cube's centre between them and in their
    plane, so a cube lying across the fingers is not gripped) and touches nothing but the left arm."""

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

    def lifted(self, scene: Scene) -> float:
        return float(_lifted(scene, "box", self.cube_half))

    def gripped_by_left(self, scene: Scene) -> bool:
        cube = scene.geom["red_box"]
        if any(scene.gap(cube, scene.geom[finger]) > TOUCH for finger in finger_geoms("left")):
            return False
        # in the gripper's frame the fingers close along y; its fingers' plane is z = 0
        centre = scene.in_frame("vx300s_left/gripper_link", scene.data.body("box").xpos)
        fingers = [scene.in_frame("vx300s_left/gripper_link", scene.data.body(f"vx300s_left/{side}_finger_link").xpos)
                   for side in ("left", "right")]
        low, high = sorted(f[1] for f in fingers)
        return bool(low < centre[1] < high and abs(centre[2]) < self.cube_half)

    def is_success(self, scene: Scene) -> bool:
        return (self.lifted(scene) == 1.0
                and not scene.touching({scene.geom["red_box"]}) - scene.arm_geoms["left"]
                and self.gripped_by_left(scene))


class Insertion:
    """The left arm picks the socket up, the right arm the peg, and they insert the peg into the socket in the
    air. Success: both are off the table and the peg's end is at least ``depth`` inside the socket's tube,
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
    depth = 0.01
    aligned = np.cos(np.deg2rad(20))  # the largest angle between the peg's axis and the socket's

    def sample_objects(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        peg = rng.uniform([0.1, 0.4], [0.2, 0.6])
        socket = rng.uniform([-0.2, 0.4], [-0.1, 0.6])
        return {"red_peg_joint": np.r_[peg, _rests_at(self.peg_half_height), UPRIGHT],
                "blue_socket_joint": np.r_[socket, _rests_at(self.socket_half_height), UPRIGHT]}

    def expert_phases(self):
        from .expert import insertion_phases

        return insertion_phases()

    def lifted(self, scene: Scene) -> float:
        return (_lifted(scene, "peg", self.peg_half_height) + _lifted(scene, "socket", self.socket_half_height)) / 2

    def inserted(self, scene: Scene) -> bool:
        socket_rot = scene.data.body("socket").xmat.reshape(3, 3)
        peg_axis = scene.data.body("peg").xmat.reshape(3, 3)[:, 0]
        if abs(peg_axis @ socket_rot[:, 0]) < self.aligned:
            return False
        ends = scene.data.body("peg").xpos + np.outer([-1, 1], peg_axis) * self.peg_half_length
        local = scene.in_frame("socket", ends)  # both ends in the socket's frame
        end = local[np.argmin(np.abs(local[:, 0]))]  # the end nearer the socket's centre
        lateral = self.socket_inner_half - self.peg_half_width + 0.002
        return bool(abs(end[0]) <= self.socket_half_length - self.depth
                    and abs(end[1]) <= lateral and abs(end[2]) <= lateral)

    def is_success(self, scene: Scene) -> bool:
        objects = {scene.geom[name] for name in ("red_peg", "socket-1", "socket-2", "socket-3", "socket-4", "pin")}
        return (self.lifted(scene) == 1.0
                and scene.geom["table"] not in scene.touching(objects)
                and self.inserted(scene))


TASKS = {"transfer-cube": TransferCube, "insertion": Insertion}
