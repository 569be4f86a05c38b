"""The one action transform between what an algorithm learns and what the environment executes.

Today it is an offset from an observation key shaped like the action (``data.action_relative_to``): training
data is encoded when it is loaded, the runner decodes each action at the step it is executed, and the
transform travels in the checkpoint's ``meta.json``, so every consumer of a checkpoint executes it alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import RoboilError
from .specs import Feature


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
