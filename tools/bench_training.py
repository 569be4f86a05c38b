"""Training samples/s against LeRobot, same episodes, same device, same batch, models at matched size: each
trainer end to end (its data loading included), as a user runs it.

    python tools/bench_training.py diffusion [--device cpu|cuda] [--steps 40] [--batch 64] [--store STORE] [k=v ...]
    python tools/bench_training.py act [--device cpu|cuda] [--steps 40] [--batch 8] [--store STORE] [k=v ...]

- ``diffusion``: Diffusion Policy from the 96x96 PushT camera and the pusher position at the paper's size
  (U-Net down_dims 512, 1024, 2048; ResNet-18 with GroupNorm and 32 spatial-softmax keypoints; 2 observation
  steps, a 16-step horizon, 86x86 random crops), 20 recorded PushT episodes unless ``--store``.
- ``act``: ACT from ALOHA's top camera at 480x640 and the 14 joint positions at the paper's size (dim 512,
  feed-forward 3200, 4 encoder layers, 1 decoder layer, chunk 100, latent 32, no crop), 2 recorded
  aloha-transfer-cube episodes unless ``--store``.

roboil runs ``roboil train`` with the configs in ``configs/`` at those sizes (``key=value`` overrides go to it, e.g.
``train.compile=true``); LeRobot runs ``lerobot-train`` (its own environment: it pins another torch; or its
packages in ``--lerobot-path``, for a machine where they were installed with ``pip --target``) on ``roboil export
--to lerobot`` of the same store (an export already in OUT/ALGORITHM/lerobot_dataset is used as it is), with
ImageNet weights off (nothing downloads here). Both use bf16 autocast on CUDA (LeRobot's ``use_amp``) and fp32 on
CPU.
The rate is batch / the median step time after ``--warmup`` steps: roboil's from ``metrics.jsonl`` (logged every
step), LeRobot's from its log's ``updt_s + data_s``. Prints one markdown table and writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

LEROBOT_PYTHON = "/tmp/lerobot6/bin/python"
LEROBOT_TRAIN = "lerobot.scripts.lerobot_train"  # the module behind its lerobot-train command
LEROBOT_INSTALL = ("python3.12 -m venv /tmp/lerobot6 && "
                   "/tmp/lerobot6/bin/pip install 'lerobot[dataset,training,diffusion]'")
PAPER = {  # algorithm: (task, episodes, record options, roboil config and overrides, LeRobot options)
    "diffusion": ("pusht", 20, [], "configs/pusht/diffusion_pixels.yaml",
                  ["algorithm.down_dims=[512,1024,2048]", "algorithm.n_action_steps=8", "train.ema_decay=0"],
                  ["--policy.type=diffusion", "--policy.n_obs_steps=2", "--policy.horizon=16",
                   "--policy.n_action_steps=8", "--policy.down_dims=[512,1024,2048]", "--policy.crop_shape=[86,86]",
                   "--policy.use_group_norm=true", "--policy.spatial_softmax_num_keypoints=32",
                   "--policy.pretrained_backbone_weights=null"]),
    "act": ("aloha-transfer-cube", 2, ["obs.pixels.height=480", "obs.pixels.width=640"],
            "configs/aloha_transfer_cube/act_pixels.yaml", ["encoders.pixels.crop_ratio=1.0"],
            ["--policy.type=act", "--policy.chunk_size=100", "--policy.n_action_steps=100",
             "--policy.pretrained_backbone_weights=null"]),
}


def roboil(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "roboil.cli", *args], check=True)


def roboil_run(config: str, overrides: list[str], store: Path, out: Path, device: str, steps: int,
               batch: int) -> tuple[list[float], int]:
    """Seconds of each step after the first, and the model's parameter count."""
    from safetensors import safe_open

    run = out / "roboil_run"
    roboil("train", config, f"data.path={store}", f"train.steps={steps}", f"train.batch_size={batch}",
           "train.log_every=1", f"train.checkpoint_every={steps}", "train.warmup_steps=1", f"train.device={device}",
           *overrides, "--out", str(run))
    times = [json.loads(line)["time"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    with safe_open(next(run.glob("checkpoints/*/model.safetensors")), "np") as weights:
        parameters = sum(int(np.prod(weights.get_slice(k).get_shape())) for k in weights.keys())
    return [b - a for a, b in zip(times, times[1:])], parameters


def lerobot_run(python: str, path: str | None, options: list[str], dataset: Path, out: Path, device: str,
                steps: int, batch: int, workers: int) -> tuple[list[float], int]:
    """Seconds of each step (update and waiting for data), and the model's parameter count."""
    run = out / "lerobot_run"
    amp = "true" if device.startswith("cuda") else "false"
    env = {"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", **({"PYTHONPATH": path} if path else {})}
    done = subprocess.run(
        [python, "-m", LEROBOT_TRAIN, "--dataset.repo_id=roboil/export", f"--dataset.root={dataset}",
         *options, f"--policy.device={device}", f"--policy.use_amp={amp}", "--policy.push_to_hub=false",
         f"--batch_size={batch}", f"--steps={steps}", f"--num_workers={workers}", "--log_freq=1",
         "--save_checkpoint=false",
         "--wandb.enable=false", f"--output_dir={run}"],
        capture_output=True, text=True, env=env)
    log = done.stdout + done.stderr
    if done.returncode != 0:
        sys.exit(f"lerobot-train failed:\n{log[-3000:]}")
    parameters = int(re.search(r"num_learnable_params=(\d+)", log).group(1))
    return [float(u) + float(d) for u, d in re.findall(r"updt_s:([\d.]+)\s+data_s:([\d.]+)", log)], parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=list(PAPER))
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when there is one)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the rate (compilation, caches)")
    parser.add_argument("--batch", type=int, help="default: 64 for diffusion, 8 for act (the papers')")
    parser.add_argument("--store", help="a recorded store of the task to use instead of recording one")
    parser.add_argument("--out", default="runs/bench_training")
    parser.add_argument("--lerobot-python", default=LEROBOT_PYTHON)
    parser.add_argument("--lerobot-path", help="PYTHONPATH for LeRobot's process (its packages installed elsewhere)")
    parser.add_argument("--roboil-only", action="store_true", help="leave LeRobot out (e.g. to compare settings)")
    parser.add_argument("--lerobot-workers", type=int, default=4, help="its DataLoader's processes (its default)")
    parser.add_argument("overrides", nargs="*", help="key=value for roboil's run, e.g. train.compile=true")
    args = parser.parse_intermixed_args()  # overrides may come before or after the options
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    task, episodes, record_options, config, overrides, lerobot_options = PAPER[args.algorithm]
    batch = args.batch or (64 if args.algorithm == "diffusion" else 8)
    out = Path(args.out) / args.algorithm
    store = Path(args.store) if args.store else out / f"{task}.zarr"
    if not store.exists():
        roboil("record", "--task", task, "--episodes", str(episodes), "--out", str(store), *record_options)
    for run in ("roboil_run", "lerobot_run"):
        subprocess.run(["rm", "-rf", str(out / run)], check=True)
    roboil_overrides = [*overrides, *args.overrides]
    runs = {"roboil": roboil_run(config, roboil_overrides, store, out, args.device, args.steps, batch)}
    if not args.roboil_only and not Path(args.lerobot_python).exists():
        print(f"no LeRobot environment at {args.lerobot_python}: {LEROBOT_INSTALL}", file=sys.stderr)
    elif not args.roboil_only:
        dataset = out / "lerobot_dataset"
        if not dataset.exists():
            roboil("export", "--to", "lerobot", str(store), str(dataset))
        runs["LeRobot"] = lerobot_run(args.lerobot_python, args.lerobot_path, lerobot_options, dataset, out,
                                      args.device, args.steps, batch, args.lerobot_workers)
    rates = {name: batch / statistics.median(seconds[args.warmup:]) for name, (seconds, _) in runs.items()}
    print(f"\n{args.algorithm} from pixels, batch {batch}, {args.device}, median of steps {args.warmup + 1}.."
          f"{args.steps}\n\n| trainer | parameters | samples/s | / LeRobot |\n|---|---:|---:|---:|")
    for name, rate in rates.items():
        versus = f"{rate / rates['LeRobot']:.2f}" if "LeRobot" in rates else "n/a"
        print(f"| {name} | {runs[name][1] / 1e6:.1f}M | {rate:,.2f} | {versus} |")
    (out / "results.json").write_text(json.dumps({"batch": batch, "device": args.device, "samples_per_second": rates,
                                                  "roboil_overrides": roboil_overrides, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
