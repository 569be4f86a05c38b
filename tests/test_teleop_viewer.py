"""A person can record through the real viewer window: under Xvfb, synthetic key presses (xdotool) drive a
keyboard session of fetch-reach to a successful, on-time episode."""

import shutil
import subprocess
import sys

import pytest

from roboil.store import EpisodeStore

missing = [tool for tool in ("Xvfb", "xdotool", "import") if shutil.which(tool) is None]


@pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)} (make xvfb installs them)")
def test_keyboard_session_in_the_real_window_records_a_successful_reach(tmp_path):
    path = tmp_path / "teleop.zarr"
    result = subprocess.run([sys.executable, "tools/teleop_under_xvfb.py", "--out", str(path), "--screenshot",
                             str(tmp_path / "viewer.png")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (attrs,) = EpisodeStore.open(path).episode_attrs()
    assert attrs["success"] and attrs["on_time"] and attrs["device"] == "keyboard" and attrs["operator"] == "xdotool"
    assert attrs["paced"] and attrs["late_ticks"] <= 0.02 * attrs["length"]
    assert (tmp_path / "viewer.png").stat().st_size > 10_000  # a picture of the window, overlay and all
