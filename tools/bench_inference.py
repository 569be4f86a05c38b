"""Time one action chunk of a trained policy (e.g. Diffusion Policy's DDIM sampling) for one observation
window, on the CPU and on CUDA when present. Compares against the same policy at a baseline number of DDIM
steps in the same process, so the ratio holds on a noisy machine. ``--compile`` also times the chunk through
``torch.compile(mode="reduce-overhead")`` (fixed shapes; CUDA graphs on a GPU) in the same process, to see whether
compiled inference pays before the policies offer it.

    python tools/bench_inference.py RUN_DIR [--repeats 50] [--threads N] [--compile] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from roboil.checkpoint import load_policy


def time_chunk(model, window, repeats: int, predict=None) -> float:
    """Median seconds of ``predict`` (default: predict_action) over ``repeats`` calls, after warm-up."""
    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    predict = predict or model.predict_action
    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            sync()
            started = time.perf_counter()
            predict(window)
            sync()
            if i >= 3:
                times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="also time it through torch.compile")
    parser.add_argument("--device", action="append", help="cpu or cuda (default: both, where there is a GPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        model, _, meta = load_policy(args.run_dir, device)
        window = {}
        for key, feature in meta["features"].items():
            shape = (1, model.n_obs_steps, *feature["shape"])
            window[key] = (torch.randint(0, 255, shape, dtype=torch.uint8) if feature["dtype"] == "uint8"
                           else torch.zeros(shape)).to(device)
        seconds = time_chunk(model, window, args.repeats)
        line = (f"{device}: one chunk of {model.n_action_steps} actions in {seconds * 1e3:.1f} ms "
                f"({model.n_action_steps / seconds:.0f} actions/s)")
        schedule = getattr(model, "schedule", None)
        if schedule is not None:  # diffusion: compare with a single denoising step in the same process
            steps = len(schedule.timesteps)
            schedule.set_inference_steps(1)
            one = time_chunk(model, window, args.repeats)
            schedule.set_inference_steps(steps)
            line += f"; {steps} DDIM steps cost {seconds / one:.1f}x one step ({one * 1e3:.1f} ms)"
        if args.compile:
            compiled = time_chunk(model, window, args.repeats,
                                  torch.compile(model.predict_action, mode="reduce-overhead"))
            line += f"; compiled {compiled * 1e3:.1f} ms ({seconds / compiled:.2f}x eager)"
        print(line)


if __name__ == "__main__":
    main()
