"""Algorithm ``gcbc``: goal-conditioned behaviour cloning with hindsight relabeling and an MLP policy.

With ``goal_conditioned: false`` the goal is dropped from the inputs and nothing is relabeled: plain BC, the
baseline other algorithms are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass

import roboil
from roboil import AlgorithmSpec, RoboilError


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
        if self.n_obs_steps < 1:
            raise RoboilError(f"algorithm.n_obs_steps must be at least 1, got {self.n_obs_steps}")
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs_steps + 1:
            raise RoboilError("algorithm.n_action_steps must be between 1 and horizon - n_obs_steps + 1")
        if not self.hidden_dims or min(self.hidden_dims) < 1:
            raise RoboilError(f"algorithm.hidden_dims must list positive layer widths, got {list(self.hidden_dims)}")
        if not 0.0 <= self.dropout < 1.0:
            raise RoboilError(f"algorithm.dropout must be in [0, 1), got {self.dropout}")


def build(context):
    from .model import GCBCPolicy  # torch loads only when a model is built

    return GCBCPolicy(context)


@roboil.hookimpl
def register_algorithms():
    return [AlgorithmSpec(name="gcbc", config=GCBCConfig, build=build,
                          summary="goal-conditioned behaviour cloning with hindsight relabeling (MLP); needs "
                                  "demonstrated actions, and a goal task's achieved-goal array to relabel")]
