"""MuJoCo state helpers for task plugins' ``get_state``/``set_state``/``scene`` (see
:class:`roboil.specs.TaskSpec`). MuJoCo is imported on first use, so a plugin that names these at import time
costs no command that never simulates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import mujoco


def state_kind() -> int:
    """Time, qpos, qvel, act, plugin and user inputs (ctrl, applied forces, mocap, ...) and the warm start of the
    constraint solver: what mj_step reads, so a run restored from it steps exactly as the original did."""
    import mujoco

    return mujoco.mjtState.mjSTATE_INTEGRATION


def mujoco_state(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The full integration state of ``data`` as a flat float64 array."""
    import mujoco

    state = np.empty(mujoco.mj_stateSize(model, state_kind()))
    mujoco.mj_getState(model, data, state, state_kind())
    return state


def set_mujoco_state(model: mujoco.MjModel, data: mujoco.MjData, state: np.ndarray) -> None:
    """Restore a state from :func:`mujoco_state` and recompute everything derived from it (positions of bodies,
    sensors), as ``mj_forward`` does, so observations read from ``data`` match the restored state."""
    import mujoco

    state = np.asarray(state, dtype=np.float64)
    expected = mujoco.mj_stateSize(model, state_kind())
    if state.shape != (expected,):
        raise ValueError(f"a MuJoCo state of this model has {expected} numbers, got shape {state.shape}")
    mujoco.mj_setState(model, data, state, state_kind())
    mujoco.mj_forward(model, data)


def env_scene(env) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """The MuJoCo model and data of a gymnasium env that keeps them as ``model`` and ``data`` (gymnasium's
    MujocoEnv does, and so do our own scenes): a ``TaskSpec.scene`` for such tasks."""
    base = env.unwrapped
    return base.model, base.data


def env_state(env) -> np.ndarray:
    """:func:`mujoco_state` of such an env: a ``TaskSpec.get_state`` for tasks whose whole state is in MuJoCo."""
    return mujoco_state(*env_scene(env))


def restore_env_state(env, state: np.ndarray) -> None:
    """:func:`set_mujoco_state` of such an env (a task's ``set_state`` then returns its observation)."""
    set_mujoco_state(*env_scene(env), state)


def make_renderer(model: "mujoco.MjModel", height: int, width: int, setting: str) -> "mujoco.Renderer":
    """A ``mujoco.Renderer`` of ``height`` x ``width`` frames, which must fit the scene's offscreen framebuffer
    (``setting`` names where the size was chosen, for the error)."""
    import mujoco

    from .errors import RoboilError

    limit = (model.vis.global_.offheight, model.vis.global_.offwidth)
    if height > limit[0] or width > limit[1]:
        raise RoboilError(f"{setting}: {height}x{width} frames do not fit the scene's offscreen framebuffer "
                          f"({limit[0]}x{limit[1]}); use at most that, or raise offheight and offwidth in the scene's "
                          "<visual><global .../></visual>")
    renderer = mujoco.Renderer.__new__(mujoco.Renderer)
    try:
        renderer.__init__(model, height, width)
    except BaseException:  # Ctrl-C while it is made
        # its finalizer closes it, reading attributes an __init__ cut short did not set: an AttributeError's
        # traceback after the line that says what happened
        for name in ("_gl_context", "_mjr_context"):
            if not hasattr(renderer, name):
                setattr(renderer, name, None)
        raise
    return renderer


class CameraRendering:
    """``render()`` and ``close()`` for a gymnasium env that drives its own MuJoCo model (``model``, ``data``, and
    ``render_size`` as (height, width)): the scene's camera named ``render_camera`` (a class attribute the env
    sets) through one renderer, made at the first frame (it holds a GL context, which an env that never renders
    should not make). List it before ``gym.Env``."""

    render_camera: str
    _renderer = None

    def render(self) -> np.ndarray:
        if self._renderer is None:
            self._renderer = make_renderer(self.model, *self.render_size, f"{type(self).__name__}.render_size")
        self._renderer.update_scene(self.data, camera=self.render_camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
