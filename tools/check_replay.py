"""Record scripted-expert episodes of every task and replay them from their stored start states and actions: how
often does the replay reproduce the recorded success, and are its observations identical?

    python tools/check_replay.py --episodes 20 [--tasks fetch-reach pusht] [--out DIR]

Observations are the tasks' states only (camera frames are left out: they add time, not information here).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roboil.plugins import registry  # noqa: E402
from roboil.record import record  # noqa: E402
from roboil.replay import replay  # noqa: E402


def check_task(task: str, episodes: int, root: Path, seed: int = 0) -> dict:
    spec = registry().get("task", task)
    no_cameras = {"pixels": {"cameras": []}} if "pixels" in spec.observations else None
    path = root / f"{task}.zarr"
    record(task, episodes, path, seed=seed, obs_overrides=no_cameras, progress=False)
    report = replay(path)
    results = report["episodes"]
    return {"task": task, "episodes": len(results), "recorded_successes": sum(r["recorded_success"] for r in results),
            "reproduced": report["reproduced"],
            "identical_observations": sum(r["max_observation_drift"] == 0 for r in results)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--tasks", nargs="*", default=None, help="default: every registered task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="keep the stores here (default: a temporary directory)")
    args = parser.parse_args()
    tasks = args.tasks or registry().names("task")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        root.mkdir(parents=True, exist_ok=True)
        rows = [check_task(task, args.episodes, root, args.seed) for task in tasks]
    print(f"{'task':22} {'episodes':>8} {'expert ok':>9} {'reproduced':>10} {'identical obs':>13}")
    for r in rows:
        print(f"{r['task']:22} {r['episodes']:8d} {r['recorded_successes']:9d} {r['reproduced']:10d} "
              f"{r['identical_observations']:13d}")
    total, reproduced = sum(r["episodes"] for r in rows), sum(r["reproduced"] for r in rows)
    print(f"all tasks: {reproduced} of {total} replays reproduce the recorded success ({reproduced / total:.1%})")
    return 0 if reproduced == total else 1


if __name__ == "__main__":
    sys.exit(main())
