"""Closed-loop evaluation in parallel subprocess environments with fixed seeds: episode i uses seed S+i, for its
environment and for its policy's inference noise, so two runs of the same checkpoint give the same numbers, and an
episode plays the same however many envs play and however the episodes are sharded over processes (``--shard``,
torchrun; floats agree to rounding, see PolicyModel). Reports success with a 95% Wilson interval, writes
``eval.json``, H.264 videos of the first episodes (and of a failure and a success if those hold none) and
``report.html`` (the success interval and the returns' histogram, the videos playing in place, the run's training
curves and every episode's row)."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import html
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .checkpoint import (METRICS_FILE, checkpoint_step, chosen_executor, load_policy, make_runner,
                         pick_device, resolve_checkpoint, write_text_atomic)
from .distributed import launched_ranks
from .envs import EnvPool, ObservedEnv
from .errors import RoboilError, check_writable, claim_directory
from .html_report import (CHART_CSS, REPORT_CSS, interval_chart, line_chart, outcome_histogram,
                          relative_url)
from .plugins import registry
from .progress import progress_bar

EVAL_FILE = "eval.json"
REPORT_FILE = "report.html"
VIDEOS = "videos"
SHARD_LOCK = ".eval-shards.lock"
# held while an evaluation writes its directory: one at a time, or the shards of one side by side
EVAL_LOCK = ".eval.lock"
# videos are written here while episodes play and moved into videos/ with the report naming them, so an
# interrupted evaluation leaves the previous report's videos as they were
STAGED_VIDEOS = "videos.partial"
SHARD_FILES = "eval.shard-*-of-*.json"  # each shard's partial file (see _shard_path), until one gathers them


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (sensible at 0 and n, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at p = 0 or 1 one bound is exactly 0 or 1; pin it against rounding
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def evaluate(run_dir: str | Path, episodes: int | None = None, envs: int | None = None, seed: int | None = None,
             video: bool = False, out_dir: str | Path | None = None, max_steps: int | None = None,
             device: str = "cpu", executor: dict | None = None, progress: bool = True,
             shard: tuple[int, int] | None = None) -> dict | None:
    """Play ``episodes`` episodes (seeds ``seed + i``) in ``envs`` parallel environments; options left None take
    the run's ``eval`` config. Returns the report also written to ``eval.json``.

    ``shard=(k, n)`` plays only episodes i with ``i % n == k`` and saves them to a partial file in the report
    directory; processes launched by torchrun are the shards (RANK of WORLD_SIZE). The shard that completes the
    set gathers the partials into the one ``eval.json`` and returns its report; the others return None. Each
    episode's inference noise is seeded from its seed (see :class:`roboil.PolicyModel`), so an episode plays the
    same whatever the sharding and the env count.
    """
    for option, value in (("--episodes", episodes), ("--envs", envs), ("--max-steps", max_steps)):
        if value is not None and value < 1:
            raise RoboilError(f"{option} must be at least 1, got {value}")
    if seed is not None and seed < 0:
        raise RoboilError(f"--seed must be >= 0, got {seed}")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise RoboilError(f"--out '{out_dir}' is a file; name a directory for the report")
    ranks = launched_ranks()
    if ranks.distributed:
        if shard is not None:
            raise RoboilError("--shard under torchrun: the processes torchrun launches are the shards; drop --shard")
        shard = (ranks.rank, ranks.size)
        if device == "cuda":  # one GPU per process of a machine, as in training
            device = f"cuda:{ranks.local_rank}"
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise RoboilError(f"--shard {shard[0]}/{shard[1]} names no shard; use K/N with 0 <= K < N")
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "eval"
    check_writable(out_dir)
    for name, kind in ((EVAL_FILE, "file"), (REPORT_FILE, "file"), (VIDEOS, "directory"),
                       (STAGED_VIDEOS, "directory")):
        if (out_dir / name).exists() and (out_dir / name).is_dir() != (kind == "directory"):
            raise RoboilError(f"'{out_dir / name}' is in the way of the report's {name}, which is a {kind}; move it "
                              "away or pass another --out")
    checkpoint = resolve_checkpoint(run_dir).resolve()  # once: a run still training may save a newer one meanwhile
    device = pick_device(str(device), "--torch-device")
    model, config, meta = load_policy(checkpoint, device)
    executor_spec, executor_params = chosen_executor(config, executor)
    runner = make_runner(model, meta, executor_spec, executor_params, device)
    episodes = config.eval.episodes if episodes is None else episodes
    envs = config.eval.envs if envs is None else envs
    seed = config.eval.seed if seed is None else seed
    max_steps = config.eval.max_steps if max_steps is None else max_steps
    if seed + episodes > 2**64:  # torch seeds each episode's inference noise from its seed
        raise RoboilError(f"--seed {seed}: {episodes} episodes are seeded up to {seed + episodes - 1}, above "
                          "2**64 - 1, the largest seed torch takes; use a smaller --seed")
    out_dir.mkdir(parents=True, exist_ok=True)
    task = registry().get("task", config.task)
    all_seeds = [seed + i for i in range(episodes)]
    seeds = all_seeds
    # what was evaluated (max_steps null: the task's own; the executor with every param, defaults included), as its
    # JSON reads; every shard of one evaluation shares it (the env count and the device may differ)
    evaluation = json.loads(json.dumps({
        "checkpoint": str(checkpoint), "step": checkpoint_step(checkpoint), "task": config.task,
        "algorithm": dict(config.algorithm),
        "episodes": episodes, "seed": seed, "max_steps": max_steps,
        "executor": {"name": executor_spec.name, **dataclasses.asdict(executor_params)}}))
    if shard is not None:
        k, n = shard
        if n > episodes:
            raise RoboilError(f"--shard {k}/{n}: {n} shards of {episodes} episodes leave some empty; use at most "
                              f"{episodes} shards")
        seeds = all_seeds[k::n]
        evaluation["shards"] = n
        _read_shards(out_dir, evaluation, replacing=_shard_path(out_dir, k, n))  # refuse another's before playing
    keys = list(meta["features"])
    # only the observation kinds the policy reads: a state policy trained on a store with images renders no camera
    kinds = {feature["kind"] for feature in meta["features"].values()}
    # filmed apart from other evaluations' shards, which may be filming into this directory meanwhile
    staged = out_dir / STAGED_VIDEOS / hashlib.sha1(
        json.dumps({**evaluation, "shards": None}, sort_keys=True).encode()).hexdigest()[:12]
    make_env = functools.partial(
        ObservedEnv, config.task, {kind: params for kind, params in meta["observations"].items() if kind in kinds},
        render_mode="rgb_array" if video else None, max_steps=max_steps, video_dir=staged if video else None,
        video_seeds=tuple(all_seeds[: config.eval.video_episodes]))
    n_envs = min(envs, len(seeds))
    with claim_directory(out_dir, EVAL_LOCK, "evaluating into it", shared=shard is not None):
        # The policy gets the cores the env workers leave: OpenMP threads spinning after each op would take the
        # cores the workers step on. Processes torchrun starts on one machine share its cores.
        threads = torch.get_num_threads()
        cores = _available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", 1))
        torch.set_num_threads(max(1, cores - n_envs))
        torch.manual_seed(seed)
        plugins = registry()
        bar = progress_bar(len(seeds), f"eval {config.task}", unit="ep", enabled=progress and ranks.main)

        def episode_end(result: dict) -> None:
            plugins.notify("on_eval_episode_end", result=result, run_dir=run_dir, config=config)
            bar.update(1)

        try:
            try:
                results, seconds = _play(runner, make_env, seeds, n_envs, keys, task.episode_metrics, episode_end)
            finally:
                bar.close()  # before an error or an interrupt prints its line
            if shard is not None:
                gathered = _save_shard(out_dir, evaluation, shard, results, seconds)
                if gathered is None:
                    return None
                results, seconds = gathered
            report = write_report(results, config.task, task.episode_metrics, out_dir, seconds, run_dir, evaluation,
                                  staged)
            # once the report holds them; a shard run again meanwhile may have gathered them too
            if shard is not None:
                for i in range(shard[1]):
                    _shard_path(out_dir, i, shard[1]).unlink(missing_ok=True)
            else:  # shards of this same evaluation, played whole now, would refuse a later sharding of it
                _drop_shards_of(out_dir, evaluation)
            # on the report's disk already: an interrupt or a failure while filming loses no result
            if video and config.eval.video_episodes and _film_both_outcomes(results, runner, make_env, keys,
                                                                             task.episode_metrics):
                report = write_report(results, config.task, task.episode_metrics, out_dir, seconds, run_dir,
                                      evaluation, staged)
            if shard is None:  # it alone writes the directory: what interrupted evaluations filmed goes too
                shutil.rmtree(out_dir / STAGED_VIDEOS, ignore_errors=True)
        finally:
            torch.set_num_threads(threads)
    plugins.notify("on_eval_end", report=report, run_dir=run_dir, config=config)
    return report


def _play(runner, make_env, seeds: list[int], n_envs: int, keys: list[str], metrics: tuple[str, ...],
          episode_end: Callable[[dict], None]) -> tuple[list[dict], float]:
    """Play one episode per seed in ``n_envs`` worker envs; each episode's result is passed to ``episode_end``
    as it ends. Returns all of them and the seconds they took (the workers' start and shutdown not counted)."""
    results: list[dict] = []
    pool = EnvPool(make_env, n_envs)
    started = time.time()
    try:
        playing = {i: seeds[i] for i in range(n_envs)}  # env index -> the seed of the episode it plays
        runner.reset(n_envs, seeds=list(playing.values()))
        returns, lengths = [0.0] * n_envs, [0] * n_envs
        next_episode = n_envs

        def act(observations: dict[int, dict]) -> None:
            envs = list(observations)
            actions = runner.act({k: np.stack([observations[i][k] for i in envs]) for k in keys}, envs)
            pool.submit(dict(zip(envs, actions)))

        # Two groups of envs take turns: the policy acts for one while the other steps, so on K cores the envs are
        # not idle while the policy runs. Fixed groups, served in a fixed order: the policy sees the same batches in
        # the same order on every run, so results do not depend on timing.
        groups = [group for group in (list(range(0, n_envs, 2)), list(range(1, n_envs, 2))) if group]
        first = pool.reset(playing)
        for group in groups:
            act({i: first[i] for i in group})
        while playing:
            for group in groups:
                stepping = [i for i in group if i in playing]
                if not stepping:
                    continue
                latest, restart = {}, {}
                for i, (obs, reward, terminated, truncated, info) in pool.collect(stepping).items():
                    returns[i] += reward
                    lengths[i] += 1
                    if not (terminated or truncated):
                        latest[i] = obs
                        continue
                    result = {"seed": playing[i], "success": bool(info["is_success"]), "return": float(returns[i]),
                              "length": lengths[i], **{name: float(info[name]) for name in metrics}}
                    if "video" in info:  # absolute: eval.json and the hooks read them from anywhere
                        result["video"], result["final_frame"] = (str(Path(info[k]).resolve())
                                                                  for k in ("video", "final_frame"))
                    results.append(result)
                    episode_end(result)
                    returns[i], lengths[i] = 0.0, 0
                    if next_episode < len(seeds):
                        playing[i] = restart[i] = seeds[next_episode]
                        runner.reset_env(i, seed=seeds[next_episode])
                        next_episode += 1
                    else:
                        del playing[i]
                if restart:
                    latest.update(pool.reset(restart))
                if latest:
                    act(dict(sorted(latest.items())))
        seconds = time.time() - started
    finally:
        pool.close()
    return results, seconds


def _film_both_outcomes(results: list[dict], runner, make_env, keys: list[str], metrics: tuple[str, ...]) -> bool:
    """The first episodes are filmed as they play; where none of those failed (or none succeeded) and another
    episode did, the first such episode is played again on camera, so the report shows what a failure (a
    success) looks like. An episode plays the same from its seed; if the second play ends otherwise (floats
    differ in the last bits between batch sizes, and a contact may tip), it is not shown as that episode.
    Returns whether a result gained a video."""
    filmed, gained = {result["success"] for result in results if "video" in result}, False
    for outcome in (False, True):
        wanted = next((r for r in sorted(results, key=lambda r: r["seed"]) if r["success"] == outcome), None)
        if outcome in filmed or wanted is None:
            continue
        print(f"roboil: playing seed {wanted['seed']} again to film a {_outcome(wanted)}", file=sys.stderr)
        (again,), _ = _play(runner, functools.partial(make_env, video_seeds=(wanted["seed"],)), [wanted["seed"]], 1,
                            keys, metrics, lambda result: None)
        if (again["success"], again["length"]) == (wanted["success"], wanted["length"]):
            wanted.update(video=again["video"], final_frame=again["final_frame"], filmed_again=True)
            gained = True
        else:
            Path(again["video"]).unlink(missing_ok=True)
            Path(again["final_frame"]).unlink(missing_ok=True)
            print(f"roboil: seed {wanted['seed']} played again ended otherwise ({_ending(again)}, not "
                  f"{_ending(wanted)}), so no {_outcome(wanted)} is filmed", file=sys.stderr)
    return gained


def _outcome(result: dict) -> str:
    return "success" if result["success"] else "failure"


def _ending(result: dict) -> str:
    return f"{_outcome(result)} after {result['length']} steps"


def _shard_path(out_dir: Path, k: int, n: int) -> Path:
    return out_dir / f"eval.shard-{k}-of-{n}.json"


def _save_shard(out_dir: Path, evaluation: dict, shard: tuple[int, int], results: list[dict],
                seconds: float) -> tuple[list[dict], float] | None:
    """Save a shard's episodes; the shard that completes the set gets all of them and the evaluation's time
    (the caller writes the report, then removes the partial files). Under a file lock, so that exactly one of
    the shards finishing together gathers."""
    k, n = shard
    path = _shard_path(out_dir, k, n)
    with open(out_dir / SHARD_LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:
            raise RoboilError(f"the file system of '{out_dir}' has no file locks, which gathering shards needs; "
                              "pass an --out on one that has (a local disk, NFS)") from None
        write_text_atomic(path, json.dumps({"evaluation": evaluation, "seconds": seconds, "episodes": results}))
        shards = _read_shards(out_dir, evaluation)
        if missing := [f"{i}/{n}" for i in range(n) if i not in shards]:
            waiting = f"shard {missing[0]} has" if len(missing) == 1 else f"shards {', '.join(missing)} have"
            stale = "" if _same_evaluation(out_dir / "eval.json", evaluation) else _remove_report(out_dir)
            print(f"roboil: shard {k}/{n} saved in {path}; eval.json is written when {waiting} run{stale}")
            return None
        # the shards run side by side: the evaluation took as long as the slowest one
        return ([episode for i in range(n) for episode in shards[i]["episodes"]],
                max(saved["seconds"] for saved in shards.values()))


def _same_evaluation(report: Path, evaluation: dict) -> bool:
    """Whether ``report`` (an eval.json or a shard's partial file, maybe missing) holds ``evaluation``, however it
    was sharded."""
    try:
        theirs = json.loads(report.read_text())["evaluation"]
    except (OSError, ValueError, KeyError, TypeError):
        return not report.exists()
    return {**theirs, "shards": None} == {**evaluation, "shards": None}


def _remove_report(out_dir: Path) -> str:
    """Remove the eval.json and report.html of another evaluation, so no stale result sits beside this one's
    shards; says so."""
    for name in ("eval.json", "report.html"):
        (out_dir / name).unlink(missing_ok=True)
    return " (the eval.json and report.html of another evaluation there were removed)"


def _read_shards(out_dir: Path, evaluation: dict, replacing: Path | None = None) -> dict[int, dict]:
    """The partial files of ``evaluation`` in ``out_dir`` by shard index; one of another evaluation (another
    checkpoint, seed, episode or shard count) is a one-line error, except ``replacing``, which this shard
    overwrites."""
    shards = {}
    for path in sorted(out_dir.glob(SHARD_FILES)):
        if path == replacing:
            continue
        try:
            saved = json.loads(path.read_text())
            theirs, k = saved["evaluation"], int(path.name.split("-")[1])
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            raise RoboilError(f"'{path}' is damaged or not a shard of roboil eval; delete it and run that shard "
                              "again") from None
        if theirs != evaluation:
            field = next(key for key in {**evaluation, **theirs} if theirs.get(key) != evaluation.get(key))
            raise RoboilError(f"'{path}' is a shard of another evaluation (its {field} {theirs.get(field)}, this "
                              f"one's {evaluation.get(field)}); delete it, or run every shard with the same "
                              "checkpoint and options")
        shards[k] = saved
    return shards


def _drop_shards_of(out_dir: Path, evaluation: dict) -> None:
    """Remove the partial files of ``evaluation`` however it was sharded (they would refuse a later sharding)."""
    for path in out_dir.glob(SHARD_FILES):
        if _same_evaluation(path, evaluation):
            path.unlink(missing_ok=True)


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_report(results: list[dict], task: str, metrics: tuple[str, ...], out_dir: Path, seconds: float,
                 run_dir, evaluation: dict, staged: Path) -> dict:
    """``eval.json`` and ``report.html``, each replaced whole; the episodes' videos moved from ``staged``, where
    they were filmed, into ``out_dir/videos`` (named as this process sees it: a shard may have filmed them with
    the directory mounted elsewhere), and the videos there that no episode names (an earlier evaluation's)
    removed."""
    results.sort(key=lambda r: r["seed"])
    videos = out_dir / VIDEOS
    for result in results:
        for key in ("video", "final_frame"):
            if key in result:
                name = Path(result[key]).name
                if (filmed := staged / name).exists():
                    videos.mkdir(exist_ok=True)
                    os.replace(filmed, videos / name)
                result[key] = str(videos.resolve() / name)
    n = len(results)
    successes = sum(r["success"] for r in results)
    report = {
        "task": task,
        "run": str(run_dir),
        "success_rate": successes / n,
        "success_ci95": list(wilson_interval(successes, n)),
        "mean_return": float(np.mean([r["return"] for r in results])),
        **{f"mean_{name}": float(np.mean([r[name] for r in results])) for name in metrics},
        "n_episodes": n,
        "seconds": round(seconds, 2),
        "evaluation": evaluation,
        "episodes": results,
    }
    write_text_atomic(out_dir / EVAL_FILE, json.dumps(report, indent=2))
    write_text_atomic(out_dir / REPORT_FILE, render_html(report, metrics, out_dir))
    named = {Path(r[key]).name for r in results for key in ("video", "final_frame") if key in r}
    for stale in videos.glob("seed_*"):
        if stale.name not in named:
            stale.unlink()
    shutil.rmtree(staged, ignore_errors=True)  # with what an interrupted run of this evaluation left there
    with contextlib.suppress(OSError):  # another evaluation's shards may be filming beside it
        staged.parent.rmdir()
    return report


def render_html(report: dict, metrics: tuple[str, ...], out_dir: Path) -> str:
    """A page to look at: the headline numbers, the success rate with its 95% interval, the returns' histogram
    (successes and failures), the filmed episodes playing in place (their final frame until played; green border:
    success), the run's training curves (every numeric metric in its ``metrics.jsonl``) and every episode's row.
    Inline SVG and CSS only: it opens from disk."""
    lo, hi = report["success_ci95"]
    n = report["n_episodes"]
    successes = sum(e["success"] for e in report["episodes"])
    extra = "".join(f" &middot; mean {name} {report[f'mean_{name}']:.3f}" for name in metrics)

    def url(path: str) -> str:
        return relative_url(path, out_dir)

    tiles = "".join(
        f'<figure class="{"ok" if e["success"] else "fail"}"><video controls muted playsinline preload="metadata" '
        f'poster="{url(e["final_frame"])}" src="{url(e["video"])}"></video>'
        f'<figcaption>seed {e["seed"]}: {"success" if e["success"] else "failure"}'
        f'{" (played again to film it)" if e.get("filmed_again") else ""}</figcaption></figure>'
        for e in report["episodes"] if "video" in e)
    videos = f"<h2>Filmed episodes</h2>\n<div>{tiles}</div>\n" if tiles else ""
    interval = interval_chart("success rate", report["success_rate"], lo, hi,
                              f"{successes} of {n} episodes; 95% Wilson interval {lo:.3f}&ndash;{hi:.3f}")
    returns = outcome_histogram("return", [e["return"] for e in report["episodes"]],
                                [e["success"] for e in report["episodes"]])
    columns = ["seed", "success", "return", "length", *metrics]
    rows = "".join("<tr>" + "".join(f"<td>{e[c]:.3f}</td>" if isinstance(e[c], float) else f"<td>{e[c]}</td>"
                                    for c in columns) + "</tr>" for e in report["episodes"])
    return f"""<!doctype html><meta charset="utf-8"><title>roboil eval: {html.escape(report['task'])}</title>
<style>{REPORT_CSS}
{CHART_CSS}
{REPORT_PAGE_CSS}</style>
<h1>{html.escape(report['task'])}: success {report['success_rate']:.3f} (95% CI {lo:.3f}&ndash;{hi:.3f})</h1>
<p>{n} episodes &middot; mean return {report['mean_return']:.2f}{extra} &middot;
run {html.escape(report['run'])} &middot; {report['seconds']} s</p>
{_evaluation_line(report.get('evaluation'))}
<div class="charts">{interval}{returns}</div>
{videos}<h2>Training</h2>
{_training_curves(report['run'])}
<h2>Episodes</h2>
<table><tr>{''.join(f'<th>{c}</th>' for c in columns)}</tr>{rows}</table>
"""


def _evaluation_line(evaluation: dict | None) -> str:
    """What was evaluated: the algorithm, the checkpoint, the seeds, the episode length and the executor."""
    if not evaluation:
        return ""
    executor = dict(evaluation["executor"])
    name = executor.pop("name", "?")
    params = ", ".join(f"{key}={value}" for key, value in executor.items() if value is not None)
    length = "the task's own" if evaluation["max_steps"] is None else f"at most {evaluation['max_steps']} steps"
    last = evaluation["seed"] + evaluation["episodes"] - 1
    step = f" (step {evaluation['step']})" if evaluation["step"] is not None else ""
    algorithm = f"{html.escape(evaluation['algorithm']['name'])} &middot; " if "algorithm" in evaluation else ""
    return (f"<p class=\"note\" id=\"evaluation\">{algorithm}checkpoint {html.escape(evaluation['checkpoint'])}"
            f"{step} &middot; seeds {evaluation['seed']}&ndash;{last} &middot; episode length "
            f"{length} &middot; executor {html.escape(name)}{f' ({html.escape(params)})' if params else ''}</p>")


REPORT_PAGE_CSS = """h2{margin-top:1.2em} .note{color:#777;font-size:13px} div.charts figure{margin:4px 12px 4px 0}"""
NOT_PLOTTED = ("step", "time")  # metrics.jsonl's x axis and wall-clock seconds


def _training_curves(run: str) -> str:
    """A chart per numeric metric of the run's ``metrics.jsonl`` over the training steps (log y when positive
    and spanning two decades or more; a dashed line marks the evaluated checkpoint's step when it is not the
    last), or a line saying why there is none."""
    from .checkpoint import CHECKPOINTS

    run_dir, step = Path(run), None
    try:
        checkpoint = resolve_checkpoint(run_dir)
        step = checkpoint_step(checkpoint)
        if checkpoint.parent.name == CHECKPOINTS:  # a checkpoint inside its run: the run's metrics
            run_dir = checkpoint.parents[1]
    except (RoboilError, OSError, ValueError):
        pass
    path = run_dir / METRICS_FILE
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return (f"<p class=\"note\" id=\"no-training-curve\">training curve unavailable: no {METRICS_FILE} in "
                f"{html.escape(str(run_dir))} (a checkpoint evaluated away from its run?)</p>")
    series: dict[str, list[tuple[float, float]]] = {}
    for line in lines:
        try:
            row = json.loads(line)
            at = float(row["step"])
        except (ValueError, KeyError, TypeError):  # a torn last line of a run still writing, or not a metrics row
            continue
        for key, value in row.items():
            if key not in NOT_PLOTTED and isinstance(value, (int, float)) and not isinstance(value, bool):
                series.setdefault(key, []).append((at, float(value)))
    if not series:
        return (f"<p class=\"note\" id=\"no-training-curve\">training curve unavailable: {html.escape(str(path))} "
                "holds no numeric metrics</p>")
    charts = []
    for key, points in series.items():
        points.sort(key=lambda point: point[0])
        x, y = np.array(points).T
        finite = y[np.isfinite(y)]
        log_y = bool(finite.size > 1 and (finite > 0).all() and finite.max() >= 100 * finite.min())
        note = (f" <span class=\"note\">{len(points)} points" + (f", last {finite[-1]:.4g}" if finite.size else "")
                + (", log scale" if log_y else "") + "</span>")
        marker = (step, f"the evaluated checkpoint (step {step})") if step is not None and step < x.max() else None
        charts.append(line_chart(key, y[:, None], [key], x=x, x_label="training step", data="metric",
                                 aria=f"{key} over training steps", note=note, log_y=log_y, marker=marker))
    return (f"<p class=\"note\">from {html.escape(str(path))}</p>\n"
            f"<div class=\"charts training\">{''.join(charts)}</div>")
