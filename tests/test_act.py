"""ACT: the CVAE's shapes and KL term against a hand computation, padded actions kept out of the loss and out
of the latent, and the encoders' own learning rate."""

import math

import numpy as np
import pytest
import torch

from roboil.encoders import make_encoder_factory
from roboil.keys import ACTION, ACTION_IS_PAD
from roboil.plugins import registry
from roboil.policy import BuildContext
from roboil.specs import Feature
from roboil_act import ACTConfig
from roboil_act.model import ACTPolicy, kl_divergence


def build(**overrides) -> ACTPolicy:
    config = ACTConfig(**{"chunk_size": 6, "n_action_steps": 6, "dim_model": 16, "n_heads": 2,
                          "dim_feedforward": 32, "n_encoder_layers": 1, "n_vae_encoder_layers": 1, "latent_dim": 4,
                          **overrides})
    features = {"state": Feature(kind="proprio", shape=(5,), dtype="float32")}
    rng = np.random.default_rng(0)
    stats = {key: {"min": -np.ones(dim), "max": np.ones(dim), "mean": rng.normal(size=dim),
                   "std": rng.uniform(0.5, 2, size=dim)} for key, dim in (("state", 5), (ACTION, 3))}
    context = BuildContext(config=config, features=features, action_dim=3, stats=stats,
                           task=registry().get("task", "fetch-reach"),
                           make_encoder=make_encoder_factory(features, {}, stats))
    return ACTPolicy(context)


def batch(size=4, chunk=6, padded_from=None):
    torch.manual_seed(1)
    pad = torch.zeros(size, chunk, dtype=torch.bool)
    if padded_from is not None:
        pad[:, padded_from:] = True
    return {"state": torch.randn(size, 1, 5), ACTION: torch.randn(size, chunk, 3), ACTION_IS_PAD: pad}


def test_kl_term_matches_the_hand_computation():
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # per dim -0.5 * (1 + logvar - mu^2 - exp(logvar)): 0.5 for the first, 1.5 - ln 2 for the second
    assert kl_divergence(mu, logvar).item() == pytest.approx(0.5 + 1.5 - math.log(2), rel=1e-6)
    assert kl_divergence(torch.zeros(7, 3), torch.zeros(7, 3)).item() == 0.0  # the prior itself


def test_cvae_shapes_and_zero_latent_at_inference():
    model = build().eval()
    b = batch()
    actions = model.normalizer.normalize(ACTION, b[ACTION])
    mu, logvar = model.posterior(b, actions, ~b[ACTION_IS_PAD])
    assert mu.shape == logvar.shape == (4, 4)
    assert model.decode(b, mu).shape == (4, 6, 3)
    prediction = model.predict_action({"state": b["state"]})
    assert prediction.shape == (4, 6, 3)
    expected = model.normalizer.unnormalize(ACTION, model.decode(b, torch.zeros(4, 4)))
    torch.testing.assert_close(prediction, expected)  # inference uses the prior's mean, z = 0
    loss, metrics = model.compute_loss(b)
    assert set(metrics) == {"loss", "l1", "kl"}
    assert loss.item() == pytest.approx((metrics["l1"] + 10.0 * metrics["kl"]).item(), rel=1e-5)


@pytest.mark.parametrize("use_vae", [True, False])
def test_padded_actions_change_neither_the_loss_nor_the_latent(use_vae):
    model = build(use_vae=use_vae).eval()  # no dropout: two calls see the same network
    clean, noisy = batch(padded_from=4), batch(padded_from=4)
    noisy[ACTION][:, 4:] = 1e3  # whatever the sampler stored past the episode's end
    losses = []
    for b in (clean, noisy):
        torch.manual_seed(2)  # the same z sample
        losses.append(model.compute_loss(b)[0].item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    unpadded = batch()
    unpadded[ACTION][:, 4:] = 1e3
    torch.manual_seed(2)
    assert model.compute_loss(unpadded)[0].item() > 10 * losses[0]  # the same values unmasked do count


def test_encoders_get_their_own_learning_rate_when_asked():
    model = build(encoder_lr=1e-5)
    rest, observed = model.parameter_groups()
    assert observed["lr"] == 1e-5 and "lr" not in rest
    encoder_ids = {id(p) for p in [*model.encoder.parameters(), *model.state_encoder.parameters()]}
    assert {id(p) for p in observed["params"]} == encoder_ids
    assert len(rest["params"]) + len(observed["params"]) == len(list(model.parameters()))
    assert len(build().parameter_groups()) == 1
