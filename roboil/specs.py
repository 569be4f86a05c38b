"""Typed registration records that plugins return from the ``register_*`` hooks.

Every record is a small frozen dataclass with a ``name`` that the plugin manager validates (lowercase,
unique within its kind). Factories are plain callables so a plugin stays a few lines long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

if TYPE_CHECKING:  # annotations only: `import roboil` stays cheap, so Ctrl-C at a command's start has no traceback
    import numpy as np

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Feature:
    """One stored array per time step: its observation kind (or ``"action"``), shape and dtype."""

    kind: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Feature":
        return cls(kind=d["kind"], shape=tuple(d["shape"]), dtype=d["dtype"])


@dataclass(frozen=True)
class ArrayLayout:
    """How the episode store keeps one key: steps per chunk along time and a Blosc compressor."""

    time_chunk: int
    cname: str = "zstd"
    clevel: int = 3


@dataclass(frozen=True)
class NoParams:
    """The parameters of a plugin part that takes none: any ``key=value`` given for it is an unknown-key error."""


NORMALIZATIONS = ("minmax", "meanstd", "none")


class Observer(Protocol):
    """Turns a raw environment observation into named arrays (runs inside the environment's process)."""

    features: dict[str, Feature]

    def __call__(self, raw_obs: Any) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ObservationSpec:
    """An observation kind (``proprio``, ``pixels``, ...).

    - ``make_observer(env, params)`` returns an :class:`Observer` for a live environment; ``params`` is an
      instance of the ``params`` dataclass, from the task's defaults and ``obs.<kind>.<param>=value``
      overrides at record time (unknown keys and wrong types are one-line errors).
    - ``layout(feature)`` chooses the store chunking and codec for one of its arrays.
    - ``normalization``: the rule the core applies before the encoder sees these arrays, with statistics of
      the training data: ``"minmax"`` (to [-1, 1]), ``"meanstd"`` (zero mean, unit variance) or ``"none"``
      (the encoder scales them itself, e.g. uint8 images).
    - ``make_encoder(features, params)`` returns a torch module mapping ``{key: (N, *shape) normalized
      tensor}`` to ``(N, module.output_dim)``; ``params`` is an ``encoder_params`` instance (the training
      config's ``encoders.<kind>`` section). The module may also define ``tokens(obs) -> (N, n_tokens, C)``
      (e.g. the cells of an image feature map) for algorithms that attend over them; without it each sample
      is one token, its ``forward`` vector. With ``tokens`` it may define ``token_positions(dim) -> (n_tokens,
      dim)``, fixed embeddings of where each token sits (e.g. 2-D sine embeddings of feature-map cells); the
      core adds them to the projected tokens instead of learned ones.
    """

    name: str
    make_observer: Callable[[Any, Any], Observer]
    layout: Callable[[Feature], ArrayLayout]
    make_encoder: Callable[[Mapping[str, Feature], Any], Any]
    params: type = NoParams
    encoder_params: type = NoParams
    normalization: str = "minmax"
    summary: str = ""


class Expert(Protocol):
    """A scripted controller: ``reset()`` each episode, then ``act(raw_obs) -> action``."""

    def reset(self) -> None: ...

    def act(self, raw_obs: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class GoalKeys:
    """Names of the stored observation arrays that hold the commanded goal and the goal actually achieved."""

    desired: str
    achieved: str


@dataclass(frozen=True)
class TaskSpec:
    """A simulated task.

    - ``make_env(render_mode)`` returns a gymnasium env whose ``info`` carries ``is_success`` at every step, with
      no time limit of its own: the core applies one, ``max_episode_steps`` (``roboil eval --max-steps``
      replaces it), so a task's other wrappers are kept whatever the limit.
    - ``make_expert(rng)`` returns a scripted :class:`Expert` for ``roboil record --actor scripted``.
    - ``observations``: the default observation kinds and their params, e.g. ``{"proprio": {}}``.
    - ``goal``: which observation arrays are goals, for goal-conditioned algorithms (None if not a goal task).
    - ``episode_metrics``: extra float ``info`` entries reported at episode end (e.g. ``coverage``).
    """

    name: str
    make_env: Callable[..., Any]
    make_expert: Callable[[np.random.Generator], Expert]
    observations: Mapping[str, Mapping] = field(default_factory=lambda: {"proprio": {}})
    goal: GoalKeys | None = None
    episode_metrics: tuple[str, ...] = ()
    max_episode_steps: int | None = None
    fps: float = 25.0
    summary: str = ""


DISCARD = "discard"  # what a device's act() returns to end the episode without keeping it


class Device(Protocol):
    """Acts (or labels) in ``roboil record``.

    - ``reset()`` at the start of each episode; ``act(raw_obs)`` returns an action, ``None`` to end the episode
      and keep it, or :data:`DISCARD` to end it and drop it.
    - Optional ``close()``: called once when recording ends, however it ends.
    - Optional ``render(frame)``: called after every step with the scene as an RGB uint8 ``(H, W, 3)`` frame
      (the recorder then renders the task), e.g. for a viewer window.
    - Optional ``realtime = True``: the recorder paces steps at the task's ``fps`` (a person is in the loop).
    """

    def reset(self) -> None: ...

    def act(self, raw_obs: Any) -> np.ndarray | None | str: ...


@dataclass(frozen=True)
class DeviceSpec:
    """An input device for ``roboil record --actor NAME`` (or ``--labeler NAME``).

    ``make_device(task, env, rng, params)`` returns a :class:`Device`; ``params`` is a ``config`` instance from
    ``actor.<param>=value`` (or ``labeler.<param>=value``) on the command line. ``rng`` is re-seeded with the
    episode's seed before each episode, so recordings are reproducible and resumable.
    """

    name: str
    make_device: Callable[[TaskSpec, Any, np.random.Generator, Any], Device]
    config: type = NoParams
    summary: str = ""


@dataclass(frozen=True)
class AlgorithmSpec:
    """A learning algorithm.

    - ``config``: a dataclass of hyperparameters with defaults; the ``algorithm:`` section of a training config
      is validated against it (unknown keys and wrong types are errors).
    - ``build(context)`` returns a :class:`roboil.policy.PolicyModel` for a :class:`roboil.policy.BuildContext`.
    - ``train(context)``: set it for an algorithm that owns its training loop (online imitation, RL
      fine-tuning, DAgger); it receives a :class:`roboil.train.TrainContext` (demonstrations, environments
      built through the observation plugins, device and precision, ``log``, ``save_checkpoint``, resume
      state). Left ``None``, the core's offline loop trains the model on windows of the store.
    """

    name: str
    config: type
    build: Callable[[Any], Any]
    train: Callable[[Any], None] | None = None
    summary: str = ""


@dataclass(frozen=True)
class ExecutorSpec:
    """How a chunk of predicted actions becomes one action per step (``roboil eval --executor NAME``).

    ``make(params, model)`` returns a :class:`roboil.executors.ChunkExecutor`; ``params`` is a ``config``
    instance from ``executor.<param>=value``.
    """

    name: str
    config: type
    make: Callable[[Any, Any], Any]
    summary: str = ""
