"""Check the scripted ALOHA experts: success rate over many seeds, the step success first holds, a video.

  python tools/check_aloha_experts.py --task transfer-cube --episodes 100
  MUJOCO_GL=egl python tools/check_aloha_experts.py --task insertion --episodes 2 --video /tmp/insertion.mp4
"""

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering for --video, as the roboil command sets it

import numpy as np

from roboil.video import write_mp4
from roboil_aloha import EPISODE_STEPS
from roboil_aloha.env import AlohaEnv
from roboil_aloha.expert import BimanualExpert
from roboil_aloha.tasks import TASKS


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TASKS), required=True)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--video", help="write an mp4 (top camera) of the first episodes here")
    ap.add_argument("--video-episodes", type=int, default=2)
    args = ap.parse_args()
    if args.episodes < 1:
        ap.error("--episodes must be at least 1")

    task = TASKS[args.task]()
    env = AlohaEnv(task, render_mode="rgb_array")
    expert = BimanualExpert(task, np.random.default_rng(0))  # reset per episode, as `roboil record` does
    successes, first_success, frames, start = [], [], [], time.time()
    try:
        for i in range(args.episodes):
            seed = args.seed_start + i
            obs, _ = env.reset(seed=seed)
            expert.reset()
            record = args.video and i < args.video_episodes
            first = None
            for t in range(EPISODE_STEPS):
                obs, _, _, _, info = env.step(expert.act(obs))
                if record:
                    frames.append(env.render())
                if info["is_success"] and first is None:
                    first = t
            successes.append(info["is_success"])  # the final step's, as evaluation reads it
            if first is not None:
                first_success.append(first)
            if not info["is_success"]:
                print(f"seed {seed}: failed")
    finally:
        env.close()
    print(f"aloha-{args.task}: {np.mean(successes):.3f} success over {len(successes)} episodes (seeds "
          f"{args.seed_start}..{args.seed_start + len(successes) - 1}); success first held at step "
          f"{np.median(first_success) if first_success else float('nan'):.0f} (median); {time.time() - start:.0f} s")
    if args.video:
        write_mp4(Path(args.video), frames, 50)
        print(f"video: {args.video} ({len(frames)} frames)")


if __name__ == "__main__":
    main()
