#!/usr/bin/env python
"""Measure the success rate of the scripted Fetch experts.

Success = info["is_success"] at the final step of each 50-step episode, with
env.reset(seed=s) for s in [seed-start, seed-start + episodes).

    MUJOCO_GL=egl python tools/check_fetch_experts.py --episodes 200 --seed-start 0
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import gymnasium_robotics
import numpy as np

from roboil_fetch import experts

TASKS = {
    "reach": ("FetchReach-v4", experts.ReachExpert),
    "push": ("FetchPush-v4", experts.PushExpert),
    "pickandplace": ("FetchPickAndPlace-v4", experts.PickAndPlaceExpert),
}


def run_episode(env: gym.Env, expert, seed: int) -> bool:
    obs, _ = env.reset(seed=seed)
    expert.reset()
    info, done = {}, False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        done = terminated or truncated
    return bool(info["is_success"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed-start", type=int, default=0)
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--show-failures", action="store_true", help="list the failing seeds")
    args = p.parse_args()

    gym.register_envs(gymnasium_robotics)
    seeds = range(args.seed_start, args.seed_start + args.episodes)
    for task in args.tasks:
        env_id, expert_cls = TASKS[task]
        env = gym.make(env_id)  # default 50-step time limit
        expert = expert_cls(np.random.default_rng(0))
        failed = [s for s in seeds if not run_episode(env, expert, s)]
        env.close()
        n_ok = len(seeds) - len(failed)
        line = f"{env_id}: success {n_ok / len(seeds):.3f} ({n_ok}/{len(seeds)}) seeds {seeds.start}..{seeds.stop - 1}"
        if args.show_failures and failed:
            line += f" failed={failed}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
