#!/usr/bin/env python
"""Measure the return and success rate of the scripted classic-control experts.

Each episode is played through roboil's ObservedEnv, so the task's own episode limit applies, from
env.reset(seed=s) for s in [seed-start, seed-start + episodes); success is info["is_success"] at the last step.
The means go into EXPERT_RETURNS in plugins/roboil_classic/experts.py:

    OMP_NUM_THREADS=1 python tools/check_classic_experts.py --episodes 100 --seed-start 1000
"""

from __future__ import annotations

import argparse

import numpy as np

from roboil.envs import ObservedEnv

TASKS = ("cartpole", "acrobot", "mountain-car", "pendulum")


def run_episode(env: ObservedEnv, expert, seed: int) -> tuple[float, bool]:
    env.reset(seed=seed)
    expert.reset()
    total, info, done = 0.0, {}, False
    while not done:
        _, reward, terminated, truncated, info = env.step(expert.act(env.raw_obs))
        total += reward
        done = terminated or truncated
    return total, bool(info["is_success"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed-start", type=int, default=1000)
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    p.add_argument("--show-failures", action="store_true", help="list the failing seeds")
    args = p.parse_args()

    seeds = range(args.seed_start, args.seed_start + args.episodes)
    for task in args.tasks:
        env = ObservedEnv(task, {"proprio": {}})
        expert = env.task.make_expert(np.random.default_rng(0))
        returns, successes = zip(*(run_episode(env, expert, s) for s in seeds))
        env.close()
        returns = np.array(returns)
        n_ok = sum(successes)
        line = (f"{task}: return {returns.mean():.2f} ± {returns.std():.2f} (min {returns.min():.1f}), "
                f"success {n_ok / len(seeds):.3f} ({n_ok}/{len(seeds)}), seeds {seeds.start}..{seeds.stop - 1}")
        if args.show_failures and n_ok < len(seeds):
            line += f" failed={[s for s, ok in zip(seeds, successes) if not ok]}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
