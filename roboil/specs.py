"""Typed registration records that plugins return from the ``register_*`` hooks.

Every record is a small frozen dataclass with a ``name`` that the plugin manager validates (lowercase,
unique within its kind). Factories are plain callables so a plugin stays a few lines long.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

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


class Observer(Protocol):
    """Turns a raw environment observation into named arrays (runs inside the environment's process)."""

    features: dict[str, Feature]

    def __call__(self, raw_obs: Any) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ObservationSpec:
    """An observation kind (``proprio``, ``pixels``, ...).

    - ``make_observer(env, params)`` returns an :class:`Observer` for a live environment; ``params`` come from
      the task's defaults and ``obs.<kind>.<param>=value`` overrides at record time.
    - ``layout(feature)`` chooses the store chunking and codec for one of its arrays.
    - ``normalize``: whether the trainer normalizes these arrays to [-1, 1] with store statistics.
    - ``make_encoder(features, params)`` returns a torch module mapping ``{key: (N, *shape) tensor}`` to
      ``(N, module.output_dim)`` features, so every algorithm can consume this kind.
    """

    name: str
    make_observer: Callable[[Any, Mapping], Observer]
    layout: Callable[[Feature], ArrayLayout]
    make_encoder: Callable[[Mapping[str, Feature], Mapping], Any]
    normalize: bool = True
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

    - ``make_env(render_mode)`` returns a gymnasium env whose ``info`` carries ``is_success`` at every step.
    - ``make_expert(rng)`` returns a scripted :class:`Expert` for ``roboil record --device scripted``.
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
    fps: float = 25.0
    summary: str = ""


class Device(Protocol):
    """A teleoperation input: ``reset()`` each episode, ``act(raw_obs)`` returns an action or None to stop."""

    def reset(self) -> None: ...

    def act(self, raw_obs: Any) -> np.ndarray | None: ...


@dataclass(frozen=True)
class DeviceSpec:
    """An input device for ``roboil record --device NAME``: ``make_device(task, env, rng)``."""

    name: str
    make_device: Callable[[TaskSpec, Any, np.random.Generator], Device]
    summary: str = ""


@dataclass(frozen=True)
class AlgorithmSpec:
    """A learning algorithm.

    - ``config``: a dataclass of hyperparameters with defaults; the ``algorithm:`` section of a training config
      is validated against it (unknown keys and wrong types are errors).
    - ``build(context)`` returns a :class:`roboil.policy.PolicyModel` for a :class:`roboil.policy.BuildContext`.
    """

    name: str
    config: type
    build: Callable[[Any], Any]
    summary: str = ""
