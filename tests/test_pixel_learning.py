"""A policy that sees nothing but a camera learns: the pixels plugin's encoder (ResNet-18 with GroupNorm, spatial
softmax, random crops) trained end to end through the real record and train commands predicts the actions of
PushT demonstrations it never saw.

Actions are absolute pusher targets, which lie close to the pusher itself: the policy has to find the pusher in
the image. Sized to be quick (under a minute on 2 cores): with training seeds 0 to 4 the held-out ratio after 100
steps is 0.24-0.27 (1.0 is no better than always predicting the mean action). Learning rate 1e-3 instead of 3e-4
left seed 2 at 1.06 after 300 steps; 48x48 frames left seed 3 at 1.07."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import run_cli

TOOL = Path(__file__).parents[1] / "tools" / "open_loop_error.py"
FRAMES = ("obs.pixels.cameras=[top]", "obs.pixels.height=64", "obs.pixels.width=64")


def test_policy_from_pixels_alone_predicts_held_out_demonstrations(tmp_path):
    demonstrations, held_out = tmp_path / "demos.zarr", tmp_path / "held_out.zarr"
    run_cli("record", "--task", "pusht", "--episodes", 10, "--seed", 0, "--out", demonstrations, *FRAMES, check=True)
    run_cli("record", "--task", "pusht", "--episodes", 5, "--seed", 1000, "--out", held_out, *FRAMES, check=True)
    config = tmp_path / "pixels_only.yaml"
    config.write_text(yaml.safe_dump({
        "task": "pusht",
        "algorithm": {"name": "gcbc", "goal_conditioned": False, "n_obs_steps": 1, "horizon": 1, "n_action_steps": 1},
        "data": {"path": str(demonstrations), "obs_keys": ["rgb_top"]},
        "train": {"steps": 100, "batch_size": 32, "lr": 0.0003, "warmup_steps": 20, "seed": 0},
    }))
    run = tmp_path / "run"
    run_cli("train", config, "--out", run, check=True)
    result = subprocess.run([sys.executable, str(TOOL), str(held_out), str(run), "--stride", "4"],
                            capture_output=True, text=True, check=True)
    ratio = float(re.search(r"ratio ([0-9.]+)", result.stdout).group(1))
    assert ratio < 0.5, result.stdout
