"""The networks: a policy (categorical for discrete actions, Gaussian for PPO, tanh-Gaussian for SAC), its
critics and the discriminator, in one PolicyModel so a checkpoint holds them all and ``roboil eval`` acts with
the policy alone.

Inside, continuous actions live in [-1, 1] (the action space's bounds mapped linearly); discrete ones are
indices, one-hot for the networks that read them. Observations go through the observation plugins' encoders
(normalized with the demonstrations' statistics).
"""

from __future__ import annotations

import copy
import math
from typing import Mapping

import gymnasium as gym
import torch
from torch import nn
from torch.nn import functional as F

import roboil
from roboil import RoboilError

LOG_STD_RANGE = (-5.0, 2.0)  # SAC's state-dependent log std, as in most implementations


def mlp(sizes: list[int], spectral_norm: bool = False) -> nn.Sequential:
    """Linear layers with tanh between them (none after the last); orthogonal init as PPO implementations use."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        nn.init.orthogonal_(linear.weight, gain=math.sqrt(2) if i < len(sizes) - 2 else 0.01)
        nn.init.zeros_(linear.bias)
        layers.append(nn.utils.parametrizations.spectral_norm(linear) if spectral_norm else linear)
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def encode(encoder: nn.Module, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One step's ``{key: (N, *shape)}`` through an observation encoder (which reads windows) to ``(N, D)``."""
    return encoder({k: v.unsqueeze(1) for k, v in obs.items()})[:, 0]


def imitation_reward(logits: torch.Tensor, form: str) -> torch.Tensor:
    """The policy's reward from the discriminator's logit l = log D - log(1 - D), D = P(expert)."""
    if form == "gail":
        return F.softplus(logits)  # -log(1 - D)
    if form == "logd":
        return -F.softplus(-logits)  # log D
    return logits  # log D - log(1 - D), AIRL's


def mix_rewards(imitation: torch.Tensor, task: torch.Tensor, weight: float) -> torch.Tensor:
    """Zhu et al.'s r = lambda * r_imitation + (1 - lambda) * r_task."""
    return weight * imitation + (1.0 - weight) * task


class Discriminator(nn.Module):
    """Logit of P(expert) for a transition: (s, a), or (s, s') when state-only.

    Absorbing states (Kostrikov et al.) are inputs too: a state flagged absorbing has its features zeroed and its
    flag set (and, over (s, a), its action zeroed), so after a terminal transition the policy is judged on
    staying in the absorbing state, as demonstrations that ended there are.
    """

    def __init__(self, encoder: nn.Module, state_only: bool, action_size: int, hidden: list[int],
                 spectral_norm: bool, deltas: bool = False):
        super().__init__()
        self.encoder, self.state_only, self.deltas = encoder, state_only, state_only and deltas
        self.width = encoder.output_dim
        n_in = (2 + self.deltas) * self.width + 2 if state_only else self.width + action_size + 1
        self.head = mlp([n_in, *hidden, 1], spectral_norm)
        if self.deltas:  # only then, so checkpoints of discriminators without it load as they were saved
            self.register_buffer("delta_scale", torch.ones(self.width))  # see fit_delta_scale

    def inputs(self, obs: Mapping[str, torch.Tensor], other, absorbing: torch.Tensor) -> torch.Tensor:
        """The head's input: ``other`` is the next observation (state-only) or the action vector; ``absorbing``
        is ``(N, 2)`` floats, whether s and s' are absorbing (only the first column is read over (s, a))."""
        live = 1.0 - absorbing
        state = encode(self.encoder, obs) * live[:, :1]
        if self.state_only:
            following = encode(self.encoder, other) * live[:, 1:]
            if not self.deltas:
                return torch.cat([state, following, absorbing], dim=-1)
            change = (following - state) * self.delta_scale * live[:, :1] * live[:, 1:]
            return torch.cat([state, following, change, absorbing], dim=-1)
        return torch.cat([state, other * live[:, :1], absorbing[:, :1]], dim=-1)

    @torch.no_grad()
    def fit_delta_scale(self, obs: Mapping[str, torch.Tensor], following: Mapping[str, torch.Tensor]) -> None:
        """Scale s' - s to unit spread over the demonstrations' transitions: what an action changes in one step is
        often a small part of a state's range (mountain-car's velocity: 1%), too small for the head to see in s
        and s' side by side."""
        change = encode(self.encoder, following) - encode(self.encoder, obs)
        self.delta_scale.copy_(1.0 / change.std(0).clamp_min(1e-6))

    def absorbing_input(self) -> torch.Tensor:
        """The input of the absorbing state's own transition (absorbing to absorbing), ``(1, n_in)``."""
        x = torch.zeros(1, self.head[0].in_features, device=self.head[0].bias.device)
        x[:, -2 if self.state_only else -1:] = 1.0
        return x

    def forward(self, obs, other, absorbing) -> torch.Tensor:
        return self.head(self.inputs(obs, other, absorbing))[:, 0]


class GailModel(roboil.PolicyModel):
    def __init__(self, context):
        super().__init__()
        cfg = context.config
        space = context.action_space
        if space is None:
            raise RoboilError("this checkpoint predates recorded action spaces; train the gail run again")
        self.discrete = isinstance(space, gym.spaces.Discrete)
        if self.discrete and cfg.learner == "sac":
            raise RoboilError(f"task '{context.task.name}' has discrete actions, which the sac learner does not "
                              "take; set algorithm.learner=ppo")
        self.learner = cfg.learner
        keys = sorted(context.features)
        disc_keys = cfg.discriminator_keys if cfg.discriminator_keys is not None else keys
        if unknown := [k for k in disc_keys if k not in context.features]:
            raise RoboilError(f"algorithm.discriminator_keys names '{unknown[0]}'; valid: {', '.join(keys)}")
        self.action_size = space.n if self.discrete else int(space.shape[0])
        if self.discrete:
            self.register_buffer("first_action", torch.tensor(float(space.start)))
        else:
            self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))
        self.actor_encoder = context.make_encoder(keys)
        width = self.actor_encoder.output_dim
        sac = cfg.learner == "sac"
        self.actor = mlp([width, *cfg.hidden, self.action_size * (2 if sac else 1)])
        if sac:
            self.critic_encoder = context.make_encoder(keys)
            self.q1, self.q2 = (mlp([width + self.action_size, *cfg.hidden, 1]) for _ in range(2))
            for q in (self.q1, self.q2):  # orthogonal init's small last layer suits policies, not Q values
                nn.init.xavier_uniform_(q[-1].weight)
            self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
            self.q1_target.requires_grad_(False)
            self.q2_target.requires_grad_(False)
            self.log_alpha = nn.Parameter(torch.zeros(()))
        else:
            self.critic_encoder = context.make_encoder(keys)
            self.value_head = mlp([width, *cfg.hidden, 1])
            nn.init.orthogonal_(self.value_head[-1].weight, gain=1.0)
            if not self.discrete:
                self.log_std = nn.Parameter(torch.zeros(self.action_size))
        self.discriminator = Discriminator(context.make_encoder(sorted(disc_keys)), cfg.state_only,
                                           self.action_size, cfg.discriminator_hidden, cfg.spectral_norm,
                                           cfg.discriminator_deltas)
        self.discriminator_keys = sorted(disc_keys)

    # ---- actions ------------------------------------------------------------------------------------------------

    def to_env(self, action: torch.Tensor) -> torch.Tensor:
        """Internal actions (indices, or [-1, 1] vectors) as the environment takes them, ``(N, A)`` floats."""
        if self.discrete:
            return (action + self.first_action).float().unsqueeze(-1)
        return self.low + (action.clamp(-1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)

    def from_env(self, action: torch.Tensor) -> torch.Tensor:
        """Recorded actions as the networks read them: one-hot choices, or vectors mapped to [-1, 1]."""
        if self.discrete:
            index = (action.reshape(-1) - self.first_action).long()
            return F.one_hot(index, self.action_size).float()
        return (2.0 * (action - self.low) / (self.high - self.low) - 1.0).clamp(-1.0, 1.0)

    def action_input(self, action: torch.Tensor) -> torch.Tensor:
        """A sampled internal action as the discriminator and critics read it."""
        if self.discrete:
            return F.one_hot(action.long(), self.action_size).float()
        return action.clamp(-1.0, 1.0)

    def distribution(self, obs: Mapping[str, torch.Tensor]) -> torch.distributions.Distribution:
        """PPO's policy: categorical over choices, or a diagonal Gaussian with a learned state-free std."""
        out = self.actor(encode(self.actor_encoder, obs))
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        return torch.distributions.Independent(torch.distributions.Normal(out, self.log_std.exp()), 1)

    def squashed_sample(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """SAC's policy: a tanh-squashed Gaussian sample (reparameterized) and its log-probability."""
        mean, log_std = self.actor(encode(self.actor_encoder, obs)).chunk(2, dim=-1)
        log_std = log_std.clamp(*LOG_STD_RANGE)
        raw = mean + log_std.exp() * torch.randn_like(mean)
        action = torch.tanh(raw)
        log_prob = torch.distributions.Normal(mean, log_std.exp()).log_prob(raw).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - raw - F.softplus(-2 * raw))).sum(-1)  # the tanh's Jacobian
        return action, log_prob

    def deterministic(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The action to evaluate with: the most likely choice, or the mean (squashed for SAC)."""
        out = self.actor(encode(self.actor_encoder, obs))
        if self.discrete:
            return out.argmax(-1)
        if self.learner == "sac":
            return torch.tanh(out.chunk(2, dim=-1)[0])
        return out.clamp(-1.0, 1.0)

    def predict_action(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        step = {k: v[:, -1] for k, v in obs.items()}
        return self.to_env(self.deterministic(step)).unsqueeze(1)

    # ---- critics ------------------------------------------------------------------------------------------------

    def value(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.value_head(encode(self.critic_encoder, obs))[:, 0]

    def q_values(self, obs, action, target: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([encode(self.critic_encoder, obs), action], dim=-1)
        q1, q2 = (self.q1_target, self.q2_target) if target else (self.q1, self.q2)
        return q1(x)[:, 0], q2(x)[:, 0]

    def discriminator_params(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters())

    def policy_params(self) -> list[nn.Parameter]:
        """The actor's (with PPO, the critic's too: one optimizer, as in PPO implementations)."""
        skip = {id(p) for p in self.discriminator.parameters()}
        if self.learner == "sac":
            return [*self.actor_encoder.parameters(), *self.actor.parameters()]
        return [p for p in self.parameters() if id(p) not in skip and p.requires_grad]

    def critic_params(self) -> list[nn.Parameter]:
        return [*self.critic_encoder.parameters(), *self.q1.parameters(), *self.q2.parameters()]
