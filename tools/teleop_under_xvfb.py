"""A person's teleop session, played by synthetic key presses into the real viewer window under Xvfb.

Starts a virtual display (Xvfb) unless --display names one, runs `roboil record --task fetch-reach --device
keyboard` in it, and drives the window with xdotool as a person would: Enter to start, held shift+arrow keys
to move the gripper to the goal (planned from the episode's start, seed 0), S to save. Prints the episode's
attrs and exits 0 when the store holds one successful, on-time episode. With --screenshot, a picture of the
window with its status overlay, taken mid-take.

    python tools/teleop_under_xvfb.py --out /tmp/teleop.zarr --screenshot docs/teleop_viewer.png

Needs Xvfb, xdotool and ImageMagick's `import` (Debian: apt-get install -y xvfb xdotool imagemagick).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TITLE = "roboil record: fetch-reach"
FPS, STEP = 25.0, 0.05  # fetch-reach: control rate, metres per tick at full speed
FINE = 1 / 3  # shift: the keyboard device's fine speed
# a quarter of the speed: a key held one tick more or less (xdotool and the 40 ms tick are not in step) then
# moves the gripper 4 mm, not 17 mm, as a person slows down near the goal
SPEED = 0.25
PAUSE_SECONDS = 0.3  # between holds, as a person lets go of one key before pressing the next
PAUSE_TICKS = round(PAUSE_SECONDS * FPS)
# the viewer opens looking along +y, and arrows follow the camera: up is +y, right is +x
KEYS = {(0, 1): "Right", (0, -1): "Left", (1, 1): "Up", (1, -1): "Down", (2, 1): "Prior", (2, -1): "Next"}


def plan(seed: int) -> list[tuple[str, float]]:
    """(key, seconds held) per axis that bring the gripper to the goal of the take starting from ``seed``.

    Fetch moves its gripper target from where the gripper is, and the arm lags behind it, so a held key moves
    less than speed x time; like a person practising, the holds are rehearsed in simulation (with the pauses
    the session has between them) and lengthened until the gripper ends within 1 cm of the goal."""
    from roboil.envs import ObservedEnv

    env = ObservedEnv("fetch-reach", {"proprio": {}}, max_steps=10_000)
    step = STEP * FINE * SPEED
    env.reset(seed=seed)
    ticks = np.round((env.raw_obs["desired_goal"] - env.raw_obs["observation"][:3]) / step).astype(int)
    for _ in range(5):
        env.reset(seed=seed)
        for axis, n in enumerate(ticks):
            command = np.zeros(4, np.float32)
            command[axis], command[3] = np.sign(n) * FINE * SPEED, 1.0
            for _ in range(abs(n)):
                env.step(command)
            for _ in range(PAUSE_TICKS):
                env.step(np.array([0, 0, 0, 1], np.float32))
        error = env.raw_obs["desired_goal"] - env.raw_obs["observation"][:3]
        if np.abs(error).max() < 0.01:
            break
        ticks = ticks + np.round(error / step).astype(int)
    env.close()
    return [(KEYS[axis, 1 if n > 0 else -1], abs(n) / FPS) for axis, n in enumerate(ticks) if n]


def xdotool(display: str, *args: str) -> str:
    return subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True,
                          capture_output=True, text=True).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the episode store to record into (must not exist)")
    parser.add_argument("--display", default=None, help="an X display to use instead of starting Xvfb")
    parser.add_argument("--screenshot", default=None, help="write a png of the viewer mid-take here")
    args = parser.parse_args()
    missing = [tool for tool in ("xdotool", "import", *(() if args.display else ("Xvfb",))) if not shutil.which(tool)]
    if missing:
        print(f"needs {', '.join(missing)}: apt-get install -y xvfb xdotool imagemagick", file=sys.stderr)
        return 2
    if Path(args.out).exists():
        print(f"{args.out} exists; give a new --out", file=sys.stderr)
        return 2
    holds = plan(seed=0)
    xvfb = None
    display = args.display
    if display is None:
        display = f":{100 + os.getpid() % 500}"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x960x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    env = {**os.environ, "DISPLAY": display, "MUJOCO_GL": "egl"}
    recorder = subprocess.Popen([sys.executable, "-m", "roboil.cli", "record", "--task", "fetch-reach", "--device",
                                 "keyboard", f"device.speed={SPEED}", "--episodes", "1", "--max-steps", "500",
                                 "--operator", "xdotool",
                                 "--out", args.out], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        window = xdotool(display, "search", "--sync", "--onlyvisible", "--name", TITLE).split()[0]
        xdotool(display, "windowfocus", "--sync", window)  # no window manager: focus it ourselves
        time.sleep(1.0)  # the first frames drawn
        xdotool(display, "key", "Return")
        time.sleep(0.5)
        for index, (key, seconds) in enumerate(holds):
            xdotool(display, "keydown", "shift", "keydown", key)
            time.sleep(seconds)
            xdotool(display, "keyup", key, "keyup", "shift")
            time.sleep(PAUSE_SECONDS)
            if index == 0 and args.screenshot:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["import", "-window", window, args.screenshot], env=env, check=True)
        time.sleep(1.0)  # the arm settles on the last target
        xdotool(display, "key", "s")
        out, err = recorder.communicate(timeout=60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
        if xvfb is not None:
            xvfb.kill()
    print(err.strip())
    if recorder.returncode != 0:
        print(f"roboil record exited {recorder.returncode}", file=sys.stderr)
        return 1
    from roboil.store import EpisodeStore

    store = EpisodeStore.open(args.out)
    attrs = store.episode_attrs()
    shown = {k: v for k, v in attrs[-1].items() if k not in ("start_state",)} if attrs else {}
    print(json.dumps(shown, indent=1))
    final = store.episode(0)["observation"][-1, :3] if attrs else None
    ok = len(attrs) == 1 and attrs[0]["success"] and attrs[0]["on_time"] and attrs[0]["device"] == "keyboard"
    if final is not None:
        actions = store.episode(0)["action"]
        print(f"gripper ended {np.round(final, 3).tolist()}, goal {np.round(store.episode(0)['desired_goal'][-1], 3).tolist()}; "
              f"ticks moving per axis {(actions[:, :3] != 0).sum(axis=0).tolist()} (planned "
              f"{[round(seconds * FPS) for _, seconds in holds]})")
    print("OK: one successful, on-time episode recorded through the viewer" if ok else "FAILED", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
