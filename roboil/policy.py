"""What an algorithm builds (a PolicyModel) and the one inference surface everyone uses (PolicyRunner)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .actions import ActionTransform
from .errors import RoboilError
from .executors import ChunkExecutor, RecedingHorizon
from .plugins import PluginError
from .specs import Feature, TaskSpec


class Normalizer(nn.Module):
    """Per-dimension affine normalization with training-data statistics; its buffers travel in the checkpoint.

    ``modes[key]`` is ``"minmax"`` (to [-1, 1], the default) or ``"meanstd"`` (zero mean, unit variance).
    Dimensions that never vary are only shifted, so constant inputs do not blow up.
    """

    def __init__(self, stats: Mapping[str, Mapping[str, np.ndarray]], modes: Mapping[str, str] | None = None):
        super().__init__()
        self.keys = tuple(sorted(stats))
        for key in self.keys:
            mode = (modes or {}).get(key, "minmax")
            if mode == "minmax":
                lo = torch.as_tensor(np.asarray(stats[key]["min"]), dtype=torch.float32)
                span = torch.as_tensor(np.asarray(stats[key]["max"]), dtype=torch.float32) - lo
                scale = torch.where(span > 1e-6, 2.0 / span.clamp_min(1e-6), torch.ones_like(span))
                offset = torch.where(span > 1e-6, -1.0 - lo * scale, -lo)
            else:
                mean = torch.as_tensor(np.asarray(stats[key]["mean"]), dtype=torch.float32)
                std = torch.as_tensor(np.asarray(stats[key]["std"]), dtype=torch.float32)
                scale = torch.where(std > 1e-6, 1.0 / std.clamp_min(1e-6), torch.ones_like(std))
                offset = -mean * scale
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

    ``config`` is the algorithm's config dataclass instance; ``features`` are the observation arrays the policy
    may read (the training config chooses them), keyed by store name; ``stats`` hold min/max/mean/std of the
    normalized observations and of ``action`` (as learned: offsets under ``data.action_relative_to``).
    ``make_encoder(keys, token_dim=None)`` builds a :class:`roboil.encoders.ObservationEncoder` over those
    keys from the observation plugins: it takes raw observation windows, normalizes them by each kind's rule,
    and returns one vector per step, or tokens of width ``token_dim`` for attention. ``action_space`` is the
    task's gymnasium space (a ``Box``, or a ``Discrete`` whose actions a model outputs as one number, the
    index); None for checkpoints saved before it was recorded.
    """

    config: Any
    features: Mapping[str, Feature]
    action_dim: int
    stats: Mapping[str, Mapping[str, np.ndarray]]
    task: TaskSpec
    make_encoder: Callable[..., nn.Module]
    action_space: Any = None


class PolicyModel(nn.Module):
    """Base class of every algorithm's model.

    Subclasses set ``n_obs_steps`` (observation history), ``horizon`` (length of the action window the loss
    sees; it starts at the oldest observation step, as in diffusion_policy) and ``n_action_steps`` (the
    default of the receding-horizon executor), and may list ``future_keys`` (observation arrays the sampler
    also draws at a uniformly random later step of the same episode: ``batch["future.<key>"]``, e.g. for
    hindsight relabeling) and ``next_keys`` (drawn at the step after the current one: ``batch["next.<key>"]``
    with ``batch["next_is_pad"]`` true at an episode's last step, e.g. for a state-only discriminator).

    Batches hold raw (unnormalized) tensors: each observation key as ``(B, n_obs_steps, *shape)``, ``action``
    as ``(B, horizon, action_dim)`` (as learned, after the run's action transform) and the bool mask
    ``action_is_pad`` as ``(B, horizon)``.

    A sampling policy draws its inference noise with :meth:`sample_noise`: evaluation seeds each episode's noise
    from the episode's seed, so an episode plays the same whichever episodes share its batch (the env count, the
    shard). The batched forward pass itself is not bit-identical across batch sizes (on CPU, on actions of unit
    scale, we measured differences up to 4e-8 for an MLP and 4e-6 after a diffusion U-Net's 10 DDIM steps), so
    an episode's floats (return, metrics) agree to rounding, and its success and length unless it hinges on such
    a difference.
    """

    n_obs_steps: int = 1
    horizon: int = 1
    n_action_steps: int = 1
    future_keys: tuple[str, ...] = ()
    next_keys: tuple[str, ...] = ()
    # set by PolicyRunner around predict_action: one generator (or None) per batch row, for sample_noise
    noise_generators: list[torch.Generator | None] | None = None

    def compute_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the scalar training loss and a dict of metrics to log (tensors: no device sync per step).

        The loss must be a mean over the batch's rows with a count that does not depend on the data (for padded
        action steps: :func:`padded_mean`): a data-parallel run averages the losses of the slices of one batch,
        which equals the whole batch's loss only then."""
        raise NotImplementedError

    def predict_action(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Map an observation window ``{key: (B, n_obs_steps, *shape)}`` to actions ``(B, horizon, A)``."""
        raise NotImplementedError

    def parameter_groups(self) -> list[dict]:
        """Optimizer parameter groups; a group may set its own ``lr`` or ``weight_decay`` (e.g. a smaller
        learning rate for a pretrained backbone). The schedule scales every group alike."""
        return [{"params": [p for p in self.parameters() if p.requires_grad]}]

    def reset_env(self, index: int) -> None:
        """Forget the internal state kept for environment ``index`` (for stateful policies; a no-op here)."""

    def sample_noise(self, batch_size: int, *shape: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Standard normal noise ``(batch_size, *shape)``: row b from the generator the runner gave batch row b
        (seeded from its episode's seed), else from torch's global random state (training)."""
        generators = self.noise_generators
        if generators is None:
            return torch.randn(batch_size, *shape, device=device)
        if len(generators) != batch_size:
            raise ValueError(f"sample_noise: {batch_size} rows asked for a batch of {len(generators)} environments")
        # drawn on the CPU, so an episode's noise does not depend on the device the policy runs on either
        return torch.stack([torch.randn(shape, generator=generator) for generator in generators]).to(device)


class PolicyRunner:
    """Runs a PolicyModel in closed loop over B environments: the evaluator, the recorder (a policy acting) and
    deployment code all use it.

    It keeps each environment's observation history, asks the model for chunks when the ``executor`` wants
    them (receding horizon with the model's ``n_action_steps`` by default), and decodes each executed action
    with the run's action ``transform`` using the observation of the step it is executed at. An environment
    reset with a seed gets its own noise generator seeded with it (see :meth:`PolicyModel.sample_noise`).
    """

    def __init__(self, model: PolicyModel, executor: ChunkExecutor | None = None,
                 transform: ActionTransform = ActionTransform(), device: torch.device | str = "cpu",
                 action_dim: int | None = None, observation_shapes: Mapping[str, tuple[int, ...]] | None = None):
        self.model = model.eval()
        self.action_dim = action_dim  # the width predict_action's chunks must have, where known
        self.observation_shapes = observation_shapes  # of one step, as trained on, where known
        self.executor = executor or RecedingHorizon(model.n_action_steps)
        self.transform = transform
        self.device = torch.device(device)
        self._history: list[deque] = []
        self._generators: list[torch.Generator | None] = []

    def reset(self, n_envs: int, seeds: Sequence[int] | None = None) -> None:
        """Start ``n_envs`` environments; ``seeds[i]`` (the seed env i's episode was reset with) seeds its
        inference noise, which comes from torch's global random state without seeds."""
        if seeds is not None and len(seeds) != n_envs:
            raise ValueError(f"{len(seeds)} seeds for {n_envs} environments")
        self._history = [deque(maxlen=self.model.n_obs_steps) for _ in range(n_envs)]
        self._generators = [_noise_generator(seed) for seed in (seeds if seeds is not None else [None] * n_envs)]
        self.executor.reset(n_envs)
        for index in range(n_envs):
            self.model.reset_env(index)

    def reset_env(self, index: int, seed: int | None = None) -> None:
        """Start a new episode in environment ``index``, its inference noise seeded with ``seed`` when given."""
        self._history[index].clear()
        self._generators[index] = _noise_generator(seed)
        self.executor.reset_env(index)
        self.model.reset_env(index)

    @torch.no_grad()
    def act(self, obs: Mapping[str, np.ndarray], envs: Sequence[int] | None = None) -> np.ndarray:
        """Take ``{key: (B, *shape)}`` for the current step of ``envs`` (row b is env ``envs[b]``; default: all
        of them, in order) and return their ``(B, action_dim)`` actions."""
        envs = list(range(len(self._history))) if envs is None else list(envs)
        for key, shape in (self.observation_shapes or {}).items():
            if key not in obs or tuple(obs[key].shape[1:]) != shape:
                given = f"gives '{key}' as {tuple(obs[key].shape[1:])}" if key in obs else f"gives no '{key}'"
                raise RoboilError(f"the environment {given}, the policy was trained on {shape}; run it in the task "
                                  "with the observation settings it was trained with")
        n_obs = self.model.n_obs_steps
        for row, i in enumerate(envs):
            history = self._history[i]
            step = {key: value[row] for key, value in obs.items()}
            if not history:  # pad the start of an episode with its first observation
                history.extend([step] * (n_obs - 1))
            history.append(step)
        need = self.executor.needs_chunk(envs)
        if need:
            window = {
                key: torch.as_tensor(np.stack([np.stack([h[key] for h in self._history[i]]) for i in need]))
                .to(self.device)
                for key in obs
            }
            generators = [self._generators[i] for i in need]
            self.model.noise_generators = generators if any(g is not None for g in generators) else None
            try:
                chunks = self.model.predict_action(window)
            finally:
                self.model.noise_generators = None
            shape = tuple(chunks.shape) if isinstance(chunks, torch.Tensor) else None
            expected = (len(need), self.model.horizon, self.action_dim or (shape or (0,))[-1])
            if shape != expected:
                got = f"shape {shape}" if shape is not None else type(chunks).__name__
                raise PluginError(f"{type(self.model).__name__}.predict_action returned {got}, not (batch, horizon, "
                                  f"action_dim) = {expected}; fix the algorithm plugin")
            chunks = chunks.float().cpu().numpy()
            if not np.isfinite(chunks).all():
                raise RoboilError("the policy's actions are not finite numbers (NaN or inf): its weights hold "
                                  "some (training diverged: see its loss in metrics.jsonl), or an observation does")
            for row, i in enumerate(need):
                self.executor.add_chunk(i, chunks[row, n_obs - 1:])  # from the current step on
        return self.transform.decode(self.executor.step(envs), obs)


def padded_mean(errors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The mean of per-step ``errors`` ``(B, T, ...)`` with the padded steps (``valid`` ``(B, T)`` False) counted
    as zeros, as the Diffusion Policy and ACT authors' code does. Dividing by the number of valid steps instead
    would weigh a batch's rows by how many of their steps are padded, differently for each slice of the batch."""
    return (errors * valid.reshape(*valid.shape, *[1] * (errors.dim() - valid.dim()))).mean()


def _noise_generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)
