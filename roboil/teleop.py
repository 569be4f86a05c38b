"""What the devices that drive an end effector by hand (``keyboard``, ``gamepad``, ``spacemouse``) share, written
once so that the three behave alike.

**The operator's frame.** A device reads its motion as (forward, left, up), and, for tasks whose gripper rotates,
a rotation vector about those same axes (right-hand rule). Up is world +z; forward lies along the floor:

- with a viewer window, forward is where the viewer's camera looks (away from the person at the screen), and it
  turns as the mouse turns the camera, so "away" on the device is always away on screen;
- without one, forward is the device's ``heading`` parameter, degrees counter-clockwise from world +x about +z.
  The default 0 makes forward +x and left +y: a headless session (tests, scripts, replayed reports) drives along
  the world axes.

:func:`operator_heading` picks that direction and :func:`operator_to_world` turns a vector into the world frame
that :class:`roboil.EndEffectorCommand` speaks, clipped to [-1, 1].

**Arms and grippers.** :class:`ArmSelection` is what a device keeps between ticks: the arm it drives and each
arm's gripper target. Every take starts with all grippers open, as the robot does; the arm driven carries over.

Also here: :func:`teleop_spec` (the task's end-effector control, or the one error every device gives),
:func:`axis_deadzone`, and for the files devices replay instead of reading hardware (key scripts, raw reports)
and save for bug reports: :class:`RecordedTicks`, :class:`RawInput` and :func:`open_device_file`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .errors import RoboilError
from .specs import EndEffectorCommand, TaskSpec, TeleopSpec

OPEN, CLOSED = 1.0, -1.0  # gripper targets


def teleop_spec(task: TaskSpec) -> TeleopSpec:
    """The task's end-effector control; a one-line error for tasks that have none (no device can drive them)."""
    if task.teleop is None:
        raise RoboilError(f"task '{task.name}' has no end-effector control for input devices; record it with "
                          "--device scripted or --device replay")
    return task.teleop


def operator_heading(viewer: Any, heading_degrees: float) -> float:
    """The direction the operator faces, radians counter-clockwise from world +x: the viewer camera's (its
    ``heading()``) when there is a viewer, else ``heading_degrees`` (the device's ``heading`` parameter)."""
    return viewer.heading() if viewer is not None else math.radians(heading_degrees)


def operator_to_world(forward_left_up: Sequence[float], heading: float) -> tuple[float, float, float]:
    """An operator-frame vector in world (x, y, z), for an operator facing ``heading`` radians from +x. Turning
    about z is a proper rotation, so this serves translations and rotation vectors alike."""
    forward, left, up = forward_left_up
    c, s = math.cos(heading), math.sin(heading)
    world = (forward * c - left * s, forward * s + left * c, up)
    # clipped: two full deflections at 45 degrees reach past 1; rounded: cos(90 degrees) = 6e-17 must command
    # exactly nothing where nothing moves; + 0.0: no -0.0 in the commands (they are compared and stored)
    return tuple(round(min(1.0, max(-1.0, v)), 9) + 0.0 for v in world)


def axis_deadzone(value: float, deadzone: float) -> float:
    """One axis (-1..1) with a deadzone: 0 up to ``deadzone``, then rescaled from 0 there to +-1 at full
    deflection, so motion starts smoothly rather than jumping to the deadzone's value, and still reaches 1."""
    magnitude = abs(value)
    if magnitude <= deadzone:
        return 0.0
    return math.copysign((min(magnitude, 1.0) - deadzone) / (1.0 - deadzone), value)


class ArmSelection:
    """The arm a device drives (``arm``, an index into ``names``, the task's ``TeleopSpec.arms``) and each arm's
    gripper target, kept between ticks; ``command()`` builds a tick's command for them."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)
        self.arm = 0
        self.reset()

    def reset(self) -> None:
        """A new take: every gripper target open, as the robot starts; the arm driven carries over (the operator
        keeps the hand they were using)."""
        self.grippers = [OPEN] * len(self.names)

    def follow(self, grippers: Sequence[float]) -> None:
        """Take each arm's gripper target from a command another driver gave (e.g. the policy a person takes over
        from), so a held object stays held."""
        self.grippers = [OPEN if g >= 0 else CLOSED for g in grippers]

    def toggle_gripper(self) -> None:
        self.grippers[self.arm] = CLOSED if self.grippers[self.arm] == OPEN else OPEN

    def next_arm(self) -> None:
        self.arm = (self.arm + 1) % len(self.names)

    def command(self, translation: Sequence[float], rotation: Sequence[float], heading: float,
                speed: float = 1.0, rotation_speed: float = 1.0) -> EndEffectorCommand:
        """The command for operator-frame ``translation`` and ``rotation`` (times their gains) facing ``heading``
        radians, for the arm driven at its gripper target."""
        return EndEffectorCommand(operator_to_world([speed * v for v in translation], heading),
                                  operator_to_world([rotation_speed * v for v in rotation], heading),
                                  self.grippers[self.arm], self.arm)

    def status(self) -> str:
        """E.g. "arm left, gripper open"; a single arm is not named."""
        arm = f"arm {self.names[self.arm]}, " if len(self.names) > 1 else ""
        return f"{arm}gripper {'open' if self.grippers[self.arm] == OPEN else 'closed'}"


def open_device_file(path: str, mode: str, what: str, param: str):
    """``open(path, mode)``, or a one-line error naming the file (``what``, e.g. "key script") and the device
    parameter that gave it."""
    try:
        return open(path, mode)
    except OSError as e:
        verb = "write" if "w" in mode else "read"
        raise RoboilError(f"cannot {verb} the {what} '{path}' ({e.strerror}); check device.{param}") from None


class RecordedTicks:
    """A device's input replayed from a file, one tick's worth per ``read()``; None once all are read (the
    devices then ask to quit every tick, which ends the session)."""

    def __init__(self, ticks: list):
        self.ticks, self.position = ticks, 0

    def read(self):
        if self.position >= len(self.ticks):
            return None
        self.position += 1
        return self.ticks[self.position - 1]

    def describe(self) -> str:
        return f"reports tick {min(self.position, len(self.ticks))}/{len(self.ticks)}"

    def close(self) -> None:
        pass


class RawInput:
    """A device's raw input, one tick's worth per ``read()``, from ``reader`` (the hardware, or a
    :class:`RecordedTicks` replay) and, given a ``save`` path, also written there by ``writer_class(save)``
    (``device.save_reports``). ``read()`` is None once a replay is over, and ``describe()`` then says so."""

    def __init__(self, reader, writer_class=None, save: str = ""):
        self.reader, self.writer, self.over = reader, None, False
        if save:
            try:
                self.writer = writer_class(save)
            except BaseException:
                reader.close()  # the device is not made, so nothing else would release the hardware
                raise

    def read(self):
        raw = self.reader.read()
        self.over = raw is None
        if raw is not None and self.writer is not None:
            self.writer.write(raw)
        return raw

    def describe(self) -> str:
        return "reports over" if self.over else self.reader.describe()

    def close(self) -> None:
        self.reader.close()
        if self.writer is not None:
            self.writer.close()


class MappedDevice:
    """What an input device that reads raw reports (``self.input``, a :class:`RawInput`) and maps them
    (``self.mapping``, with ``arms``: an :class:`ArmSelection`, ``command(heading)``) has in common; a subclass
    sets those, ``self.params`` (with ``heading``) and ``self.viewer``, and gives ``controls()`` and ``help()``."""

    def reset(self) -> None:
        self.mapping.arms.reset()

    def act(self, raw_obs) -> EndEffectorCommand:
        return self.mapping.command(operator_heading(self.viewer, self.params.heading))

    def take_over(self, grippers) -> None:
        self.mapping.arms.follow(grippers)

    def status(self) -> str:
        return f"{self.mapping.arms.status()} ({self.input.describe()})"

    def close(self) -> None:
        self.input.close()
