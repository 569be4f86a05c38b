"""Device ``spacemouse``: drive the robot's end effector with a 3Dconnexion SpaceMouse, read as raw HID reports
through hidapi (``pip install hidapi``, or ``roboil[spacemouse]``; no 3Dconnexion driver needed).

The cap moves the gripper as if the gripper were the cap, in the operator's frame, as for every device
(:mod:`roboil.teleop`): with a viewer, forward is where its camera looks (push away = away from you on screen);
without one, ``device.heading=DEG`` (default 0: forward is world +x, left +y).

====================================  ==============================================================
push the cap away / pull it           forward / back
push the cap left / right             left / right
lift the cap / push it down           up / down (+z / -z)
twist counter-clockwise / clockwise   turn about up / down (seen from above)
tilt the cap's top away / toward you  tip the gripper forward / back (about the left axis, +/-)
tilt the cap's top right / left       roll right / left (about the forward axis, +/-)
left button click                     toggle the gripper of the arm driven (open / closed)
left button hold                      drive the next arm (bimanual tasks)
right button click                    start recording the take shown, or save the take being recorded
right button hold                     discard the take (new start)
both buttons click                    retry the take (same start)
both buttons hold                     quit (twice while recording)
====================================  ==============================================================

A click fires when the buttons are released; a hold fires once held ``device.hold`` seconds (default 1), and
its release does nothing more. On models with more buttons the left and right ones are Menu and Fit (bits 0 and
1 of report 3); the others are not used, so deleting the last episode and taking over from a policy need another
device (keyboard, gamepad). Rotation commands are zero for tasks whose gripper does not rotate.

Each axis is its raw count over ``device.scale`` (full deflection, about 350 counts on every model), clipped
to [-1, 1], with a deadzone (``device.deadzone``, default 0.1): nothing inside it, and past it the command grows
from 0 to 1 at full deflection, times ``device.speed`` (translation) or ``device.rotation_speed``. The raw HID
layout and axis directions are in :mod:`roboil_spacemouse.mapping`. A new take opens every gripper target
again; the arm driven carries over.

``device.reports=FILE`` replays recorded raw reports (``TICK HEX`` lines; see :mod:`roboil_spacemouse.reader`)
instead of reading the device: tests, demos, reproducing a bug report, which ``device.save_reports=FILE``
records. After the file's last tick the device asks to quit on every tick, which ends the session (a take still
being recorded is dropped unless the file saved it), and commands no motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import roboil
from roboil import QUIT, MappedDevice, RawInput, RoboilError, teleop_spec

from .mapping import SpaceMouseMapping
from .reader import HidReader, ReportsReader, ReportsWriter


@dataclass(frozen=True)
class SpaceMouseParams:
    index: int = 0  # which SpaceMouse, in hidapi's order, when several are plugged in
    scale: float = 350.0  # raw counts at full deflection
    deadzone: float = 0.1  # deflection (a fraction of scale) below which an axis reads 0
    speed: float = 1.0  # translation at full deflection, as a fraction of the task's top speed
    rotation_speed: float = 1.0  # rotation at full deflection, as a fraction of the task's top angular speed
    hold: float = 1.0  # seconds a button is held for its hold gesture
    heading: float = 0.0  # without a viewer, where forward is: degrees counter-clockwise from world +x about +z
    reports: str = ""  # replay this file of raw HID reports instead of reading the device
    save_reports: str = ""  # write the raw HID reports read to this file (a bug report's input)

    def __post_init__(self):
        if self.index < 0:
            raise RoboilError(f"device.index must be >= 0, got {self.index}")
        if not self.scale > 0:
            raise RoboilError(f"device.scale must be > 0 (raw counts at full deflection), got {self.scale}")
        if not 0 <= self.deadzone < 1:
            raise RoboilError(f"device.deadzone must be in [0, 1), got {self.deadzone}")
        for name in ("speed", "rotation_speed"):
            if not 0 < getattr(self, name) <= 1:
                raise RoboilError(f"device.{name} must be in (0, 1], got {getattr(self, name)}")
        if not self.hold > 0:
            raise RoboilError(f"device.hold must be > 0 seconds, got {self.hold}")


class SpaceMouseDevice(MappedDevice):
    def __init__(self, context: roboil.DeviceContext):
        params: SpaceMouseParams = context.params
        teleop = teleop_spec(context.task)
        self.params, self.viewer = params, context.viewer
        hold_ticks = max(1, round(params.hold * context.task.fps))
        self.mapping = SpaceMouseMapping(teleop.arms, params.scale, params.deadzone, params.speed,
                                         params.rotation_speed, teleop.rotation, hold_ticks)
        reader = ReportsReader(params.reports) if params.reports else HidReader(params.index)
        self.input = RawInput(reader, ReportsWriter, params.save_reports)

    def controls(self) -> list[str]:
        reports = self.input.read()
        if reports is None:  # the reports file is over: no motion, and quit
            self.mapping.rest()
            return [QUIT]
        controls = self.mapping.update(reports)
        if not getattr(self.input.reader, "connected", True):  # unplugged: the last motion must not go on
            self.mapping.rest()
        return controls

    def help(self) -> list[tuple[str, str]]:
        lines = [("move", "push / pull / lift the cap"), ("gripper", "left click")]
        if self.mapping.rotation:
            lines.append(("rotate", "twist / tilt the cap"))
        if len(self.mapping.arms.names) > 1:
            lines.append(("next arm", "hold left"))
        return lines + [("start / save", "right click"), ("discard / retry", "hold right / click both"),
                        ("quit", "hold both")]


@roboil.hookimpl
def register_devices():
    return [roboil.DeviceSpec("spacemouse", SpaceMouseDevice, SpaceMouseParams, interactive=True,
                              summary="a 3Dconnexion SpaceMouse (raw HID through hidapi) drives the end effector")]
