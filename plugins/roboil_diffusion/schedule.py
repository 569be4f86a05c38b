"""DDPM training noise and DDIM sampling, matching diffusers' DDPMScheduler/DDIMScheduler as diffusion_policy
configures them (squaredcos_cap_v2 betas, epsilon prediction, clip_sample, set_alpha_to_one, "leading" steps).

Written here because diffusers is 61 MB and takes 4 s to import for these two formulas.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def squaredcos_betas(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2."""

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    n = num_train_timesteps
    return torch.tensor(
        [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)], dtype=torch.float64
    )


class NoiseSchedule(nn.Module):
    """Holds the schedule as non-persistent buffers: they follow the model's device and stay out of checkpoints."""

    def __init__(self, num_train_timesteps: int = 100, num_inference_steps: int = 10):
        super().__init__()
        self.num_train_timesteps = num_train_timesteps
        betas = squaredcos_betas(num_train_timesteps)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0).float(), persistent=False)
        self.set_inference_steps(num_inference_steps)

    def set_inference_steps(self, num_inference_steps: int) -> None:
        """Evenly spaced "leading" timesteps, e.g. 100 train / 10 steps -> 90, 80, ..., 0."""
        self.step_ratio = self.num_train_timesteps // num_inference_steps
        self.timesteps = [i * self.step_ratio for i in reversed(range(num_inference_steps))]

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0) for a batch of integer timesteps ``t`` of shape ``(B,)``."""
        abar = self.alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def ddim_step(self, eps: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
        """One deterministic (eta = 0) DDIM update from timestep ``t`` to ``t - step_ratio``."""
        abar = self.alphas_cumprod[t]
        prev = t - self.step_ratio
        abar_prev = self.alphas_cumprod[prev] if prev >= 0 else torch.ones_like(abar)
        x0 = ((x - (1 - abar).sqrt() * eps) / abar.sqrt()).clamp(-1, 1)
        return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps

    def sample(self, eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Denoise ``x`` (Gaussian noise at the first timestep) with ``eps_fn(x_t, t of shape (B,))``."""
        for t in self.timesteps:
            x = self.ddim_step(eps_fn(x, torch.full((x.shape[0],), t, device=x.device)), t, x)
        return x
