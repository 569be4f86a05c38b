"""Diffusion Policy networks and model on tiny configurations."""

import dataclasses

import numpy as np
import pytest
import torch

from roboil.encoders import make_encoder_factory
from roboil.errors import RoboilError
from roboil.keys import ACTION, ACTION_IS_PAD
from roboil.policy import BuildContext, PolicyRunner
from roboil.specs import Feature
from roboil_diffusion import DiffusionConfig, build
from roboil_diffusion.policy import DiffusionPolicy, edge_fill
from roboil_diffusion.transformer import TransformerForDiffusion
from roboil_diffusion.unet import ConditionalUnet1D, FiLM

TINY = dict(horizon=8, n_obs_steps=2, n_action_steps=4, down_dims=(32, 64), diffusion_step_embed_dim=16,
            n_layer=2, n_head=2, n_emb=32, p_drop_attn=0.0)


def make_policy(obs_dim=5, action_dim=2, obs_range=1.0, **overrides) -> DiffusionPolicy:
    features = {"state": Feature("proprio", (obs_dim,), "float32")}
    stats = {
        "state": {"min": np.full(obs_dim, -obs_range), "max": np.full(obs_dim, obs_range)},
        ACTION: {"min": np.full(action_dim, -2.0), "max": np.full(action_dim, 2.0)},
    }
    context = BuildContext(
        config=DiffusionConfig(**{**TINY, **overrides}), features=features, action_dim=action_dim, stats=stats,
        task=None, make_encoder=make_encoder_factory(features, {}, stats),
    )
    return build(context)


def make_batch(b=4, horizon=8, obs_dim=5, action_dim=2):
    pad = torch.zeros(b, horizon, dtype=torch.bool)
    pad[0, :1] = pad[1:, -3:] = True  # before the episode start and after its end
    return {"state": torch.randn(b, 2, obs_dim), ACTION: torch.randn(b, horizon, action_dim), ACTION_IS_PAD: pad}


def test_unet_output_shape():
    net = ConditionalUnet1D(3, global_cond_dim=10, diffusion_step_embed_dim=16, down_dims=(16, 32, 64))
    out = net(torch.randn(4, 8, 3), torch.randint(0, 100, (4,)), torch.randn(4, 10))
    assert out.shape == (4, 8, 3)


def test_transformer_output_shape():
    net = TransformerForDiffusion(3, horizon=8, n_obs_steps=2, cond_dim=10, n_layer=2, n_head=2, n_emb=32)
    out = net(torch.randn(4, 8, 3), torch.randint(0, 100, (4,)), torch.randn(4, 2, 10))
    assert out.shape == (4, 8, 3)


def test_transformer_is_causal():
    net = TransformerForDiffusion(1, horizon=6, n_obs_steps=2, cond_dim=3, n_layer=2, n_head=2, n_emb=16).eval()
    x, t, obs = torch.randn(1, 6, 1), torch.tensor([5]), torch.randn(1, 2, 3)
    later_x, later_obs = x.clone(), obs.clone()
    later_x[:, 3:] += 1.0
    later_obs[:, 1] += 1.0  # observation step 1 is visible from action step 1 on
    torch.testing.assert_close(net(x, t, obs)[:, :1], net(later_x, t, later_obs)[:, :1])
    assert not torch.allclose(net(x, t, obs)[:, 3:], net(later_x, t, obs)[:, 3:])


def test_film_is_per_channel_scale_and_bias():
    film = FiLM(cond_dim=6, channels=4)
    assert film.proj[-1].out_features == 8
    x, cond = torch.randn(3, 4, 7), torch.randn(3, 6)
    assert film(x, cond).shape == x.shape
    scale, bias = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([-1.0, 0.0, 1.0, 2.0])
    with torch.no_grad():
        film.proj[-1].weight.zero_()
        film.proj[-1].bias.copy_(torch.cat([scale, bias]))
    torch.testing.assert_close(film(x, cond), x * scale[:, None] + bias[:, None])


def test_edge_fill():
    actions = torch.arange(6.0).view(1, 6, 1).repeat(2, 1, 1)
    valid = torch.tensor([[False, False, True, True, False, True], [True] * 6])
    filled = edge_fill(actions, valid)
    assert filled[0, :, 0].tolist() == [2, 2, 2, 3, 3, 5]
    torch.testing.assert_close(filled[1], actions[1])


@pytest.mark.parametrize("backbone", ["unet", "transformer"])
def test_loss_ignores_padded_actions(backbone):
    policy = make_policy(backbone=backbone)
    batch = make_batch()
    torch.manual_seed(0)
    loss, metrics = policy.compute_loss(batch)
    assert loss.dim() == 0 and metrics["loss"] == pytest.approx(loss.item())
    changed = dict(batch, **{ACTION: batch[ACTION].clone()})
    changed[ACTION][batch[ACTION_IS_PAD]] = 1e3
    torch.manual_seed(0)
    torch.testing.assert_close(policy.compute_loss(changed)[0], loss)
    changed[ACTION][:, 0] += 1.0  # valid steps do count
    torch.manual_seed(0)
    assert policy.compute_loss(changed)[0].item() != pytest.approx(loss.item())


@pytest.mark.parametrize("backbone", ["unet", "transformer"])
def test_predict_action_shape_and_runner(backbone):
    policy = make_policy(backbone=backbone)
    assert (policy.n_obs_steps, policy.horizon, policy.n_action_steps) == (2, 8, 4)
    actions = policy.eval().predict_action({"state": torch.randn(3, 2, 5)})
    assert actions.shape == (3, 8, 2) and actions.dtype == torch.float32
    assert actions.abs().max() <= 2.0 + 1e-4  # the sampler clips to the normalised range
    runner = PolicyRunner(policy)
    runner.reset(3)
    assert runner.act({"state": np.random.randn(3, 5)}).shape == (3, 2)  # float64 input is fine


@pytest.mark.parametrize(
    "field, value",
    [("backbone", "mlp"), ("horizon", 4), ("horizon", 9), ("num_inference_steps", 200), ("down_dims", (30, 64)),
     ("kernel_size", 4), ("n_emb", 33)],
)
def test_config_validation(field, value):
    with pytest.raises(RoboilError, match=field):
        DiffusionConfig(**{**TINY, field: value})


def test_config_accepts_yaml_lists():
    assert DiffusionConfig(down_dims=[16, 32]).down_dims == (16, 32)
    assert dataclasses.asdict(DiffusionConfig())["backbone"] == "unet"


def test_overfits_bimodal_conditional_actions():
    """Action = +-obs (a fair coin per sample): the policy must learn a two-mode conditional distribution."""
    torch.manual_seed(0)
    policy = make_policy(obs_dim=1, action_dim=1, down_dims=(16, 32), horizon=4, n_action_steps=2)
    optim = torch.optim.AdamW(policy.parameters(), lr=3e-3, foreach=True)
    losses = []
    for _ in range(200):
        obs = torch.rand(32, 1, 1) * 0.5 + 0.5
        sign = torch.randint(0, 2, (32, 1, 1)) * 2.0 - 1.0
        batch = {"state": obs.expand(32, 2, 1), ACTION: (sign * obs).expand(32, 4, 1),
                 ACTION_IS_PAD: torch.zeros(32, 4, dtype=torch.bool)}
        loss, _ = policy.compute_loss(batch)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.4 * first, (first, last)
