"""The recording loop: a device (the task's scripted expert or a teleop plugin) drives the task and every
finished episode is committed to the episode store; a crash loses at most the episode in progress."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Mapping

import numpy as np
from tqdm import tqdm

from .config import merge
from .envs import ObservedEnv
from .errors import RoboilError
from .plugins import registry
from .policy import ACTION
from .specs import ArrayLayout, DeviceSpec, Feature
from .store import EpisodeStore

SCRIPTED = "scripted"
ACTION_LAYOUT = ArrayLayout(time_chunk=1024)


def scripted_device(task, env, rng):
    return task.make_expert(rng)


def resolve_device(name: str) -> DeviceSpec:
    """``scripted`` (every task's own expert) or a device registered by a plugin."""
    if name == SCRIPTED:
        return DeviceSpec(SCRIPTED, scripted_device, "the task's scripted expert")
    reg = registry()
    if name not in reg.names("device"):
        raise RoboilError(f"unknown device '{name}'; valid: {', '.join([SCRIPTED, *reg.names('device')])}")
    return reg.get("device", name)


def open_or_create(out: Path, task: str, observations: Mapping, env: ObservedEnv) -> EpisodeStore:
    action = Feature(ACTION, tuple(env.action_space.shape), "float32")
    features = {**env.features, ACTION: action}
    if out.exists():
        store = EpisodeStore.open(out, mode="a")
        if store.attrs.get("task") != task or store.features != features:
            raise RoboilError(f"store '{out}' holds task '{store.attrs.get('task')}' with other arrays; "
                              "record into a new --out path")
        return store
    reg = registry()
    layouts = {ACTION: ACTION_LAYOUT}
    for observer_kind in observations:
        spec = reg.get("observation", observer_kind)
        for key, feature in env.features.items():
            if feature.kind == observer_kind:
                layouts[key] = spec.layout(feature)
    return EpisodeStore.create(out, features, layouts,
                               {"task": task, "fps": env.task.fps, "observations": dict(observations)})


def record(task: str, device: str, episodes: int, out: str | Path, seed: int = 0,
           obs_overrides: Mapping | None = None, action_noise: float = 0.0, progress: bool = True) -> dict:
    """Record ``episodes`` more episodes; the store's episode i is seeded with ``seed + i``, so re-running a
    command that was interrupted continues where it stopped.

    ``action_noise`` (DART-style noise injection): the env executes the device's action plus Gaussian noise
    with this standard deviation, as a fraction of the action range, while the store records the clean action,
    so demonstrations also show how the device recovers from small mistakes. Returns a summary dict.
    """
    if episodes < 1:
        raise RoboilError(f"--episodes must be at least 1, got {episodes}")
    if action_noise < 0:
        raise RoboilError(f"--action-noise must be >= 0, got {action_noise}")
    task_spec = registry().get("task", task)
    device_spec = resolve_device(device)
    observations = merge({k: dict(v) for k, v in task_spec.observations.items()}, obs_overrides or {})
    env = ObservedEnv(task, observations)
    store = open_or_create(Path(out), task, observations, env)
    rng = np.random.default_rng(seed)
    controller = device_spec.make_device(task_spec, env, rng)
    low, high = env.action_space.low, env.action_space.high
    noise_scale = action_noise * (high - low) / 2
    successes = 0
    try:
        for _ in tqdm(range(episodes), desc=f"record {task}", disable=not progress, unit="ep"):
            episode_seed = seed + store.n_episodes
            started = time.time()
            obs, info = env.reset(seed=episode_seed)
            controller.reset()
            steps: dict[str, list] = {key: [] for key in store.features}
            done = False
            while not done:
                action = controller.act(env.raw_obs)
                if action is None:  # the operator ended the episode
                    break
                action = np.asarray(action, dtype=np.float32)
                for key, value in obs.items():
                    steps[key].append(value)
                steps[ACTION].append(action)
                if action_noise:
                    action_executed = np.clip(action + rng.normal(size=action.shape) * noise_scale, low, high)
                else:
                    action_executed = action
                obs, _, terminated, truncated, info = env.step(action_executed)
                done = terminated or truncated
            if not steps[ACTION]:
                continue
            success = bool(info.get("is_success", False))
            successes += success
            store.add_episode({k: np.stack(v) for k, v in steps.items()}, {
                "seed": episode_seed, "success": success, "task": task, "source": device_spec.name,
                "length": len(steps[ACTION]), "action_noise": action_noise, "started": started,
                "finished": time.time(),
            })
    finally:
        env.close()
    return {"store": str(out), "recorded": episodes, "successes": successes, "total_episodes": store.n_episodes}
