"""Evaluation videos: H.264 mp4 files that browsers play, and one complete video per filmed episode whatever the
number of parallel environments (on a toy task whose episodes end at different steps, installed as a plugin)."""

import json
import subprocess
import sys
import textwrap

import imageio_ffmpeg
import numpy as np
import pytest
import yaml

from conftest import plugin_pythonpath, run_cli
from roboil.video import write_mp4, write_png

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def video_stream(path) -> str:
    """ffmpeg's line about the file's video stream, e.g. 'Video: h264 (High) (avc1 / ...), yuv420p(...), 240x240'."""
    stderr = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return next(line for line in stderr.splitlines() if "Video:" in line)


def decode(path, size) -> np.ndarray:
    """Every frame of a video as RGB uint8 (N, H, W, 3)."""
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    width, height = size
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def top_level_boxes(path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset < len(data):
        size, kind = int.from_bytes(data[offset:offset + 4], "big"), data[offset + 4:offset + 8].decode()
        boxes.append(kind)
        offset += size
    return boxes


@pytest.mark.parametrize("height,width", [(48, 64), (33, 47)])
def test_mp4_is_h264_yuv420p_with_every_frame(tmp_path, height, width):
    frames = [np.full((height, width, 3), (8 * t, 255 - 8 * t, 128), np.uint8) for t in range(30)]
    path = write_mp4(tmp_path / "clip.mp4", frames, fps=25.0)
    stream = video_stream(path)
    even = (width + width % 2, height + height % 2)  # yuv420p needs even sizes: an odd one gets a black edge
    assert "Video: h264" in stream and "yuv420p" in stream and f"{even[0]}x{even[1]}" in stream, stream
    assert "25 fps" in stream
    decoded = decode(path, even)
    assert len(decoded) == len(frames)
    error = np.abs(decoded[:, :height, :width].astype(int) - np.stack(frames)).mean(axis=(1, 2, 3))
    assert error.max() < 4  # each frame is the one written, in order
    boxes = top_level_boxes(path)
    assert boxes.index("moov") < boxes.index("mdat")  # the index first: a browser plays while it downloads


def test_png_keeps_the_rgb_frame(tmp_path):
    import cv2

    frame = np.zeros((10, 12, 3), np.uint8)
    frame[..., 0] = 200  # red
    path = write_png(tmp_path / "frame.png", frame)
    np.testing.assert_array_equal(cv2.imread(str(path))[..., ::-1], frame)


STAGGER = '''
"""Task ``stagger``: an episode of seed s lasts 3 + s % 5 steps (terminated), under the task's limit of 6 steps.
The task wraps its env (reward 1 per step): the core must keep a task's wrappers when it applies the limit."""

import gymnasium as gym
import numpy as np

import roboil


class Stagger(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.length = 0, 3 + seed % 5
        return np.zeros(2, np.float32), {"is_success": False}

    def step(self, action):
        self.t += 1
        done = self.t >= self.length
        return np.full(2, self.t / 10, np.float32), 0.0, done, False, {"is_success": done}

    def render(self):  # odd-sized frames whose brightness counts the steps
        return np.full((15, 21, 3), 20 * self.t, np.uint8)


class Still:
    def reset(self):
        pass

    def act(self, raw_obs):
        return np.zeros(1, np.float32)


def make_env(render_mode=None):
    return gym.wrappers.TransformReward(Stagger(render_mode), lambda reward: 1.0)


@roboil.hookimpl
def register_tasks():
    return [roboil.TaskSpec(name="stagger", make_env=make_env, make_expert=lambda rng: Still(),
                            max_episode_steps=6, fps=10.0)]
'''


@pytest.fixture(scope="module")
def stagger(tmp_path_factory):
    """The stagger plugin installed with pip into a directory for PYTHONPATH."""
    source = tmp_path_factory.mktemp("src")
    (source / "roboil_stagger").mkdir()
    (source / "roboil_stagger" / "__init__.py").write_text(STAGGER)
    (source / "pyproject.toml").write_text(textwrap.dedent("""
        [project]
        name = "roboil-stagger"
        version = "0.1"
        [project.entry-points.roboil]
        stagger = "roboil_stagger"
    """))
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(source)], check=True)
    return plugin_pythonpath(target)


@pytest.fixture(scope="module")
def stagger_run(stagger, tmp_path_factory):
    """A (barely trained) policy for the stagger task that films its first 6 evaluation episodes."""
    root = tmp_path_factory.mktemp("stagger")
    run_cli("record", "--task", "stagger", "--episodes", 4, "--out", root / "demos.zarr", env=stagger, check=True)
    config = root / "bc.yaml"
    config.write_text(yaml.safe_dump({
        "task": "stagger", "algorithm": {"name": "gcbc", "goal_conditioned": False, "hidden_dims": [8]},
        "data": {"path": str(root / "demos.zarr")}, "train": {"steps": 1, "warmup_steps": 1},
        "eval": {"video_episodes": 6},
    }))
    run_cli("train", config, "--out", root / "run", env=stagger, check=True)
    return root / "run"


def test_every_filmed_episode_is_whole_with_parallel_envs(stagger, stagger_run, tmp_path):
    """Episodes end at different steps in the two envs: each video still has every frame of its own episode."""
    run_cli("eval", stagger_run, "--episodes", 7, "--envs", 2, "--seed", 100000, "--video", "--out", tmp_path,
            env=stagger, check=True)
    episodes = json.loads((tmp_path / "eval.json").read_text())["episodes"]
    lengths = [min(3 + seed % 5, 6) for seed in range(100000, 100007)]  # the task's limit cuts 7 to 6
    assert [e["length"] for e in episodes] == lengths
    assert [e["return"] for e in episodes] == lengths  # the task's reward wrapper was kept
    assert [e["success"] for e in episodes] == [length < 6 or seed % 5 == 3
                                                for seed, length in zip(range(100000, 100007), lengths)]
    filmed = [e for e in episodes if "video" in e]
    assert [e["seed"] for e in filmed] == list(range(100000, 100006))
    for episode in filmed:
        assert "Video: h264" in video_stream(episode["video"])
        brightness = decode(episode["video"], (22, 16))[:, :15, :21].mean(axis=(1, 2, 3))
        # the reset frame and one per step, in order: 0, 20, 40, ...
        np.testing.assert_allclose(brightness, 20 * np.arange(episode["length"] + 1), atol=3)
        assert episode["final_frame"].endswith(f"seed_{episode['seed']}.png")


def test_max_steps_replaces_the_task_limit_and_must_be_positive(stagger, stagger_run, tmp_path):
    run_cli("eval", stagger_run, "--episodes", 5, "--envs", 2, "--max-steps", 4, "--out", tmp_path, env=stagger,
            check=True)
    episodes = json.loads((tmp_path / "eval.json").read_text())["episodes"]
    assert [e["length"] for e in episodes] == [e["return"] for e in episodes] == [3, 4, 4, 4, 4]
    assert "video" not in episodes[0]  # filmed only when asked
    result = run_cli("eval", stagger_run, "--max-steps", 0, "--out", tmp_path, env=stagger)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "roboil: error: --max-steps must be at least 1, got 0"]
