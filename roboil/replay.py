"""``roboil replay``: re-simulate stored episodes from their start states and recorded actions, and say whether
each replay reproduces the recorded success (and how far its observations drift from the stored ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .codecs import LOSSLESS
from .envs import ObservedEnv
from .errors import RoboilError, check_writable
from .keys import ACTION
from .store import EpisodeStore, array_layout
from .video import write_mp4

# largest difference between a replay's observations and the stored ones that still counts as the same episode:
# float32 storage rounds them (relative 6e-8), and MuJoCo replays its own states exactly
REPLAY_TOLERANCE = 1e-4


def replay(path: str | Path, episodes: list[int] | None = None, video: str | Path | None = None,
           stored_frames: bool = False) -> dict:
    """Replay ``episodes`` (default: all) of the store at ``path``; returns ``{"replayed", "reproduced",
    "episodes": [per-episode dicts], "lines": [what to print]}``. With ``video`` (one episode), the replay's
    frames are written there as an mp4, or with ``stored_frames`` the frames the episode stored."""
    store = EpisodeStore.open(path, require_healthy=True)
    if ACTION not in store.features:
        raise RoboilError(f"store '{path}' holds observations only (no actions), so it cannot be replayed")
    if not store.n_episodes:
        raise RoboilError(f"store '{path}' has no episodes to replay")
    indices = list(range(store.n_episodes)) if episodes is None else episodes
    if bad := [i for i in indices if not 0 <= i < store.n_episodes]:
        raise RoboilError(f"episode {bad[0]} is out of range: store '{path}' has episodes 0..{store.n_episodes - 1}")
    if video is not None and len(indices) != 1:
        raise RoboilError("--video writes one episode; give one --episode N")
    if stored_frames and video is None:
        raise RoboilError("--stored-frames writes the stored frames to --video FILE; give --video")
    if video is not None:
        check_writable(video)
    attrs = store.episode_attrs()
    if stored_frames:
        return _stored_video(store, indices[0], Path(video))
    task, observations = store.attrs["task"], store.attrs.get("observations", {"proprio": {}})
    env = ObservedEnv(task, observations, render_mode="rgb_array" if video else None,
                      max_steps=int(store.episode_lengths[indices].max()) + 1)
    results, lines, compared = [], [], _compared(store)
    try:
        for index in indices:
            if attrs[index].get("relabeled") or attrs[index].get("action_noise"):
                lines.append(f"episode {index}: its actions are labels (by {attrs[index].get('labeler')}, noise "
                             f"{attrs[index].get('action_noise', 0)}), not what was executed: not replayable")
                continue
            results.append(_replay_one(env, store.episode(index), attrs[index], index, Path(video) if video else None,
                                       compared))
            lines.append(results[-1]["line"])
    finally:
        env.close()
    if not results:
        raise RoboilError(f"none of the episodes asked for in '{path}' can be replayed (they store labels, not the "
                          "actions executed)")
    reproduced = sum(r["reproduced"] for r in results)
    lossy = [k for k in store.features if k != ACTION and k not in compared]
    lines.append(f"{path}: {reproduced} of {len(results)} replays reproduce the recorded success "
                 f"({reproduced / len(results):.1%})" + (f"; observations compared without {', '.join(lossy)} "
                                                         "(kept with a lossy codec)" if lossy else ""))
    return {"replayed": len(results), "reproduced": reproduced, "episodes": results, "lines": lines}


def demonstration_states(store: EpisodeStore, episodes: Sequence[int]) -> np.ndarray:
    """The simulation state (``TaskSpec.get_state``) before each step of ``episodes``, found by replaying their
    actions from their start states, so that episodes can start anywhere along a demonstration (Zhu et al.
    2018). An episode whose replay does not reproduce its stored observations is refused: its states are
    unknown."""
    if ACTION not in store.features:
        raise RoboilError(f"store '{store.path}' holds observations only (no actions), so the states along its "
                          "demonstrations cannot be replayed; use a store with actions")
    env = ObservedEnv(store.attrs["task"], store.attrs.get("observations", {"proprio": {}}),
                      max_steps=int(store.episode_lengths[list(episodes)].max()) + 1)
    if env.task.set_state is None:
        env.close()
        raise RoboilError(f"task '{env.task.name}' cannot start an episode from a stored state (it has no "
                          "set_state)")
    attrs, states, compared = store.episode_attrs(), [], _compared(store)
    try:
        for index in episodes:
            drift = _replay_one(env, store.episode(index), attrs[index], index, None, compared,
                                states)["max_observation_drift"]
            if drift > REPLAY_TOLERANCE:
                raise RoboilError(f"episode {index} of '{store.path}' does not replay to its stored observations "
                                  f"(they drift by up to {drift:.3g}), so the states along it are unknown; check it "
                                  "with `roboil replay`, or leave it out")
    finally:
        env.close()
    return np.stack(states)


def _compared(store: EpisodeStore) -> list[str]:
    """The observation arrays a replay must reproduce: those kept losslessly (a lossy codec's frames differ from
    what was rendered by its coding error, up to ~150 levels of 255 on sharp edges)."""
    return [k for k in store.features if k != ACTION and array_layout(store.array(k)).codec == LOSSLESS]


def _replay_one(env: ObservedEnv, episode: dict[str, np.ndarray], attrs: dict, index: int,
                video: Path | None, keys: list[str], states: list[np.ndarray] | None = None) -> dict:
    """Replay one episode, comparing its observations ``keys``; with ``states``, the state before each step is
    appended to it."""
    seed, state = attrs.get("seed"), attrs.get("start_state")
    obs, info = env.reset(seed=seed, options=None if state is None else {"state": state})
    frames = [env.render()] if video else None
    drift = 0.0
    success = False
    for t, action in enumerate(episode[ACTION]):
        drift = max(drift, 0.0, *(_deviation(obs[k], episode[k][t]) for k in keys))
        if states is not None:
            states.append(env.state())
        obs, _, _, _, info = env.step(action)
        success = bool(info.get("is_success", False))
        if frames is not None:
            frames.append(env.render())
    if frames is not None:
        write_mp4(video, frames, env.task.fps)
    recorded = attrs.get("success")
    reproduced = recorded is not None and success == bool(recorded)
    start = "its start state" if state is not None else f"seed {seed} (no start state stored)"
    line = (f"episode {index}: from {start}, recorded {'success' if recorded else 'failure'}, replay "
            f"{'success' if success else 'failure'}: {'reproduced' if reproduced else 'NOT reproduced'}; "
            f"observations {'identical' if drift == 0 else f'drift up to {drift:.3g}'}")
    return {"episode": index, "recorded_success": recorded, "replay_success": success, "reproduced": reproduced,
            "max_observation_drift": drift, "line": line}


def _deviation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0


def _stored_video(store: EpisodeStore, index: int, video: Path) -> dict:
    cameras = [k for k, f in store.features.items() if f.dtype == "uint8" and len(f.shape) == 3 and f.shape[-1] == 3]
    if not cameras:
        raise RoboilError(f"store '{store.path}' stores no camera frames; drop --stored-frames to film a replay")
    frames = store.episode(index)[cameras[0]]
    write_mp4(video, list(frames), store.attrs.get("fps", 25.0))
    line = f"episode {index}: wrote its {len(frames)} stored '{cameras[0]}' frames to {video}"
    return {"replayed": 0, "reproduced": 0, "episodes": [], "lines": [line]}
