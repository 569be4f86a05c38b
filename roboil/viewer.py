"""The teleop viewer: a window on the task's MuJoCo scene with the session's status overlaid and the keyboard
read by key state.

Drawing runs on its own thread, so the control loop keeps the task's rate whatever the viewer's frame rate:
with software OpenGL (Mesa's llvmpipe, as under Xvfb) a 960x720 frame of a Fetch scene takes about 80 ms, two
control ticks. MuJoCo's calls release the GIL, and the session steps the simulation holding ``lock``, which the
drawing thread takes only to copy the scene (``mjv_updateScene``), not while it renders.

Why not ``mujoco.viewer``: its key callback reports presses only (no holds, no releases), so a held arrow
key would move the robot in the jerky bursts of the desktop's key repeat, and most letters are its own
rendering toggles, so a control key would also flip a render flag. Here GLFW is read directly: ``held()`` is
the set of keys down now, ``pressed()`` the presses since the last call. GLFW names keys by their position on a
US keyboard whatever the layout, so the driving keys sit in the same place on every desktop; the help overlay
shows each key's label on this desktop's layout.
"""

from __future__ import annotations

import os
import threading
import time

import mujoco
import numpy as np

from .errors import RoboilError

# the keys devices may read, by the names they use
_NAMED = ("up", "down", "left", "right", "page_up", "page_down", "space", "enter", "backspace", "tab", "escape",
          "home", "end", "insert", "delete", "left_shift", "right_shift", "minus", "equal", "comma", "period")
KEY_NAMES = (*_NAMED, *"abcdefghijklmnopqrstuvwxyz", *"0123456789")


MAX_FPS = 30.0  # the drawing thread rests between frames beyond this, leaving the cores to the simulation


class Viewer:
    """``poll()`` once per control tick (window events and keys), ``show(status, help)`` to update the overlay;
    step the simulation holding ``lock``. ``closed`` once the person closes the window."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, title: str, size: tuple[int, int] = (960, 720)):
        try:
            import glfw
        except ImportError:  # a dependency of mujoco, so only a broken install lacks it
            raise RoboilError("the viewer needs the glfw package; pip install glfw") from None
        self.glfw = glfw
        glfw.ERROR_REPORTING = "ignore"  # pyGLFW would print its own warning before our one line
        if not glfw.init():
            display = os.environ.get("DISPLAY")
            raise RoboilError(f"cannot open the viewer window: no display ({'DISPLAY=' + display if display else 'DISPLAY is unset'}); "
                              "run on a desktop, under `xvfb-run`, or record with --no-viewer")
        glfw.window_hint(glfw.SAMPLES, 4)
        self.window = glfw.create_window(size[0], size[1], title, None, None)
        if not self.window:
            glfw.terminate()
            raise RoboilError("cannot open the viewer window (no OpenGL on this display); run on a desktop with "
                              "OpenGL, or record with --no-viewer")
        glfw.make_context_current(self.window)
        glfw.swap_interval(0)  # never wait for the screen's refresh: the control loop owns the time
        self.model, self.data = model, data
        self.context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        self.scene = mujoco.MjvScene(model, maxgeom=10_000)
        self.camera = mujoco.MjvCamera()
        mujoco.mjv_defaultFreeCamera(model, self.camera)
        # framed on the bodies (the model's own extent includes floors and walls far away)
        bodies = data.xpos[1:]
        centre = np.median(bodies, axis=0)
        self.camera.lookat[:] = centre
        self.camera.distance = 4.0 * np.percentile(np.linalg.norm(bodies - centre, axis=1), 90)
        self.camera.elevation = -35.0
        self.option = mujoco.MjvOption()
        self.codes = {getattr(glfw, f"KEY_{name.upper()}"): name for name in KEY_NAMES}
        self._pressed: list[str] = []
        self._cursor = np.zeros(2)
        self._text: tuple = ((), ())
        self.lock = threading.RLock()  # the session may reset the scene while stepping it
        self.frames_drawn = 0
        self.failure: str | None = None  # why the drawing thread stopped, if it failed
        self._framebuffer = glfw.get_framebuffer_size(self.window)  # GLFW answers size queries on the main thread
        glfw.set_framebuffer_size_callback(self.window, self._on_resize)
        glfw.set_key_callback(self.window, self._on_key)
        glfw.set_cursor_pos_callback(self.window, self._on_cursor)
        glfw.set_scroll_callback(self.window, self._on_scroll)
        glfw.make_context_current(None)  # the drawing thread's from now on
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._draw_loop, name="roboil-viewer", daemon=True)
        self._thread.start()

    # ---- input ---------------------------------------------------------------------------------------------

    def _on_resize(self, window, width, height) -> None:
        self._framebuffer = (width, height)

    def _on_key(self, window, key, scancode, action, mods) -> None:
        if action == self.glfw.PRESS and key in self.codes:
            self._pressed.append(self.codes[key])

    def _on_cursor(self, window, x, y) -> None:
        glfw = self.glfw
        dx, dy = x - self._cursor[0], y - self._cursor[1]
        self._cursor[:] = x, y
        left = glfw.get_mouse_button(window, glfw.MOUSE_BUTTON_LEFT) == glfw.PRESS
        right = glfw.get_mouse_button(window, glfw.MOUSE_BUTTON_RIGHT) == glfw.PRESS
        if not (left or right):
            return
        action = mujoco.mjtMouse.mjMOUSE_ROTATE_V if left else mujoco.mjtMouse.mjMOUSE_MOVE_V
        height = glfw.get_window_size(window)[1]
        with self.lock:
            mujoco.mjv_moveCamera(self.model, action, dx / height, dy / height, self.scene, self.camera)

    def _on_scroll(self, window, dx, dy) -> None:
        with self.lock:
            mujoco.mjv_moveCamera(self.model, mujoco.mjtMouse.mjMOUSE_ZOOM, 0, -0.05 * dy, self.scene, self.camera)

    def poll(self) -> None:
        self.glfw.poll_events()

    @property
    def closed(self) -> bool:
        """The person closed the window, or it failed (``failure`` says why)."""
        return self.window is None or self.failure is not None or bool(self.glfw.window_should_close(self.window))

    def held(self) -> set[str]:
        """The keys down now."""
        get = self.glfw.get_key
        return {name for code, name in self.codes.items() if get(self.window, code) == self.glfw.PRESS}

    def pressed(self) -> list[str]:
        """The keys pressed since the last call, in order."""
        pressed, self._pressed = self._pressed, []
        return pressed

    def heading(self) -> float:
        """The direction the camera looks along the floor (radians from world +x), for commands relative to it."""
        return float(np.deg2rad(self.camera.azimuth))

    def label(self, name: str) -> str:
        """What the key called ``name`` (its US-layout position) is labelled on this desktop's layout."""
        code = next(code for code, n in self.codes.items() if n == name)
        shown = self.glfw.get_key_name(code, 0) if len(name) == 1 else None
        return (shown or name).upper() if len(name) == 1 else name.replace("_", " ")

    # ---- output --------------------------------------------------------------------------------------------

    def show(self, status: list[tuple[str, str]], help: list[tuple[str, str]] = ()) -> None:
        """The overlay's lines, (label, value) each: ``status`` top left, ``help`` bottom left."""
        self._text = (tuple(status), tuple(help))

    def _draw_loop(self) -> None:
        glfw = self.glfw
        glfw.make_context_current(self.window)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self._draw()
                self._stop.wait(max(0.0, 1.0 / MAX_FPS - (time.monotonic() - started)))
        except Exception as e:  # noqa: BLE001 - any failure ends the session in one line, not a frozen window
            self.failure = f"the viewer stopped drawing ({type(e).__name__}: {e})"
        finally:
            self.context.free()
            glfw.make_context_current(None)

    def _draw(self) -> None:
        glfw = self.glfw
        width, height = self._framebuffer
        viewport = mujoco.MjrRect(0, 0, width, height)
        with self.lock:  # a consistent copy of the scene; rendering it needs no lock
            mujoco.mjv_updateScene(self.model, self.data, self.option, None, self.camera,
                                   mujoco.mjtCatBit.mjCAT_ALL, self.scene)
        mujoco.mjr_render(viewport, self.scene, self.context)
        status, help = self._text
        font = mujoco.mjtFont.mjFONT_NORMAL
        for lines, where in ((status, mujoco.mjtGridPos.mjGRID_TOPLEFT), (help, mujoco.mjtGridPos.mjGRID_BOTTOMLEFT)):
            if lines:
                mujoco.mjr_overlay(font, where, viewport, "\n".join(k for k, _ in lines),
                                   "\n".join(v for _, v in lines), self.context)
        glfw.swap_buffers(self.window)
        self.frames_drawn += 1

    def close(self) -> None:
        if self.window is not None:
            self._stop.set()
            self._thread.join()
            self.glfw.destroy_window(self.window)
            self.window = None
            self.glfw.terminate()
