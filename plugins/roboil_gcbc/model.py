"""The GCBC model: an MLP over the encoded observation window that regresses a chunk of actions."""

from __future__ import annotations

import torch
from torch import nn

from roboil import BuildContext, Normalizer, PolicyModel, RoboilError, padded_mean
from roboil.keys import ACTION, ACTION_IS_PAD, FUTURE_PREFIX

from . import GCBCConfig


class GCBCPolicy(PolicyModel):
    def __init__(self, context: BuildContext):
        super().__init__()
        cfg: GCBCConfig = context.config
        goal = context.task.goal
        if cfg.goal_conditioned and (goal is None or goal.desired not in context.features):
            raise RoboilError(f"gcbc with goal_conditioned=true needs the task's goal array among data.obs_keys "
                              f"(task '{context.task.name}' has goal {goal}); set algorithm.goal_conditioned=false")
        if cfg.goal_conditioned and cfg.relabel_prob > 0 and goal.achieved not in context.features:
            raise RoboilError(f"gcbc relabels goals with states reached later ('{goal.achieved}'), which data.obs_keys "
                              f"leaves out; add {goal.achieved} to data.obs_keys, or set algorithm.relabel_prob=0")
        self.n_obs_steps, self.horizon, self.n_action_steps = cfg.n_obs_steps, cfg.horizon, cfg.n_action_steps
        self.relabel_prob = cfg.relabel_prob if cfg.goal_conditioned else 0.0
        self.goal = goal if cfg.goal_conditioned else None
        self.obs_keys = sorted(k for k in context.features if goal is None or cfg.goal_conditioned or k != goal.desired)
        if self.goal is not None and self.relabel_prob > 0:
            self.future_keys = (self.goal.achieved,)
        self.normalizer = Normalizer({ACTION: context.stats[ACTION]})
        self.encoder = context.make_encoder(self.obs_keys)
        self.action_dim = context.action_dim
        layers, width = [], self.encoder.output_dim * cfg.n_obs_steps
        for hidden in cfg.hidden_dims:
            layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(cfg.dropout)]
            width = hidden
        layers.append(nn.Linear(width, cfg.horizon * context.action_dim))
        self.mlp = nn.Sequential(*layers)

    def _relabel(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hindsight relabeling: some goals become a state the same episode reached later."""
        desired = batch[self.goal.desired]
        future = batch[FUTURE_PREFIX + self.goal.achieved].unsqueeze(1).expand_as(desired)
        swap = torch.rand(desired.shape[0], 1, 1, device=desired.device) < self.relabel_prob
        return {**batch, self.goal.desired: torch.where(swap, future, desired)}

    def _predict(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        window = {k: obs[k] for k in self.obs_keys}
        return self.mlp(self.encoder(window).flatten(1)).reshape(-1, self.horizon, self.action_dim)

    def compute_loss(self, batch):
        if self.future_keys:
            batch = self._relabel(batch)
        prediction = self._predict(batch)
        target = self.normalizer.normalize(ACTION, batch[ACTION].float())
        loss = padded_mean((prediction - target) ** 2, ~batch[ACTION_IS_PAD])
        return loss, {"loss": loss.detach()}

    def predict_action(self, obs):
        return self.normalizer.unnormalize(ACTION, self._predict(obs).clamp(-1, 1))
