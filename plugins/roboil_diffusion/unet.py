"""ConditionalUnet1D of Chi et al. 2023: a temporal CNN over the action sequence, FiLM-conditioned on the
diffusion step and the observation features."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * (-math.log(10000) / (half - 1)))
        args = t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int):
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.GroupNorm(n_groups, c_out), nn.Mish()
        )


class FiLM(nn.Module):
    """Per-channel scale and bias predicted from the conditioning vector: ``x * scale + bias``."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.proj(cond).unsqueeze(-1).chunk(2, dim=1)  # each (B, C, 1)
        return x * scale + bias


class ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel_size: int, n_groups: int):
        super().__init__()
        self.conv1 = Conv1dBlock(c_in, c_out, kernel_size, n_groups)
        self.film = FiLM(cond_dim, c_out)
        self.conv2 = Conv1dBlock(c_out, c_out, kernel_size, n_groups)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.film(self.conv1(x), cond)) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    """``forward(x (B, T, input_dim), t (B,), global_cond (B, global_cond_dim)) -> (B, T, input_dim)``.

    T must be divisible by ``2 ** (len(down_dims) - 1)`` (one halving per level but the last).
    """

    def __init__(
        self,
        input_dim: int,
        global_cond_dim: int,
        diffusion_step_embed_dim: int = 128,
        down_dims: tuple[int, ...] = (256, 512, 1024),
        kernel_size: int = 5,
        n_groups: int = 8,
    ):
        super().__init__()
        d = diffusion_step_embed_dim
        self.step_encoder = nn.Sequential(SinusoidalPosEmb(d), nn.Linear(d, 4 * d), nn.Mish(), nn.Linear(4 * d, d))
        cond_dim = d + global_cond_dim

        def block(c_in: int, c_out: int) -> ResidualBlock:
            return ResidualBlock(c_in, c_out, cond_dim, kernel_size, n_groups)

        dims = [input_dim, *down_dims]
        levels = list(zip(dims[:-1], dims[1:]))
        self.down = nn.ModuleList(
            nn.ModuleList(
                [
                    block(c_in, c_out),
                    block(c_out, c_out),
                    nn.Conv1d(c_out, c_out, 3, 2, 1) if i < len(levels) - 1 else nn.Identity(),  # halve T
                ]
            )
            for i, (c_in, c_out) in enumerate(levels)
        )
        self.mid = nn.ModuleList([block(down_dims[-1], down_dims[-1]), block(down_dims[-1], down_dims[-1])])
        self.up = nn.ModuleList(
            nn.ModuleList([block(2 * c_out, c_in), block(c_in, c_in), nn.ConvTranspose1d(c_in, c_in, 4, 2, 1)])
            for c_in, c_out in reversed(levels[1:])
        )
        self.final = nn.Sequential(
            Conv1dBlock(down_dims[0], down_dims[0], kernel_size, n_groups), nn.Conv1d(down_dims[0], input_dim, 1)
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([self.step_encoder(t), global_cond], dim=-1)
        x = x.transpose(1, 2)  # convolve over time: (B, C, T)
        skips = []
        for res1, res2, downsample in self.down:
            x = res2(res1(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for res in self.mid:
            x = res(x, cond)
        for res1, res2, upsample in self.up:
            x = upsample(res2(res1(torch.cat([x, skips.pop()], dim=1), cond), cond))
        return self.final(x).transpose(1, 2)
