"""Time-series diffusion transformer of Chi et al. 2023 (their TransformerForDiffusion with obs_as_cond,
time_as_cond and an MLP condition encoder): noisy action tokens are decoded against a memory made of the
diffusion-step token followed by one token per observation step."""

from __future__ import annotations

import torch
from torch import nn

from .unet import SinusoidalPosEmb


class TransformerForDiffusion(nn.Module):
    """``forward(x (B, horizon, action_dim), t (B,), obs (B, n_obs_steps, cond_dim)) -> (B, horizon, action_dim)``."""

    def __init__(
        self,
        action_dim: int,
        horizon: int,
        n_obs_steps: int,
        cond_dim: int,
        n_layer: int = 8,
        n_head: int = 4,
        n_emb: int = 256,
        p_drop_emb: float = 0.0,
        p_drop_attn: float = 0.3,
        causal_attn: bool = True,
    ):
        super().__init__()
        self.input_emb = nn.Linear(action_dim, n_emb)
        self.pos_emb = nn.Parameter(torch.zeros(1, horizon, n_emb))
        self.time_emb = SinusoidalPosEmb(n_emb)
        self.cond_obs_emb = nn.Linear(cond_dim, n_emb)
        self.cond_pos_emb = nn.Parameter(torch.zeros(1, 1 + n_obs_steps, n_emb))
        self.drop = nn.Dropout(p_drop_emb)
        self.cond_encoder = nn.Sequential(nn.Linear(n_emb, 4 * n_emb), nn.Mish(), nn.Linear(4 * n_emb, n_emb))
        layer = nn.TransformerDecoderLayer(
            n_emb, n_head, 4 * n_emb, p_drop_attn, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, n_layer)
        self.ln_f = nn.LayerNorm(n_emb)
        self.head = nn.Linear(n_emb, action_dim)
        if causal_attn:  # bool masks: True = may not attend
            steps = torch.arange(horizon)
            self.register_buffer("tgt_mask", steps[None, :] > steps[:, None], persistent=False)
            # action step i sees the step token (memory 0) and observation steps 0..i (memory 1..i+1)
            memory = torch.arange(1 + n_obs_steps)
            self.register_buffer("memory_mask", memory[None, :] > steps[:, None] + 1, persistent=False)
        else:
            self.tgt_mask = self.memory_mask = None
        self.apply(self._init_weights)
        nn.init.normal_(self.pos_emb, std=0.02)
        nn.init.normal_(self.cond_pos_emb, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-style init, as in the reference: small normal weights, zero biases
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.MultiheadAttention):
            nn.init.normal_(module.in_proj_weight, std=0.02)
            nn.init.zeros_(module.in_proj_bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.time_emb(t).unsqueeze(1), self.cond_obs_emb(obs)], dim=1)
        memory = self.cond_encoder(self.drop(cond + self.cond_pos_emb))
        h = self.drop(self.input_emb(x) + self.pos_emb)
        h = self.decoder(h, memory, tgt_mask=self.tgt_mask, memory_mask=self.memory_mask)
        return self.head(self.ln_f(h))
