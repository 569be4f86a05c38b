"""The core's observation encoder: raw windows in, each kind normalized by its plugin's rule (min/max or
mean/std, none for images), one vector per step or tokens for attention."""

import dataclasses

import numpy as np
import pytest
import torch

from roboil.encoders import ObservationEncoder
from roboil.plugins import registry
from roboil.specs import Feature
from roboil_pixels import PixelEncoderParams

STATE = Feature("proprio", (2,), "float32")
STATS = {"a": {"min": np.array([0.0, -1.0]), "max": np.array([2.0, 1.0]), "mean": np.array([1.0, 5.0]),
               "std": np.array([0.5, 2.0])}}


def test_vectors_per_step_from_min_max_normalized_raw_windows():
    encoder = ObservationEncoder({"a": STATE}, {}, STATS)
    window = {"a": torch.tensor([[[0.0, -1.0], [2.0, 0.0], [1.0, 1.0]]])}  # (B=1, T=3, 2)
    out = encoder(window)
    assert out.shape == (1, 3, 2)
    torch.testing.assert_close(out[0], torch.tensor([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]]))


def test_mean_std_rule_of_an_observation_plugin(monkeypatch):
    spec = registry().get("observation", "proprio")
    meanstd = dataclasses.replace(spec, normalization="meanstd")
    monkeypatch.setitem(registry().records["observation"], "proprio", (meanstd, "proprio"))
    encoder = ObservationEncoder({"a": STATE}, {}, STATS)
    out = encoder({"a": torch.tensor([[[2.0, 9.0]]])})
    torch.testing.assert_close(out[0, 0], torch.tensor([2.0, 2.0]))  # (2-1)/0.5, (9-5)/2


def test_tokens_of_pixels_and_proprio_share_one_width():
    torch.manual_seed(0)
    features = {"a": STATE, "rgb_top": Feature("pixels", (40, 40, 3), "uint8")}
    params = {"pixels": PixelEncoderParams(crop_ratio=1.0, feature_dim=8)}
    encoder = ObservationEncoder(features, params, STATS, token_dim=16)
    window = {"a": torch.zeros(2, 3, 2), "rgb_top": torch.randint(0, 256, (2, 3, 40, 40, 3), dtype=torch.uint8)}
    assert encoder.n_tokens == 1 + 4  # one proprio key, a 2x2 feature map
    assert encoder.eval().tokens(window).shape == (2, 3 * 5, 16)
    assert encoder(window).shape == (2, 3, 2 + 8)
    # the image cells carry the pixels encoder's fixed 2-D sine embeddings; the proprio token a learned one
    assert list(encoder.slot_embeddings) == ["proprio"]
    torch.testing.assert_close(encoder.positions_pixels, encoder.encoders["pixels"].token_positions(16))
    assert "positions_pixels" not in encoder.state_dict()  # rebuilt from the config, not saved


def test_normalized_keys_need_statistics():
    with pytest.raises(ValueError, match="no statistics for the normalized observation keys"):
        ObservationEncoder({"b": STATE}, {}, STATS)
