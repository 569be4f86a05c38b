"""Device ``gamepad``: drive the robot's end effector with a game controller (through pygame / SDL2).

SDL's GameController API maps every pad it knows (Xbox, PlayStation, Switch Pro, most USB pads; others through
the ``SDL_GAMECONTROLLERCONFIG`` environment variable) onto the Xbox layout below, so the same button does the
same thing on every pad. Directions are in the operator's frame, as for every device (:mod:`roboil.teleop`):
with a viewer, forward is where its camera looks (push away = away from you on screen); without one,
``device.heading=DEG`` (default 0: forward is world +x, left +y).

==========================  ===========================================================================
left stick push / pull      forward / back
left stick left / right     left / right
right / left trigger        up / down (+z / -z), analog
right stick left / right    turn counter-clockwise / clockwise seen from above (about up, +/-)
right stick push / pull     tip the gripper forward / back (about the left axis, +/-)
right / left shoulder       roll right / left (about the forward axis, +/-)
A                           toggle the gripper of the arm driven (open / closed)
B                           drive the next arm (bimanual tasks)
START (menu)                start recording the take shown
Y                           save the take
BACK (view)                 discard the take (new start)
X                           retry the take (same start)
d-pad left                  delete the last saved episode (press twice)
d-pad right                 quit (twice while recording)
d-pad up / down             take over from the policy / hand back (with --policy)
==========================  ===========================================================================

Rotation commands are zero for tasks whose gripper does not rotate. Buttons fire once, on the tick they go down
(holding one does not repeat it). Sticks have a radial deadzone and triggers a linear one (``device.deadzone``,
default 0.1): inside it nothing moves, past it the command grows from 0 to 1 at full deflection, times
``device.speed`` (translation) or ``device.rotation_speed``, clipped to [-1, 1] per axis. A new take opens every
gripper target again; the arm driven carries over.

``device.reports=FILE`` replays recorded raw snapshots (JSON lines, one per control tick; see
:mod:`roboil_gamepad.reader`) instead of reading a pad: tests, demos, reproducing a bug report, which
``device.save_reports=FILE`` records. After the file's last tick the device asks to quit on every tick, which
ends the session (a take still being recorded is dropped unless the file saved it), and commands no motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import roboil
from roboil import QUIT, MappedDevice, RawInput, RoboilError, teleop_spec

from .mapping import GamepadMapping
from .reader import PadReader, ReportsReader, ReportsWriter


@dataclass(frozen=True)
class GamepadParams:
    index: int = 0  # which joystick, in pygame's order
    deadzone: float = 0.1  # stick and trigger deflection (0..1) below which nothing moves
    speed: float = 1.0  # translation at full deflection, as a fraction of the task's top speed
    rotation_speed: float = 1.0  # rotation at full deflection, as a fraction of the task's top angular speed
    heading: float = 0.0  # without a viewer, where forward is: degrees counter-clockwise from world +x about +z
    reports: str = ""  # replay this file of raw snapshots instead of reading a pad
    save_reports: str = ""  # write the raw snapshots read to this file (a bug report's input)

    def __post_init__(self):
        if self.index < 0:
            raise RoboilError(f"device.index must be >= 0, got {self.index}")
        if not 0 <= self.deadzone < 1:
            raise RoboilError(f"device.deadzone must be in [0, 1), got {self.deadzone}")
        for name in ("speed", "rotation_speed"):
            if not 0 < getattr(self, name) <= 1:
                raise RoboilError(f"device.{name} must be in (0, 1], got {getattr(self, name)}")


class GamepadDevice(MappedDevice):
    def __init__(self, context: roboil.DeviceContext):
        params: GamepadParams = context.params
        teleop = teleop_spec(context.task)
        self.params, self.viewer = params, context.viewer
        self.mapping = GamepadMapping(teleop.arms, params.deadzone, params.speed, params.rotation_speed,
                                      teleop.rotation)
        reader = ReportsReader(params.reports) if params.reports else PadReader(params.index)
        self.input = RawInput(reader, ReportsWriter, params.save_reports)

    def controls(self) -> list[str]:
        snapshot = self.input.read()
        if snapshot is None:  # the reports file is over: no motion, and quit
            self.mapping.rest()
            return [QUIT]
        return self.mapping.update(snapshot)

    def help(self) -> list[tuple[str, str]]:
        lines = [("move", "left stick, RT up / LT down"), ("gripper", "A")]
        if self.mapping.rotation:
            lines.append(("rotate", "right stick, LB / RB roll"))
        if len(self.mapping.arms.names) > 1:
            lines.append(("next arm", "B"))
        return lines + [("start / save", "START / Y"), ("discard / retry", "BACK / X"),
                        ("delete last / quit", "d-pad left / right (twice)"),
                        ("take over / back", "d-pad up / down")]


@roboil.hookimpl
def register_devices():
    return [roboil.DeviceSpec("gamepad", GamepadDevice, GamepadParams, interactive=True,
                              summary="a game controller (pygame / SDL2) drives the end effector")]
