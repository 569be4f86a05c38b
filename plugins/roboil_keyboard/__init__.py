"""Device ``keyboard``: drive the robot's end effector from the keys of the viewer window.

Keys are named by their position on a US keyboard (the viewer's help shows this desktop's labels):

==============================  ==================================================
arrow up / down                 forward / back (away from / toward you on screen)
arrow left / right              left / right
page up / page down             up / down
i / k                           tip the gripper forward / back (about the left axis, +/-)
j / l                           turn counter-clockwise / clockwise seen from above (about up, +/-)
u / o                           roll right / left (about the forward axis, +/-)
left shift (held)               a third of the speed, for fine moves
space                           toggle the gripper of the arm driven
tab                             drive the next arm (bimanual tasks)
enter                           start recording the take shown
s / d / r                       save the take / discard it (new start) / retry it (same start)
backspace (twice)               delete the last saved episode
q (twice while recording)       quit
t / h                           take over from the policy / hand back (with --policy)
==============================  ==================================================

Directions are in the operator's frame (:mod:`roboil.teleop`): with a viewer, forward is where its camera looks
and turns as the mouse turns it (left drag turns, right drag moves, the wheel zooms), so "up" is always away
from you; without one, ``device.heading=DEG`` (default 0: up is world +x, left +y). Rotation keys act only on
tasks whose gripper rotates. A new take opens every gripper target again; the arm driven carries over.

With ``device.script=FILE`` the keys come from a file instead of a window (tests, demos, reproducing a bug
report). The file holds tokens separated by spaces, commas or newlines, each one or more control ticks: ``KEY``
presses KEY for one tick; ``KEY*N`` holds it for N ticks (pressed on the first); ``a+b*N`` holds keys together;
``wait*N`` is N ticks with no key; ``#`` starts a comment. After the last token the device presses q every tick,
which ends the session.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import roboil
from roboil import (DELETE_LAST, DISCARD, HAND_BACK, QUIT, RETRY, SAVE, START, TAKE_OVER, ArmSelection,
                    EndEffectorCommand, RecordedTicks, RoboilError, open_device_file, operator_heading, teleop_spec)

# key -> (axis, sign) in the operator's frame (forward, left, up)
MOTION = {"up": (0, 1), "down": (0, -1), "left": (1, 1), "right": (1, -1), "page_up": (2, 1), "page_down": (2, -1)}
TURN = {"u": (0, 1), "o": (0, -1), "i": (1, 1), "k": (1, -1), "j": (2, 1), "l": (2, -1)}
CONTROL_KEYS = {"enter": START, "s": SAVE, "d": DISCARD, "r": RETRY, "backspace": DELETE_LAST, "q": QUIT,
                "t": TAKE_OVER, "h": HAND_BACK}
FINE, GRIPPER, NEXT_ARM = "left_shift", "space", "tab"
FINE_SPEED = 1 / 3
_TOKEN = re.compile(r"^([a-z0-9_]+(?:\+[a-z0-9_]+)*)(?:\*(\d+))?$")


@dataclass(frozen=True)
class KeyboardParams:
    speed: float = 1.0  # a held key commands this fraction of the task's top speed
    heading: float = 0.0  # without a viewer, where arrow up moves: degrees counter-clockwise from world +x about +z
    script: str = ""  # a key script file to read instead of the window (see the module docstring)


class KeyScript(RecordedTicks):
    """Ticks of (held keys, keys pressed on this tick) from a key script."""

    def __init__(self, path: str):
        with open_device_file(path, "r", "key script", "script") as file:
            text = file.read()
        from roboil.viewer import KEY_NAMES

        ticks: list[tuple[frozenset, tuple]] = []
        text = re.sub(r"#[^\n]*", "", text)
        for token in filter(None, re.split(r"[\s,]+", text)):
            match = _TOKEN.match(token)
            keys = match.group(1).split("+") if match else []
            if not match or any(k not in KEY_NAMES and k != "wait" for k in keys):
                raise RoboilError(f"key script '{path}': bad token '{token}'; write KEY, KEY*N, A+B*N or wait*N with "
                                  "keys such as up, page_up, space, enter, s")
            held = frozenset(k for k in keys if k != "wait")
            for tick in range(int(match.group(2) or 1)):
                ticks.append((held, tuple(sorted(held)) if tick == 0 else ()))
        super().__init__(ticks)

    def advance(self) -> tuple[frozenset, tuple]:
        tick = self.read()
        return (frozenset(), ("q",)) if tick is None else tick  # over: q every tick ends the session


class KeyboardDevice:
    def __init__(self, context: roboil.DeviceContext):
        params: KeyboardParams = context.params
        if not 0 < params.speed <= 1:
            raise RoboilError(f"device.speed must be in (0, 1], got {params.speed}")
        teleop = teleop_spec(context.task)
        self.script = KeyScript(params.script) if params.script else None
        if self.script is None and context.viewer is None:
            raise RoboilError("the keyboard device reads keys from the viewer window; drop --no-viewer, or give "
                              "device.script=FILE")
        self.viewer, self.params, self.rotates = context.viewer, params, teleop.rotation
        self.arms = ArmSelection(teleop.arms)
        self.held: frozenset | set = frozenset()

    def reset(self) -> None:
        self.arms.reset()

    def controls(self) -> list[str]:
        if self.script is not None:
            self.held, pressed = self.script.advance()
        else:
            self.held, pressed = self.viewer.held(), self.viewer.pressed()
        controls = []
        for key in pressed:
            if key == GRIPPER:
                self.arms.toggle_gripper()
            elif key == NEXT_ARM:
                self.arms.next_arm()
            elif key in CONTROL_KEYS:
                controls.append(CONTROL_KEYS[key])
        return controls

    def act(self, raw_obs) -> EndEffectorCommand:
        scale = self.params.speed * (FINE_SPEED if FINE in self.held else 1.0)
        translation, rotation = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
        for key in self.held:
            if key in MOTION:
                axis, sign = MOTION[key]
                translation[axis] += sign
            elif key in TURN and self.rotates:
                axis, sign = TURN[key]
                rotation[axis] += sign
        return self.arms.command(translation, rotation, operator_heading(self.viewer, self.params.heading),
                                 scale, scale)

    def take_over(self, grippers) -> None:
        self.arms.follow(grippers)

    def status(self) -> str:
        return self.arms.status()

    def help(self) -> list[tuple[str, str]]:
        label = self.viewer.label if self.viewer is not None else (lambda name: name)
        keys = lambda *names: " ".join(label(n) for n in names)  # noqa: E731
        lines = [("move", keys("up", "down", "left", "right", "page_up", "page_down") + f" (fine: {label(FINE)})"),
                 ("gripper", label(GRIPPER))]
        if self.rotates:
            lines.append(("rotate", keys("i", "k", "j", "l", "u", "o")))
        if len(self.arms.names) > 1:
            lines.append(("next arm", label(NEXT_ARM)))
        lines += [("start / save", keys("enter", "s")), ("discard / retry", keys("d", "r")),
                  ("delete last / quit", keys("backspace", "q") + " (twice)"), ("take over / back", keys("t", "h"))]
        return lines


@roboil.hookimpl
def register_devices():
    return [roboil.DeviceSpec("keyboard", KeyboardDevice, KeyboardParams, interactive=True,
                              summary="the viewer window's keys drive the end effector")]
