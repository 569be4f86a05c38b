"""Check the scripted PushT expert: success rate, mean final coverage, optional video, multimodality.

  python tools/check_pusht_expert.py --episodes 100 --seed-start 0
  MUJOCO_GL=egl python tools/check_pusht_expert.py --episodes 3 --video /tmp/pusht.mp4
  python tools/check_pusht_expert.py --same-start 7   # two expert rng seeds, one env start
"""

import argparse
import time
from pathlib import Path

import numpy as np

from roboil.video import write_mp4
from roboil_pusht import MAX_EPISODE_STEPS
from roboil_pusht.env import PushTEnv
from roboil_pusht.expert import PushTExpert


def rollout(env, seed, expert_seed, frames=None):
    """One episode; returns (success, final coverage, steps, pusher path (T, 2))."""
    obs, info = env.reset(seed=seed)
    expert = PushTExpert(np.random.default_rng(expert_seed))
    path = [obs["agent_pos"]]
    if frames is not None:
        frames.append(env.render())
    for t in range(MAX_EPISODE_STEPS):  # PushTEnv has no time limit of its own (the core adds one)
        obs, _, terminated, _, info = env.step(expert.act(obs))
        path.append(obs["agent_pos"])
        if frames is not None:
            frames.append(env.render())
        if terminated:
            break
    return info["is_success"], info["coverage"], t + 1, np.array(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed-start", type=int, default=0)
    ap.add_argument("--video", help="write an mp4 of the first --video-episodes episodes here")
    ap.add_argument("--video-episodes", type=int, default=3)
    ap.add_argument("--render-size", type=int, default=240)
    ap.add_argument("--same-start", type=int, metavar="SEED",
                    help="run the expert twice from env seed SEED with different rng seeds and compare paths")
    args = ap.parse_args()

    env = PushTEnv(render_mode="rgb_array", render_size=args.render_size)
    try:
        if args.same_start is not None:
            frames = [] if args.video else None
            runs = [rollout(env, args.same_start, s, frames) for s in (1, 2)]
            for s, (ok, cov, n, _) in zip((1, 2), runs):
                print(f"expert rng {s}: success={ok} coverage={cov:.3f} steps={n}")
            a, b = runs[0][3], runs[1][3]
            n = min(len(a), len(b))
            gap = np.linalg.norm(a[:n] - b[:n], axis=1)
            first = int(np.argmax(gap > 0.01)) if (gap > 0.01).any() else None
            print(f"max distance between the two pusher paths: {gap.max():.3f} m "
                  f"(first > 1 cm at step {first}); paths {'DIFFER' if gap.max() > 0.05 else 'are alike'}")
            if args.video:
                write_mp4(Path(args.video), frames, env.metadata["render_fps"])
                print(f"video: {args.video}")
            return

        results, frames, t0 = [], [], time.time()
        for i in range(args.episodes):
            seed = args.seed_start + i
            record = args.video and i < args.video_episodes
            ok, cov, n, _ = rollout(env, seed, seed, frames if record else None)
            results.append((ok, cov, n))
            if not ok:
                print(f"seed {seed}: failed, coverage {cov:.3f}")
        ok, cov, n = map(np.array, zip(*results))
        print(f"episodes {len(results)} (seeds {args.seed_start}..{args.seed_start + len(results) - 1}): "
              f"success rate {ok.mean():.3f}, mean final coverage {cov.mean():.3f}, "
              f"mean steps {n.mean():.1f}, {time.time() - t0:.1f} s")
        if args.video:
            write_mp4(Path(args.video), frames, env.metadata["render_fps"])
            print(f"video: {args.video} ({len(frames)} frames)")
    finally:
        env.close()


if __name__ == "__main__":
    main()
