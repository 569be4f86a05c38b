"""``roboil plugins --verbose``: what a plugin author needs to know about each registered part, without reading
its code: an algorithm's or a device's parameters (types and defaults) and how an algorithm trains, a task's
observation arrays, action space, episode length, control rate and success rule."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

from .specs import RESUMABLE


def parameters(config: type) -> str:
    """``name: type = default`` for each field of a parameter dataclass; "(none)" for one without fields."""
    hints = typing.get_type_hints(config)
    out = []
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        kind = getattr(hints.get(f.name), "__name__", None) or str(hints.get(f.name, f.type)).replace("typing.", "")
        out.append(f"{f.name}: {kind} = {default}{' (may change on resume)' if f.metadata.get(RESUMABLE) else ''}")
    return ", ".join(out) or "(none)"


def _space(space) -> str:
    """E.g. "discrete, 3 actions" or "box (4,) float32 in [-1, 1]" (per-dimension bounds when they differ)."""
    if hasattr(space, "n"):
        return f"discrete, {int(space.n)} actions"
    low, high = np.unique(space.low), np.unique(space.high)
    bounds = f"[{low[0]:g}, {high[0]:g}]" if len(low) == len(high) == 1 else "per-dimension bounds"
    return f"box {space.shape} {space.dtype} in {bounds}"


def task_details(task) -> list[str]:
    """The task's observation arrays with its default observation kinds (an env is made to find them)."""
    from .envs import ObservedEnv

    env = ObservedEnv(task.name, task.observations)
    try:
        arrays = ", ".join(f"{key} {f.shape} {f.dtype} ({f.kind})" for key, f in env.features.items())
        space = _space(env.action_space)
    finally:
        env.close()
    goal = f"; goal arrays: desired {task.goal.desired}, achieved {task.goal.achieved}" if task.goal else ""
    if task.teleop is None:
        teleop = "no teleop"
    else:
        arms = f" (arms {', '.join(task.teleop.arms)})" if len(task.teleop.arms) > 1 else ""
        teleop = f"teleop{arms}{', rotating' if task.teleop.rotation else ''}"
    return [f"observes: {arrays}{goal}",
            f"action: {space}; episodes of {task.max_episode_steps or 'unlimited'} steps at {task.fps:g} Hz; {teleop}",
            "success: info['is_success'] at the episode's final step (it does not end the episode)"]


def training_loop(algorithm) -> str:
    """How an algorithm trains, and which ``train.*`` settings apply."""
    from .config import honoured_train_keys

    if algorithm.train is None:
        return "offline, the core's loop over windows of the store's episodes (every train.* setting applies)"
    if algorithm.train_keys is None:
        return "in its own loop; which train.* settings apply is not declared"
    applied = honoured_train_keys(algorithm.train_keys)
    return f"in its own loop, applying {applied} (others are refused)"


def describe(reg) -> list[str]:
    lines = []
    for plugin in reg.plugins:
        lines.append(f"{plugin.name} {plugin.version}")
        for kind, names in sorted(plugin.registers.items()):
            for name in names:
                record = reg.get(kind, name)
                lines.append(f"  {kind} {name}: {getattr(record, 'summary', '') or ''}".rstrip(": "))
                for field in ("config", "params", "encoder_params"):
                    if hasattr(record, field):
                        lines.append(f"    {field}: {parameters(getattr(record, field))}")
                if kind == "task":
                    lines += [f"    {line}" for line in task_details(record)]
                if kind == "algorithm":
                    lines.append(f"    trains: {training_loop(record)}")
    return lines
