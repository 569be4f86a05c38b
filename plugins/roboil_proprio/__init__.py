"""Observation kind ``proprio``: low-dimensional state vectors (joint and object state, goal vectors).

Params: ``keys`` (list) picks entries of a dict observation (default: all); an array observation is stored
as ``state``.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

import roboil
from roboil import ArrayLayout, Feature, ObservationSpec

KIND = "proprio"


class ProprioObserver:
    def __init__(self, env, params: Mapping):
        space = env.observation_space
        if hasattr(space, "spaces"):
            keys = params.get("keys") or list(space.spaces)
            unknown = [k for k in keys if k not in space.spaces]
            if unknown:
                raise roboil.RoboilError(f"obs.proprio.keys names '{unknown[0]}'; valid: {', '.join(space.spaces)}")
            self.shapes = {k: space.spaces[k].shape for k in keys}
        else:
            self.shapes = {"state": space.shape}
        self.features = {k: Feature(KIND, tuple(shape), "float32") for k, shape in self.shapes.items()}

    def __call__(self, raw_obs) -> dict[str, np.ndarray]:
        if isinstance(raw_obs, Mapping):
            return {k: np.asarray(raw_obs[k], dtype=np.float32) for k in self.shapes}
        return {"state": np.asarray(raw_obs, dtype=np.float32)}


class ProprioEncoder(nn.Module):
    """Flattens and concatenates the (already normalized) vectors in sorted key order."""

    def __init__(self, features: Mapping[str, Feature], params: Mapping):
        super().__init__()
        self.keys = sorted(features)
        self.output_dim = int(sum(np.prod(features[k].shape) for k in self.keys))

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[k].flatten(1).float() for k in self.keys], dim=-1)


@roboil.hookimpl
def register_observations():
    return [ObservationSpec(
        name=KIND,
        make_observer=ProprioObserver,
        layout=lambda feature: ArrayLayout(time_chunk=1024, clevel=5),  # long time chunks: rows are tiny
        make_encoder=ProprioEncoder,
        normalize=True,
        summary="low-dimensional state and goal vectors",
    )]
