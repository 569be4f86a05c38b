"""Observation kind ``pixels``: named MuJoCo cameras rendered offscreen, stored as uint8 (H, W, 3) frames.

Params: ``cameras`` (list of camera names in the task's MuJoCo model), ``height`` and ``width`` (default 96),
``codec`` (how the store keeps the frames: ``lossless``, the default, ``jpeg``, ``jpegxl`` or ``avif``, or
``h264``, the smallest, which need ``pip install roboil[codecs]``) and ``quality`` (1..100, default 90, for those
four). Arrays are named ``rgb_<camera>``, a frame per chunk (8 frames for ``h264``). The encoder (ResNet-18 with
GroupNorm and a spatial-softmax head, or its feature-map cells as tokens) lives here so every algorithm can learn
from pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

import roboil
from roboil import ArrayLayout, Feature, ObservationSpec
from roboil.sim import make_renderer

KIND = "pixels"
PREFIX = "rgb_"


@dataclass(frozen=True)
class PixelParams:
    cameras: list[str] = field(default_factory=list)
    height: int = 96
    width: int = 96
    codec: str = "lossless"
    quality: int = ArrayLayout.quality

    def __post_init__(self):
        from roboil.codecs import CODECS  # it imports zarr: not at plugin load (`roboil --help` stays fast)

        for name in ("height", "width"):
            if not 1 <= getattr(self, name) <= 4096:
                raise roboil.RoboilError(f"obs.pixels.{name} must be between 1 and 4096 pixels, "
                                         f"got {getattr(self, name)}")
        if self.codec not in CODECS:
            raise roboil.RoboilError(f"obs.pixels.codec must be one of {', '.join(CODECS)}, got '{self.codec}'")
        if not 1 <= self.quality <= 100:
            raise roboil.RoboilError(f"obs.pixels.quality must be between 1 and 100, got {self.quality}")


@dataclass(frozen=True)
class PixelEncoderParams:
    crop_ratio: float = 0.9  # random crops of this share of each side in training, the centre crop at inference
    num_keypoints: int = 32
    feature_dim: int = 64  # per camera

    def __post_init__(self):
        if not 0.0 < self.crop_ratio <= 1.0:
            raise roboil.RoboilError(f"encoders.pixels.crop_ratio must be in (0, 1], got {self.crop_ratio}")
        if self.num_keypoints < 1 or self.feature_dim < 1:
            raise roboil.RoboilError("encoders.pixels.num_keypoints and feature_dim must be positive integers")


class PixelObserver:
    def __init__(self, env, params: PixelParams):
        base = env.unwrapped
        self.model, self.data = getattr(base, "model", None), getattr(base, "data", None)
        if not isinstance(self.model, mujoco.MjModel):
            if params.cameras:
                raise roboil.RoboilError(f"the task's environment ({type(base).__name__}) has no MuJoCo scene to "
                                         "film with cameras; record it without obs.pixels.cameras")
            names = []
        else:
            names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)]
        self.cameras = list(params.cameras)
        missing = [c for c in self.cameras if c not in names]
        if missing:
            raise roboil.RoboilError(f"camera '{missing[0]}' is not in the task's scene; valid: {', '.join(names)}")
        self.height, self.width = params.height, params.width
        self.renderer = make_renderer(self.model, self.height, self.width, "obs.pixels.height and width") \
            if self.cameras else None
        self.features = {PREFIX + c: Feature(KIND, (self.height, self.width, 3), "uint8") for c in self.cameras}

    def __call__(self, raw_obs) -> dict[str, np.ndarray]:
        out = {}
        for camera in self.cameras:
            self.renderer.update_scene(self.data, camera=camera)
            out[PREFIX + camera] = self.renderer.render().copy()
        return out


def layout(feature: Feature, params: PixelParams) -> ArrayLayout:
    """One frame per chunk, so a window decodes only the frames it needs (the store packs them into shard files),
    kept with the codec ``params`` choose; H.264 codes a chunk of frames as one short video."""
    from roboil.codecs import chunk_frames

    return ArrayLayout(time_chunk=chunk_frames(params.codec), clevel=3, codec=params.codec, quality=params.quality)


def make_encoder(features, params: PixelEncoderParams):
    from .vision import PixelEncoder  # torch model code loads only when a policy uses pixels

    return PixelEncoder(features, params)


@roboil.hookimpl
def register_observations():
    return [ObservationSpec(
        name=KIND,
        make_observer=PixelObserver,
        layout=layout,
        make_encoder=make_encoder,
        params=PixelParams,
        encoder_params=PixelEncoderParams,
        normalization="none",  # uint8 frames: the encoder scales them to [0, 1] itself
        summary="MuJoCo camera images (uint8) with a ResNet-18/GroupNorm spatial-softmax encoder",
    )]
