"""Observation encoders assembled from the observation plugins, so algorithms never special-case a kind."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from .plugins import registry
from .specs import Feature


class ObservationEncoder(nn.Module):
    """Concatenates, in a fixed order, the features each observation kind's encoder makes of its keys."""

    def __init__(self, features: Mapping[str, Feature], params: Mapping[str, Mapping]):
        super().__init__()
        reg = registry()
        kinds = sorted({f.kind for f in features.values()})
        self.keys_by_kind = {kind: sorted(k for k, f in features.items() if f.kind == kind) for kind in kinds}
        self.encoders = nn.ModuleDict({
            kind: reg.get("observation", kind).make_encoder(
                {k: features[k] for k in self.keys_by_kind[kind]}, params.get(kind, {}))
            for kind in kinds
        })
        self.output_dim = sum(encoder.output_dim for encoder in self.encoders.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([
            encoder({k: obs[k] for k in self.keys_by_kind[kind]}) for kind, encoder in self.encoders.items()
        ], dim=-1)


def make_encoder_factory(features: Mapping[str, Feature], params: Mapping[str, Mapping]):
    def make_encoder(keys: list[str]) -> ObservationEncoder:
        return ObservationEncoder({k: features[k] for k in keys}, params)
    return make_encoder
