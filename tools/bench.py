"""Benchmarks behind the figures in the issues (too long for `make test`): record scripted demos, train, and
evaluate over 50 episodes with seeds from 100000. Prints one line per run (success, 95% CI, mean coverage
where the task reports it, training time) and writes runs/bench/results.json.

    python tools/bench.py [--runs NAME ...] [--episodes 50] [key=value ...]   # overrides go to every run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

NOISY = ("--action-noise", "0.2")  # DART-style: demos that show recoveries (FetchPush BC: 0.76 -> 0.96)
RUNS = {  # name: (task, demos, config, record options)
    "fetch-reach-gcbc": ("fetch-reach", 100, "configs/fetch_reach/gcbc.yaml", ()),
    "fetch-push-gcbc": ("fetch-push", 100, "configs/fetch_push/gcbc.yaml", NOISY),
    "fetch-pick-and-place-gcbc": ("fetch-pick-and-place", 200, "configs/fetch_pick_and_place/gcbc.yaml", ()),
    "pusht-diffusion-state": ("pusht", 200, "configs/pusht/diffusion_state.yaml", ()),
    "pusht-bc": ("pusht", 200, "configs/pusht/bc.yaml", ()),
    "fetch-push-diffusion-state": ("fetch-push", 100, "configs/fetch_push/diffusion_state.yaml", NOISY),
}


def roboil(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "roboil.cli", *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("overrides", nargs="*", help="training config overrides for every run")
    args = parser.parse_args()
    out = Path(args.out)
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name in args.runs:
        task, demos, config, record_options = RUNS[name]
        store, run = out / f"{task}-{demos}{'-noisy' if record_options else ''}.zarr", out / name
        if not store.exists():
            roboil("record", "--task", task, "--episodes", str(demos), "--out", str(store),
                   *record_options)
        started = time.time()
        roboil("train", config, f"data.path={store}", *args.overrides, "--out", str(run))
        train_seconds = time.time() - started
        roboil("eval", str(run), "--episodes", str(args.episodes), "--envs", "2", "--seed", "100000", "--video")
        report = json.loads((run / "eval" / "eval.json").read_text())
        results[name] = {"demos": demos, "success_rate": report["success_rate"], "success_ci95": report["success_ci95"],
                         "mean_coverage": report.get("mean_coverage"), "train_seconds": round(train_seconds, 1)}
        results_file.write_text(json.dumps(results, indent=2))
    for name in args.runs:
        r = results[name]
        lo, hi = r["success_ci95"]
        coverage = f", mean coverage {r['mean_coverage']:.3f}" if r["mean_coverage"] is not None else ""
        print(f"{name}: {r['demos']} demos, success {r['success_rate']:.2f} (95% CI {lo:.2f}-{hi:.2f}){coverage}, "
              f"train {r['train_seconds']:.0f} s")


if __name__ == "__main__":
    main()
