"""Where the gamepad's snapshots come from: a pad through pygame (SDL's GameController API), or a recorded
reports file; and the writer that records them (``device.save_reports``) for tests and bug reports.

Reports file: JSON lines, one raw snapshot per control tick, ``{"axes": [6 floats], "buttons": [11 ints],
"hat": [x, y]}`` in the layout of :class:`roboil_gamepad.mapping.Snapshot` (missing entries are at rest,
shorter lists are padded); ``"repeat": N`` stands for N identical ticks; blank lines and lines starting with
``#`` are skipped.
"""

from __future__ import annotations

import json
import os

from roboil import RecordedTicks, RoboilError, open_device_file

from .mapping import BUTTONS, NEUTRAL, TRIGGERS, Snapshot

NO_PAD = "no gamepad found (pygame sees 0 joysticks); plug one in or choose --device keyboard"


class ReportsReader(RecordedTicks):
    """The snapshots of a reports file, one per ``read()``; None once they are all read."""

    def __init__(self, path: str):
        with open_device_file(path, "r", "gamepad reports", "reports") as file:
            lines = file.read().splitlines()
        ticks: list[Snapshot] = []
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"gamepad reports '{path}' line {number}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as e:
                raise RoboilError(f"{where}: not JSON ({e.msg} at column {e.colno})") from None
            repeat = data.get("repeat", 1) if isinstance(data, dict) else 1
            if not isinstance(repeat, int) or isinstance(repeat, bool) or repeat < 1:
                raise RoboilError(f"{where}: repeat must be a whole number >= 1, got {repeat!r}")
            ticks += [Snapshot.from_dict(data, where)] * repeat
        super().__init__(ticks)


class ReportsWriter:
    """Writes every snapshot read, one JSON line per control tick (the reports file format)."""

    def __init__(self, path: str):
        self.file = open_device_file(path, "w", "gamepad reports", "save_reports")

    def write(self, snapshot: Snapshot) -> None:
        self.file.write(json.dumps(snapshot.to_dict()) + "\n")

    def close(self) -> None:
        self.file.close()


class PadReader:
    """A game controller through pygame: SDL maps every pad in its database (hundreds of models, plus any given in
    the SDL_GAMECONTROLLERCONFIG environment variable) onto the Xbox layout. Only SDL's joystick and
    game-controller subsystems are started (no display, no window): ``read()`` updates the pads' state itself.

    The state is sampled once per control tick, so a button pressed and released between two ticks (shorter
    than a tick, 40 ms at 25 Hz) is not seen. A pad that disconnects reads at rest (status: disconnected) until
    it reconnects at the same index.
    """

    def __init__(self, index: int):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        # the pad keeps working while another window (the viewer, a terminal) has the focus
        os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
        try:
            import pygame
            from pygame._sdl2 import controller
        except ImportError as e:
            raise RoboilError(f"the gamepad device needs pygame with SDL2 ({e}); pip install pygame") from None
        self.pygame, self.controller, self.index = pygame, controller, index
        pygame.joystick.init()
        controller.init()
        count = pygame.joystick.get_count()
        if count == 0:
            self.close()
            raise RoboilError(NO_PAD)
        if index >= count:
            self.close()
            raise RoboilError(f"device.index={index}, but pygame sees {count} joystick(s) (indices 0 to {count - 1})")
        if not controller.is_controller(index):
            name = pygame.joystick.Joystick(index).get_name()
            self.close()
            raise RoboilError(f"joystick {index} ('{name}') is not a game controller SDL knows; give its mapping in "
                              "the SDL_GAMECONTROLLERCONFIG environment variable (see SDL_GameControllerDB) or "
                              "choose --device keyboard")
        self.pad = controller.Controller(index)
        self.name = controller.name_forindex(index) or f"joystick {index}"
        c = pygame  # the SDL enums, in Snapshot's order
        self.axes = (c.CONTROLLER_AXIS_LEFTX, c.CONTROLLER_AXIS_LEFTY, c.CONTROLLER_AXIS_RIGHTX,
                     c.CONTROLLER_AXIS_RIGHTY, c.CONTROLLER_AXIS_TRIGGERLEFT, c.CONTROLLER_AXIS_TRIGGERRIGHT)
        self.buttons = tuple(getattr(c, f"CONTROLLER_BUTTON_{name.replace('_', '').upper()}") for name in BUTTONS)
        self.dpad = (c.CONTROLLER_BUTTON_DPAD_UP, c.CONTROLLER_BUTTON_DPAD_DOWN, c.CONTROLLER_BUTTON_DPAD_LEFT,
                     c.CONTROLLER_BUTTON_DPAD_RIGHT)

    def read(self) -> Snapshot:
        self.controller.update()  # polls the pads (no event loop runs for them)
        if self.pad is not None and not self.pad.attached():
            self.pad.quit()
            self.pad = None
        if self.pad is None:
            if self.pygame.joystick.get_count() <= self.index or not self.controller.is_controller(self.index):
                return NEUTRAL
            try:
                self.pad = self.controller.Controller(self.index)
            except self.pygame.error:  # gone again before it opened
                return NEUTRAL
        axes = []
        for i, axis in enumerate(self.axes):
            value = self.pad.get_axis(axis) / 32767.0
            axes.append(min(1.0, max(0.0 if i in TRIGGERS else -1.0, value)))
        up, down, left, right = (int(bool(self.pad.get_button(b))) for b in self.dpad)
        return Snapshot(tuple(axes), tuple(int(bool(self.pad.get_button(b))) for b in self.buttons),
                        (right - left, up - down))

    def describe(self) -> str:
        return self.name if self.pad is not None else f"{self.name} disconnected"

    def close(self) -> None:
        if getattr(self, "pad", None) is not None:
            self.pad.quit()
            self.pad = None
        self.controller.quit()
        self.pygame.joystick.quit()
