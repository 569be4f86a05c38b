"""The bimanual ALOHA scenes (two ViperX 300s arms) driven with ``mujoco`` directly.

The models are the ones gym-aloha ships (read from its package directory; gym-aloha's own env goes through
dm_control and renders 480x640 on every step, about 5 steps/s on CPU, so it is not used). Control is 50 Hz:
each step holds a 14-d joint-position target (6 arm joints and a gripper opening in [0, 1] per arm, left
then right) for 10 physics steps of 2 ms.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

CONTROL_HZ = 50
ARMS = ("left", "right")
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
# finger slide positions for gripper openings 0 (closed) and 1 (open), as the ALOHA puppet grippers
FINGER_CLOSED, FINGER_OPEN = 0.01844, 0.05800
START_ARM = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # joint angles of both arms at reset
TABLE_TOP = 0.0  # the table mesh's top face is at z = 0


def assets_dir() -> Path:
    # located without importing gym_aloha: its __init__ registers gym envs we do not use
    spec = importlib.util.find_spec("gym_aloha")
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def gripper_to_finger(opening):
    return FINGER_CLOSED + np.asarray(opening) * (FINGER_OPEN - FINGER_CLOSED)


def finger_to_gripper(finger):
    return (np.asarray(finger) - FINGER_CLOSED) / (FINGER_OPEN - FINGER_CLOSED)


class Contacts:
    """Which named geoms touch in the current state."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        names = [model.geom(i).name for i in range(model.ngeom)]
        self.pairs = {frozenset((names[c.geom1], names[c.geom2])) for c in data.contact[: data.ncon]}

    def touch(self, a: str, b: str) -> bool:
        return frozenset((a, b)) in self.pairs

    def touch_any(self, geoms_a, geoms_b) -> bool:
        return any(self.touch(a, b) for a in geoms_a for b in geoms_b)


def arm_geoms(model: mujoco.MjModel, arm: str) -> list[str]:
    return [model.geom(i).name for i in range(model.ngeom) if model.geom(i).name.startswith(f"vx300s_{arm}/")]


def finger_geoms(arm: str) -> tuple[str, str]:
    return (f"vx300s_{arm}/10_left_gripper_finger", f"vx300s_{arm}/10_right_gripper_finger")


class AlohaEnv(gym.Env):
    """One ALOHA task: ``task`` gives the scene, the object start poses and the success test."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(self, task, render_mode=None, render_size=(240, 320)):
        assert render_mode is None or render_mode in self.metadata["render_modes"]
        self.task, self.render_mode, self.render_size = task, render_mode, tuple(render_size)
        self.model = mujoco.MjModel.from_xml_path(str(assets_dir() / task.xml))
        self.data = mujoco.MjData(self.model)
        self.n_substeps = int(round(1.0 / CONTROL_HZ / self.model.opt.timestep))
        joint = lambda name: self.model.joint(name).qposadr[0]
        self.arm_qpos = np.array([[joint(f"vx300s_{arm}/{j}") for j in ARM_JOINTS] for arm in ARMS])
        self.finger_qpos = np.array([joint(f"vx300s_{arm}/left_finger") for arm in ARMS])
        self.object_qpos = {name: joint(name) for name in task.object_joints}

        arm_low = [self.model.actuator_ctrlrange[i, 0] for i in range(6)]
        arm_high = [self.model.actuator_ctrlrange[i, 1] for i in range(6)]
        low = np.array((arm_low + [0.0]) * 2, np.float32)
        high = np.array((arm_high + [1.0]) * 2, np.float32)
        self.action_space = spaces.Box(low, high, dtype=np.float32)
        self.observation_space = spaces.Dict({
            # 6 joint angles and the gripper opening (0 closed, 1 open) per arm, left then right
            "joints": spaces.Box(-np.inf, np.inf, shape=(14,), dtype=np.float32),
            # position and unit quaternion (w, x, y, z) of each object, in the task's order
            "objects": spaces.Box(-np.inf, np.inf, shape=(7 * len(task.object_joints),), dtype=np.float32),
        })
        self._renderer = None

    def joints(self) -> np.ndarray:
        qpos = self.data.qpos
        per_arm = [np.r_[qpos[self.arm_qpos[a]], finger_to_gripper(qpos[self.finger_qpos[a]])] for a in range(2)]
        return np.concatenate(per_arm).astype(np.float32)

    def _obs(self):
        objects = [self.data.qpos[adr: adr + 7] for adr in self.object_qpos.values()]
        return {"joints": self.joints(), "objects": np.concatenate(objects).astype(np.float32)}

    def _info(self):
        return {"is_success": bool(self.task.is_success(self.model, self.data))}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        for a in range(2):
            self.data.qpos[self.arm_qpos[a]] = START_ARM
        start = gripper_to_finger(1.0)
        self.data.qpos[self.finger_qpos] = start
        self.data.qpos[self.finger_qpos + 1] = -start
        for name, pose in self.task.sample_objects(self.np_random).items():
            self.data.qpos[self.object_qpos[name]: self.object_qpos[name] + 7] = pose
        self._set_ctrl(np.r_[START_ARM, 1.0, START_ARM, 1.0])
        mujoco.mj_forward(self.model, self.data)
        return self._obs(), self._info()

    def _set_ctrl(self, action):
        action = np.asarray(action, dtype=np.float64)
        for a in range(2):
            arm = action[7 * a: 7 * a + 6]
            finger = gripper_to_finger(np.clip(action[7 * a + 6], 0.0, 1.0))
            self.data.ctrl[8 * a: 8 * a + 8] = np.r_[arm, finger, -finger]

    def step(self, action):
        self._set_ctrl(np.clip(action, self.action_space.low, self.action_space.high))
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        info = self._info()
        return self._obs(), float(info["is_success"]), False, False, info

    def render(self):
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self.render_size)
        self._renderer.update_scene(self.data, camera="top")
        return self._renderer.render()

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
