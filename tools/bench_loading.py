"""Data loading against LeRobot on the same episodes: training windows per second (2 frames of the 96x96 PushT
camera and the pusher position, a 16-step action chunk: Diffusion Policy's window) and the files and bytes on
disk, per 1,000 episodes.

    python tools/bench_loading.py [--episodes 20] [--seconds 5] [--lerobot-python /tmp/lerobot6/bin/python]

roboil, all in this process, back to back on one store:
- the gather limit: numpy fancy indexing of the in-RAM arrays at precomputed window indices (no sampling);
- the in-RAM sampler (what training uses when the store fits ``data.cache_max_gb``);
- the camera from disk (a store larger than ``data.cache_max_gb``; state and actions stay in RAM): the
  loader's thread, and 1 and 2 worker processes.
LeRobot (its own environment: it pins another torch) reads ``roboil export --to lerobot`` of the same store
with its ``LeRobotDataset`` and ``delta_timestamps`` for the same window, through a torch DataLoader with 0 and
2 workers. Prints one markdown table and writes runs/bench_loading/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

N_OBS, HORIZON, BATCH = 2, 16, 64
# LeRobot's newest release here (0.6.1) needs Python 3.12; it pins its own torch, so it gets its own environment
LEROBOT_PYTHON = "/tmp/lerobot6/bin/python"
LEROBOT_INSTALL = "python3.12 -m venv /tmp/lerobot6 && /tmp/lerobot6/bin/pip install 'lerobot[dataset]'"
KEYS = ["rgb_top", "agent_pos"]


def windows_per_second(make_batch, seconds: float) -> float:
    make_batch()  # warm: first chunk reads, worker start-up
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        make_batch()
        n += 1
    return n * BATCH / (time.perf_counter() - started)


def disk_use(path: Path) -> tuple[int, int, int]:
    """(files, directories, bytes on disk) under ``path``."""
    files = dirs = used = 0
    for root, dirnames, filenames in os.walk(path):
        dirs += len(dirnames)
        files += len(filenames)
        used += sum(os.stat(os.path.join(root, f)).st_blocks * 512 for f in filenames)
    return files, dirs, used


def roboil_rates(store_path: Path, seconds: float) -> dict[str, float]:
    import torch

    from roboil.keys import ACTION
    from roboil.loader import batches
    from roboil.rows import RowReader
    from roboil.sampler import WindowSampler
    from roboil.store import EpisodeStore

    store = EpisodeStore.open(store_path)
    keys = [*KEYS, ACTION]
    in_ram = store.load(keys)
    # as training reads a store larger than its RAM cache: the camera from disk, state and actions in RAM
    on_disk = {**in_ram, "rgb_top": RowReader(store.array("rgb_top"), store.path / "data" / "rgb_top")}
    episodes = np.arange(store.n_episodes)

    def sampler(arrays):
        return WindowSampler(arrays, store.episode_ends, episodes, KEYS, N_OBS, HORIZON, seed=0)

    reference = sampler(in_ram)
    t = reference.anchors[reference.rng.integers(0, len(reference), BATCH)][:, None]
    obs_index, action_index = t + reference.obs_offsets, np.clip(t + reference.action_offsets, 0, store.n_steps - 1)
    rates = {"gather limit (numpy, in RAM)": windows_per_second(
        lambda: [in_ram[k][obs_index] for k in KEYS] + [in_ram[ACTION][action_index]], seconds)}
    ram = sampler(in_ram)
    rates["roboil sampler, in RAM"] = windows_per_second(lambda: ram.sample(BATCH), seconds)
    cpu = torch.device("cpu")
    for workers in (0, 1, 2):
        made = batches(sampler(on_disk), BATCH, cpu, workers=workers)
        name = f"roboil from disk, {workers} worker{'s' if workers != 1 else ''}" if workers else \
            "roboil from disk, 1 thread"
        rates[name] = windows_per_second(lambda: next(made), seconds)
        made.close()
    return rates


LEROBOT_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    root, seconds, batch, n_obs, horizon = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    meta = json.load(open(os.path.join(root, "meta", "info.json")))
    fps = meta["fps"]
    camera = next(k for k, f in meta["features"].items() if f["dtype"] == "video")
    past = [(i - n_obs + 1) / fps for i in range(n_obs)]
    deltas = {camera: past, "observation.state": past,
              "action": [(i - n_obs + 1) / fps for i in range(horizon)]}
    # pyav: torchcodec (when it loads) fails in forked DataLoader workers here ("Could not push packet")
    ds = LeRobotDataset("roboil/export", root=root, delta_timestamps=deltas, video_backend="pyav")
    rates = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers)
        it = iter(loader)
        next(it)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            try:
                next(it)
            except StopIteration:
                it = iter(loader)
                continue
            n += 1
        rates[f"LeRobot {lerobot.__version__}, {workers} workers"] = n * batch / (time.perf_counter() - started)
    print(json.dumps(rates))
""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--out", default="runs/bench_loading")
    parser.add_argument("--lerobot-python", default=LEROBOT_PYTHON)
    args = parser.parse_args()
    out = Path(args.out)
    store = out / f"pusht-{args.episodes}.zarr"
    roboil = [sys.executable, "-m", "roboil.cli"]
    if not store.exists():
        subprocess.run([*roboil, "record", "--task", "pusht", "--episodes", str(args.episodes), "--out", str(store)],
                       check=True)
    exported = out / f"pusht-{args.episodes}-lerobot"
    if not exported.exists():
        subprocess.run([*roboil, "export", "--to", "lerobot", str(store), str(exported)], check=True)
    rates = roboil_rates(store, args.seconds)
    if Path(args.lerobot_python).exists():
        done = subprocess.run([args.lerobot_python, "-c", LEROBOT_SCRIPT, str(exported), str(args.seconds), str(BATCH),
                               str(N_OBS), str(HORIZON)], capture_output=True, text=True, check=True)
        rates.update(json.loads(done.stdout.strip().splitlines()[-1]))
    else:
        print(f"no LeRobot environment at {args.lerobot_python}: {LEROBOT_INSTALL}", file=sys.stderr)
    lerobot_best = max((v for k, v in rates.items() if k.startswith("LeRobot")), default=None)
    limit = rates["gather limit (numpy, in RAM)"]
    print(f"\n{args.episodes} PushT episodes, window: {N_OBS} frames of 96x96 + state, {HORIZON}-step chunk, "
          f"batch {BATCH}\n\n| loader | windows/s | / gather limit | / best LeRobot |\n|---|---:|---:|---:|")
    for name, rate in rates.items():
        versus = f"{rate / lerobot_best:.1f}x" if lerobot_best else "n/a"
        print(f"| {name} | {rate:,.0f} | {rate / limit:.2f} | {versus} |")
    scale = 1000 / args.episodes
    disk = {"roboil store": disk_use(store), "LeRobot export": disk_use(exported)}
    print(f"\n| on disk, per 1,000 episodes | files | directories | MB |\n|---|---:|---:|---:|")
    for name, (files, dirs, used) in disk.items():
        print(f"| {name} | {files * scale:,.0f} | {dirs * scale:,.0f} | {used * scale / 2**20:,.0f} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"episodes": args.episodes, "windows_per_second": rates,
                                                  "disk": disk}, indent=2))


if __name__ == "__main__":
    main()
