"""Closed-loop evaluation in parallel subprocess environments with fixed seeds: episode i uses seed S+i, so two
runs of the same checkpoint give the same numbers. Reports success with a 95% Wilson interval, writes
``eval.json``, mp4 videos and ``report.html`` (final frames of the filmed episodes and every episode's row)."""

from __future__ import annotations

import functools
import html
import json
import math
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import load_policy
from .envs import ObservedEnv
from .errors import RoboilError
from .plugins import registry
from .policy import PolicyRunner
from .video import write_mp4, write_png

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


def evaluate(run_dir: str | Path, episodes: int = 50, envs: int = 2, seed: int = 100000, video: bool = False,
             out_dir: str | Path | None = None, max_steps: int | None = None, device: str = "cpu",
             progress: bool = True) -> dict:
    if episodes < 1 or envs < 1:
        raise RoboilError(f"--episodes and --envs must be at least 1 (got {episodes} and {envs})")
    model, config, meta = load_policy(run_dir, device)
    out_dir = Path(out_dir) if out_dir else Path(run_dir) / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    task = registry().get("task", config.task)
    seeds = [seed + i for i in range(episodes)]
    video_seeds = tuple(seeds[: config.eval.video_episodes]) if video else ()
    n_envs = min(envs, episodes)
    make = functools.partial(ObservedEnv, config.task, meta["observations"],
                             render_mode="rgb_array" if video else None,
                             max_steps=max_steps or config.eval.max_steps, video_seeds=video_seeds)
    vec = gym.vector.AsyncVectorEnv([make] * n_envs, context="spawn",
                                    autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    runner = PolicyRunner(model, device)
    runner.reset(n_envs)
    torch.manual_seed(seed)
    results: list[dict] = []
    hook = registry().hook
    started = time.time()
    try:
        obs, _ = vec.reset(seed=seeds[:n_envs])
        current = list(seeds[:n_envs])  # the seed each env is playing, None when it has no more episodes
        returns = np.zeros(n_envs)
        lengths = np.zeros(n_envs, dtype=int)
        next_seed = n_envs
        bar = tqdm(total=episodes, desc=f"eval {config.task}", disable=not progress, unit="ep")
        while any(s is not None for s in current):
            actions = runner.act({k: v for k, v in obs.items() if k in meta["features"]})
            obs, reward, terminated, truncated, info = vec.step(actions)
            returns += reward
            lengths += 1
            finished = [i for i in range(n_envs) if current[i] is not None and (terminated[i] or truncated[i])]
            if not finished:
                continue
            reset_mask = np.zeros(n_envs, dtype=bool)
            reset_seeds: list[int | None] = [None] * n_envs
            frames = vec.call("take_frames") if any(current[i] in video_seeds for i in finished) else None
            for i in finished:
                result = {"seed": current[i], "success": bool(info["is_success"][i]), "return": float(returns[i]),
                          "length": int(lengths[i])}
                for name in task.episode_metrics:
                    result[name] = float(info[name][i])
                if frames is not None and frames[i]:
                    video = write_mp4(out_dir / "videos" / f"seed_{current[i]}.mp4", frames[i], task.fps)
                    result["video"] = str(video)
                    result["final_frame"] = str(write_png(video.with_suffix(".png"), frames[i][-1]))
                results.append(result)
                hook.on_eval_episode_end(result=result)
                bar.update(1)
                returns[i], lengths[i] = 0.0, 0
                runner.reset_env(i)
                if next_seed < episodes:
                    current[i] = reset_seeds[i] = seeds[next_seed]
                    reset_mask[i] = True
                    next_seed += 1
                else:
                    current[i] = None
            if reset_mask.any():
                reset_obs, _ = vec.reset(seed=reset_seeds, options={"reset_mask": reset_mask})
                obs = {k: np.where(reset_mask.reshape(-1, *[1] * (v.ndim - 1)), reset_obs[k], v) for k, v in obs.items()}
        bar.close()
    finally:
        vec.close()
    return write_report(results, config.task, task.episode_metrics, out_dir, time.time() - started, run_dir)


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
        "seconds": round(seconds, 1),
        "episodes": results,
    }
    (out_dir / EVAL_FILE).write_text(json.dumps(report, indent=2))
    (out_dir / REPORT_FILE).write_text(render_html(report, metrics, out_dir))
    return report


def render_html(report: dict, metrics: tuple[str, ...], out_dir: Path) -> str:
    """A page to look at: the headline numbers, the final frame of each filmed episode, every episode's row."""
    lo, hi = report["success_ci95"]
    extra = "".join(f" &middot; mean {name} {report[f'mean_{name}']:.3f}" for name in metrics)
    tiles = "".join(
        f'<a href="{html.escape(os.path.relpath(e["video"], out_dir))}" class="{"ok" if e["success"] else "fail"}">'
        f'<img src="{html.escape(os.path.relpath(e["final_frame"], out_dir))}"><br>seed {e["seed"]}</a>'
        for e in report["episodes"] if "final_frame" in e)
    columns = ["seed", "success", "return", "length", *metrics]
    rows = "".join("<tr>" + "".join(f"<td>{e[c]:.3f}</td>" if isinstance(e[c], float) else f"<td>{e[c]}</td>"
                                    for c in columns) + "</tr>" for e in report["episodes"])
    return f"""<!doctype html><meta charset="utf-8"><title>roboil eval: {html.escape(report['task'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} a{{display:inline-block;margin:4px;text-align:center}}
a.ok img{{border:4px solid #2a2}} a.fail img{{border:4px solid #c22}} img{{width:160px}}
td,th{{padding:2px 10px;text-align:right}}</style>
<h1>{html.escape(report['task'])}: success {report['success_rate']:.2f} (95% CI {lo:.2f}&ndash;{hi:.2f})</h1>
<p>{report['n_episodes']} episodes &middot; mean return {report['mean_return']:.2f}{extra} &middot;
run {html.escape(report['run'])} &middot; {report['seconds']} s</p>
<div>{tiles}</div>
<table><tr>{''.join(f'<th>{c}</th>' for c in columns)}</tr>{rows}</table>
"""
