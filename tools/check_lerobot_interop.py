"""Check roboil's LeRobot v3.0 interop against LeRobot itself, in a Python that has lerobot installed (its own
venv: lerobot pins its torch; roboil is not needed there):

    python3.12 -m venv /tmp/lerobot6 && /tmp/lerobot6/bin/pip install 'lerobot[dataset]'   # 0.6.1, the newest here
    python3 -m venv /tmp/lerobot-env && /tmp/lerobot-env/bin/pip install lerobot             # 0.4.4 on Python 3.11

``load DIR --reference REF.npz``: open a dataset that `roboil export --to lerobot` wrote with LeRobot's own
``LeRobotDataset`` (from disk, no hub: HF_HUB_OFFLINE=1) and check that what it serves (every frame: state,
action, camera frames decoded by LeRobot's video backend, task, episode boundaries, and windows across
boundaries with ``delta_timestamps``) equals the arrays in REF.npz (written next to the export from the roboil
store: arrays under LeRobot's keys, ``episode_ends``, ``fps`` and ``tasks``); camera frames within the video
codec's error, each closer to its own original than to the frames before and after it.

``write DIR [--images]``: LeRobot writes a small dataset itself (``LeRobotDataset.create``, ``add_frame``,
``save_episode``, ``finalize``; videos in its default codec, AV1, or with ``--images`` PNG frames in the
parquet), and the arrays it was given go to DIR.npz, for ``roboil import --from lerobot DIR`` to be compared with
(tests/test_interop_lerobot.py does both).

Prints what it checked; exits 0 when every check passes, 1 otherwise (each failing check printed).

    roboil export --to lerobot /tmp/s /tmp/s_lerobot      # the test writes the reference .npz
    HF_HUB_OFFLINE=1 /tmp/lerobot-env/bin/python tools/check_lerobot_interop.py load /tmp/s_lerobot --reference ref.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# the codec's error a camera frame may have (uint8 levels): H.264/AV1 at their default quality, 4:2:0 chroma
MAX_MEAN_ERROR = 8.0


def _frame_errors(name: str, got: np.ndarray, want: np.ndarray, ends: np.ndarray,
                  problems: list[str]) -> tuple[float, float]:
    """got, want: (N, H, W, 3) float in 0..255, episodes ending at ``ends``. Each frame within the codec's error,
    and each episode's frames nearer their own originals than the frames one step before or after (on average),
    so none is shifted in time."""
    error = np.abs(got - want)
    per_frame = error.mean(axis=(1, 2, 3))
    if per_frame.max() > MAX_MEAN_ERROR:
        problems.append(f"{name}: frame {int(per_frame.argmax())} differs by {per_frame.max():.2f} on average "
                        f"(more than {MAX_MEAN_ERROR})")
    for start, end in zip(np.concatenate([[0], ends[:-1]]), ends):
        g, w, own = got[start:end], want[start:end], per_frame[start:end]
        if end - start > 1 and not (own[1:].mean() < np.abs(g[1:] - w[:-1]).mean()
                                    and own[:-1].mean() < np.abs(g[:-1] - w[1:]).mean()):
            problems.append(f"{name}: the frames of the episode at rows {start}..{end} are nearer their "
                            "neighbours than their own originals (shifted in time)")
    return float(error.max()), float(error.mean())


def load(args) -> int:
    import torch

    import lerobot
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ref = np.load(args.reference, allow_pickle=False)
    tasks = json.loads(str(ref["tasks"]))
    ends = ref["episode_ends"]
    fps = float(ref["fps"])
    keys = [k for k in ref.files if k not in ("tasks", "episode_ends", "fps")]
    problems = []
    backend = args.video_backend or _default_backend()
    ds = LeRobotDataset("roboil/export", root=args.dir, video_backend=backend)
    print(f"lerobot {lerobot.__version__}: {ds.num_episodes} episodes, {ds.num_frames} frames, fps {ds.fps}, "
          f"video backend {backend}, features {list(ds.features)}")
    if ds.num_frames != int(ends[-1]) or ds.num_episodes != len(ends):
        problems.append(f"LeRobot sees {ds.num_episodes} episodes, {ds.num_frames} frames; the store has "
                        f"{len(ends)}, {int(ends[-1])}")
    if float(ds.fps) != fps:
        problems.append(f"fps {ds.fps}, the store's {fps}")
    starts = np.concatenate([[0], ends[:-1]])
    meta_from = [int(ds.meta.episodes[i]["dataset_from_index"]) for i in range(len(ends))]
    meta_to = [int(ds.meta.episodes[i]["dataset_to_index"]) for i in range(len(ends))]
    if meta_from != starts.tolist() or meta_to != ends.tolist():
        problems.append(f"episode bounds {list(zip(meta_from, meta_to))}, the store's {list(zip(starts, ends))}")
    if list(ds.meta.tasks.index) != list(dict.fromkeys(tasks)):
        problems.append(f"meta.tasks {list(ds.meta.tasks.index)}, expected {list(dict.fromkeys(tasks))}")

    served = {k: [] for k in keys}
    for index in range(len(ds)):
        item = ds[index]
        episode = int(np.searchsorted(ends, index, side="right"))
        if int(item["episode_index"]) != episode or int(item["frame_index"]) != index - starts[episode]:
            problems.append(f"frame {index}: episode_index {int(item['episode_index'])}, frame_index "
                            f"{int(item['frame_index'])}; expected {episode}, {index - starts[episode]}")
            break
        if item["task"] != tasks[episode]:
            problems.append(f"frame {index}: task {item['task']!r}, expected {tasks[episode]!r}")
            break
        for key in keys:
            served[key].append(item[key].numpy())
    cameras = [k for k in keys if ds.features[k]["dtype"] == "video"]
    for key in keys:
        got = np.stack(served[key])
        if key in cameras:  # LeRobot serves (3, H, W) float in [0, 1]; the video may be padded to even sizes
            want = ref[key].astype(np.float64)
            got = got.transpose(0, 2, 3, 1)[:, :want.shape[1], :want.shape[2]] * 255.0
            worst, mean = _frame_errors(key, got, want, ends, problems)
            print(f"{key}: {len(got)} frames decoded by LeRobot, {want.shape[1:]} uint8; abs error vs the store: max "
                  f"{worst:.0f}, mean {mean:.3f} (of 255)")
        else:
            # a (1,) feature is served as a scalar per frame; LeRobot's loader makes tensors of the parquet's Python
            # numbers (torch.tensor), so float64 comes out float32 and integers int64: compare after the same cast
            want = ref[key]
            exact = got.size == want.size and np.array_equal(got.reshape(want.shape), want.astype(got.dtype))
            if not exact:
                problems.append(f"{key}: LeRobot serves {got.dtype} {got.shape}, differing from the store's "
                                f"{want.dtype} {want.shape}")
            cast = "" if got.dtype == want.dtype else f" (the store's {want.dtype}, as LeRobot's loader casts it)"
            print(f"{key}: {got.shape} {got.dtype}, {'equal to the store' if exact else 'DIFFERENT'}{cast}")

    # windows across episode boundaries, by timestamps: what a policy's data loader asks for
    horizon = [i / ds.fps for i in range(4)]
    window_keys = {k: horizon for k in keys if k not in cameras}
    window_keys.update({k: [-1 / ds.fps, 0.0] for k in cameras})
    windows = LeRobotDataset("roboil/export", root=args.dir, delta_timestamps=window_keys, video_backend=backend)
    action = next((k for k in keys if k == "action"), keys[0])
    for index in (int(ends[0]) - 2, int(ends[0])):  # the end of episode 0, the start of episode 1
        item = windows[index]
        episode = int(np.searchsorted(ends, index, side="right"))
        rows = np.minimum(np.arange(index, index + 4), ends[episode] - 1)
        pad = np.arange(index, index + 4) >= ends[episode]
        if not np.array_equal(item[action].numpy(), ref[action][rows].reshape(item[action].shape)):
            problems.append(f"window at {index}: {action} differs from the store's rows {rows.tolist()}")
        if not np.array_equal(item[f"{action}_is_pad"].numpy(), pad):
            problems.append(f"window at {index}: {action}_is_pad {item[f'{action}_is_pad'].tolist()}, expected "
                            f"{pad.tolist()}")
        for key in cameras:
            previous = max(index - 1, int(starts[episode]))
            want = ref[key][[previous, index]].astype(np.float64)
            got = item[key].numpy().transpose(0, 2, 3, 1)[:, :want.shape[1], :want.shape[2]] * 255.0
            if np.abs(got - want).mean() > MAX_MEAN_ERROR:
                problems.append(f"window at {index}: {key} frames [{previous}, {index}] differ")
    print(f"delta_timestamps windows at episode 0's end and episode 1's start: {action} and cameras as stored")

    for key in keys:  # stats.json, as LeRobot's training normalizes with it
        stats = ds.meta.stats[key]
        if key in cameras:
            want = ref[key].reshape(-1, 3) / 255.0
            close = np.allclose(np.asarray(stats["mean"]).ravel(), want.mean(axis=0), atol=0.02)
        else:
            want = ref[key].reshape(len(ref[key]), -1).astype(np.float64)
            close = (np.allclose(np.asarray(stats["min"]).ravel(), want.min(axis=0))
                     and np.allclose(np.asarray(stats["max"]).ravel(), want.max(axis=0))
                     and np.allclose(np.asarray(stats["mean"]).ravel(), want.mean(axis=0), rtol=1e-5, atol=1e-6)
                     and np.allclose(np.asarray(stats["std"]).ravel(), want.std(axis=0), rtol=1e-4, atol=1e-6))
        if not close or int(np.asarray(stats["count"]).ravel()[0]) < 1:
            problems.append(f"stats.json: {key} does not match the store's arrays")
    print(f"stats.json: {', '.join(keys)} match the store's (min, max, mean, std; cameras' per-channel mean)")
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)))
    shapes = ", ".join(f"{k}: {tuple(v.shape)}" for k, v in batch.items() if hasattr(v, "shape"))
    print(f"DataLoader batch: {{{shapes}}}")
    return _result(problems)


def _default_backend() -> str:
    """LeRobot's default decoder, torchcodec, when it loads (it needs FFmpeg's shared libraries on the system);
    else pyav, whose wheel brings its own FFmpeg."""
    try:
        import torchcodec.decoders  # noqa: F401  (raises when FFmpeg's libraries are missing)

        return "torchcodec"
    except Exception as e:  # torchcodec raises RuntimeError, OSError, ImportError: all mean "not usable here"
        print(f"torchcodec does not load ({str(e).strip().splitlines()[0][:100]}...): decoding with pyav")
        return "pyav"


def write(args) -> int:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(args.dir)
    image = "image" if args.images else "video"
    features = {
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["x", "y", "z", "gripper"]},
        "observation.environment_state": {"dtype": "float32", "shape": (3,), "names": ["a", "b", "c"]},
        "observation.images.front": {"dtype": image, "shape": (32, 48, 3), "names": ["height", "width", "channels"]},
        "observation.images.wrist": {"dtype": image, "shape": (24, 32, 3), "names": ["height", "width", "channels"]},
        "action": {"dtype": "float32", "shape": (2,), "names": ["vx", "vy"]},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.success": {"dtype": "bool", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    }
    ds = LeRobotDataset.create("local/lerobot_written", fps=args.fps, features=features, root=root,
                               use_videos=not args.images)
    rng = np.random.default_rng(0)
    lengths, tasks = [9, 6, 11], ["pick the cube", "place the cube", "pick the cube"]
    given = {k: [] for k in features}
    for episode, (steps, task) in enumerate(zip(lengths, tasks)):
        for t in range(steps):
            frame = {
                "observation.state": rng.normal(size=4).astype(np.float32),
                "observation.environment_state": rng.normal(size=3).astype(np.float32),
                "observation.images.front": _picture(32, 48, t, episode),
                "observation.images.wrist": _picture(24, 32, t + 3, episode),
                "action": rng.uniform(-1, 1, 2).astype(np.float32),
                "next.reward": np.array([float(t == steps - 1)], np.float32),
                "next.success": np.array([episode != 1 and t == steps - 1]),
                "next.done": np.array([t == steps - 1]),
            }
            for key in features:
                given[key].append(frame[key])
            ds.add_frame({**frame, "task": task})
        ds.save_episode()
    ds.finalize()
    reference = {k: np.stack(v) for k, v in given.items()}
    np.savez(root.with_suffix(".npz"), **reference, episode_ends=np.cumsum(lengths), fps=args.fps,
             tasks=json.dumps(tasks))
    front = json.loads((root / "meta/info.json").read_text())["features"]["observation.images.front"]
    codec = front.get("info", {}).get("video.codec", "png in parquet")
    print(f"LeRobot wrote {root}: {len(lengths)} episodes of {lengths} frames, {image}s ({codec}); arrays given to "
          f"it in {root.with_suffix('.npz')}")
    return 0


def _picture(h: int, w: int, t: int, episode: int) -> np.ndarray:
    """A smooth coloured scene with a bright square that moves a few pixels a step: frames differ clearly from
    their neighbours (so a frame shifted in time shows) and compress as camera images do."""
    y, x = np.mgrid[0:h, 0:w]
    image = np.stack([40 + 3 * x, 60 + 4 * y, np.full_like(x, 90 + 50 * episode)], axis=-1)
    top, left = (2 * t) % (h - 8), (5 * t) % (w - 8)
    image[top:top + 8, left:left + 8] = (250, 240, 30)
    return np.clip(image, 0, 255).astype(np.uint8)


def _result(problems: list[str]) -> int:
    for problem in problems:
        print(f"problem: {problem}")
    print("OK" if not problems else f"FAILED ({len(problems)} problems)")
    return 0 if not problems else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("load", help="LeRobotDataset reads a roboil export")
    p.add_argument("dir")
    p.add_argument("--reference", required=True, help=".npz of the store's arrays under LeRobot's keys")
    p.add_argument("--video-backend", default=None, choices=["torchcodec", "pyav"],
                   help="LeRobot's video decoder (default: torchcodec when it loads, else pyav)")
    p.set_defaults(run=load)
    p = sub.add_parser("write", help="LeRobot writes a small dataset for roboil to import")
    p.add_argument("dir")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--images", action="store_true", help="PNG frames in the parquet instead of videos")
    p.set_defaults(run=write)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
