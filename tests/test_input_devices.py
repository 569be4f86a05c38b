"""The input devices that drive an end effector: the gamepad and SpaceMouse driven by recorded raw input
(tests/fixtures/input_reports): the mapping of raw axes and buttons to end-effector commands and session
controls, the reports files they replay and write, the live readers against stand-ins for pygame's and hidapi's
devices, and the one-line errors; and the rules all three devices (keyboard too) share from roboil.teleop: the
operator's frame (a viewer's camera, else device.heading), grippers across takes, the error for tasks without
end-effector control."""

import dataclasses
import importlib
import math
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame  # noqa: E402

import roboil
from roboil import DELETE_LAST, DISCARD, HAND_BACK, QUIT, RETRY, SAVE, START, TAKE_OVER, RoboilError
from roboil.specs import DeviceContext, TaskSpec, TeleopSpec

ROOT = Path(__file__).resolve().parents[1]
REPORTS = Path(__file__).parent / "fixtures" / "input_reports"
FPS = 25.0


@pytest.fixture(scope="module")
def plugins():
    """The three plugin packages, imported from plugins/ (they are importable without it once installed)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "plugins"))
        return types.SimpleNamespace(gamepad=importlib.import_module("roboil_gamepad"),
                                     spacemouse=importlib.import_module("roboil_spacemouse"),
                                     keyboard=importlib.import_module("roboil_keyboard"))


def task(arms=("left", "right"), rotation=True, teleop=True) -> TaskSpec:
    """A frozen task record with a teleop spec (the devices read only its name, fps and teleop)."""
    base = TaskSpec(name="stand-in", make_env=lambda render_mode=None: None, make_expert=lambda rng: None, fps=FPS)
    spec = TeleopSpec(make_controller=lambda env: None, arms=arms, rotation=rotation) if teleop else None
    return dataclasses.replace(base, teleop=spec)


def make(module, task_spec=None, viewer=None, **params):
    """A device through its registered spec, as ``roboil record`` makes it."""
    (spec,) = module.register_devices()
    context = DeviceContext(task_spec or task(), None, np.random.default_rng(0), spec.config(**params), viewer)
    return spec.make_device(context)


def run(device, ticks):
    """Drive ``device`` for ``ticks`` control ticks as the session does: controls(), then act()."""
    device.reset()
    out = []
    for _ in range(ticks):
        controls = device.controls()
        out.append((controls, device.act(None)))
    return out


def approx(vector):
    return pytest.approx(vector, abs=1e-9)


# ---- gamepad --------------------------------------------------------------------------------------------------


def test_gamepad_spec(plugins):
    (spec,) = plugins.gamepad.register_devices()
    assert spec.name == "gamepad" and spec.interactive and dataclasses.is_dataclass(spec.config)
    assert spec.config().deadzone == 0.1 and spec.config().reports == ""


def test_gamepad_axes(plugins):
    ticks = run(make(plugins.gamepad, reports=str(REPORTS / "gamepad_motion.jsonl")), 12)
    translation = [command.translation for _, command in ticks]
    rotation = [command.rotation for _, command in ticks]
    assert translation[0] == translation[1] == (0.0, 0.0, 0.0)  # at rest; inside the deadzone
    assert translation[2] == approx((1.0, 0.0, 0.0))  # pushed away: forward = +x
    assert translation[3] == approx((0.0, -1.0, 0.0))  # right = -y
    assert translation[4] == approx((0.5, 0.0, 0.0))  # rescaled past the deadzone
    assert translation[5] == approx((0.0, 0.0, 1.0))  # right trigger up
    assert translation[6] == approx((0.0, 0.0, -1.0))  # left trigger down
    assert translation[7] == (0.0, 0.0, 0.0)  # trigger inside the deadzone
    assert translation[11] == approx((0.6, -0.8, 0.0))  # a diagonal keeps its direction and full magnitude
    assert all(r == (0.0, 0.0, 0.0) for r in rotation[:8] + rotation[11:])
    assert rotation[8] == approx((0.0, 0.0, -1.0))  # right stick right: clockwise from above
    assert rotation[9] == approx((0.0, 1.0, 0.0))  # right stick away: tip forward (about -right = +y)
    assert rotation[10] == approx((1.0, 0.0, 0.0))  # right shoulder: roll right (about forward = +x)
    assert all(controls == [] for controls, _ in ticks)
    assert all(command.gripper == 1.0 and command.arm == 0 for _, command in ticks)


def test_gamepad_heading_speed_and_no_rotation(plugins):
    path = str(REPORTS / "gamepad_motion.jsonl")
    turned = run(make(plugins.gamepad, reports=path, heading=90.0), 12)
    assert turned[2][1].translation == approx((0.0, 1.0, 0.0))  # facing +y, forward is +y
    assert turned[3][1].translation == approx((1.0, 0.0, 0.0))  # and right is +x
    assert turned[10][1].rotation == approx((0.0, 1.0, 0.0))  # roll about forward
    slow = run(make(plugins.gamepad, reports=path, speed=0.5, rotation_speed=0.25), 12)
    assert slow[2][1].translation == approx((0.5, 0.0, 0.0)) and slow[8][1].rotation == approx((0.0, 0.0, -0.25))
    flat = run(make(plugins.gamepad, task(rotation=False), reports=path), 12)
    assert all(command.rotation == (0.0, 0.0, 0.0) for _, command in flat)
    assert flat[2][1].translation == approx((1.0, 0.0, 0.0))


def stand_in_viewer(heading_degrees, held=()):
    """A stand-in for roboil.viewer.Viewer: ``heading()`` in radians (the camera's azimuth), the keys ``held``."""
    return types.SimpleNamespace(heading=lambda: math.radians(heading_degrees), held=lambda: set(held),
                                 pressed=lambda: [], label=lambda name: name)


def test_gamepad_follows_the_viewer_camera(plugins):
    path = str(REPORTS / "gamepad_motion.jsonl")
    ticks = run(make(plugins.gamepad, viewer=stand_in_viewer(180.0), reports=path, heading=90.0), 4)
    # the camera looks along -x: pushed away is -x whatever device.heading says, and right is +y
    assert ticks[2][1].translation == approx((-1.0, 0.0, 0.0)) and ticks[3][1].translation == approx((0.0, 1.0, 0.0))


def test_gamepad_buttons_fire_once_on_the_press_edge(plugins):
    device = make(plugins.gamepad, reports=str(REPORTS / "gamepad_buttons.jsonl"))
    ticks = run(device, 25)
    fired = {tick: controls for tick, (controls, _) in enumerate(ticks) if controls}
    assert fired == {0: [START], 12: [SAVE], 13: [RETRY], 14: [DISCARD], 15: [DELETE_LAST], 17: [QUIT],
                     18: [TAKE_OVER], 19: [HAND_BACK], 20: [START, SAVE], 22: [QUIT], 23: [QUIT], 24: [QUIT]}
    grip = [(command.arm, command.gripper) for _, command in ticks]
    assert grip[:4] == [(0, 1.0)] * 4
    assert grip[4:7] == [(0, -1.0)] * 3  # closed once, not again while A is held
    assert grip[7] == (0, 1.0)  # pressed again: open
    assert grip[8:10] == [(1, 1.0)] * 2  # B: the right arm, open
    assert grip[10] == (1, -1.0)  # its gripper closed
    assert grip[11] == (0, 1.0)  # B again wraps to the left arm, still open
    assert "arm left, gripper open" in device.status()
    device.close()


def test_gamepad_reports_exhausted_quit_and_rest(plugins):
    device = make(plugins.gamepad, reports=str(REPORTS / "gamepad_motion.jsonl"))
    ticks = run(device, 15)
    assert ticks[11][1].translation != (0.0, 0.0, 0.0)
    assert [controls for controls, _ in ticks[12:]] == [[QUIT]] * 3
    assert all(command.translation == (0.0, 0.0, 0.0) for _, command in ticks[12:])
    assert "reports over" in device.status()


def test_gamepad_saved_reports_replay_the_same(plugins, tmp_path):
    saved = tmp_path / "pad.jsonl"
    device = make(plugins.gamepad, reports=str(REPORTS / "gamepad_buttons.jsonl"), save_reports=str(saved))
    first = run(device, 22)
    device.close()
    assert run(make(plugins.gamepad, reports=str(saved)), 22) == first
    assert len(saved.read_text().splitlines()) == 22


def test_gamepad_live_pad(plugins, monkeypatch):
    """PadReader against a stand-in for pygame's SDL game controller: SDL's raw ranges and the d-pad as buttons."""
    from pygame._sdl2 import controller

    class Pad:
        def __init__(self, index):
            self.axes = {pygame.CONTROLLER_AXIS_LEFTY: -32768, pygame.CONTROLLER_AXIS_TRIGGERRIGHT: 16384}
            self.buttons = {pygame.CONTROLLER_BUTTON_Y, pygame.CONTROLLER_BUTTON_DPAD_UP}

        def attached(self):
            return True

        def get_axis(self, axis):
            return self.axes.get(axis, 0)

        def get_button(self, button):
            return button in self.buttons

        def quit(self):
            pass

    plugged = {"count": 1}
    monkeypatch.setattr(pygame.joystick, "get_count", lambda: plugged["count"])
    monkeypatch.setattr(controller, "is_controller", lambda index: True)
    monkeypatch.setattr(controller, "name_forindex", lambda index: "Stand-in Pad")
    monkeypatch.setattr(controller, "Controller", Pad)
    monkeypatch.setattr(controller, "update", lambda: None)
    device = make(plugins.gamepad)
    (controls, command), (again, _) = run(device, 2)
    assert controls == [SAVE, TAKE_OVER] and again == []
    assert command.translation == approx((1.0, 0.0, (16384 / 32767 - 0.1) / 0.9))
    assert "Stand-in Pad" in device.status()
    Pad.attached, plugged["count"] = (lambda self: False), 0  # unplugged: at rest until it is back
    assert device.controls() == [] and device.act(None).translation == (0.0, 0.0, 0.0)
    assert device.controls() == [] and "disconnected" in device.status()
    Pad.attached, plugged["count"] = (lambda self: True), 1  # back: its held buttons are new presses
    assert device.controls() == [SAVE, TAKE_OVER] and "disconnected" not in device.status()
    device.close()


# ---- spacemouse -----------------------------------------------------------------------------------------------


def test_spacemouse_spec(plugins):
    (spec,) = plugins.spacemouse.register_devices()
    assert spec.name == "spacemouse" and spec.interactive and dataclasses.is_dataclass(spec.config)
    assert spec.config().scale == 350.0


def test_spacemouse_separate_reports(plugins):
    device = make(plugins.spacemouse, reports=str(REPORTS / "spacemouse_classic.txt"), hold=0.2)
    ticks = run(device, 45)
    translation = [command.translation for _, command in ticks]
    rotation = [command.rotation for _, command in ticks]
    assert translation[0] == approx((0.0, -1.0, 0.0))  # cap right -> right = -y
    assert translation[1] == approx((-1.0, 0.0, 0.0))  # pulled toward the person -> back = -x
    assert translation[2] == approx((0.0, 0.0, -1.0))  # pushed down -> -z
    assert translation[3] == approx((0.0, 0.0, 0.7 / 0.9))  # lifted 0.8 -> rescaled past the deadzone
    assert translation[4] == (0.0, 0.0, 0.0)  # inside the deadzone
    assert translation[5] == approx((0.0, -1.0, 0.0))  # beyond full deflection: clipped
    assert all(t == (0.0, 0.0, 0.0) for t in translation[6:])
    assert all(r == (0.0, 0.0, 0.0) for r in rotation[:6] + rotation[9:])
    assert rotation[6] == approx((0.0, 0.0, -1.0))  # twisted clockwise -> about -z
    assert rotation[7] == approx((0.0, -1.0, 0.0))  # top toward the person -> tip back, about -y
    assert rotation[8] == approx((-1.0, 0.0, 0.0))  # top rolled left -> about -x
    fired = {tick: controls for tick, (controls, _) in enumerate(ticks) if controls}
    assert fired == {13: [START, SAVE], 15: [RETRY], 28: [DISCARD], 37: [QUIT],
                     42: [QUIT], 43: [QUIT], 44: [QUIT]}  # the file lasts 42 ticks, then quits every tick
    grip = [(command.arm, command.gripper) for _, command in ticks]
    assert grip[10] == (0, 1.0) and grip[11] == (0, -1.0)  # toggled on the release
    assert grip[19] == (0, -1.0) and grip[20] == (1, 1.0)  # the hold drives the next arm, not on the release
    assert grip[22] == (1, 1.0) and grip[23] == (1, -1.0)  # a click inside one tick
    assert "arm right, gripper closed" in device.status() and "reports over" in device.status()


def test_spacemouse_combined_report(plugins):
    ticks = run(make(plugins.spacemouse, reports=str(REPORTS / "spacemouse_wireless.txt")), 7)
    commands = [command for _, command in ticks]
    assert commands[0].translation == approx((0.0, -1.0, 0.0))
    assert commands[0].rotation == approx((0.0, 0.0, 1.0))  # counter-clockwise -> about +z
    assert commands[1].translation == commands[1].rotation == (0.0, 0.0, 0.0)
    for command in commands[2:4]:  # the battery report of tick 3 changes nothing
        assert command.translation == approx((1.0, 0.0, 0.0))  # pushed away -> forward = +x
        assert command.rotation == approx((0.0, -0.4 / 0.9, 0.0))  # half a tilt back, rescaled
    assert [c.gripper for c in commands] == [1.0] * 5 + [-1.0] * 2
    assert all(controls == [] for controls, _ in ticks)


def test_spacemouse_heading_speed_and_single_arm(plugins):
    path = str(REPORTS / "spacemouse_wireless.txt")
    turned = run(make(plugins.spacemouse, reports=path, heading=90.0, speed=0.5), 3)
    assert turned[2][1].translation == approx((0.0, 0.5, 0.0))  # forward is +y when facing +y
    one_arm = make(plugins.spacemouse, task(arms=("arm",), rotation=False),
                   reports=str(REPORTS / "spacemouse_classic.txt"), hold=0.2)
    ticks = run(one_arm, 25)
    assert all(command.arm == 0 and command.rotation == (0.0, 0.0, 0.0) for _, command in ticks)
    assert one_arm.status().startswith("gripper")


def test_spacemouse_saved_reports_replay_the_same(plugins, tmp_path):
    saved = tmp_path / "mouse.txt"
    path = str(REPORTS / "spacemouse_classic.txt")
    device = make(plugins.spacemouse, reports=path, hold=0.2, save_reports=str(saved))
    first = run(device, 42)
    device.close()
    assert run(make(plugins.spacemouse, reports=str(saved), hold=0.2), 42) == first


def fake_hid(devices, reports=()):
    """A stand-in for the ``hid`` module of the hidapi package: ``enumerate`` lists ``devices``; an opened device
    reads ``reports`` one at a time (an empty one ends a tick's reports, None fails as an unplugged device), then
    nothing."""
    queue = list(reports)

    class Device:
        def open_path(self, path):
            self.path = path

        def set_nonblocking(self, flag):
            pass

        def read(self, size):
            if queue and queue[0] is None:
                raise OSError("read error")  # unplugged
            return list(queue.pop(0)) if queue else []  # b"": nothing more until the next tick

        def close(self):
            pass

    return types.SimpleNamespace(enumerate=lambda vendor=0, product=0: devices, device=Device)


SPACEMOUSE = {"vendor_id": 0x256F, "product_id": 0xC635, "path": b"/dev/hidraw7",
              "product_string": "SpaceMouse Compact", "usage_page": 1, "usage": 8}
RECEIVER_MOUSE = {**SPACEMOUSE, "path": b"/dev/hidraw8", "usage_page": 1, "usage": 2}  # a receiver's pointer interface
LOGITECH_MOUSE = {"vendor_id": 0x046D, "product_id": 0xC077, "path": b"/dev/hidraw1", "usage_page": 1, "usage": 2}


def test_spacemouse_live_device(plugins, monkeypatch):
    # a 13-byte report 1 (x = +350, rz = -350), then a click of the left button: all waiting at the first tick
    reports = [bytes.fromhex("01 5e01 0000 0000 0000 0000 a2fe"), bytes.fromhex("030100"), bytes.fromhex("030000")]
    monkeypatch.setitem(sys.modules, "hid", fake_hid([LOGITECH_MOUSE, RECEIVER_MOUSE, SPACEMOUSE], reports))
    device = make(plugins.spacemouse)
    controls = device.controls()  # one tick drains every report waiting
    command = device.act(None)
    assert controls == [] and command.translation == approx((0.0, -1.0, 0.0)) and command.gripper == -1.0
    assert command.rotation == approx((0.0, 0.0, 1.0))
    assert "SpaceMouse Compact" in device.status()
    device.close()


def test_spacemouse_unplugged(plugins, monkeypatch):
    reports = [bytes.fromhex("01 5e01 0000 0000"), b"", None]
    monkeypatch.setitem(sys.modules, "hid", fake_hid([SPACEMOUSE], reports))
    device = make(plugins.spacemouse)
    device.controls()
    assert device.act(None).translation == approx((0.0, -1.0, 0.0))
    device.controls()  # the read fails: the last motion must not go on driving the robot
    assert device.act(None).translation == (0.0, 0.0, 0.0) and "disconnected" in device.status()
    device.close()


# ---- what the three devices share (roboil.teleop) -------------------------------------------------------------


def test_operator_to_world():
    from roboil import operator_heading, operator_to_world

    assert operator_to_world((1, 0, 0), 0.0) == (1.0, 0.0, 0.0)  # heading 0: the operator's frame is the world's
    assert operator_to_world((1, 0, 0), math.pi / 2) == (0.0, 1.0, 0.0)  # exactly: cos(90 degrees) is 6e-17
    assert operator_to_world((0, 1, 0.5), math.pi / 2) == (-1.0, 0.0, 0.5)  # left of +y is -x; up stays +z
    assert operator_to_world((1, 1, -2), math.pi / 4) == (0.0, 1.0, -1.0)  # 1.41 and -2 clipped to [-1, 1]
    assert str(operator_to_world((-1, 0, 0), math.pi)) == "(1.0, 0.0, 0.0)"  # no -0.0 from sin(180 degrees)
    assert operator_heading(None, 90.0) == math.pi / 2
    assert operator_heading(stand_in_viewer(180.0), 90.0) == math.pi  # a viewer's camera wins over the param


def test_arm_selection():
    from roboil import ArmSelection

    arms = ArmSelection(("left", "right"))
    assert arms.status() == "arm left, gripper open"
    arms.toggle_gripper()
    arms.next_arm()
    assert arms.status() == "arm right, gripper open"
    arms.next_arm()
    assert arms.status() == "arm left, gripper closed"  # each arm keeps its own gripper target
    arms.next_arm()
    arms.reset()  # a new take: grippers open, the arm driven kept
    assert (arms.arm, arms.grippers) == (1, [1.0, 1.0]) and arms.status() == "arm right, gripper open"
    single = ArmSelection(("arm",))
    single.next_arm()
    assert single.arm == 0 and single.status() == "gripper open"


def forward(plugins, tmp_path, name, keys="up"):
    """(module, params, tick): ``name`` replaying input that pushes full forward on ``tick``."""
    if name == "keyboard":
        script = tmp_path / "keys.txt"
        script.write_text(keys)
        return plugins.keyboard, {"script": str(script)}, 0
    if name == "gamepad":
        return plugins.gamepad, {"reports": str(REPORTS / "gamepad_motion.jsonl")}, 2
    return plugins.spacemouse, {"reports": str(REPORTS / "spacemouse_wireless.txt")}, 2


DEVICES = ("keyboard", "gamepad", "spacemouse")


@pytest.mark.parametrize("name", DEVICES)
def test_heading_without_a_viewer(plugins, tmp_path, name):
    module, params, tick = forward(plugins, tmp_path, name)
    assert run(make(module, **params), tick + 1)[tick][1].translation == (1.0, 0.0, 0.0)  # default: world +x
    assert run(make(module, heading=90.0, **params), tick + 1)[tick][1].translation == (0.0, 1.0, 0.0)
    assert run(make(module, heading=180.0, **params), tick + 1)[tick][1].translation == (-1.0, 0.0, 0.0)


@pytest.mark.parametrize("name", DEVICES)
def test_directions_follow_the_viewer_camera(plugins, tmp_path, name):
    module, params, tick = forward(plugins, tmp_path, name)
    if name == "keyboard":  # the keys from the window, as when recording live
        params = {}
    viewer = stand_in_viewer(90.0, held={"up"})  # the camera looks along +y
    # device.heading is for sessions without a viewer: the camera wins
    command = run(make(module, viewer=viewer, heading=-90.0, **params), tick + 1)[tick][1]
    assert command.translation == (0.0, 1.0, 0.0)


def test_rotations_turn_with_the_operator(plugins, tmp_path):
    module, params, tick = forward(plugins, tmp_path, "keyboard", keys="up+u")  # u: roll right, about forward
    command = run(make(module, heading=90.0, **params), 1)[0][1]
    assert command.translation == command.rotation == (0.0, 1.0, 0.0)
    module, params, tick = forward(plugins, tmp_path, "spacemouse")  # and the cap tilted back: about -left
    command = run(make(module, heading=90.0, **params), tick + 1)[tick][1]
    assert command.translation == (0.0, 1.0, 0.0) and command.rotation == approx((0.4 / 0.9, 0.0, 0.0))


@pytest.mark.parametrize("name, params, ticks", [
    ("keyboard", {"script": "tab space"}, 2),
    ("gamepad", {"reports": str(REPORTS / "gamepad_buttons.jsonl")}, 11),
    ("spacemouse", {"reports": str(REPORTS / "spacemouse_classic.txt"), "hold": 0.2}, 24),
])
def test_new_take_opens_the_grippers(plugins, tmp_path, name, params, ticks):
    if name == "keyboard":
        (tmp_path / "keys.txt").write_text(params["script"])
        params = {"script": str(tmp_path / "keys.txt")}
    device = make(getattr(plugins, name), **params)
    last = run(device, ticks)[-1][1]
    assert (last.arm, last.gripper) == (1, -1.0) and device.status().startswith("arm right, gripper closed")
    device.reset()
    assert (device.act(None).arm, device.act(None).gripper) == (1, 1.0)  # the arm carries over, the grip opens
    assert device.status().startswith("arm right, gripper open")


# ---- errors ---------------------------------------------------------------------------------------------------


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


def test_no_teleop(plugins, tmp_path):
    script = tmp_path / "keys.txt"
    script.write_text("up")
    for module, params in ((plugins.gamepad, {"reports": str(REPORTS / "gamepad_motion.jsonl")}),
                           (plugins.spacemouse, {"reports": str(REPORTS / "spacemouse_classic.txt")}),
                           (plugins.keyboard, {"script": str(script)})):
        with pytest.raises(RoboilError) as excinfo:
            make(module, task(teleop=False), **params)
        assert one_line(excinfo) == ("task 'stand-in' has no end-effector control for input devices; record it with "
                                     "--device scripted or --device replay")


def test_no_gamepad(plugins, monkeypatch):
    monkeypatch.setattr(pygame.joystick, "get_count", lambda: 0)
    with pytest.raises(RoboilError) as excinfo:
        make(plugins.gamepad)
    assert one_line(excinfo) == ("no gamepad found (pygame sees 0 joysticks); plug one in or choose --device "
                                 "keyboard")


def test_no_gamepad_real_sdl(plugins):
    """The same through SDL itself, where no pad is plugged in (this machine)."""
    pygame.joystick.init()
    count = pygame.joystick.get_count()
    pygame.joystick.quit()
    if count:
        pytest.skip("a joystick is plugged in here")
    with pytest.raises(RoboilError, match="no gamepad found"):
        make(plugins.gamepad)


def test_gamepad_index_out_of_range(plugins, monkeypatch):
    monkeypatch.setattr(pygame.joystick, "get_count", lambda: 1)
    with pytest.raises(RoboilError) as excinfo:
        make(plugins.gamepad, index=2)
    assert "device.index=2" in one_line(excinfo)


def test_no_pygame(plugins, monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    with pytest.raises(RoboilError) as excinfo:
        make(plugins.gamepad)
    assert "pip install pygame" in one_line(excinfo)


def test_no_hidapi(plugins, monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(RoboilError) as excinfo:
        make(plugins.spacemouse)
    assert "pip install hidapi" in one_line(excinfo) and "roboil[spacemouse]" in one_line(excinfo)


def test_no_spacemouse(plugins, monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", fake_hid([LOGITECH_MOUSE, RECEIVER_MOUSE]))
    with pytest.raises(RoboilError) as excinfo:
        make(plugins.spacemouse)
    assert one_line(excinfo).startswith("no SpaceMouse found")


def test_spacemouse_cannot_open(plugins, monkeypatch):
    hid = fake_hid([SPACEMOUSE])

    def refuse(self, path):
        raise OSError("open failed")

    hid.device.open_path = refuse
    monkeypatch.setitem(sys.modules, "hid", hid)
    with pytest.raises(RoboilError) as excinfo:
        make(plugins.spacemouse)
    assert "cannot open SpaceMouse Compact at /dev/hidraw7 (open failed)" in one_line(excinfo)


@pytest.mark.parametrize("name, text, message", [
    ("pad.jsonl", '{"axes": [0, 0]}\n{"axes": [0, 0\n', "line 2: not JSON"),
    ("pad.jsonl", '{"axes": [0, 0, 0, 0, 0, 0, 0]}\n', "axes must be a list of at most 6 numbers"),
    ("pad.jsonl", '{"buttons": [2]}\n', "buttons must be 0 or 1"),
    ("pad.jsonl", '{"stick": [1]}\n', "unknown key 'stick'"),
    ("pad.jsonl", '{"repeat": 0}\n', "repeat must be a whole number"),
    ("mouse.txt", "0 01 5e01\n1 zz\n", "line 2: expected 'TICK HEX'"),
    ("mouse.txt", "3 030100\n2 030000\n", "tick 2 comes after tick 3"),
])
def test_bad_reports_files(plugins, tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    module = plugins.gamepad if name.endswith(".jsonl") else plugins.spacemouse
    with pytest.raises(RoboilError) as excinfo:
        make(module, reports=str(path))
    assert message in one_line(excinfo) and str(path) in one_line(excinfo)


def test_missing_reports_file(plugins, tmp_path):
    for module in (plugins.gamepad, plugins.spacemouse):
        with pytest.raises(RoboilError) as excinfo:
            make(module, reports=str(tmp_path / "none"))
        assert "check device.reports" in one_line(excinfo)


@pytest.mark.parametrize("params", [{"deadzone": 1.0}, {"deadzone": -0.1}, {"speed": 0.0}, {"index": -1}])
def test_bad_params(plugins, params):
    from roboil.config import from_dict

    for module in (plugins.gamepad, plugins.spacemouse):
        (spec,) = module.register_devices()
        with pytest.raises(RoboilError) as excinfo:
            from_dict(spec.config, params, "device")
        assert f"device.{next(iter(params))}" in one_line(excinfo)


def test_registry_accepts_both(plugins):
    """Both register cleanly through the plugin manager, as their entry points will."""
    import pluggy

    from roboil import hookspecs
    from roboil.plugins import Registry

    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(plugins.gamepad, name="gamepad")
    manager.register(plugins.spacemouse, name="spacemouse")
    registry = Registry(manager, [], [])
    assert registry.problems == [] and registry.names("device") == ["gamepad", "spacemouse"]
    assert roboil.DeviceSpec is type(registry.get("device", "gamepad"))


# ---- a recording session --------------------------------------------------------------------------------------


@pytest.fixture
def registered(plugins, monkeypatch):
    """Both devices in the process's plugin registry, as their entry points put them once installed."""
    from roboil.plugins import registry

    devices = registry().records["device"]
    for module in (plugins.gamepad, plugins.spacemouse):
        (spec,) = module.register_devices()
        monkeypatch.setitem(devices, spec.name, (spec, module.__name__))


@pytest.mark.parametrize("device, reports, expected", [
    ("gamepad", "gamepad_session.jsonl", [[0, 0, 0, 1], [1, 0, 0, 1], [1, 0, 0, 1], [1, 0, 0, 1], [0, 0, 0, -1]]),
    ("spacemouse", "spacemouse_session.txt", [[1, 0, 0, 1], [1, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, -1], [0, 0, 0, -1]]),
])
def test_recording_session(registered, tmp_path, device, reports, expected):
    """``roboil record`` on fetch-reach with the device replaying a session: start, move, grip, save, quit."""
    from roboil.record import record
    from roboil.store import EpisodeStore

    path = tmp_path / "teleop.zarr"
    summary = record("fetch-reach", None, path, device=device, device_params={"reports": str(REPORTS / reports)},
                     viewer=False, progress=False)
    assert summary["recorded"] == 1 and summary["total_episodes"] == 1
    store = EpisodeStore.open(path)
    np.testing.assert_allclose(store.episode(0)["action"][:, :4], expected)
    assert store.episode_attrs()[0]["device"] == device
