"""The time one append takes as a store grows: episodes of 50 steps (10-d state, 4-d action) with a 60-number start
state in their attrs, as MuJoCo tasks record, appended into a fresh store; every ``--every`` episodes the mean of
5 appends is printed.

    python tools/bench_append.py [--episodes 2000] [--every 500] [--out /tmp/bench_append.zarr]

Every episode's attrs (seed, start state, checksums, ...) sit in the ``meta`` group's zarr.json, which each append
writes again whole; the store encodes each episode's attrs once, so an append should cost about the same however
many episodes came before (docs/benchmarks.md has the figures from before that).
"""

from __future__ import annotations

import argparse
import shutil
import time

import numpy as np

from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--out", default="/tmp/bench_append.zarr")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    features = {"state": Feature("proprio", (10,), "float32"), "action": Feature("action", (4,), "float32")}
    layouts = {key: ArrayLayout(64) for key in features}
    rows = {"state": np.zeros((50, 10), np.float32), "action": np.zeros((50, 4), np.float32)}
    start_state = np.random.default_rng(0).normal(size=60).tolist()
    with EpisodeStore.create(args.out, features, layouts, {"task": "bench"}) as store:
        while store.n_episodes <= args.episodes:
            timed = store.n_episodes % args.every == 0
            started = time.perf_counter()
            for _ in range(5 if timed else 1):
                store.add_episode(rows, {"seed": store.n_episodes, "start_state": start_state})
            if timed:
                print(f"{store.n_episodes - 5:6d} episodes before: {(time.perf_counter() - started) / 5 * 1e3:7.1f} ms "
                      "an append", flush=True)
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
