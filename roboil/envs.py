"""A task's environment seen through the configured observation plugins: the one env the recorder, the
evaluator and deployment all step, so a policy sees at evaluation exactly the arrays it was trained on."""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from .plugins import registry
from .specs import Feature


class ObservedEnv(gym.Env):
    """Wraps ``task.make_env`` and turns each raw observation into ``{key: array}`` with the observers.

    ``raw_obs`` keeps the task's own observation for scripted experts. With ``video_seeds``, episodes reset
    with one of those seeds keep their rendered frames until ``take_frames()`` collects them.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": gym.vector.AutoresetMode.DISABLED}

    def __init__(self, task: str, observations: Mapping[str, Mapping], render_mode: str | None = None,
                 max_steps: int | None = None, video_seeds: tuple[int, ...] = ()):
        reg = registry()
        self.task = reg.get("task", task)
        env = self.task.make_env(render_mode=render_mode)
        if max_steps is not None:
            env = gym.wrappers.TimeLimit(env.unwrapped, max_episode_steps=max_steps)
        self.env = env
        self.render_mode = render_mode
        self.observers = [reg.get("observation", kind).make_observer(env, params) for kind, params in observations.items()]
        self.features: dict[str, Feature] = {}
        for observer in self.observers:
            self.features.update(observer.features)
        self.observation_space = gym.spaces.Dict({
            key: gym.spaces.Box(low=0 if f.dtype == "uint8" else -np.inf, high=255 if f.dtype == "uint8" else np.inf,
                                shape=f.shape, dtype=np.dtype(f.dtype))
            for key, f in self.features.items()
        })
        self.action_space = env.action_space
        self.raw_obs: Any = None
        self.video_seeds = set(video_seeds)
        self._frames: list[np.ndarray] | None = None

    def _observe(self, raw_obs) -> dict[str, np.ndarray]:
        self.raw_obs = raw_obs
        out: dict[str, np.ndarray] = {}
        for observer in self.observers:
            out.update(observer(raw_obs))
        return out

    def _capture(self) -> None:
        if self._frames is not None:
            self._frames.append(self.env.render())

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        raw_obs, info = self.env.reset(seed=seed, options=options)
        self._frames = [] if seed in self.video_seeds and self.render_mode == "rgb_array" else None
        self._capture()
        return self._observe(raw_obs), info

    def step(self, action):
        raw_obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=self.action_space.dtype))
        self._capture()
        return self._observe(raw_obs), float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self.env.render()

    def take_frames(self) -> list[np.ndarray]:
        frames, self._frames = self._frames or [], None
        return frames

    def close(self):
        self.env.close()
