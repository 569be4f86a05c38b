"""Fault injection for `roboil record`: SIGKILLs of the real command at random moments (a measurement, not a test).

First a reference store is recorded uninterrupted. Then `roboil record` is launched again and again into a second
store and its process group SIGKILLed at a moment uniform in [0, T], T = 1.25 x the time the reference launch took
to commit its second episode; every 5th kill aims at the half second before the store appeared in the reference
launch (end of imports and environment set-up, store creation or opening: imports take most of a launch, so the
first half second would only ever hit the interpreter's start). Meanwhile the store is read the way any reader
does (no lock), every 50 ms, for what is committed. After each kill the store must pass the full check of
`roboil store check`, still hold every episode seen committed, with the same checksums, and the next launch must
get in. Each launch records the episodes still missing; a store that reaches --episodes is set aside and the
kills go on in a fresh one, and the last store is finished by one launch left alone. Every finished store must
equal the reference episode by episode (episode i is seeded seed+i, so a resumed recording repeats the same one).

    python tools/fault_record.py [--kills 50] [--episodes 40] [--task fetch-reach] [--seed 0] [--dir DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from roboil.store import CHECKSUMS, EpisodeStore  # noqa: E402

POLL_S = 0.05
EARLY_EVERY = 5
MUST_BE_ZERO = ("committed episodes lost", "episodes differing from the reference", "check failures",
                "next-writer refusals", "other launch failures", "reader errors", "leftover creation dirs")


def committed_checksums(path: Path) -> list[dict] | None:
    """Each committed episode's checksums as a reader sees them (None: no store yet). Mode "r" takes no lock.

    The count comes from the store; the attrs list (meta's ``episodes``, the store's documented layout) is read
    after it, and a writer only writes attrs before the commit point, so the list is never shorter than the count.
    """
    if not path.exists():  # creation renames a complete store into place, so it exists whole or not at all
        return None
    n = EpisodeStore.open(path).n_episodes
    listed = zarr.open_group(path / "meta", mode="r", zarr_format=3).attrs["episodes"]
    return [entry[CHECKSUMS] for entry in listed[:n]]


def launch(path: Path, args, episodes: int, kill_at: float, observed: list, figures: Counter):
    """Run `roboil record` for ``episodes`` more episodes, SIGKILL its group at ``kill_at`` s unless it ended first;
    extend ``observed`` with what gets committed meanwhile. Returns (exit code, stderr, [(s, episodes seen)])."""
    cmd = [sys.executable, "-m", "roboil.cli", "record", "--task", args.task,
           "--episodes", str(episodes), "--out", str(path), "--seed", str(args.seed)]
    timeline = []
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: tqdm's progress could fill a pipe and block it
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        started = time.monotonic()
        while proc.poll() is None:
            elapsed = time.monotonic() - started
            if elapsed >= kill_at:
                os.killpg(proc.pid, signal.SIGKILL)  # the group: nothing the command started outlives it
                break
            try:
                sums = committed_checksums(path)
            except Exception as e:  # readers take no lock, so what they see must always be consistent
                figures["reader errors"] += 1
                print(f"  reader error at {elapsed:.2f} s: {type(e).__name__}: {e}")
                sums = None
            if sums is not None:
                observed.extend(sums[len(observed):])
            timeline.append((elapsed, None if sums is None else len(sums)))
            time.sleep(max(0.0, min(POLL_S, kill_at - (time.monotonic() - started))))
        proc.wait()
        err.seek(0)
        return proc.returncode, err.read().decode(errors="replace"), timeline


def after_kill(path: Path, observed: list, committed_before: int, figures: Counter) -> None:
    """The store after a kill: healthy, and every episode seen committed still there, unchanged."""
    if not path.exists():
        figures["before the store existed"] += 1
    else:
        store = EpisodeStore.open(path)
        if problems := store.check():  # deep, as `roboil store check` runs it
            figures["check failures"] += 1
            print(f"  {path.name}: check failed: {'; '.join(problems)}")
        figures["left an uncommitted tail"] += any("uncommitted" in n or "torn" in n for n in store.notes)
        figures["after its first commit" if store.n_episodes > committed_before else "before its first commit"] += 1
    still_there(path, observed, figures)


def still_there(path: Path, observed: list, figures: Counter) -> None:
    """Count the episodes seen committed that the store lost or changed, then take the store as it now is."""
    final = committed_checksums(path) or []
    lost = [i for i, sums in enumerate(observed) if i >= len(final) or final[i] != sums]
    if lost:
        print(f"  {path.name}: committed episodes {lost} lost or altered ({len(final)} committed now)")
    figures["committed episodes lost"] += len(lost)
    observed[:] = final  # the store as it now is, so a loss is counted once


def launch_failed(code: int, stderr: str, figures: Counter) -> bool:
    if code in (0, -signal.SIGKILL):
        return False
    refused = "another writer" in stderr  # the lock of a killed writer was not released
    figures["next-writer refusals" if refused else "other launch failures"] += 1
    print(f"  launch failed ({code}): {(stderr.strip().splitlines() or ['no output'])[-1]}")
    return True


def differing_episodes(path: Path, reference: EpisodeStore, reference_sums: list[dict]) -> int:
    store, sums = EpisodeStore.open(path), committed_checksums(path)
    differing = abs(store.n_episodes - reference.n_episodes)
    for i in range(min(store.n_episodes, reference.n_episodes)):
        got, want = store.episode(i), reference.episode(i)
        differing += sums[i] != reference_sums[i] or any(not np.array_equal(got[k], want[k]) for k in want)
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs of `roboil record`")
    parser.add_argument("--episodes", type=int, default=40, help="episodes per store")
    parser.add_argument("--task", default="fetch-reach")
    parser.add_argument("--seed", type=int, default=0, help="the recordings' seed; also seeds the kill moments")
    parser.add_argument("--dir", default=None, help="where the stores go (default: a temporary directory)")
    args = parser.parse_args()
    base = Path(args.dir or tempfile.mkdtemp(prefix="fault_record-")).resolve()
    base.mkdir(parents=True, exist_ok=True)
    rng, figures, failures, started = random.Random(args.seed), Counter(), 0, time.time()

    reference_path, reference_seen = base / "reference.zarr", []
    code, stderr, timeline = launch(reference_path, args, args.episodes, float("inf"), reference_seen, figures)
    if code != 0:
        sys.exit(f"the reference recording failed ({code}): {stderr.strip()[-2000:]}")
    appeared = next((t for t, n in timeline if n is not None), 0.0)
    kill_span = 1.25 * next((t for t, n in timeline if n and n >= min(2, args.episodes)), timeline[-1][0])
    print(f"reference: {args.episodes} episodes in {timeline[-1][0]:.1f} s, store seen at {appeared:.2f} s; "
          f"kills uniform in [0, {kill_span:.2f}] s, every {EARLY_EVERY}th in "
          f"[{max(0.0, appeared - 0.5):.2f}, {appeared + 0.05:.2f}] s", flush=True)

    store_paths = (base / f"killed-{i}.zarr" for i in itertools.count())
    path, observed, finished = next(store_paths), [], []
    while figures["kills"] < args.kills and failures < 5:  # a store that keeps refusing would loop forever
        early = figures["kills"] % EARLY_EVERY == 0
        kill_at = rng.uniform(max(0.0, appeared - 0.5), appeared + 0.05) if early else rng.uniform(0, kill_span)
        committed_before = len(observed)
        code, stderr, _ = launch(path, args, args.episodes - committed_before, kill_at, observed, figures)
        if code == -signal.SIGKILL:
            figures["kills"] += 1
            after_kill(path, observed, committed_before, figures)
        elif code == 0:  # it finished before its kill moment
            still_there(path, observed, figures)
        failed = launch_failed(code, stderr, figures)
        failures += failed
        if failed or len(observed) >= args.episodes:  # done (or broken): the kills go on in a fresh store
            if not failed:
                finished.append(path)
            path, observed = next(store_paths), []
    if observed or path.exists() or not finished:  # finish the last store, resumed after its kills
        code, stderr, _ = launch(path, args, args.episodes - len(observed), float("inf"), observed, figures)
        still_there(path, observed, figures)
        if not launch_failed(code, stderr, figures):
            finished.append(path)

    reference, reference_sums = EpisodeStore.open(reference_path), committed_checksums(reference_path)
    for p in [reference_path, *finished]:
        if problems := EpisodeStore.open(p).check():
            figures["check failures"] += 1
            print(f"  {p.name}: check failed: {'; '.join(problems)}")
    for p in finished:
        figures["episodes differing from the reference"] += differing_episodes(p, reference, reference_sums)
    figures["leftover creation dirs"] = len(list(base.glob(".*.creating-*")))  # a later create removes dead ones

    print(f"kills: {figures['kills']} ({figures['before the store existed']} before the store existed, "
          f"{figures['before its first commit']} before the killed launch's first commit (startup, store opening, "
          f"first episode), {figures['after its first commit']} after it; {figures['left an uncommitted tail']} "
          f"left an uncommitted tail)")
    print(f"stores finished after kills: {len(finished)}, compared with the reference episode by episode")
    print(", ".join(f"{name} {figures[name]}" for name in MUST_BE_ZERO))
    print(f"({time.time() - started:.0f} s; stores in {base})" if args.dir else f"({time.time() - started:.0f} s)")
    if not args.dir:
        shutil.rmtree(base)
    sys.exit(1 if any(figures[name] for name in MUST_BE_ZERO) else 0)


if __name__ == "__main__":
    main()
