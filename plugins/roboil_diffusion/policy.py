"""Diffusion Policy (Chi et al. 2023): denoise an action sequence conditioned on an observation history.

Training predicts the noise added to normalised actions (DDPM, epsilon objective); inference runs DDIM from
Gaussian noise. The observation encoder comes from the observation plugins, so pixels and proprio work alike.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from roboil.errors import RoboilError
from roboil.keys import ACTION, ACTION_IS_PAD
from roboil.policy import Normalizer, PolicyModel, padded_mean
from roboil.specs import Feature

from .config import DiffusionConfig
from .schedule import NoiseSchedule
from .transformer import TransformerForDiffusion
from .unet import ConditionalUnet1D

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
        self.normalizer = Normalizer({ACTION: stats[ACTION]})
        self.encoder = encoder  # normalizes the observations itself
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
        """Encode every observation step: (B, n_obs_steps, D) for the transformer's tokens, flattened to
        (B, n_obs_steps * D) for the unet's global conditioning."""
        feats = self.encoder({key: obs[key][:, : self.n_obs_steps] for key in self.obs_keys})
        return feats.flatten(1) if self.config.backbone == "unet" else feats

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        cond = self._condition(batch)
        valid = ~batch[ACTION_IS_PAD]
        actions = edge_fill(self.normalizer.normalize(ACTION, batch[ACTION].float()), valid)
        noise = torch.randn_like(actions)
        t = torch.randint(0, self.schedule.num_train_timesteps, (actions.shape[0],), device=actions.device)
        pred = self.net(self.schedule.add_noise(actions, noise, t), t, cond)
        # padded steps carry no demonstration: no loss on them
        loss = padded_mean((pred.float() - noise).square(), valid)
        return loss, {"loss": loss.detach()}

    @torch.no_grad()
    def predict_action(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        cond = self._condition(obs)
        noise = self.sample_noise(cond.shape[0], self.horizon, self.action_dim, device=cond.device)
        actions = self.schedule.sample(lambda x, t: self.net(x, t, cond).float(), noise)
        return self.normalizer.unnormalize(ACTION, actions)

