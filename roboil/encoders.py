"""Observation encoders assembled from the observation plugins, so algorithms never special-case a kind.

An algorithm hands raw observation windows ``{key: (B, T, *shape)}`` to an :class:`ObservationEncoder`; it
normalizes each key by its kind's rule (min/max or mean/std with the training data's statistics, or none),
folds time into the batch for the plugins' encoders, and returns one vector per step or a set of tokens.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from .errors import RoboilError
from .plugins import registry
from .policy import Normalizer
from .specs import Feature


class ObservationEncoder(nn.Module):
    """``forward(window) -> (B, T, output_dim)``: each kind's features of its keys, concatenated in a fixed
    order. With ``token_dim``, ``tokens(window) -> (B, T * n_tokens, token_dim)``: each kind's tokens (e.g.
    the cells of an image feature map) projected to ``token_dim`` plus an embedding of the token's slot within
    a step: the fixed one the kind's encoder gives with ``token_positions(token_dim)`` (e.g. 2-D sine
    embeddings of feature-map cells), else a learned one. The algorithm adds its own embedding of time."""

    def __init__(self, features: Mapping[str, Feature], params: Mapping[str, Any],
                 stats: Mapping[str, Mapping[str, np.ndarray]], token_dim: int | None = None):
        super().__init__()
        reg = registry()
        kinds = sorted({f.kind for f in features.values()})
        self.keys_by_kind = {kind: sorted(k for k, f in features.items() if f.kind == kind) for kind in kinds}
        specs = {kind: reg.get("observation", kind) for kind in kinds}
        modes = {k: specs[f.kind].normalization for k, f in features.items() if specs[f.kind].normalization != "none"}
        missing = [k for k in modes if k not in stats]
        if missing:
            raise ValueError(f"no statistics for the normalized observation keys {missing}")
        self.normalizer = Normalizer({k: stats[k] for k in modes}, modes)
        self.encoders = nn.ModuleDict({
            kind: reg.call("observation", kind, "make_encoder", {k: features[k] for k in self.keys_by_kind[kind]},
                           params.get(kind) or spec.encoder_params())
            for kind, spec in specs.items()
        })
        self.output_dim = sum(encoder.output_dim for encoder in self.encoders.values())
        self.token_dim = token_dim
        if token_dim is not None:
            widths, counts = {}, {}
            with torch.no_grad():  # one dry run tells each kind's token count and width
                for kind, encoder in self.encoders.items():
                    probe = {k: torch.zeros(2, *features[k].shape) for k in self.keys_by_kind[kind]}
                    training = encoder.training
                    encoder.eval()  # leaves batch-norm statistics alone
                    counts[kind], widths[kind] = self._kind_tokens(kind, probe).shape[1:]
                    encoder.train(training)
            self.projections = nn.ModuleDict({kind: nn.Linear(widths[kind], token_dim) for kind in kinds})
            self.slot_embeddings = nn.ParameterDict({
                kind: nn.Parameter(torch.randn(counts[kind], token_dim) * 0.02)
                for kind in kinds if not hasattr(self.encoders[kind], "token_positions")})
            for kind in kinds:
                if kind not in self.slot_embeddings:  # fixed: a buffer, rebuilt from the config, not saved
                    positions = self.encoders[kind].token_positions(token_dim)
                    if tuple(positions.shape) != (counts[kind], token_dim):
                        raise RoboilError(f"observation plugin '{kind}': token_positions({token_dim}) gave shape "
                                          f"{tuple(positions.shape)} for {counts[kind]} tokens; it must return "
                                          f"({counts[kind]}, {token_dim})")
                    self.register_buffer(f"positions_{kind}", positions, persistent=False)
            self.n_tokens = sum(counts.values())

    def _inputs(self, window: Mapping[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
        """The kind's keys, normalized and with time folded into the batch: ``(B * T, *shape)``."""
        out = {}
        for key in self.keys_by_kind[kind]:
            x = window[key]
            if key in self.normalizer.keys:
                x = self.normalizer.normalize(key, x.float())
            elif x.is_floating_point():
                x = x.float()  # the runner may hand float64 arrays
            out[key] = x.flatten(0, 1)
        return out

    def _kind_tokens(self, kind: str, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        encoder = self.encoders[kind]
        return encoder.tokens(inputs) if hasattr(encoder, "tokens") else encoder(inputs).unsqueeze(1)

    def _slots(self, kind: str) -> torch.Tensor:
        if kind in self.slot_embeddings:
            return self.slot_embeddings[kind]
        return getattr(self, f"positions_{kind}")

    def forward(self, window: Mapping[str, torch.Tensor]) -> torch.Tensor:
        batch, steps = next(iter(window.values())).shape[:2]
        features = torch.cat([encoder(self._inputs(window, kind)) for kind, encoder in self.encoders.items()], dim=-1)
        return features.reshape(batch, steps, -1)

    def tokens(self, window: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if self.token_dim is None:
            raise RuntimeError("this encoder was built without token_dim; use make_encoder(keys, token_dim=D)")
        batch, steps = next(iter(window.values())).shape[:2]
        tokens = torch.cat([
            self.projections[kind](self._kind_tokens(kind, self._inputs(window, kind))) + self._slots(kind)
            for kind in self.encoders], dim=1)
        return tokens.reshape(batch, steps * self.n_tokens, self.token_dim)


def make_encoder_factory(features: Mapping[str, Feature], params: Mapping[str, Any], stats):
    def make_encoder(keys: list[str], token_dim: int | None = None) -> ObservationEncoder:
        return ObservationEncoder({k: features[k] for k in keys}, params, stats, token_dim)
    return make_encoder
