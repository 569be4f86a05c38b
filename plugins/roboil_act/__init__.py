"""Algorithm ``act``: Action Chunking with Transformers (Zhao et al. 2023), from state or pixels.

A CVAE: during training a transformer encoder reads a CLS token, the low-dimensional state and the
demonstrated action chunk and gives the mean and log-variance of a latent ``z``; the policy, a transformer
encoder-decoder, attends over the observation tokens (image feature-map cells from the ``pixels`` encoder,
one token per low-dimensional kind) and ``z``, and decodes a whole chunk of actions at once. Loss: L1 on the
non-padded actions plus ``kl_weight`` times the KL to N(0, I); at inference ``z`` is zero. Execute with
``--executor ensemble`` (temporal ensembling) or ``queue`` (replan every ``n_action_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass

import roboil
from roboil import AlgorithmSpec, RoboilError


@dataclass
class ACTConfig:
    chunk_size: int = 100  # actions predicted per observation (the horizon)
    n_action_steps: int = 100  # executed per chunk by the receding-horizon executor
    dim_model: int = 512
    n_heads: int = 8
    dim_feedforward: int = 3200
    n_encoder_layers: int = 4
    n_decoder_layers: int = 1  # ACT's code runs only the first of its 7 (LeRobot found the same)
    n_vae_encoder_layers: int = 4
    latent_dim: int = 32
    kl_weight: float = 10.0
    dropout: float = 0.1
    use_vae: bool = True  # false: a deterministic transformer policy (no latent, no KL)
    # learning rate of the observation encoders (e.g. the ResNet backbone); None: the run's train.lr
    encoder_lr: float | None = None

    def __post_init__(self):
        def check(ok: bool, field: str, valid: str) -> None:
            if not ok:
                raise RoboilError(f"act: {field}={getattr(self, field)!r} is invalid; {valid}")

        check(self.chunk_size >= 1, "chunk_size", "use an integer >= 1")
        check(1 <= self.n_action_steps <= self.chunk_size, "n_action_steps", "use an integer in [1, chunk_size]")
        check(self.dim_model >= 1 and self.n_heads >= 1 and self.dim_model % self.n_heads == 0, "dim_model",
              f"use a positive multiple of n_heads={self.n_heads}")
        for name in ("dim_feedforward", "n_encoder_layers", "n_decoder_layers", "n_vae_encoder_layers",
                     "latent_dim"):
            check(getattr(self, name) >= 1, name, "use an integer >= 1")
        check(self.kl_weight >= 0, "kl_weight", "use a number >= 0")
        check(0 <= self.dropout < 1, "dropout", "use a number in [0, 1)")
        check(self.encoder_lr is None or self.encoder_lr > 0, "encoder_lr", "use a number > 0, or null")


def build(context):
    from .model import ACTPolicy  # torch loads only when a model is built

    return ACTPolicy(context)


@roboil.hookimpl
def register_algorithms():
    return [AlgorithmSpec(name="act", config=ACTConfig, build=build,
                          summary="Action Chunking with Transformers: CVAE over action chunks, from state or pixels; "
                                  "needs demonstrated actions")]
