"""Algorithm ``gcbc``: goal-conditioned behaviour cloning with hindsight relabeling and an MLP policy.

With ``goal_conditioned: false`` the goal is dropped from the inputs and nothing is relabeled: plain BC, the
baseline other algorithms are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

import roboil
from roboil import AlgorithmSpec, BuildContext, Normalizer, PolicyModel, RoboilError
from roboil.policy import ACTION, ACTION_IS_PAD, FUTURE_PREFIX


@dataclass
class GCBCConfig:
    goal_conditioned: bool = True
    relabel_prob: float = 0.5  # share of samples whose goal is replaced by a future achieved goal
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    dropout: float = 0.0
    n_obs_steps: int = 1
    horizon: int = 1  # actions predicted per window (the first n_action_steps are executed)
    n_action_steps: int = 1

    def __post_init__(self):
        if not 0.0 <= self.relabel_prob <= 1.0:
            raise RoboilError(f"algorithm.relabel_prob must be in [0, 1], got {self.relabel_prob}")
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs_steps + 1:
            raise RoboilError("algorithm.n_action_steps must be between 1 and horizon - n_obs_steps + 1")
        if not self.hidden_dims:
            raise RoboilError("algorithm.hidden_dims must list at least one layer width")


class GCBCPolicy(PolicyModel):
    def __init__(self, context: BuildContext):
        super().__init__()
        cfg: GCBCConfig = context.config
        goal = context.task.goal
        if cfg.goal_conditioned and (goal is None or goal.desired not in context.features):
            raise RoboilError(f"gcbc with goal_conditioned=true needs the task's goal array among data.obs_keys "
                              f"(task '{context.task.name}' has goal {goal}); set algorithm.goal_conditioned=false")
        self.n_obs_steps, self.horizon, self.n_action_steps = cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps
        self.relabel_prob = cfg.relabel_prob if cfg.goal_conditioned else 0.0
        self.goal = goal if cfg.goal_conditioned else None
        self.obs_keys = sorted(k for k in context.features if goal is None or cfg.goal_conditioned or k != goal.desired)
        if self.goal is not None and self.relabel_prob > 0:
            self.future_keys = (self.goal.achieved,)
        self.normalizer = Normalizer({k: v for k, v in context.stats.items() if k in (*self.obs_keys, ACTION)})
        self.encoder = context.make_encoder(self.obs_keys)
        self.action_dim = context.action_dim
        layers, width = [], self.encoder.output_dim * cfg.n_obs_steps
        for hidden in cfg.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(cfg.dropout)]
            width = hidden
        layers.append(nn.Linear(width, cfg.horizon * context.action_dim))
        self.mlp = nn.Sequential(*layers)

    def _features(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        batch, steps = next(iter(obs.values())).shape[:2]
        normed = {k: self.normalizer.normalize(k, obs[k].float()) if k in self.normalizer.keys else obs[k]
                  for k in self.obs_keys}
        flat = {k: v.reshape(batch * steps, *v.shape[2:]) for k, v in normed.items()}
        return self.encoder(flat).reshape(batch, -1)

    def _relabel(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hindsight relabeling: some goals become a state the same episode reached later."""
        desired = batch[self.goal.desired]
        future = batch[FUTURE_PREFIX + self.goal.achieved].unsqueeze(1).expand_as(desired)
        swap = torch.rand(desired.shape[0], 1, 1, device=desired.device) < self.relabel_prob
        return {**batch, self.goal.desired: torch.where(swap, future, desired)}

    def compute_loss(self, batch):
        if self.future_keys:
            batch = self._relabel(batch)
        prediction = self.mlp(self._features(batch)).reshape(-1, self.horizon, self.action_dim)
        target = self.normalizer.normalize(ACTION, batch[ACTION].float())
        valid = (~batch[ACTION_IS_PAD]).unsqueeze(-1).float()
        loss = (((prediction - target) ** 2) * valid).sum() / (valid.sum() * self.action_dim).clamp_min(1)
        return loss, {"loss": loss.item()}

    def predict_action(self, obs):
        prediction = self.mlp(self._features(obs)).reshape(-1, self.horizon, self.action_dim)
        return self.normalizer.unnormalize(ACTION, prediction.clamp(-1, 1))


@roboil.hookimpl
def register_algorithms():
    return [AlgorithmSpec(name="gcbc", config=GCBCConfig, build=GCBCPolicy,
                          summary="goal-conditioned behaviour cloning with hindsight relabeling (MLP)")]
