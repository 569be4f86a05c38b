"""Throughput of `roboil eval` with 1 and 2 parallel environments: env steps per second on the same episodes,
in alternating rounds so that other load on the machine slows both alike, and the ratio 2 envs / 1 env (on a
2-core machine the ideal is 2).

    python tools/bench_eval.py [RUN_DIR] [--episodes 20] [--rounds 3]

Without RUN_DIR it records a small fetch-reach store and trains a tiny GCBC policy in a temporary directory (the
policy's quality does not matter: Fetch episodes always last 50 steps). Times are eval.json's ``seconds``: from
the env workers being up to the last episode's end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from roboil.evaluate import evaluate

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "fetch_reach" / "gcbc.yaml"


def tiny_run(root: Path) -> Path:
    """Record 10 fetch-reach demos and train GCBC (the end-to-end test's [256, 256] MLP) for 50 steps, through
    the CLI as a user would."""
    def roboil(*args):
        subprocess.run([sys.executable, "-m", "roboil.cli", *map(str, args)], check=True, capture_output=True)

    roboil("record", "--task", "fetch-reach", "--episodes", 10, "--out", root / "reach.zarr")
    roboil("train", CONFIG, f"data.path={root / 'reach.zarr'}", "algorithm.hidden_dims=[256,256]", "train.steps=50",
           "train.warmup_steps=1", "train.checkpoint_every=50", "--out", root / "run")
    return root / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", help="a trained run (default: a tiny fetch-reach GCBC one)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    with tempfile.TemporaryDirectory(prefix="bench_eval-") as tmp:
        run = Path(args.run_dir) if args.run_dir else tiny_run(Path(tmp))
        rates: dict[int, list[float]] = {1: [], 2: []}
        outcomes: dict[int, list] = {}
        for round_ in range(1, args.rounds + 1):
            for envs in (1, 2):
                report = evaluate(run, episodes=args.episodes, envs=envs, seed=100000,
                                  out_dir=Path(tmp) / f"eval_{envs}", progress=False)
                steps = sum(e["length"] for e in report["episodes"])
                rates[envs].append(steps / report["seconds"])
                outcomes[envs] = [(e["seed"], e["success"], e["return"]) for e in report["episodes"]]
                print(f"round {round_}: --envs {envs}: {steps} env steps in {report['seconds']:.2f} s = "
                      f"{rates[envs][-1]:.0f} steps/s", flush=True)
            print(f"round {round_}: 2-env / 1-env = {rates[2][-1] / rates[1][-1]:.2f}x", flush=True)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"median over {args.rounds} rounds of {args.episodes} episodes: --envs 1 {one:.0f} steps/s, "
          f"--envs 2 {two:.0f} steps/s, ratio {two / one:.2f}x; "
          f"same per-episode results: {outcomes[1] == outcomes[2]}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (other work skews the ratio)")


if __name__ == "__main__":
    main()
