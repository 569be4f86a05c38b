"""Training windows over an episode store: observation history + action horizon, edge-padded, vectorized.

A window anchored at step t of an episode holds observations t-n_obs+1..t and actions t-n_obs+1..
t-n_obs+horizon (the diffusion_policy convention). Indices that fall outside the episode repeat its first or
last step, and the action steps that do are flagged in ``action_is_pad`` so losses can ignore them. Models may
also ask for keys at a random later step (``future.<key>``) or at the next step (``next.<key>``).
"""

from __future__ import annotations

import copy
from typing import Collection, Mapping

import numpy as np

from .keys import ACTION, ACTION_IS_PAD, FUTURE_PREFIX, NEXT_IS_PAD, NEXT_PREFIX
from .rows import RowReader


def gather(array: "np.ndarray | RowReader", index: np.ndarray) -> np.ndarray:
    """``array[index]`` for a numpy array, or for an array on disk by decoding only the chunks that hold the rows."""
    if isinstance(array, np.ndarray):
        return array[index]
    return array.read(index.ravel()).reshape(*index.shape, *array.row_shape)


class WindowSampler:
    def __init__(
        self,
        arrays: Mapping[str, object],
        episode_ends: np.ndarray,
        episodes: np.ndarray,
        obs_keys: list[str],
        n_obs_steps: int,
        horizon: int,
        future_keys: tuple[str, ...] = (),
        next_keys: tuple[str, ...] = (),
        seed: int = 0,
    ):
        if len(episodes) == 0:
            raise ValueError("no episodes to sample from")
        ends = np.asarray(episode_ends, dtype=np.int64)
        starts = np.concatenate([[0], ends[:-1]])
        lengths = (ends - starts)[episodes]
        # one anchor per step of every selected episode, with that episode's bounds
        self.episode_start = np.repeat(starts[episodes], lengths)
        self.episode_end = np.repeat(ends[episodes], lengths)
        self.anchors = self.episode_start + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
        self.arrays = arrays
        self.obs_keys = list(obs_keys)
        self.future_keys = tuple(future_keys)
        self.next_keys = tuple(next_keys)
        self.obs_offsets = np.arange(-n_obs_steps + 1, 1)
        self.action_offsets = np.arange(-n_obs_steps + 1, horizon - n_obs_steps + 1)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.anchors)

    def state(self) -> dict:
        """The random generator's state, to resume sampling exactly (see :meth:`set_state`)."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def draw(self, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The random part of a batch: its anchors, and (with future keys) how far into the rest of its episode
        each window reads them, as a fraction in [0, 1). Drawn apart from the gathering so that a loader's workers
        or the ranks of a distributed run gather parts of one batch drawn in one place."""
        pick = self.rng.integers(0, len(self.anchors), size=batch_size)
        later = self.rng.random(batch_size) if self.future_keys else None
        return pick, later

    def sample(self, batch_size: int, rows: slice = slice(None)) -> dict[str, np.ndarray]:
        """A batch of ``batch_size`` windows, or only its ``rows`` (the same draws whatever the slice)."""
        pick, later = self.draw(batch_size)
        return self.windows(pick[rows], None if later is None else later[rows])

    def only(self, keys: Collection[str]) -> "WindowSampler":
        """A sampler gathering only ``keys`` (and the padding flags) of the same windows, to split a batch's
        gathering: worker processes read the arrays on disk without a copy of the ones in RAM."""
        part = copy.copy(self)
        part.arrays = {key: array for key, array in self.arrays.items() if key in keys}
        return part

    def windows(self, pick: np.ndarray, later: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The windows at anchors ``pick``; future keys are read ``later`` (see :meth:`draw`) into the rest of
        the episode, drawn here when not given."""
        t = self.anchors[pick][:, None]
        lo = self.episode_start[pick][:, None]
        hi = self.episode_end[pick][:, None] - 1
        obs_index = np.clip(t + self.obs_offsets, lo, hi)
        action_index = t + self.action_offsets
        arrays = self.arrays
        batch = {key: gather(arrays[key], obs_index) for key in self.obs_keys if key in arrays}
        if ACTION in arrays:
            actions = gather(arrays[ACTION], np.clip(action_index, lo, hi))
            batch[ACTION] = actions.reshape(*action_index.shape, -1)  # (B, horizon, action_dim), a discrete index too
        batch[ACTION_IS_PAD] = (action_index < lo) | (action_index > hi)
        if self.future_keys:
            later = self.rng.random(len(pick)) if later is None else later
            future = t[:, 0] + (later * (hi[:, 0] - t[:, 0] + 1)).astype(np.int64)  # uniform over the rest
            for key in self.future_keys:
                if key in arrays:
                    batch[FUTURE_PREFIX + key] = gather(arrays[key], future)
        if self.next_keys:
            following = t[:, 0] + 1
            batch[NEXT_IS_PAD] = following > hi[:, 0]
            for key in self.next_keys:
                if key in arrays:
                    batch[NEXT_PREFIX + key] = gather(arrays[key], np.minimum(following, hi[:, 0]))
        return batch


def compute_stats(arrays: Mapping[str, object], rows: np.ndarray, keys: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per-dimension min/max/mean/std of ``keys`` over the given store rows (float64 accumulation)."""
    stats = {}
    for key in keys:
        values = gather(arrays[key], rows).astype(np.float64)
        if values.ndim == 1:  # one number per step (a discrete action): one dimension, as windows give it
            values = values[:, None]
        stats[key] = {
            "min": values.min(axis=0).astype(np.float32),
            "max": values.max(axis=0).astype(np.float32),
            "mean": values.mean(axis=0).astype(np.float32),
            "std": values.std(axis=0).astype(np.float32),
        }
    return stats
