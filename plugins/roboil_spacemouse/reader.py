"""Where the SpaceMouse's raw HID reports come from: the device through hidapi, or a recorded reports file; and
the writer that records them (``device.save_reports``) for tests and bug reports.

Reports file: one report per line, ``TICK HEX``: the 0-based control tick it arrived on and its bytes in hex, the
report id first (spaces inside the hex are allowed, ``#`` starts a comment). Several lines may share a tick (in
order); ticks with no line had no report (the device repeats nothing: the last motion holds). A line with a tick
alone adds no report but makes the file last at least to that tick.
"""

from __future__ import annotations

import sys

from roboil import RecordedTicks, RoboilError, open_device_file

VENDORS = (0x256F, 0x046D)  # 3Dconnexion; Logitech, for the models sold under its name
# 3D mice with Logitech's vendor id (which also covers Logitech's ordinary mice and keyboards): SpaceMouse Plus,
# CadMan, SpaceMouse Classic, SpaceBall 5000, SpaceTraveler, SpacePilot, SpaceNavigator, SpaceExplorer,
# SpaceNavigator for Notebooks, SpacePilot Pro, SpaceMouse Pro
LOGITECH_3D = {0xC603, 0xC605, 0xC606, 0xC621, 0xC623, 0xC625, 0xC626, 0xC627, 0xC628, 0xC629, 0xC62B}
# 3Dconnexion's own 3D mice, for hidapi builds that do not report usages: SpaceMouse Wireless (cable, receiver),
# Pro Wireless (cable, receiver), Enterprise, Compact, Module, Pro Wireless Bluetooth, Wireless (newer),
# SpaceMouse, Universal Receiver
CONNEXION_3D = {0xC62E, 0xC62F, 0xC631, 0xC632, 0xC633, 0xC635, 0xC636, 0xC638, 0xC63A, 0xC641, 0xC652}
MULTI_AXIS = (0x01, 0x08)  # HID usage page Generic Desktop, usage Multi-axis Controller
MAX_REPORTS_PER_TICK = 512  # the device sends about 60 to 125 a second: a tick drains them all
NO_DEVICE = ("no SpaceMouse found (hidapi sees no 3Dconnexion device, vendor 0x256f or 0x046d); plug one in, let your "
             "user read it (on Linux a udev rule for /dev/hidraw*), or choose --device keyboard")


class ReportsReader(RecordedTicks):
    """The reports of a reports file, one tick's list per ``read()``; None once every tick is read."""

    def __init__(self, path: str):
        with open_device_file(path, "r", "spacemouse reports", "reports") as file:
            lines = file.read().splitlines()
        ticks: list[list[bytes]] = []
        last = -1
        for number, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"spacemouse reports '{path}' line {number}"
            tick_text, _, hex_text = line.partition(" ")
            try:
                tick = int(tick_text)
                data = bytes.fromhex(hex_text)
            except ValueError:
                raise RoboilError(f"{where}: expected 'TICK HEX' (a tick number and the report's bytes in hex), "
                                  f"got '{line}'") from None
            if tick < last:
                raise RoboilError(f"{where}: tick {tick} comes after tick {last}; ticks must not decrease")
            last = tick
            while len(ticks) <= tick:
                ticks.append([])
            if data:
                ticks[tick].append(data)
        super().__init__(ticks)


class ReportsWriter:
    """Writes every report read with its tick (the reports file format), and the last tick at the end so a
    replay lasts as long as the session did."""

    def __init__(self, path: str):
        self.file = open_device_file(path, "w", "spacemouse reports", "save_reports")
        self.tick = -1

    def write(self, reports: list[bytes]) -> None:
        self.tick += 1
        for data in reports:
            self.file.write(f"{self.tick} {data.hex()}\n")

    def close(self) -> None:
        if self.tick >= 0:
            self.file.write(f"{self.tick}\n")
        self.file.close()


def is_spacemouse(info: dict) -> bool:
    vendor, product = info.get("vendor_id"), info.get("product_id")
    if vendor not in VENDORS or (vendor == 0x046D and product not in LOGITECH_3D):
        return False
    usage = (info.get("usage_page") or 0, info.get("usage") or 0)
    if usage != (0, 0):  # hidapi read the interface's usage: only the 6-DoF one, not a receiver's mouse or keys
        return usage == MULTI_AXIS
    return vendor == 0x046D or product in CONNEXION_3D


class HidReader:
    """The first (``index``-th) SpaceMouse hidapi finds, read without blocking: ``read()`` drains the reports that
    arrived since the last call. Works with the ``hidapi`` package (``hid.device``) and with the ``hid`` package
    (``hid.Device``), which share the module name. A device that stops answering reads at rest (status:
    disconnected)."""

    def __init__(self, index: int):
        try:
            import hid
        except ImportError as e:
            detail = "" if isinstance(e, ModuleNotFoundError) else f" ({str(e).splitlines()[0] if str(e) else e!r})"
            raise RoboilError(f"the spacemouse device needs the hidapi package{detail}; pip install hidapi (or pip "
                              "install 'roboil[spacemouse]')") from None
        found, paths = [], set()
        for info in hid.enumerate(0, 0):
            if is_spacemouse(info) and info.get("path") not in paths:
                paths.add(info.get("path"))
                found.append(info)
        if not found:
            raise RoboilError(NO_DEVICE)
        if index >= len(found):
            raise RoboilError(f"device.index={index}, but hidapi sees {len(found)} SpaceMouse device(s) (indices 0 "
                              f"to {len(found) - 1})")
        info = found[index]
        self.name = info.get("product_string") or f"3D mouse {info['vendor_id']:04x}:{info['product_id']:04x}"
        path = info["path"]
        try:
            if hasattr(hid, "device"):  # hidapi (cython-hidapi)
                self.device = hid.device()
                self.device.open_path(path)
                self.device.set_nonblocking(1)
            else:  # hid (ctypes bindings)
                self.device = hid.Device(path=path)
                self.device.nonblocking = True
        except (OSError, IOError, ValueError) as e:  # e.g. no permission, or another program holds it
            name = path.decode(errors="replace") if isinstance(path, bytes) else path
            hint = (" let your user read /dev/hidraw* (a udev rule) and stop spacenavd if it holds the device;"
                    if sys.platform.startswith("linux") else " quit 3Dconnexion's driver if it holds the device;")
            raise RoboilError(f"cannot open {self.name} at {name} ({e});{hint} or choose --device keyboard") from None
        self.connected = True

    def read(self) -> list[bytes]:
        reports: list[bytes] = []
        if not self.connected:
            return reports
        try:
            for _ in range(MAX_REPORTS_PER_TICK):
                data = self.device.read(64)
                if not data:
                    break
                reports.append(bytes(data))
        except (OSError, IOError, ValueError):
            self.connected = False
        return reports

    def describe(self) -> str:
        return self.name if self.connected else f"{self.name} disconnected"

    def close(self) -> None:
        self.device.close()
