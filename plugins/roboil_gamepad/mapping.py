"""The gamepad's mapping layer: raw snapshots in, session controls and end-effector commands out. Pure Python
(no pygame), so every rule here is tested from recorded snapshots without a pad.

A :class:`Snapshot` is one control tick's raw state in SDL's GameController layout (the Xbox layout SDL maps
every known pad onto): ``axes`` in SDL_GameControllerAxis order, sticks in [-1, 1] with y positive when the stick
is pulled toward the person, triggers in [0, 1]; ``buttons`` in SDL_GameControllerButton order (0/1); ``hat`` the
d-pad as (x, y), x = right - left, y = up - down. The module docstring of :mod:`roboil_gamepad` has the tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from roboil import (DELETE_LAST, DISCARD, HAND_BACK, QUIT, RETRY, SAVE, START, TAKE_OVER, ArmSelection,
                    EndEffectorCommand, RoboilError, axis_deadzone)

# SDL_GameControllerAxis order
AXES = ("left_x", "left_y", "right_x", "right_y", "trigger_left", "trigger_right")
LEFT_X, LEFT_Y, RIGHT_X, RIGHT_Y, TRIGGER_LEFT, TRIGGER_RIGHT = range(6)
TRIGGERS = (TRIGGER_LEFT, TRIGGER_RIGHT)
# SDL_GameControllerButton order, up to the shoulders (the d-pad is the hat)
BUTTONS = ("a", "b", "x", "y", "back", "guide", "start", "left_stick", "right_stick", "left_shoulder",
           "right_shoulder")
DPAD = ("dpad_up", "dpad_down", "dpad_left", "dpad_right")

GRIPPER_BUTTON = "a"  # toggles the driven arm's gripper open / closed
ARM_BUTTON = "b"  # drives the next arm
CONTROL_BUTTONS = {  # button -> session control, fired once on the press edge; in the order they are reported
    "start": START,
    "y": SAVE,
    "back": DISCARD,
    "x": RETRY,
    "dpad_left": DELETE_LAST,
    "dpad_right": QUIT,
    "dpad_up": TAKE_OVER,
    "dpad_down": HAND_BACK,
}
ROLL_LEFT, ROLL_RIGHT = "left_shoulder", "right_shoulder"


@dataclass(frozen=True)
class Snapshot:
    """One control tick's raw pad state (see the module docstring for the layout)."""

    axes: tuple[float, ...] = (0.0,) * len(AXES)
    buttons: tuple[int, ...] = (0,) * len(BUTTONS)
    hat: tuple[int, int] = (0, 0)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Snapshot":
        """A snapshot from its JSON form (``axes``, ``buttons``, ``hat``; missing entries are at rest, shorter
        lists are padded); ``where`` names the line for the one-line error on anything else."""
        if not isinstance(data, Mapping):
            raise RoboilError(f"{where}: expected a JSON object with axes, buttons, hat; got {data!r}")
        unknown = sorted(set(data) - {"axes", "buttons", "hat", "repeat"})
        if unknown:
            raise RoboilError(f"{where}: unknown key '{unknown[0]}'; valid: axes, buttons, hat, repeat")
        axes = _numbers(data.get("axes", []), len(AXES), "axes", where)
        if not all(math.isfinite(a) for a in axes):
            raise RoboilError(f"{where}: axes must be finite numbers, got {data.get('axes')!r}")
        axes = [min(1.0, max(0.0 if i in TRIGGERS else -1.0, float(a))) for i, a in enumerate(axes)]
        buttons = _numbers(data.get("buttons", []), len(BUTTONS), "buttons", where)
        if any(b not in (0, 1) for b in buttons):
            raise RoboilError(f"{where}: buttons must be 0 or 1, got {data.get('buttons')!r}")
        hat = _numbers(data.get("hat", []), 2, "hat", where)
        if any(h not in (-1, 0, 1) for h in hat):
            raise RoboilError(f"{where}: hat must be two of -1, 0, 1, got {data.get('hat')!r}")
        return cls(tuple(axes), tuple(int(b) for b in buttons), (int(hat[0]), int(hat[1])))

    def to_dict(self) -> dict:
        return {"axes": [round(a, 5) for a in self.axes], "buttons": list(self.buttons), "hat": list(self.hat)}


def _numbers(values: Any, size: int, key: str, where: str) -> list:
    if not isinstance(values, list) or len(values) > size or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise RoboilError(f"{where}: {key} must be a list of at most {size} numbers, got {values!r}")
    return list(values) + [0] * (size - len(values))


NEUTRAL = Snapshot()


def pressed(snapshot: Snapshot) -> frozenset[str]:
    """The names of the buttons down in ``snapshot``, the d-pad's directions included."""
    names = {name for name, down in zip(BUTTONS, snapshot.buttons) if down}
    x, y = snapshot.hat
    names.update(name for name, on in zip(DPAD, (y > 0, y < 0, x < 0, x > 0)) if on)
    return frozenset(names)


def radial_deadzone(x: float, y: float, deadzone: float) -> tuple[float, float]:
    """A stick's (x, y) with a radial deadzone: 0 inside it, and past it the magnitude rescaled from 0 (at the
    deadzone) to 1 (full deflection) in the stick's direction, so motion starts smoothly and still reaches 1."""
    magnitude = math.hypot(x, y)
    if magnitude <= deadzone:
        return 0.0, 0.0
    k = (min(magnitude, 1.0) - deadzone) / (1.0 - deadzone) / magnitude
    return x * k, y * k


def motion(snapshot: Snapshot, deadzone: float) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(translation, rotation) in the operator's frame (forward, left, up) of :mod:`roboil.teleop`, each
    component in [-1, 1].

    Translation: left stick pushed away / left -> forward / left; right trigger up, left trigger down.
    Rotation (right-hand rule about the operator's axes): right stick pushed away tips the gripper forward
    (about left), pulled toward the person tips it back; right stick right turns it clockwise seen from above
    (about up, negative); right / left shoulder rolls it right / left (about forward).
    """
    axes, down = snapshot.axes, pressed(snapshot)
    right, back = radial_deadzone(axes[LEFT_X], axes[LEFT_Y], deadzone)
    up = axis_deadzone(axes[TRIGGER_RIGHT], deadzone) - axis_deadzone(axes[TRIGGER_LEFT], deadzone)
    turn_x, turn_y = radial_deadzone(axes[RIGHT_X], axes[RIGHT_Y], deadzone)  # turn_y > 0: pulled toward the person
    roll = float(ROLL_RIGHT in down) - float(ROLL_LEFT in down)
    return (-back, -right, up), (roll, -turn_y, -turn_x)


class GamepadMapping:
    """The device's state between ticks: the buttons held (for press edges), the arm driven and each arm's gripper
    target (``arms``), and the latest snapshot. ``update(snapshot)`` once per control tick returns the session
    controls pressed on that tick; ``command(heading)`` is the end-effector command for the latest snapshot, for
    an operator facing ``heading`` radians (:func:`roboil.operator_heading`)."""

    def __init__(self, arms: tuple[str, ...], deadzone: float, speed: float = 1.0, rotation_speed: float = 1.0,
                 rotation: bool = True):
        self.arms = ArmSelection(arms)
        self.deadzone, self.speed, self.rotation_speed, self.rotation = deadzone, speed, rotation_speed, rotation
        self.held: frozenset[str] = frozenset()
        self.snapshot = NEUTRAL

    def rest(self) -> None:
        """No stick deflected and no button down (the reports are over)."""
        self.update(NEUTRAL)

    def update(self, snapshot: Snapshot) -> list[str]:
        down = pressed(snapshot)
        edges = down - self.held
        self.held, self.snapshot = down, snapshot
        if GRIPPER_BUTTON in edges:
            self.arms.toggle_gripper()
        if ARM_BUTTON in edges:
            self.arms.next_arm()
        return [control for button, control in CONTROL_BUTTONS.items() if button in edges]

    def command(self, heading: float = 0.0) -> EndEffectorCommand:
        translation, rotation = motion(self.snapshot, self.deadzone)
        return self.arms.command(translation, rotation if self.rotation else (0.0, 0.0, 0.0), heading, self.speed,
                                 self.rotation_speed)
