"""Observation kind ``proprio``: low-dimensional state vectors (joint and object state, goal vectors).

Params: ``keys`` picks entries of a dict observation (default: all); an array observation is stored as
``state``. The core normalizes these arrays to [-1, 1] (min/max of the training data) before the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

import roboil
from roboil import ArrayLayout, Feature, ObservationSpec

KIND = "proprio"


@dataclass(frozen=True)
class ProprioParams:
    keys: list[str] | None = None  # entries of a dict observation to keep; None keeps them all


class ProprioObserver:
    def __init__(self, env, params: ProprioParams):
        space = env.observation_space
        if hasattr(space, "spaces"):
            keys = params.keys or list(space.spaces)
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


def make_encoder(features, params):
    from .encoder import ProprioEncoder  # torch loads only when a model is built

    return ProprioEncoder(features)


@roboil.hookimpl
def register_observations():
    return [ObservationSpec(
        name=KIND,
        make_observer=ProprioObserver,
        layout=lambda feature, params: ArrayLayout(time_chunk=1024, clevel=5),  # long time chunks: rows are tiny
        make_encoder=make_encoder,
        params=ProprioParams,
        normalization="minmax",
        summary="low-dimensional state and goal vectors",
    )]
