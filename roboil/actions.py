"""Actions: how a task's action space is stored and described, and the one action transform between what an
algorithm learns and what the environment executes.

A continuous (``Box``) space is stored as float32 vectors; a discrete one as one int64 index per step. The space
itself travels in a checkpoint's ``meta.json`` so a model can be rebuilt for it without making the environment.

Today it is an offset from an observation key shaped like the action (``data.action_relative_to``): training
data is encoded when it is loaded, the runner decodes each action at the step it is executed, and the
transform travels in the checkpoint's ``meta.json``, so every consumer of a checkpoint executes it alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import gymnasium as gym
import numpy as np

from .errors import RoboilError
from .keys import ACTION
from .specs import Feature


def action_feature(space: gym.Space) -> Feature:
    """The store array for actions of ``space``: float32 vectors for a Box, an int64 index for a Discrete."""
    if isinstance(space, gym.spaces.Box):
        return Feature(ACTION, tuple(space.shape), "float32")
    if isinstance(space, gym.spaces.Discrete):
        return Feature(ACTION, (), "int64")
    raise RoboilError(f"action space {space} is not supported; a task's actions must be a Box or a Discrete space")


def describe_space(space: gym.Space) -> dict:
    """A JSON description of a Box or Discrete action space (see :func:`space_from_description`)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "start": int(space.start)}
    action_feature(space)  # refuses other spaces
    return {"type": "box", "low": space.low.tolist(), "high": space.high.tolist()}


def space_from_description(description: Mapping[str, Any] | None) -> gym.Space | None:
    if description is None:  # a checkpoint written before action spaces were recorded
        return None
    if description["type"] == "discrete":
        return gym.spaces.Discrete(description["n"], start=description["start"])
    return gym.spaces.Box(np.asarray(description["low"], np.float32), np.asarray(description["high"], np.float32))


def to_env_action(space: gym.Space, action: Any) -> Any:
    """What ``env.step`` takes: a Box's float vector, or a Discrete's index from a policy's one-number output."""
    if isinstance(space, gym.spaces.Discrete):
        values = np.asarray(action).reshape(-1)
        if values.size != 1:
            raise RoboilError(f"a discrete action is one number (the index of the choice), got {values.size}")
        return np.int64(np.rint(values[0]))
    return np.asarray(action, dtype=space.dtype)


@dataclass(frozen=True)
class ActionTransform:
    relative_to: str | None = None  # learn actions as offsets from this observation key

    def check(self, features: Mapping[str, Feature], action: Feature) -> None:
        """One-line errors for a reference key the policy does not read or whose shape is not the action's."""
        key = self.relative_to
        if key is None:
            return
        if key not in features:
            raise RoboilError(f"data.action_relative_to names '{key}', which the policy does not read; "
                              f"use one of data.obs_keys: {', '.join(features)}")
        if features[key].shape != action.shape:
            raise RoboilError(f"data.action_relative_to: '{key}' has shape {features[key].shape} but actions have "
                              f"{action.shape}; name a key shaped like the action")

    def encode(self, actions: np.ndarray, observations: Mapping[str, np.ndarray]) -> np.ndarray:
        """Actions as the policy learns them, from executed actions and the observations of the same steps."""
        if self.relative_to is None:
            return actions
        return np.asarray(actions, np.float32) - np.asarray(observations[self.relative_to], np.float32)

    def decode(self, actions: np.ndarray, observations: Mapping[str, np.ndarray]) -> np.ndarray:
        """Executable actions ``(B, A)`` from learned ones and the observations ``{key: (B, ...)}`` of this step."""
        if self.relative_to is None:
            return actions
        return actions + np.asarray(observations[self.relative_to]).reshape(actions.shape)

    def to_meta(self) -> dict:
        return {"relative_to": self.relative_to}

    @classmethod
    def from_meta(cls, meta: Mapping | None) -> "ActionTransform":
        return cls(**(meta or {}))
