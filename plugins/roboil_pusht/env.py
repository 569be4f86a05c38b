"""PushT (diffusion_policy benchmark) rebuilt in MuJoCo: push a T block onto a fixed target pose."""

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import shapely
from gymnasium import spaces
from shapely.geometry import Polygon

from roboil import CameraRendering

XML_PATH = Path(__file__).resolve().parents[2] / "assets" / "pusht" / "pusht.xml"

# Geometry shared with the expert; must match pusht.xml.
WORKSPACE = 0.4  # pusher centre moves in [-WORKSPACE, WORKSPACE]^2
PUSHER_RADIUS = 0.025
# T outline in the block frame (CCW): bar x in [-0.1, 0.1], y in [0.015, 0.065]; stem 0.05 wide below it.
T_VERTS = np.array([[-0.1, 0.015], [-0.025, 0.015], [-0.025, -0.135], [0.025, -0.135],
                    [0.025, 0.015], [0.1, 0.015], [0.1, 0.065], [-0.1, 0.065]])
TARGET_POSE = np.array([0.0, 0.0, np.pi / 4])
SUCCESS_COVERAGE = 0.95


def wrap_angle(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def t_corners(pose) -> np.ndarray:
    """(8, 2) corners of the T placed at pose (x, y, yaw) in the world frame."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return T_VERTS @ np.array([[c, s], [-s, c]]) + np.asarray(pose[:2])


def t_polygon(pose) -> Polygon:
    """T outline placed at pose (x, y, yaw) in the world frame."""
    return Polygon(t_corners(pose))


TARGET_POLY = t_polygon(TARGET_POSE)


def coverage(pose) -> float:
    """Area of (T at pose) ∩ (target T) / area of target T, as in diffusion_policy."""
    return float(shapely.intersection(t_polygon(pose), TARGET_POLY).area / TARGET_POLY.area)


class PushTEnv(CameraRendering, gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    render_camera = "top"

    # No time limit of its own: the task declares MAX_EPISODE_STEPS and the core applies it, so `roboil eval
    # --max-steps` can lengthen episodes (a limit in here would silently cap every longer one).
    def __init__(self, render_mode=None, render_size=(240, 240)):
        assert render_mode is None or render_mode in self.metadata["render_modes"]
        self.render_mode = render_mode
        # (height, width); an int means square.
        self.render_size = (render_size, render_size) if np.isscalar(render_size) else tuple(render_size)
        self.model = mujoco.MjModel.from_xml_path(str(XML_PATH))
        self.data = mujoco.MjData(self.model)
        # 10 Hz control: integrate 0.1 s of physics per step.
        self.n_substeps = int(round(1.0 / self.metadata["render_fps"] / self.model.opt.timestep))
        jnt = lambda name: self.model.joint(name).qposadr[0]
        self._block_adr = [jnt("block_x"), jnt("block_y"), jnt("block_yaw")]
        self._pusher_adr = [jnt("pusher_x"), jnt("pusher_y")]

        self.action_space = spaces.Box(-WORKSPACE, WORKSPACE, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Dict({
            "agent_pos": spaces.Box(-WORKSPACE, WORKSPACE, shape=(2,), dtype=np.float32),
            # (x, y, cos, sin): an angle would jump by 2 pi at the wrap, which a learned policy takes literally
            "block_pose": spaces.Box(np.array([-1, -1, -1, -1], np.float32),
                                     np.array([1, 1, 1, 1], np.float32), dtype=np.float32),
            # The T's 8 corners in the world frame, flattened (x0, y0, x1, ...), as diffusion_policy's low-dim
            # PushT: a contact point on the block is a linear function of them, not a product of cos/sin and x/y.
            "block_keypoints": spaces.Box(-1, 1, shape=(2 * len(T_VERTS),), dtype=np.float32),
        })

    # -- state access -------------------------------------------------------------------------
    def _block_pose(self):
        x, y, a = self.data.qpos[self._block_adr]
        return np.array([x, y, wrap_angle(a)])

    def _obs(self):
        pose = self._block_pose()
        x, y, angle = pose
        return {"agent_pos": self.data.qpos[self._pusher_adr].astype(np.float32),
                "block_pose": np.array([x, y, np.cos(angle), np.sin(angle)], dtype=np.float32),
                "block_keypoints": t_corners(pose).ravel().astype(np.float32)}

    def _info(self):
        cov = coverage(self._block_pose())
        return {"is_success": bool(cov >= SUCCESS_COVERAGE), "coverage": cov}

    # -- gym API ------------------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng = self.np_random
        while True:
            # As diffusion_policy: agent almost anywhere, block in the middle ~55% (so the pusher
            # fits between it and the walls), any angle. Reject starts near the goal (coverage
            # >= 0.5 or centre within 5 cm) and ones with the pusher on the block.
            agent = rng.uniform(-0.85 * WORKSPACE, 0.85 * WORKSPACE, size=2)
            block = np.r_[rng.uniform(-0.22, 0.22, size=2), rng.uniform(-np.pi, np.pi)]
            poly = t_polygon(block)
            if (coverage(block) < 0.5 and np.linalg.norm(block[:2] - TARGET_POSE[:2]) > 0.05
                    and poly.distance(shapely.Point(agent)) > PUSHER_RADIUS + 0.01):
                break
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._block_adr] = block
        self.data.qpos[self._pusher_adr] = agent
        self.data.ctrl[:] = agent
        mujoco.mj_forward(self.model, self.data)
        return self._obs(), self._info()

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -WORKSPACE, WORKSPACE)
        self.data.ctrl[:] = action
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        info = self._info()
        reward = min(info["coverage"] / SUCCESS_COVERAGE, 1.0)
        terminated = info["is_success"]
        return self._obs(), reward, terminated, False, info
