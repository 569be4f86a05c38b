"""Chunk executors: how the action chunks a policy predicts become one action per environment step.

Registered through the ``roboil`` entry points like any plugin (``executors = "roboil.executors"``), so a
third-party executor is chosen the same way: ``roboil eval RUN --executor NAME executor.PARAM=value``.
Any policy that predicts chunks of actions can be executed by any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import RoboilError
from .hookspecs import hookimpl
from .specs import ExecutorSpec


class ChunkExecutor:
    """Per-environment state between a policy's chunks and the steps that execute them.

    Each step of some environments (``envs``, indices; evaluation steps each env as soon as it is ready, not all
    in lockstep) the runner asks :meth:`needs_chunk` which of them want a prediction, hands each of those a chunk
    with :meth:`add_chunk` (``chunk[0]`` is the action for the current step), then takes one action per env of
    ``envs`` from :meth:`step`, which advances their time.
    """

    def reset(self, n_envs: int) -> None:
        raise NotImplementedError

    def reset_env(self, index: int) -> None:
        raise NotImplementedError

    def needs_chunk(self, envs: list[int]) -> list[int]:
        raise NotImplementedError

    def add_chunk(self, index: int, chunk: np.ndarray) -> None:
        raise NotImplementedError

    def step(self, envs: list[int]) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class QueueParams:
    n_action_steps: int | None = None  # actions executed per chunk; None = the model's own n_action_steps

    def __post_init__(self):
        if self.n_action_steps is not None and self.n_action_steps < 1:
            raise RoboilError(f"executor.n_action_steps must be at least 1, got {self.n_action_steps}")


class RecedingHorizon(ChunkExecutor):
    """Execute the first ``n_action_steps`` actions of a chunk, then predict again."""

    def __init__(self, n_action_steps: int):
        self.n_action_steps = n_action_steps
        self.queues: list[list[np.ndarray]] = []

    def reset(self, n_envs: int) -> None:
        self.queues = [[] for _ in range(n_envs)]

    def reset_env(self, index: int) -> None:
        self.queues[index] = []

    def needs_chunk(self, envs: list[int]) -> list[int]:
        return [i for i in envs if not self.queues[i]]

    def add_chunk(self, index: int, chunk: np.ndarray) -> None:
        if len(chunk) < self.n_action_steps:
            raise RoboilError(f"executor.n_action_steps={self.n_action_steps} but the policy predicts {len(chunk)} "
                              "actions from the current step; use a smaller value")
        self.queues[index] = list(chunk[: self.n_action_steps])

    def step(self, envs: list[int]) -> np.ndarray:
        return np.stack([self.queues[i].pop(0) for i in envs])


@dataclass(frozen=True)
class EnsembleParams:
    coefficient: float = 0.01  # weight exp(-coefficient * i) for the i-th oldest prediction of a step

    def __post_init__(self):
        if not np.isfinite(self.coefficient):
            raise RoboilError(f"executor.coefficient must be a finite number, got {self.coefficient}")


class TemporalEnsemble(ChunkExecutor):
    """Predict a chunk every step and execute, for each step, the weighted mean of every chunk's prediction of
    it, the oldest weighted most for a positive coefficient (temporal ensembling)."""

    def __init__(self, coefficient: float):
        self.coefficient = coefficient
        self.chunks: list[list[tuple[int, np.ndarray]]] = []  # per env: (step it was predicted at, chunk)
        self.time: list[int] = []

    def reset(self, n_envs: int) -> None:
        self.chunks = [[] for _ in range(n_envs)]
        self.time = [0] * n_envs

    def reset_env(self, index: int) -> None:
        self.chunks[index], self.time[index] = [], 0

    def needs_chunk(self, envs: list[int]) -> list[int]:
        return list(envs)

    def add_chunk(self, index: int, chunk: np.ndarray) -> None:
        self.chunks[index].append((self.time[index], np.asarray(chunk)))

    def step(self, envs: list[int]) -> np.ndarray:
        actions = []
        for index in envs:
            chunks, now = self.chunks[index], self.time[index]
            live = [(start, chunk) for start, chunk in chunks if now - start < len(chunk)]  # oldest first
            predictions = np.stack([chunk[now - start] for start, chunk in live])
            weights = np.exp(-self.coefficient * np.arange(len(live)))
            actions.append((weights[:, None] * predictions).sum(0) / weights.sum())
            self.chunks[index], self.time[index] = live, now + 1
        return np.stack(actions)


@hookimpl
def register_executors():
    return [
        ExecutorSpec(name="queue", config=QueueParams,
                     make=lambda params, model: RecedingHorizon(params.n_action_steps or model.n_action_steps),
                     summary="receding horizon: execute the first n_action_steps of each chunk, then replan"),
        ExecutorSpec(name="ensemble", config=EnsembleParams,
                     make=lambda params, model: TemporalEnsemble(params.coefficient),
                     summary="temporal ensembling: predict every step, average every chunk's prediction of it"),
    ]
