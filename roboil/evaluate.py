"""Closed-loop evaluation in parallel subprocess environments with fixed seeds: episode i uses seed S+i, so two
runs of the same checkpoint give the same numbers. Reports success with a 95% Wilson interval, writes
``eval.json``, H.264 videos of the first episodes and ``report.html`` (the success interval and the returns'
histogram, the videos playing in place, the run's training curves and every episode's row)."""

from __future__ import annotations

import functools
import html
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import load_runner
from .envs import EnvPool, ObservedEnv
from .errors import RoboilError, check_writable
from .html_report import (CHART_CSS, REPORT_CSS, interval_chart, line_chart, outcome_histogram,
                          relative_url)
from .plugins import registry

EVAL_FILE = "eval.json"
REPORT_FILE = "report.html"


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
             device: str = "cpu", executor: dict | None = None, progress: bool = True) -> dict:
    """Play ``episodes`` episodes (seeds ``seed + i``) in ``envs`` parallel environments; options left None take
    the run's ``eval`` config. Returns the report also written to ``eval.json``."""
    for option, value in (("--episodes", episodes), ("--envs", envs), ("--max-steps", max_steps)):
        if value is not None and value < 1:
            raise RoboilError(f"{option} must be at least 1, got {value}")
    if seed is not None and seed < 0:
        raise RoboilError(f"--seed must be >= 0, got {seed}")
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise RoboilError(f"--out '{out_dir}' is a file; name a directory for the report")
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir / "eval"
    check_writable(out_dir)
    runner, config, meta = load_runner(run_dir, executor, device)
    episodes = config.eval.episodes if episodes is None else episodes
    envs = config.eval.envs if envs is None else envs
    seed = config.eval.seed if seed is None else seed
    out_dir.mkdir(parents=True, exist_ok=True)
    task = registry().get("task", config.task)
    seeds = [seed + i for i in range(episodes)]
    keys = list(meta["features"])
    # only the observation kinds the policy reads: a state policy trained on a store with images renders no camera
    kinds = {feature["kind"] for feature in meta["features"].values()}
    make_env = functools.partial(
        ObservedEnv, config.task, {kind: params for kind, params in meta["observations"].items() if kind in kinds},
        render_mode="rgb_array" if video else None,
        max_steps=max_steps if max_steps is not None else config.eval.max_steps,
        video_dir=out_dir / "videos" if video else None, video_seeds=tuple(seeds[: config.eval.video_episodes]))
    n_envs = min(envs, episodes)
    # The policy gets the cores the env workers leave: OpenMP threads spinning after each op would take the cores
    # the workers step on.
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, _available_cores() - n_envs))
    torch.manual_seed(seed)
    plugins = registry()
    results: list[dict] = []
    pool = EnvPool(make_env, n_envs)
    bar = tqdm(total=episodes, desc=f"eval {config.task}", disable=not progress, unit="ep")
    started = time.time()
    try:
        runner.reset(n_envs)
        playing = {i: seeds[i] for i in range(n_envs)}  # env index -> the seed of the episode it plays
        returns, lengths = [0.0] * n_envs, [0] * n_envs
        next_episode = n_envs

        def act(observations: dict[int, dict]) -> None:
            envs = list(observations)
            actions = runner.act({k: np.stack([observations[i][k] for i in envs]) for k in keys}, envs)
            pool.submit(dict(zip(envs, actions)))

        # Two groups of envs take turns: the policy acts for one while the other steps, so on K cores the envs are
        # not idle while the policy runs. Fixed groups, served in a fixed order: the policy sees the same batches in
        # the same order on every run, so results do not depend on timing (nor, for a sampling policy, its RNG).
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
                              "length": lengths[i], **{name: float(info[name]) for name in task.episode_metrics}}
                    if "video" in info:
                        result["video"], result["final_frame"] = info["video"], info["final_frame"]
                    results.append(result)
                    plugins.notify("on_eval_episode_end", result=result, run_dir=run_dir, config=config)
                    bar.update(1)
                    returns[i], lengths[i] = 0.0, 0
                    runner.reset_env(i)
                    if next_episode < episodes:
                        playing[i] = restart[i] = seeds[next_episode]
                        next_episode += 1
                    else:
                        del playing[i]
                if restart:
                    latest.update(pool.reset(restart))
                if latest:
                    act(dict(sorted(latest.items())))
        seconds = time.time() - started  # not counting the workers' shutdown
    finally:
        bar.close()  # before an error or an interrupt prints its line
        pool.close()
        torch.set_num_threads(threads)
    report = write_report(results, config.task, task.episode_metrics, out_dir, seconds, run_dir)
    plugins.notify("on_eval_end", report=report, run_dir=run_dir, config=config)
    return report


def _available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def write_report(results: list[dict], task: str, metrics: tuple[str, ...], out_dir: Path, seconds: float,
                 run_dir) -> dict:
    results.sort(key=lambda r: r["seed"])
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
        "episodes": results,
    }
    (out_dir / EVAL_FILE).write_text(json.dumps(report, indent=2))
    (out_dir / REPORT_FILE).write_text(render_html(report, metrics, out_dir))
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
        f'<figcaption>seed {e["seed"]}: {"success" if e["success"] else "failure"}</figcaption></figure>'
        for e in report["episodes"] if "video" in e)
    videos = f"<h2>Filmed episodes</h2>\n<div>{tiles}</div>\n" if tiles else ""
    interval = interval_chart("success rate", report["success_rate"], lo, hi,
                              f"{successes} of {n} episodes; 95% Wilson interval {lo:.2f}&ndash;{hi:.2f}")
    returns = outcome_histogram("return", [e["return"] for e in report["episodes"]],
                                [e["success"] for e in report["episodes"]])
    columns = ["seed", "success", "return", "length", *metrics]
    rows = "".join("<tr>" + "".join(f"<td>{e[c]:.3f}</td>" if isinstance(e[c], float) else f"<td>{e[c]}</td>"
                                    for c in columns) + "</tr>" for e in report["episodes"])
    return f"""<!doctype html><meta charset="utf-8"><title>roboil eval: {html.escape(report['task'])}</title>
<style>{REPORT_CSS}
{CHART_CSS}
{REPORT_PAGE_CSS}</style>
<h1>{html.escape(report['task'])}: success {report['success_rate']:.2f} (95% CI {lo:.2f}&ndash;{hi:.2f})</h1>
<p>{n} episodes &middot; mean return {report['mean_return']:.2f}{extra} &middot;
run {html.escape(report['run'])} &middot; {report['seconds']} s</p>
<div class="charts">{interval}{returns}</div>
{videos}<h2>Training</h2>
{_training_curves(report['run'])}
<h2>Episodes</h2>
<table><tr>{''.join(f'<th>{c}</th>' for c in columns)}</tr>{rows}</table>
"""


REPORT_PAGE_CSS = """h2{margin-top:1.2em} .note{color:#777;font-size:13px} div.charts figure{margin:4px 12px 4px 0}"""
NOT_PLOTTED = ("step", "time")  # metrics.jsonl's x axis and wall-clock seconds


def _training_curves(run: str) -> str:
    """A chart per numeric metric of the run's ``metrics.jsonl`` over the training steps (log y when positive
    and spanning two decades or more; a dashed line marks the evaluated checkpoint's step when it is not the
    last), or a line saying why there is none."""
    from .checkpoint import CHECKPOINTS, resolve_checkpoint
    from .train import METRICS_FILE

    run_dir, step = Path(run), None
    try:
        checkpoint = resolve_checkpoint(run_dir)
        step = int(checkpoint.name.split("_")[-1])
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
