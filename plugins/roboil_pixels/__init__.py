"""Observation kind ``pixels``: named MuJoCo cameras rendered offscreen, stored as uint8 (H, W, 3) frames.

Params: ``cameras`` (list of camera names in the task's MuJoCo model), ``height`` and ``width`` (default 96).
Arrays are named ``rgb_<camera>``. The encoder (ResNet-18 with GroupNorm and a spatial-softmax head) lives
here so every algorithm can learn from pixels.
"""

from __future__ import annotations

from typing import Mapping

import mujoco
import numpy as np

import roboil
from roboil import ArrayLayout, Feature, ObservationSpec

KIND = "pixels"
PREFIX = "rgb_"


class PixelObserver:
    def __init__(self, env, params: Mapping):
        unknown = set(params) - {"cameras", "height", "width"}
        if unknown:
            raise roboil.RoboilError(f"unknown obs.pixels param '{sorted(unknown)[0]}'; valid: cameras, height, width")
        base = env.unwrapped
        self.model, self.data = base.model, base.data
        names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)]
        self.cameras = list(params.get("cameras") or [])
        missing = [c for c in self.cameras if c not in names]
        if missing:
            raise roboil.RoboilError(f"camera '{missing[0]}' is not in the task's scene; valid: {', '.join(names)}")
        self.height, self.width = int(params.get("height", 96)), int(params.get("width", 96))
        self.renderer = mujoco.Renderer(self.model, self.height, self.width) if self.cameras else None
        self.features = {PREFIX + c: Feature(KIND, (self.height, self.width, 3), "uint8") for c in self.cameras}

    def __call__(self, raw_obs) -> dict[str, np.ndarray]:
        out = {}
        for camera in self.cameras:
            self.renderer.update_scene(self.data, camera=camera)
            out[PREFIX + camera] = self.renderer.render().copy()
        return out


def make_encoder(features: Mapping[str, Feature], params: Mapping):
    from .vision import PixelEncoder  # torch model code loads only when a policy uses pixels

    return PixelEncoder(features, params)


@roboil.hookimpl
def register_observations():
    return [ObservationSpec(
        name=KIND,
        make_observer=PixelObserver,
        layout=lambda feature: ArrayLayout(time_chunk=1, clevel=3),  # one frame per chunk: windows decode only what they need
        make_encoder=make_encoder,
        normalize=False,
        summary="MuJoCo camera images (uint8) with a ResNet-18/GroupNorm spatial-softmax encoder",
    )]
