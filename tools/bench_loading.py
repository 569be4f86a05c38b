"""Data loading against LeRobot on the same episodes: training windows per second (2 frames of the 96x96 PushT
camera and the pusher position, a 16-step action chunk: Diffusion Policy's window) and the files and bytes on
disk.

    python tools/bench_loading.py [--episodes 200] [--seconds 5] [--store STORE] [--lerobot-python PY]

It records ``--episodes`` scripted PushT episodes (or reads ``--store``), then copies them into one store per
layout: sharded lossless (the default layout), a file per frame (stores made before sharding), and the camera as
JPEG, JPEG XL and AVIF at quality 90, and as H.264 at quality 90 and 65 (8 frames a chunk). roboil, all in this
process, back to back:
- the gather limit: numpy fancy indexing of the in-RAM arrays at precomputed window indices (no sampling, no
  edge padding), a fresh batch each call;
- the in-RAM sampler (what training uses when the store fits ``data.cache_max_gb``);
- each layout's camera from disk (a store larger than ``data.cache_max_gb``; state and actions stay in RAM):
  the loader's thread, and 1 and 2 worker processes (the files are in the page cache after the first pass).
LeRobot (its own environment: it pins another torch) reads ``roboil export --to lerobot`` of the same episodes
with its ``LeRobotDataset`` and ``delta_timestamps`` for the same window, through a torch DataLoader with 0 and
2 workers. Last, the size and error of each codec at several qualities against LeRobot's H.264 video, on the same
frames. Prints markdown tables and writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import itertools
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


def compared_layouts() -> dict[str, object]:
    """The layouts compared, for the camera (the other arrays keep the recording's)."""
    from roboil.codecs import H264_CHUNK_FRAMES
    from roboil.specs import ArrayLayout

    return {"sharded lossless (default)": ArrayLayout(1, clevel=3),
            "a file per frame (before sharding)": ArrayLayout(1, clevel=3, shard_rows=1),
            **{f"{codec}, quality 90": ArrayLayout(1, codec=codec, quality=90) for codec in ("jpeg", "jpegxl", "avif")},
            **{f"h264, quality {q}": ArrayLayout(H264_CHUNK_FRAMES, codec="h264", quality=q) for q in (90, 65)}}


def roboil_rates(stores: dict[str, Path], seconds: float) -> dict[str, float]:
    import torch

    from roboil.keys import ACTION
    from roboil.loader import batches
    from roboil.rows import RowReader
    from roboil.sampler import WindowSampler
    from roboil.store import EpisodeStore

    default = next(iter(stores))
    store = EpisodeStore.open(stores[default])
    keys = [*KEYS, ACTION]
    in_ram = store.load(keys)
    episodes = np.arange(store.n_episodes)

    def sampler(arrays):
        return WindowSampler(arrays, store.episode_ends, episodes, KEYS, N_OBS, HORIZON, seed=0)

    reference = sampler(in_ram)
    indices = []  # a fresh batch of windows each call, as training reads them (the same one would sit in cache)
    for _ in range(512):
        t = reference.anchors[reference.rng.integers(0, len(reference), BATCH)][:, None]
        indices.append((t + reference.obs_offsets, np.clip(t + reference.action_offsets, 0, store.n_steps - 1)))
    calls = itertools.count()

    def gather_limit():
        obs_index, action_index = indices[next(calls) % len(indices)]
        return [in_ram[k][obs_index] for k in KEYS] + [in_ram[ACTION][action_index]]

    rates = {"gather limit (numpy, in RAM)": windows_per_second(gather_limit, seconds)}
    ram = sampler(in_ram)
    rates["roboil sampler, in RAM"] = windows_per_second(lambda: ram.sample(BATCH), seconds)
    cpu = torch.device("cpu")
    for name, path in stores.items():
        # as training reads a store larger than its RAM cache: the camera from disk, state and actions in RAM
        camera = EpisodeStore.open(path).array("rgb_top")
        on_disk = {**in_ram, "rgb_top": RowReader(camera, path / "data" / "rgb_top")}
        for workers in (0, 1, 2) if name == default else (0, 2):
            made = batches(sampler(on_disk), BATCH, cpu, workers=workers)
            how = f"{workers} worker{'s' if workers > 1 else ''}" if workers else "1 thread"
            rates[f"roboil from disk, {name}, {how}"] = windows_per_second(lambda: next(made), seconds)
            made.close()
    return rates


def codec_errors(recorded: Path, exported: Path, out: Path, every: int) -> dict[str, tuple[float, float]]:
    """Bytes a frame and mean absolute error (0..255) of every ``every``-th camera frame through each codec at
    several qualities, and through LeRobot's H.264 export (read back by ``roboil import --from lerobot``). Our
    H.264 codes chunks of consecutive frames: as many as the sample holds, from the start."""
    from roboil.codecs import H264_CHUNK_FRAMES, decode_chunk, decode_video, encode_frame, encode_video
    from roboil.store import EpisodeStore

    frames = EpisodeStore.open(recorded).load(["rgb_top"])["rgb_top"]
    back = out / "lerobot-back.zarr"
    if not back.exists():
        subprocess.run([sys.executable, "-m", "roboil.cli", "import", "--from", "lerobot", str(exported), str(back)],
                       check=True)
    h264 = EpisodeStore.open(back).load(["rgb_top"])["rgb_top"]
    video_bytes = sum(f.stat().st_size for f in exported.rglob("*.mp4"))
    table = {"LeRobot's H.264 video": (video_bytes / len(frames), float(np.abs(
        h264[::every].astype(int) - frames[::every].astype(int)).mean()))}
    sample = frames[::every]
    for codec, qualities in (("jpeg", (90, 75)), ("avif", (90, 75, 60, 50)), ("jpegxl", (90, 75))):
        for quality in qualities:
            coded = [encode_frame(codec, frame, quality) for frame in sample]
            decoded = np.stack([decode_chunk(codec, c).reshape(frame.shape) for c, frame in zip(coded, sample)])
            table[f"{codec}, quality {quality}"] = (float(np.mean([len(c) for c in coded])), float(np.abs(
                decoded.astype(int) - sample.astype(int)).mean()))
    consecutive = frames[:len(sample) // H264_CHUNK_FRAMES * H264_CHUNK_FRAMES]
    for quality in (90, 65, 50):
        coded = [encode_video(consecutive[i:i + H264_CHUNK_FRAMES], quality)
                 for i in range(0, len(consecutive), H264_CHUNK_FRAMES)]
        decoded = np.concatenate([decode_video(c) for c in coded])
        table[f"h264, quality {quality}, {H264_CHUNK_FRAMES} frames a chunk"] = (
            sum(map(len, coded)) / len(consecutive),
            float(np.abs(decoded.astype(int) - consecutive.astype(int)).mean()))
    return table


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
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--store", help="a recorded PushT store to read instead of recording --episodes")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--out", default="runs/bench_loading")
    parser.add_argument("--every", type=int, default=8, help="camera frames sampled for the codec error table")
    parser.add_argument("--lerobot-python", default=LEROBOT_PYTHON)
    args = parser.parse_args()
    out = Path(args.out)
    roboil = [sys.executable, "-m", "roboil.cli"]
    recorded = Path(args.store) if args.store else out / f"pusht-{args.episodes}.zarr"
    if not recorded.exists():
        subprocess.run([*roboil, "record", "--task", "pusht", "--episodes", str(args.episodes), "--out",
                        str(recorded)], check=True)
    from roboil.store import EpisodeStore, copy_store

    stores = {}
    for index, (name, layout) in enumerate(compared_layouts().items()):
        stores[name] = out / f"layout-{index}.zarr"
        if not stores[name].exists():
            copy_store(recorded, stores[name], layouts={"rgb_top": layout})[0].close()
    exported = out / "lerobot"
    if not exported.exists():
        subprocess.run([*roboil, "export", "--to", "lerobot", str(recorded), str(exported)], check=True)
    episodes = EpisodeStore.open(recorded).n_episodes
    rates = roboil_rates(stores, args.seconds)
    if Path(args.lerobot_python).exists():
        done = subprocess.run([args.lerobot_python, "-c", LEROBOT_SCRIPT, str(exported), str(args.seconds), str(BATCH),
                               str(N_OBS), str(HORIZON)], capture_output=True, text=True, check=True)
        rates.update(json.loads(done.stdout.strip().splitlines()[-1]))
    else:
        print(f"no LeRobot environment at {args.lerobot_python}: {LEROBOT_INSTALL}", file=sys.stderr)
    lerobot_best = max((v for k, v in rates.items() if k.startswith("LeRobot")), default=None)
    limit = rates["gather limit (numpy, in RAM)"]
    print(f"\n{episodes} PushT episodes, window: {N_OBS} frames of 96x96 + state, {HORIZON}-step chunk, "
          f"batch {BATCH}\n\n| loader | windows/s | / gather limit | / best LeRobot |\n|---|---:|---:|---:|")
    for name, rate in rates.items():
        versus = f"{rate / lerobot_best:.1f}x" if lerobot_best else "n/a"
        print(f"| {name} | {rate:,.0f} | {rate / limit:.2f} | {versus} |")
    disk = {**{name: disk_use(path) for name, path in stores.items()}, "LeRobot export (H.264)": disk_use(exported)}
    lerobot_bytes = disk["LeRobot export (H.264)"][2]
    print(f"\n| on disk, {episodes} episodes | files | directories | MB | MB per 1,000 episodes | / LeRobot |"
          "\n|---|---:|---:|---:|---:|---:|")
    for name, (files, dirs, used) in disk.items():
        print(f"| {name} | {files:,} | {dirs:,} | {used / 2**20:,.1f} | {used * 1000 / episodes / 2**20:,.0f} | "
              f"{used / lerobot_bytes:.2f} |")
    errors = codec_errors(recorded, exported, out, args.every)
    print(f"\n| camera frames (every {args.every}th) | bytes a frame | / H.264 | mean abs error (of 255) |"
          "\n|---|---:|---:|---:|")
    video = errors["LeRobot's H.264 video"][0]
    for name, (size, error) in errors.items():
        print(f"| {name} | {size:,.0f} | {size / video:.1f} | {error:.2f} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"episodes": episodes, "windows_per_second": rates,
                                                  "disk": disk, "codec_errors": errors}, indent=2))


if __name__ == "__main__":
    main()
