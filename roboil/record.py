"""The recording loop with roles: an actor drives the task (an input device, the task's scripted expert, or a
trained policy) and a labeler says which action is recorded (the actor itself, or e.g. the scripted expert
for DAgger-style corrections). Every finished episode is committed to the episode store with a per-step
record of who acted; a crash loses at most the episode in progress."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tqdm import tqdm

from .actions import action_feature
from .config import from_dict, merge
from .envs import ObservedEnv
from .errors import RoboilError, check_writable
from .keys import ACTION
from .plugins import registry
from .specs import DISCARD, ArrayLayout, DeviceSpec, NoParams
from .store import EpisodeStore

SCRIPTED = "scripted"
POLICY_PREFIX = "policy:"
ACTION_LAYOUT = ArrayLayout(time_chunk=1024)


def scripted_device(task, env, rng, params):
    return task.make_expert(rng)


def resolve_device(name: str) -> DeviceSpec:
    """``scripted`` (every task's own expert) or a device registered by a plugin."""
    if name == SCRIPTED:
        return DeviceSpec(SCRIPTED, scripted_device, NoParams, "the task's scripted expert")
    reg = registry()
    if name not in reg.names("device"):
        raise RoboilError(f"unknown device '{name}'; valid: {', '.join([SCRIPTED, *reg.names('device')])}, "
                          f"or {POLICY_PREFIX}RUN_DIR for a trained policy")
    return reg.get("device", name)


class PolicyDevice:
    """A trained policy as an actor: the recorder feeds it the observations it was trained on."""

    def __init__(self, run_dir: str):
        from .checkpoint import load_runner  # torch loads only when a policy acts

        self.runner, _, self.meta = load_runner(run_dir)
        self.keys = list(self.meta["features"])

    def reset(self) -> None:
        self.runner.reset(1)

    def act(self, raw_obs: Any, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.runner.act({k: obs[k][None] for k in self.keys})[0]


@dataclass(eq=False)
class Role:
    """Who acts or labels: its name (as recorded per step) and the device behind it."""

    name: str
    device: Any
    observed: bool = False  # acts on the observation dict (a policy) rather than the task's raw observation

    def act(self, raw_obs, obs):
        return self.device.act(raw_obs, obs) if self.observed else self.device.act(raw_obs)

    def close(self) -> None:
        if hasattr(self.device, "close"):
            self.device.close()


def make_role(name: str, task_spec, env: ObservedEnv, rng: np.random.Generator, params: Mapping, where: str) -> Role:
    if name.startswith(POLICY_PREFIX):
        if params:
            raise RoboilError(f"a policy takes no {where}.PARAM=value settings; drop {', '.join(params)}")
        return Role("policy", PolicyDevice(name[len(POLICY_PREFIX):]), observed=True)
    spec = resolve_device(name)
    return Role(spec.name, spec.make_device(task_spec, env, rng, from_dict(spec.config, params, where)))


def open_or_create(out: Path, task: str, observations: Mapping, env: ObservedEnv) -> EpisodeStore:
    features = {**env.features, ACTION: action_feature(env.action_space)}
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


def run_lengths(names: list[str]) -> list[list]:
    """``["a", "a", "b"]`` as ``[["a", 2], ["b", 1]]``: the per-step actor record, compact in the attrs."""
    runs: list[list] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return runs


def record(task: str, actor: str, episodes: int, out: str | Path, seed: int = 0, labeler: str | None = None,
           obs_overrides: Mapping | None = None, actor_params: Mapping | None = None,
           labeler_params: Mapping | None = None, action_noise: float = 0.0, progress: bool = True) -> dict:
    """Record ``episodes`` more episodes; the store's episode i is seeded with ``seed + i`` (the environment,
    the devices' random generators and the action noise alike), so re-running a command that was interrupted
    continues where it stopped and records what one uninterrupted run would have.

    ``actor`` executes its actions; ``labeler`` (default: the actor) gives the action that is recorded.
    ``action_noise`` (DART-style noise injection): the env executes the actor's action plus Gaussian noise
    with this standard deviation, as a fraction of the action range, while the store records the clean label,
    so demonstrations also show how to recover from small mistakes. Returns a summary dict.
    """
    if episodes < 1:
        raise RoboilError(f"--episodes must be at least 1, got {episodes}")
    if seed < 0:
        raise RoboilError(f"--seed must be >= 0, got {seed}")
    if not np.isfinite(action_noise) or action_noise < 0:
        raise RoboilError(f"--action-noise must be a finite number >= 0, got {action_noise}")
    labeler = labeler or actor
    if labeler.startswith(POLICY_PREFIX) and labeler != actor:
        raise RoboilError("a policy cannot label another actor's steps; use --labeler scripted or a device")
    check_writable(out)
    task_spec = registry().get("task", task)
    observations = merge({k: dict(v) for k, v in task_spec.observations.items()}, obs_overrides or {})
    device_rng = np.random.default_rng(seed)
    env = None
    roles: list[Role] = []
    try:
        # frames are only rendered when a device asks for them (render), so the render mode costs nothing
        env = ObservedEnv(task, observations, render_mode="rgb_array")
        if action_noise and action_feature(env.action_space).dtype != "float32":
            raise RoboilError(f"--action-noise needs continuous actions; task '{task}' has discrete ones: drop the "
                              "option")
        # roles before the store, so a bad device name or parameter leaves no store behind
        acting = make_role(actor, task_spec, env, device_rng, actor_params or {}, "actor")
        roles.append(acting)
        labeling = acting if labeler == actor else make_role(labeler, task_spec, env, device_rng,
                                                              labeler_params or {}, "labeler")
        if labeling is not acting:
            roles.append(labeling)
        with open_or_create(Path(out), task, observations, env) as store:  # holds the one-writer lock
            return _record_episodes(store, env, task, acting, labeling, episodes, seed, device_rng, action_noise,
                                    progress)
    finally:
        for role in roles:
            role.close()
        if env is not None:
            env.close()


def _record_episodes(store: EpisodeStore, env: ObservedEnv, task: str, acting: Role, labeling: Role,
                     episodes: int, seed: int, device_rng: np.random.Generator, action_noise: float,
                     progress: bool) -> dict:
    action_dtype = store.features[ACTION].dtype
    low, high = getattr(env.action_space, "low", None), getattr(env.action_space, "high", None)
    noise_scale = action_noise * (high - low) / 2 if action_noise else 0.0
    roles = list(dict.fromkeys((acting, labeling)))
    paced = any(getattr(role.device, "realtime", False) for role in roles)
    viewers = [role.device for role in roles if hasattr(role.device, "render")]
    successes = discarded = recorded = 0
    # the bar is closed before an error or an interrupt prints its line
    with tqdm(total=episodes, desc=f"record {task}", disable=not progress, unit="ep") as bar:
        while recorded < episodes:  # a discarded take is retried, from the same seed
            episode_seed = seed + store.n_episodes
            device_seed, noise_seed = np.random.SeedSequence(episode_seed).spawn(2)
            device_rng.bit_generator.state = np.random.PCG64(device_seed).state
            noise_rng = np.random.default_rng(noise_seed)
            started = time.time()
            obs, info = env.reset(seed=episode_seed)
            for role in roles:
                role.device.reset()
            if viewers:  # the new start, before anyone acts on it
                frame = env.render()
                for viewer in viewers:
                    viewer.render(frame)
            steps: dict[str, list] = {key: [] for key in store.features}
            acted_by: list[str] = []
            keep, terminated = True, False
            while True:
                tick = time.monotonic()
                action = acting.act(env.raw_obs, obs)
                label = action if labeling is acting else labeling.act(env.raw_obs, obs)
                controls = [_control(action), _control(label)]
                if action is None or label is None or DISCARD in controls:
                    keep = DISCARD not in controls
                    break
                for key, value in obs.items():
                    steps[key].append(value)
                steps[ACTION].append(np.asarray(label, dtype=action_dtype))
                acted_by.append(acting.name)
                executed = np.asarray(action, dtype=action_dtype)
                if action_noise:
                    executed = np.clip(executed + noise_rng.normal(size=executed.shape) * noise_scale, low, high)
                obs, _, terminated, truncated, info = env.step(executed)
                if viewers:
                    frame = env.render()
                    for viewer in viewers:
                        viewer.render(frame)
                if paced:
                    time.sleep(max(0.0, 1.0 / env.task.fps - (time.monotonic() - tick)))
                if terminated or truncated:
                    break
            if not keep or not steps[ACTION]:
                discarded += 1
                continue
            success = bool(info.get("is_success", False))
            successes += success
            store.add_episode({k: np.stack(v) for k, v in steps.items()}, {
                "seed": episode_seed, "success": success, "task": task, "source": acting.name,
                "labeler": labeling.name, "acted_by": run_lengths(acted_by), "length": len(steps[ACTION]),
                "terminated": bool(terminated),  # ended in a terminal state (not cut by the time limit or a person)
                "action_noise": action_noise, "started": started, "finished": time.time(),
            })
            recorded += 1
            bar.update(1)
    return {"store": str(store.path), "recorded": recorded, "discarded": discarded, "successes": successes,
            "total_episodes": store.n_episodes}


def _control(value) -> str | None:
    """A device's control word (``DISCARD``) or None for an action."""
    return value if isinstance(value, str) else None
