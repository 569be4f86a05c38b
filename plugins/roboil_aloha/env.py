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

from roboil import CameraRendering, RoboilError

CONTROL_HZ = 50
ARMS = ("left", "right")
ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
START_ARM = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # joint angles of both arms at reset
TABLE_TOP = 0.0  # the table mesh's top face is at z = 0
TOUCH = 0.001  # geoms closer than this touch (contacts of one physics step come and go between mesh hulls)
# MuJoCo resets a diverged simulation to the model's default state and goes on; these count the divergences
DIVERGED = (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC)


def assets_dir() -> Path:
    # located without importing gym_aloha: its __init__ registers gym envs we do not use
    spec = importlib.util.find_spec("gym_aloha")
    if spec is None:
        raise RoboilError("the ALOHA tasks need the gym-aloha package for their models; pip install gym-aloha==0.1.5")
    return Path(next(iter(spec.submodule_search_locations))) / "assets"


def finger_geoms(arm: str) -> tuple[str, str]:
    return (f"vx300s_{arm}/10_left_gripper_finger", f"vx300s_{arm}/10_right_gripper_finger")


class Scene:
    """Geometry queries on an ALOHA model's current state, for success tests; names are resolved once."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.model, self.data = model, data
        names = [model.geom(i).name for i in range(model.ngeom)]
        self.geom = {name: i for i, name in enumerate(names)}
        self.arm_geoms = {arm: {i for i, n in enumerate(names) if n.startswith(f"vx300s_{arm}/")} for arm in ARMS}

    def touching(self, geoms: set[int]) -> set[int]:
        """Every geom in contact with one of ``geoms`` (not themselves)."""
        out = set()
        for contact in self.data.contact[: self.data.ncon]:
            pair = {contact.geom1, contact.geom2}
            if pair & geoms:
                out |= pair - geoms
        return out

    def gap(self, a: int, b: int) -> float:
        """Signed distance between two geoms (negative when they overlap), up to 1 cm."""
        return mujoco.mj_geomDistance(self.model, self.data, a, b, 0.01, None)

    def in_frame(self, body: str, point: np.ndarray) -> np.ndarray:
        """``point`` (world) in the frame of ``body``."""
        frame = self.data.body(body)
        return (np.asarray(point) - frame.xpos) @ frame.xmat.reshape(3, 3)


class AlohaEnv(CameraRendering, gym.Env):
    """One ALOHA task: ``task`` gives the scene, the object start poses and the success test."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    render_camera = "top"

    def __init__(self, task, render_mode=None, render_size=(240, 320)):
        assert render_mode is None or render_mode in self.metadata["render_modes"]
        self.task, self.render_mode, self.render_size = task, render_mode, tuple(render_size)
        self.model = mujoco.MjModel.from_xml_path(str(assets_dir() / task.xml))
        self.data = mujoco.MjData(self.model)
        self.n_substeps = int(round(1.0 / CONTROL_HZ / self.model.opt.timestep))
        joint = lambda name: self.model.joint(name).qposadr[0]
        self.arm_qpos = np.array([[joint(f"vx300s_{arm}/{j}") for j in ARM_JOINTS] for arm in ARMS])
        # each gripper's two fingers slide in opposite directions; the opening in [0, 1] spans the model's range
        self.finger_qpos = np.array([[joint(f"vx300s_{arm}/{f}_finger") for f in ("left", "right")] for arm in ARMS])
        self.finger_range = self.model.joint("vx300s_left/left_finger").range.copy()
        self.object_qpos = {name: joint(name) for name in task.object_joints}
        self.scene = Scene(self.model, self.data)

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

    def finger(self, opening):
        """The left finger's slide position for a gripper opening (0 closed, 1 open); the right one's is minus it."""
        low, high = self.finger_range
        return low + np.clip(opening, 0.0, 1.0) * (high - low)

    def joints(self) -> np.ndarray:
        qpos, (low, high) = self.data.qpos, self.finger_range
        per_arm = [np.r_[qpos[self.arm_qpos[a]], (qpos[self.finger_qpos[a, 0]] - low) / (high - low)] for a in range(2)]
        return np.concatenate(per_arm).astype(np.float32)

    def _obs(self):
        objects = [self.data.qpos[adr: adr + 7] for adr in self.object_qpos.values()]
        return {"joints": self.joints(), "objects": np.concatenate(objects).astype(np.float32)}

    def _info(self):
        return {"is_success": bool(self.task.is_success(self.scene)), "lifted": self.task.lifted(self.scene)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        for a in range(2):
            self.data.qpos[self.arm_qpos[a]] = START_ARM
        self.data.qpos[self.finger_qpos] = self.finger(1.0) * np.array([1.0, -1.0])
        for name, pose in self.task.sample_objects(self.np_random).items():
            self.data.qpos[self.object_qpos[name]: self.object_qpos[name] + 7] = pose
        self._set_ctrl(np.r_[START_ARM, 1.0, START_ARM, 1.0])
        mujoco.mj_forward(self.model, self.data)
        return self._obs(), self._info()

    def _set_ctrl(self, action):
        action = np.asarray(action, dtype=np.float64)
        for a in range(2):
            arm = action[7 * a: 7 * a + 6]
            finger = self.finger(action[7 * a + 6])
            self.data.ctrl[8 * a: 8 * a + 8] = np.r_[arm, finger, -finger]

    def _divergences(self) -> int:
        return sum(self.data.warning[w].number for w in DIVERGED)

    def step(self, action):
        self._set_ctrl(np.clip(action, self.action_space.low, self.action_space.high))
        before = self._divergences()
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        if self._divergences() > before:  # the state is the model's default now, not the episode's: it ends, failed
            return self._obs(), 0.0, True, False, {"is_success": False, "lifted": 0.0, "diverged": True}
        info = self._info()
        return self._obs(), float(info["is_success"]), False, False, info
