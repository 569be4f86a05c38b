"""Algorithm ``diffusion``: Diffusion Policy (Chi et al. 2023) with a 1-D temporal U-Net (FiLM-conditioned)
or a transformer backbone, DDPM training and DDIM sampling, from low-dimensional state or pixels."""

from __future__ import annotations

import roboil
from roboil import AlgorithmSpec

from .config import DiffusionConfig


def build(context):
    from .policy import DiffusionPolicy  # torch loads only when a model is built

    return DiffusionPolicy(context.config, context.features, context.action_dim, context.stats,
                           context.make_encoder(list(context.features)))


@roboil.hookimpl
def register_algorithms():
    return [AlgorithmSpec(name="diffusion", config=DiffusionConfig, build=build,
                          summary="Diffusion Policy: DDPM-trained action-sequence denoiser, DDIM inference; needs "
                                  "demonstrated actions")]
