"""Fault injection for the episode store: concurrent writers and SIGKILLs (a measurement, not a test: minutes).

- concurrent: trials of two writer processes appending to one new store at once. Each reopens the store per
  batch of episodes and retries while refused, as two `roboil record` runs on one --out would if the second
  kept retrying. Episodes lost: reported committed by a writer but not in the store intact; mixed: arrays that
  are not those of the id in the episode's attrs.
- kills: SIGKILLs of a writer process at a random moment while it appends (every 10th on a new path, soon after
  start, so the kill can land inside the creation). After each the store must pass the full check and hold every
  episode the writer reported committed, intact, and the next writer must get in.

Episodes are small and synthetic (written through EpisodeStore, no simulator) so a trial takes about a second.
Arrays are sharded with shards of a few episodes, so appends rewrite shard files that hold committed rows and
cross into new ones; ``--unsharded`` stores a file per chunk instead, as stores made before sharding.

    python tools/fault_store.py [--concurrent 20] [--kills 50] [--episodes 20] [--seed 0] [--dir DIR] [--unsharded]
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roboil.errors import RoboilError  # noqa: E402
from roboil.specs import ArrayLayout, Feature  # noqa: E402
from roboil.store import EpisodeStore  # noqa: E402

FEATURES = {"image": Feature("pixels", (16, 16, 3), "uint8"), "state": Feature("proprio", (7,), "float32"),
            "id": Feature("proprio", (), "int64")}
# Shards and the state and id chunks span episodes, so appends rewrite them while they hold committed rows.
SHARDED = {"image": ArrayLayout(1, shard_rows=32), "state": ArrayLayout(64, shard_rows=128), "id": ArrayLayout(32)}
UNSHARDED = {key: ArrayLayout(lay.time_chunk, shard_rows=lay.time_chunk) for key, lay in SHARDED.items()}


def make_episode(episode_id: int) -> dict[str, np.ndarray]:
    """Deterministic in the id, and every array carries it, so a mixed or torn episode cannot pass."""
    rng = np.random.default_rng(episode_id)
    t = 5 + episode_id % 11
    return {"image": rng.integers(0, 256, (t, 16, 16, 3), dtype=np.uint8),
            "state": rng.standard_normal((t, 7)).astype(np.float32), "id": np.full(t, episode_id)}


def open_or_create(path: Path, layouts: dict[str, ArrayLayout]) -> EpisodeStore:
    """What `roboil record` does with --out."""
    return EpisodeStore.open(path, mode="a") if path.exists() else EpisodeStore.create(path, FEATURES, layouts, {})


# ---- writer processes ------------------------------------------------------------------------------------------

def write_batches(path: Path, layouts: dict[str, ArrayLayout], ids: list[int], rng: random.Random) -> None:
    """Append ``ids`` in batches of 1-4 episodes, reopening per batch; retry while another writer holds it."""
    refusals = 0
    while ids:
        try:
            with open_or_create(path, layouts) as store:
                for _ in range(rng.randint(1, 4)):
                    if ids:
                        store.add_episode(make_episode(ids[0]), {"id": ids[0]})
                        print("committed", ids.pop(0), flush=True)
        except RoboilError as e:  # the other writer holds the store, or made it while we were making it
            if "another writer" not in str(e) and "already exists" not in str(e):
                raise
            refusals += 1
            time.sleep(rng.uniform(0, 0.005))
    print("refusals", refusals, flush=True)


def write_forever(path: Path, layouts: dict[str, ArrayLayout], first_id: int) -> None:
    print("ready", flush=True)
    with open_or_create(path, layouts) as store:
        for episode_id in range(first_id, first_id + 10**6):
            store.add_episode(make_episode(episode_id), {"id": episode_id})
            print("committed", episode_id, flush=True)


def start_writer(path: Path, unsharded: bool, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--writer", str(path), "unsharded" if unsharded else "sharded",
                             *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed(output: str) -> list[int]:
    return [int(line.split()[1]) for line in output.splitlines() if line.startswith("committed ")]


# ---- verification ----------------------------------------------------------------------------------------------

def audit(path: Path, expected: set[int]) -> dict[str, int]:
    """Compare the store with the ids its writers reported committed."""
    if not path.exists():
        return {"lost": len(expected), "mixed": 0, "duplicated": 0, "damaged": 0}
    store = EpisodeStore.open(path)
    intact, mixed = [], 0
    for i, attrs in enumerate(store.episode_attrs()):
        want, got = make_episode(attrs["id"]), store.episode(i)
        if all(np.array_equal(got[k], want[k]) for k in want):
            intact.append(attrs["id"])
        else:
            mixed += 1
    return {"lost": len(expected - set(intact)), "mixed": mixed, "duplicated": len(intact) - len(set(intact)),
            "damaged": int(bool(store.check()))}


def add(total: dict[str, int], counts: dict[str, int]) -> None:
    for k, v in counts.items():
        total[k] = total.get(k, 0) + v


def concurrent_trials(base: Path, trials: int, episodes: int, seed: int, unsharded: bool) -> dict[str, int]:
    total = {}
    for trial in range(trials):
        path = base / f"concurrent-{trial}.zarr"
        writers = [start_writer(path, unsharded, "batches", seed * 1000 + trial * 2 + w,
                                *(w * 10**6 + k for k in range(episodes))) for w in (1, 2)]
        outputs = [w.communicate(timeout=300) for w in writers]
        reported = [i for out, _ in outputs for i in committed(out)]
        counts = audit(path, set(reported))
        counts["writer errors"] = sum(w.returncode != 0 for w in writers)
        counts["unreported"] = 2 * episodes - len(reported)
        counts["lock refusals"] = sum(int(line.split()[1]) for out, _ in outputs for line in out.splitlines()
                                      if line.startswith("refusals "))
        for w, (_, err) in zip(writers, outputs):
            if w.returncode:
                print(f"  trial {trial}: writer failed: {err.strip().splitlines()[-1]}")
        add(total, counts)
        shutil.rmtree(path)
    return total


def kill_trials(base: Path, kills: int, seed: int, unsharded: bool) -> dict[str, int]:
    rng = random.Random(seed)
    total, expected, path = {}, set(), None
    for trial in range(kills):
        early = trial % 10 == 0
        if early:
            path, expected = base / f"killed-{trial}.zarr", set()
        writer = start_writer(path, unsharded, "forever", trial * 10**6)
        if writer.stdout.readline() != "ready\n":
            total["refused restarts"] = total.get("refused restarts", 0) + 1
            print(f"  kill {trial}: writer did not start: {writer.communicate()[1].strip().splitlines()[-1]}")
            continue
        time.sleep(rng.uniform(0, 0.06) if early else rng.uniform(0.05, 0.6))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        expected |= set(committed(out))
        counts = audit(path, expected)
        counts["before the store existed"] = int(not path.exists())
        counts["mid-episode"] = int(path.exists() and bool(EpisodeStore.open(path).notes))
        add(total, counts)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=20, help="trials of two concurrent writers")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per writer per concurrent trial")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs of a writer while it appends")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temporary directory)")
    parser.add_argument("--unsharded", action="store_true", help="a file per chunk, as stores before sharding")
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="fault_store-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.time()
    c = concurrent_trials(base, args.concurrent, args.episodes, args.seed, args.unsharded)
    print(f"concurrent: {args.concurrent} trials of 2 writers x {args.episodes} episodes: lost {c.get('lost', 0)}, "
          f"mixed {c.get('mixed', 0)}, duplicated {c.get('duplicated', 0)}, damaged stores {c.get('damaged', 0)}, "
          f"writer errors {c.get('writer errors', 0)}, never committed {c.get('unreported', 0)} "
          f"(lock refusals, retried: {c.get('lock refusals', 0)})", flush=True)
    k = kill_trials(base, args.kills, args.seed, args.unsharded)
    print(f"kills: {args.kills} SIGKILLs ({k.get('before the store existed', 0)} before the store existed, "
          f"{k.get('mid-episode', 0)} mid-episode): committed episodes lost {k.get('lost', 0)}, "
          f"mixed {k.get('mixed', 0)}, duplicated {k.get('duplicated', 0)}, damaged stores {k.get('damaged', 0)}, "
          f"refused restarts {k.get('refused restarts', 0)}")
    print(f"({time.time() - started:.0f} s; stores in {base})" if args.dir else f"({time.time() - started:.0f} s)")
    if not args.dir:
        shutil.rmtree(base)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--writer"]:
        store_path, layouts, mode = Path(sys.argv[2]), UNSHARDED if sys.argv[3] == "unsharded" else SHARDED, sys.argv[4]
        if mode == "batches":
            write_batches(store_path, layouts, [int(i) for i in sys.argv[6:]], random.Random(int(sys.argv[5])))
        else:
            write_forever(store_path, layouts, int(sys.argv[5]))
    else:
        main()
