"""What an algorithm builds (a PolicyModel) and the one inference surface everyone uses (PolicyRunner)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from .specs import Feature, TaskSpec

ACTION = "action"
ACTION_IS_PAD = "action_is_pad"
FUTURE_PREFIX = "future."


class Normalizer(nn.Module):
    """Maps arrays to [-1, 1] with per-dimension min/max from the store; its buffers travel in the checkpoint.

    Dimensions that never vary are only shifted, so constant inputs do not blow up.
    """

    def __init__(self, stats: Mapping[str, Mapping[str, np.ndarray]]):
        super().__init__()
        self.keys = tuple(sorted(stats))
        for key in self.keys:
            lo = torch.as_tensor(np.asarray(stats[key]["min"]), dtype=torch.float32)
            hi = torch.as_tensor(np.asarray(stats[key]["max"]), dtype=torch.float32)
            span = hi - lo
            scale = torch.where(span > 1e-6, 2.0 / span.clamp_min(1e-6), torch.ones_like(span))
            offset = torch.where(span > 1e-6, -1.0 - lo * scale, -lo)
            self.register_buffer(self._name(key, "scale"), scale)
            self.register_buffer(self._name(key, "offset"), offset)

    @staticmethod
    def _name(key: str, what: str) -> str:
        return f"{key.replace('.', '_')}__{what}"

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return x * getattr(self, self._name(key, "scale")) + getattr(self, self._name(key, "offset"))

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        return (x - getattr(self, self._name(key, "offset"))) / getattr(self, self._name(key, "scale"))


@dataclass(frozen=True)
class BuildContext:
    """Everything an algorithm's ``build`` needs to construct its model.

    ``features`` are the observation arrays the policy may read (the training config chooses them), keyed by
    store name; ``stats`` hold min/max/mean/std for normalized observations and for ``action``;
    ``make_encoder(keys)`` builds a module mapping ``{key: (N, *shape)}`` to ``(N, output_dim)`` by asking
    each key's observation plugin for its encoder (so a vision backbone is shared by every algorithm).
    """

    config: Any
    features: Mapping[str, Feature]
    action_dim: int
    stats: Mapping[str, Mapping[str, np.ndarray]]
    task: TaskSpec
    make_encoder: Callable[[list[str]], nn.Module]


class PolicyModel(nn.Module):
    """Base class of every algorithm's model.

    Subclasses set ``n_obs_steps`` (observation history), ``horizon`` (length of the action window the loss
    sees; it starts at the oldest observation step, as in diffusion_policy) and ``n_action_steps`` (how many
    actions the runner executes before predicting again), and may list ``future_keys``: observation arrays the
    sampler should also draw at a uniformly random future step of the same episode (``batch["future.<key>"]``,
    e.g. for hindsight goal relabeling). Loading sets ``action_relative_to`` from the config's
    ``data.action_relative_to``: the model then predicts offsets from that observation key.

    Batches hold raw (unnormalized) float tensors: each observation key as ``(B, n_obs_steps, *shape)``,
    ``action`` as ``(B, horizon, action_dim)`` (offsets when the config sets ``data.action_relative_to``) and
    the bool mask ``action_is_pad`` as ``(B, horizon)``.
    """

    n_obs_steps: int = 1
    horizon: int = 1
    n_action_steps: int = 1
    future_keys: tuple[str, ...] = ()
    action_relative_to: str | None = None

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """Return the scalar training loss and a dict of float metrics to log."""
        raise NotImplementedError

    def predict_action(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Map an observation window ``{key: (B, n_obs_steps, *shape)}`` to actions ``(B, horizon, A)``."""
        raise NotImplementedError


class PolicyRunner:
    """Runs a PolicyModel in closed loop over B environments: keeps each one's observation history and queue of
    planned actions (receding horizon), and predicts a new chunk for the environments whose queue is empty.
    Used alike by the evaluator and deployment code. When the model predicts offsets (``action_relative_to``),
    each queued offset is added to that observation's value at the step it is executed.
    """

    def __init__(self, model: PolicyModel, device: torch.device | str = "cpu"):
        self.model = model.eval()
        self.device = torch.device(device)
        self._history: list[deque] = []
        self._queue: list[deque] = []

    def reset(self, n_envs: int) -> None:
        self._history = [deque(maxlen=self.model.n_obs_steps) for _ in range(n_envs)]
        self._queue = [deque() for _ in range(n_envs)]

    def reset_env(self, index: int) -> None:
        self._history[index].clear()
        self._queue[index].clear()

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Take ``{key: (B, *shape)}`` for the current step and return ``(B, action_dim)`` actions."""
        n_obs = self.model.n_obs_steps
        for i, history in enumerate(self._history):
            step = {key: value[i] for key, value in obs.items()}
            if not history:  # pad the start of an episode with its first observation
                history.extend([step] * (n_obs - 1))
            history.append(step)
        need = [i for i, queue in enumerate(self._queue) if not queue]
        if need:
            window = {
                key: torch.as_tensor(np.stack([np.stack([h[key] for h in self._history[i]]) for i in need]))
                .to(self.device)
                for key in obs
            }
            chunk = self.model.predict_action(window).float().cpu().numpy()
            first = n_obs - 1
            for row, i in enumerate(need):
                self._queue[i].extend(chunk[row, first : first + self.model.n_action_steps])
        actions = np.stack([queue.popleft() for queue in self._queue])
        reference = self.model.action_relative_to
        if reference is not None:
            actions = actions + np.asarray(obs[reference]).reshape(actions.shape)
        return actions
