"""Diffusion Policy (Chi et al. 2023): denoise an action sequence conditioned on an observation history.

Training predicts the noise added to normalised actions (DDPM, epsilon objective); inference runs DDIM from
Gaussian noise. The observation encoder comes from the observation plugins, so pixels and proprio work alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from roboil.errors import RoboilError
from roboil.policy import ACTION, ACTION_IS_PAD, BuildContext, Normalizer, PolicyModel
from roboil.specs import Feature

from .schedule import NoiseSchedule
from .transformer import TransformerForDiffusion
from .unet import ConditionalUnet1D

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


def edge_fill(actions: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace padded steps of ``(B, T, A)`` by the nearest valid step (the first one before the episode start,
    the last one after its end). The unet's convolutions see padded steps when predicting valid ones, so this
    keeps the loss independent of whatever values the sampler stored there."""
    steps = torch.arange(valid.shape[1], device=valid.device).expand_as(valid)
    last_valid = torch.where(valid, steps, -1).cummax(dim=1).values
    first_valid = torch.where(valid, steps, valid.shape[1] - 1).amin(dim=1, keepdim=True)
    source = torch.where(last_valid >= 0, last_valid, first_valid)
    return actions.gather(1, source.unsqueeze(-1).expand_as(actions))


class DiffusionPolicy(PolicyModel):
    def __init__(
        self,
        config: DiffusionConfig,
        features: Mapping[str, Feature],
        action_dim: int,
        stats: Mapping[str, Mapping[str, np.ndarray]],
        encoder: nn.Module,
    ):
        super().__init__()
        if ACTION not in stats:
            raise RoboilError("diffusion: the store statistics lack 'action'; recompute them with the store tools")
        self.config = config
        self.n_obs_steps = config.n_obs_steps
        self.horizon = config.horizon
        self.n_action_steps = config.n_action_steps
        self.action_dim = action_dim
        self.obs_keys = tuple(sorted(features))
        # pixel keys have no stats: their encoder scales them itself
        self.normalizer = Normalizer({key: stats[key] for key in (ACTION, *self.obs_keys) if key in stats})
        self.encoder = encoder
        if config.backbone == "unet":
            self.net = ConditionalUnet1D(
                action_dim,
                global_cond_dim=encoder.output_dim * config.n_obs_steps,
                diffusion_step_embed_dim=config.diffusion_step_embed_dim,
                down_dims=config.down_dims,
                kernel_size=config.kernel_size,
                n_groups=config.n_groups,
            )
        else:
            self.net = TransformerForDiffusion(
                action_dim,
                horizon=config.horizon,
                n_obs_steps=config.n_obs_steps,
                cond_dim=encoder.output_dim,
                n_layer=config.n_layer,
                n_head=config.n_head,
                n_emb=config.n_emb,
                p_drop_emb=config.p_drop_emb,
                p_drop_attn=config.p_drop_attn,
                causal_attn=config.causal_attn,
            )
        self.schedule = NoiseSchedule(config.num_train_timesteps, config.num_inference_steps)

    def _condition(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Encode every observation step at once (time folded into the batch): (B, n_obs_steps, D) for the
        transformer's tokens, flattened to (B, n_obs_steps * D) for the unet's global conditioning."""
        inputs = {}
        for key in self.obs_keys:
            x = obs[key][:, : self.n_obs_steps]
            if key in self.normalizer.keys:
                x = self.normalizer.normalize(key, x.float())
            elif x.is_floating_point():
                x = x.float()  # the runner may hand float64 arrays
            inputs[key] = x.flatten(0, 1)
        feats = self.encoder(inputs).unflatten(0, (-1, self.n_obs_steps))
        return feats.flatten(1) if self.config.backbone == "unet" else feats

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cond = self._condition(batch)
        valid = ~batch[ACTION_IS_PAD]
        actions = edge_fill(self.normalizer.normalize(ACTION, batch[ACTION].float()), valid)
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.schedule.num_train_timesteps, (actions.shape[0],), device=actions.device)
        pred = self.net(self.schedule.add_noise(actions, noise, t), t, cond)
        # padded steps carry no demonstration: no loss on them
        mask = valid.unsqueeze(-1).float()
        loss = ((pred.float() - noise).square() * mask).sum() / (mask.sum() * actions.shape[-1]).clamp_min(1.0)
        return loss, {"loss": loss.item()}

    @torch.no_grad()
    def predict_action(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        cond = self._condition(obs)
        noise = torch.randn(cond.shape[0], self.horizon, self.action_dim, device=cond.device)
        actions = self.schedule.sample(lambda x, t: self.net(x, t, cond).float(), noise)
        return self.normalizer.unnormalize(ACTION, actions)


def build(context: BuildContext) -> DiffusionPolicy:
    encoder = context.make_encoder(list(context.features))
    return DiffusionPolicy(context.config, context.features, context.action_dim, context.stats, encoder)
