"""Has a trained policy's action head learned its demonstrations? Open loop on stored episodes: at every STRIDE-th
step the policy is given the stored observation window and predicts a chunk; the actions it would execute (its
``n_action_steps`` from the current step, in the learned space: after the run's action transform) are compared
with the demonstration's, as a mean absolute error, beside the error of always predicting the demonstrations'
mean action. A ratio near 1 says the policy has learned little of what to do even where it was trained (more
training, or a look at what it is given); near 0 with failures in closed loop points at compounding errors.

    python tools/open_loop_error.py STORE RUN_OR_CHECKPOINT [...] [--episodes 20] [--stride 12]

e.g. ``python tools/open_loop_error.py runs/pusht.zarr RUN/checkpoints/step_00001000 RUN``. For policies that
predict chunks from an observation window (diffusion, act, gcbc).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from roboil.actions import ActionTransform
from roboil.checkpoint import load_policy
from roboil.keys import ACTION
from roboil.store import EpisodeStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("runs", nargs="+", help="run directories or checkpoint directories")
    parser.add_argument("--episodes", type=int, default=20, help="episodes spread evenly over the store")
    parser.add_argument("--stride", type=int, default=12, help="steps between the chunks asked for")
    args = parser.parse_args()
    store = EpisodeStore.open(args.store)
    chosen = np.linspace(0, store.n_episodes - 1, min(args.episodes, store.n_episodes)).astype(int)
    episodes = [store.episode(int(index)) for index in chosen]
    for run in args.runs:
        model, _, meta = load_policy(run)
        transform = ActionTransform.from_meta(meta.get("action_transform"))
        keys = list(meta["features"])
        n_obs, executed = model.n_obs_steps, model.n_action_steps
        predicted, demonstrated = [], []
        noise = torch.Generator().manual_seed(0)
        for episode in episodes:
            learned = transform.encode(episode[ACTION], {key: episode[key] for key in keys})
            for t in range(n_obs - 1, len(learned) - executed + 1, args.stride):
                window = {key: torch.as_tensor(episode[key][t - n_obs + 1:t + 1][None]) for key in keys}
                model.noise_generators = [noise]
                try:
                    with torch.no_grad():
                        chunk = model.predict_action(window)[0].float().numpy()
                finally:
                    model.noise_generators = None
                predicted.append(chunk[n_obs - 1:n_obs - 1 + executed])
                demonstrated.append(learned[t:t + executed])
        if not predicted:
            raise SystemExit(f"{run}: no chosen episode is longer than the {n_obs} observation and {executed} "
                             "executed steps a chunk needs")
        predicted, demonstrated = np.stack(predicted), np.stack(demonstrated)
        error = np.abs(predicted - demonstrated).mean()
        baseline = np.abs(demonstrated.reshape(-1, demonstrated.shape[-1]).mean(0) - demonstrated).mean()
        print(f"{run}: {len(predicted)} chunks from {len(episodes)} episodes; executed actions' mean abs error "
              f"{error:.4g}, predicting the mean action {baseline:.4g}: ratio {error / baseline:.3f}")


if __name__ == "__main__":
    main()
