"""The SpaceMouse's mapping layer: raw HID reports in, session controls and end-effector commands out. Pure
Python (no hidapi), so every rule here is tested from recorded reports without a device.

HID input reports (the first byte is the report id; values are little-endian signed 16-bit counts):

- id 1, 7 bytes: translation x, y, z (classic models: SpaceNavigator, SpaceExplorer, SpaceMouse Pro, Compact).
- id 1, 13 bytes: translation x, y, z then rotation rx, ry, rz (newer models: SpaceMouse Wireless, Pro Wireless,
  Enterprise, Universal Receiver).
- id 2, 7 bytes: rotation rx, ry, rz (classic models).
- id 3: the buttons, a little-endian bit mask over the remaining bytes (bit 0 the left button, bit 1 the right;
  Menu and Fit on models with more buttons). Other report ids (battery, LEDs) are ignored.

The device's raw frame is right-handed: +x when the cap is pushed right, +y when it is pulled toward the person,
+z when it is pushed down; rotations follow the right-hand rule about those axes (+rx tilts the cap's top toward
the person, +ry rolls it left, +rz twists it clockwise seen from above). The operator's frame (forward, left,
up) of :mod:`roboil.teleop` reads it as (-y, -x, -z); that is a proper rotation, so rotations map the same way,
(-ry, -rx, -rz). Full deflection is about 350 counts (``scale``); readings are clipped to it.
"""

from __future__ import annotations

import struct

from roboil import DISCARD, QUIT, RETRY, SAVE, START, ArmSelection, EndEffectorCommand, axis_deadzone

TRANSLATION_REPORT, ROTATION_REPORT, BUTTON_REPORT = 1, 2, 3
LEFT, RIGHT = 1, 2  # button bits

# gestures of the two buttons -> what they do (controls the session applies; "gripper" and "arm" the device does)
CLICK, HOLD = "click", "hold"
GESTURES = {
    (LEFT, CLICK): ("gripper",),  # toggle the driven arm's gripper
    (LEFT, HOLD): ("arm",),  # drive the next arm
    (RIGHT, CLICK): (START, SAVE),  # start the take shown, or save the take (the session applies the one that fits)
    (RIGHT, HOLD): (DISCARD,),
    (LEFT | RIGHT, CLICK): (RETRY,),
    (LEFT | RIGHT, HOLD): (QUIT,),
}


def parse_report(data: bytes) -> dict:
    """What one report says: any of ``translation`` and ``rotation`` (raw counts) and ``buttons`` (bit mask);
    empty for a report this device does not use (or one too short to hold its values)."""
    if not data:
        return {}
    report, size = data[0], len(data)
    if report == TRANSLATION_REPORT and size >= 7:
        parsed = {"translation": struct.unpack_from("<3h", data, 1)}
        if size >= 13:
            parsed["rotation"] = struct.unpack_from("<3h", data, 7)
        return parsed
    if report == ROTATION_REPORT and size >= 7:
        return {"rotation": struct.unpack_from("<3h", data, 1)}
    if report == BUTTON_REPORT and size >= 2:
        return {"buttons": int.from_bytes(data[1:], "little")}
    return {}


def normalize(counts: tuple[int, int, int], scale: float, deadzone: float) -> tuple[float, float, float]:
    return tuple(axis_deadzone(c / scale, deadzone) for c in counts)


def to_operator(raw: tuple[float, float, float]) -> tuple[float, float, float]:
    """Raw device axes (x right, y toward the person, z down) as (forward, left, up); the same for rotations."""
    x, y, z = raw
    return -y, -x, -z


class Gestures:
    """Clicks and holds of the two buttons. A press lasts from the first button going down to both being up; the
    buttons down together during it make its gesture (left, right, or both). Released before ``hold_ticks``
    control ticks it is a click (fired on the release); held that long it is a hold (fired on that tick, and the
    release then does nothing). Pressing the second button restarts the hold time, so a click of both is not
    mistaken for a hold of the first. Button changes come per report (a click inside one tick still counts);
    holds are counted per control tick."""

    def __init__(self, hold_ticks: int):
        self.hold_ticks = hold_ticks
        self.down = 0  # bits down now
        self.seen = 0  # bits down during this press
        self.ticks = 0  # ticks the press has lasted (since its last new button)
        self.fired = False  # its hold fired

    def buttons(self, mask: int) -> list[tuple[int, str]]:
        mask &= LEFT | RIGHT
        self.down = mask
        if mask & ~self.seen:
            self.seen |= mask
            self.ticks = 0
        if mask or not self.seen:
            return []
        gesture = [] if self.fired else [(self.seen, CLICK)]
        self.seen, self.ticks, self.fired = 0, 0, False
        return gesture

    def tick(self) -> list[tuple[int, str]]:
        if not self.down or self.fired:
            return []
        self.ticks += 1
        if self.ticks < self.hold_ticks:
            return []
        self.fired = True
        return [(self.seen, HOLD)]


class SpaceMouseMapping:
    """The device's state between ticks: the latest raw motion, the button gestures, the arm driven and each arm's
    gripper target (``arms``). ``update(reports)`` once per control tick (the reports that arrived since the last
    one) returns the session controls asked for; ``command(heading)`` is the end-effector command for the latest
    motion, for an operator facing ``heading`` radians (:func:`roboil.operator_heading`)."""

    def __init__(self, arms: tuple[str, ...], scale: float = 350.0, deadzone: float = 0.1, speed: float = 1.0,
                 rotation_speed: float = 1.0, rotation: bool = True, hold_ticks: int = 25):
        self.arms = ArmSelection(arms)
        self.scale, self.deadzone = scale, deadzone
        self.speed, self.rotation_speed, self.rotation = speed, rotation_speed, rotation
        self.gestures = Gestures(hold_ticks)
        self.translation_counts = self.rotation_counts = (0, 0, 0)

    def rest(self) -> None:
        """No motion and no button down, nothing fired (the device is gone or its reports are over)."""
        self.translation_counts = self.rotation_counts = (0, 0, 0)
        self.gestures = Gestures(self.gestures.hold_ticks)

    def update(self, reports: list[bytes]) -> list[str]:
        gestures = []
        for data in reports:
            parsed = parse_report(data)
            self.translation_counts = parsed.get("translation", self.translation_counts)
            self.rotation_counts = parsed.get("rotation", self.rotation_counts)
            if "buttons" in parsed:
                gestures += self.gestures.buttons(parsed["buttons"])
        gestures += self.gestures.tick()
        controls = []
        for gesture in gestures:
            for action in GESTURES[gesture]:
                if action == "gripper":
                    self.arms.toggle_gripper()
                elif action == "arm":
                    self.arms.next_arm()
                else:
                    controls.append(action)
        return controls

    def command(self, heading: float = 0.0) -> EndEffectorCommand:
        translation = to_operator(normalize(self.translation_counts, self.scale, self.deadzone))
        rotation = to_operator(normalize(self.rotation_counts, self.scale, self.deadzone))
        return self.arms.command(translation, rotation if self.rotation else (0.0, 0.0, 0.0), heading, self.speed,
                                 self.rotation_speed)
