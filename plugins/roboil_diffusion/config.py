"""Diffusion Policy's hyperparameters (torch-free, so registering the plugin does not import torch)."""

from __future__ import annotations

from dataclasses import dataclass

from roboil.errors import RoboilError

BACKBONES = ("unet", "transformer")


@dataclass
class DiffusionConfig:
    backbone: str = "unet"  # "unet" (ConditionalUnet1D) or "transformer" (TransformerForDiffusion)
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    num_train_timesteps: int = 100
    num_inference_steps: int = 10
    # unet
    down_dims: tuple[int, ...] = (256, 512, 1024)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 128
    # transformer
    n_layer: int = 8
    n_head: int = 4
    n_emb: int = 256
    p_drop_emb: float = 0.0
    p_drop_attn: float = 0.3
    causal_attn: bool = True

    def __post_init__(self):
        self.down_dims = tuple(self.down_dims)  # also accept a list when built from Python

        def check(ok: bool, field: str, valid: str) -> None:
            if not ok:
                raise RoboilError(f"diffusion: {field}={getattr(self, field)!r} is invalid; {valid}")

        check(self.backbone in BACKBONES, "backbone", f"use one of {', '.join(BACKBONES)}")
        check(self.n_obs_steps >= 1, "n_obs_steps", "use an integer >= 1")
        check(self.n_action_steps >= 1, "n_action_steps", "use an integer >= 1")
        check(
            self.horizon >= self.n_obs_steps + self.n_action_steps - 1,
            "horizon",
            f"use >= n_obs_steps + n_action_steps - 1 = {self.n_obs_steps + self.n_action_steps - 1} "
            "(the executed actions start at the last observation step)",
        )
        check(self.num_train_timesteps >= 1, "num_train_timesteps", "use an integer >= 1")
        check(
            1 <= self.num_inference_steps <= self.num_train_timesteps,
            "num_inference_steps",
            f"use an integer in [1, num_train_timesteps={self.num_train_timesteps}]",
        )
        check(
            self.diffusion_step_embed_dim >= 4 and self.diffusion_step_embed_dim % 2 == 0,
            "diffusion_step_embed_dim",
            "use an even integer >= 4",
        )
        check(self.n_groups >= 1, "n_groups", "use an integer >= 1")
        check(
            len(self.down_dims) >= 1 and all(d >= 1 and d % self.n_groups == 0 for d in self.down_dims),
            "down_dims",
            f"use a non-empty list of positive multiples of n_groups={self.n_groups}",
        )
        check(self.kernel_size >= 1 and self.kernel_size % 2 == 1, "kernel_size", "use an odd integer >= 1")
        if self.backbone == "unet":
            factor = 2 ** (len(self.down_dims) - 1)
            check(self.horizon % factor == 0, "horizon", f"use a multiple of {factor} (the unet halves it per level)")
        check(self.n_layer >= 1, "n_layer", "use an integer >= 1")
        check(self.n_head >= 1, "n_head", "use an integer >= 1")
        check(
            self.n_emb >= 4 and self.n_emb % 2 == 0 and self.n_emb % self.n_head == 0,
            "n_emb",
            f"use an even integer >= 4 divisible by n_head={self.n_head}",
        )
        check(0.0 <= self.p_drop_emb < 1.0, "p_drop_emb", "use a probability in [0, 1)")
        check(0.0 <= self.p_drop_attn < 1.0, "p_drop_attn", "use a probability in [0, 1)")
