"""How much of a stored quantity does a trained policy's observation encoder see? A linear probe: encode frames of a
store with a checkpoint's encoder (the other observation keys zeroed, so only the cameras inform the features),
fit least squares from the features to KEY on the first part of the frames, and print R^2 per dimension on the rest.
A pixel policy that fails in closed loop while its encoder locates the object (R^2 near 1) needs more training of
the action head, not a better encoder; R^2 near 0 says the encoder has not learned what the task needs.

    python tools/probe_encoder.py STORE KEY RUN_OR_CHECKPOINT [...] [--dims 0,1] [--frames 3000]

e.g. ``python tools/probe_encoder.py runs/pusht.zarr block_pose RUN/checkpoints/step_00001000 RUN --dims 0,1``
(the T's x and y). For policies whose encoder gives a feature vector per observation step (diffusion, gcbc).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from roboil.checkpoint import load_policy
from roboil.store import EpisodeStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("key", help="the stored array to predict, e.g. block_pose")
    parser.add_argument("runs", nargs="+", help="run directories or checkpoint directories")
    parser.add_argument("--dims", help="comma-separated dimensions of KEY (default: all)")
    parser.add_argument("--frames", type=int, default=3000, help="frames drawn at random, a third held out")
    args = parser.parse_args()
    store = EpisodeStore.open(args.store)
    rows = np.sort(np.random.default_rng(0).choice(store.n_steps, min(args.frames, store.n_steps), replace=False))
    target = store.array(args.key).get_orthogonal_selection((rows,)).reshape(len(rows), -1)
    if args.dims:
        target = target[:, [int(d) for d in args.dims.split(",")]]
    fit = slice(0, 2 * len(rows) // 3)
    held_out = slice(fit.stop, None)
    for run in args.runs:
        model, _, meta = load_policy(run)
        inputs = {}
        for key, feature in meta["features"].items():
            if feature["kind"] == "pixels":
                inputs[key] = torch.from_numpy(store.array(key).get_orthogonal_selection((rows,)))[:, None]
            else:
                inputs[key] = torch.zeros(len(rows), 1, *feature["shape"])
        with torch.no_grad():
            features = torch.cat([model.encoder({k: v[i:i + 256] for k, v in inputs.items()})[:, 0]
                                  for i in range(0, len(rows), 256)]).numpy()
        features = np.c_[features, np.ones(len(features))]
        weights, *_ = np.linalg.lstsq(features[fit], target[fit], rcond=None)
        error = ((features[held_out] @ weights - target[held_out]) ** 2).sum(0)
        spread = ((target[held_out] - target[held_out].mean(0)) ** 2).sum(0)
        print(f"{run}: R^2 of {args.key} from the encoder's features, held-out frames: "
              f"{', '.join(f'{r:.3f}' for r in 1 - error / spread)}")


if __name__ == "__main__":
    main()
