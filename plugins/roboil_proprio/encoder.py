"""The proprio encoder: the normalized vectors themselves, flattened and concatenated in sorted key order."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from roboil.specs import Feature


class ProprioEncoder(nn.Module):
    def __init__(self, features: Mapping[str, Feature]):
        super().__init__()
        self.keys = sorted(features)
        self.output_dim = int(sum(np.prod(features[k].shape) for k in self.keys))

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[k].flatten(1).float() for k in self.keys], dim=-1)

    def tokens(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One token per key, zero-padded to the widest key, so attention can tell the vectors apart."""
        width = max(int(np.prod(obs[k].shape[1:])) for k in self.keys)
        return torch.stack([nn.functional.pad(obs[k].flatten(1).float(), (0, width - obs[k][0].numel()))
                            for k in self.keys], dim=1)
