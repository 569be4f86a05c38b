#!/usr/bin/env python
"""Environment steps a run (one that logs ``eval_return``, e.g. gail with ``eval_every``) needed to reach a return.

Reads RUN/metrics.jsonl and prints the first evaluation step whose mean return over the fixed evaluation starts
is at least the target, with the target given directly or as within a fraction of an expert's return:

    python tools/steps_to_return.py runs/gail/pe1 --expert -160.2 --within 0.1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def first_step(run: Path, target: float) -> tuple[int | None, list[tuple[int, float]]]:
    evaluations = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        metrics = json.loads(line)
        if "eval_step" in metrics:
            evaluations[int(metrics["eval_step"])] = metrics["eval_return"]
    history = sorted(evaluations.items())
    return next((step for step, value in history if value >= target), None), history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--target", type=float, help="the return to reach")
    parser.add_argument("--expert", type=float, help="the expert's return (with --within)")
    parser.add_argument("--within", type=float, default=0.1, help="fraction of the expert's return (default 0.1)")
    args = parser.parse_args()
    if (args.target is None) == (args.expert is None):
        parser.error("give --target or --expert")
    target = args.target if args.target is not None else args.expert - args.within * abs(args.expert)
    for run in args.runs:
        step, history = first_step(run, target)
        last = history[-1] if history else (0, float("nan"))
        reached = f"reached after {step} environment steps" if step is not None else f"not reached in {last[0]} steps"
        print(f"{run}: return >= {target:.1f} {reached} (last evaluation {last[1]:.1f} at {last[0]})")


if __name__ == "__main__":
    main()
