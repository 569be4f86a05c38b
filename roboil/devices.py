"""The devices every task has, registered through the ``roboil`` entry points as any plugin's are: ``scripted``
(the task's own expert) and ``replay`` (the actions of stored episodes, from their start states)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RoboilError
from .hookspecs import hookimpl
from .keys import ACTION
from .specs import DeviceContext, DeviceSpec, NoParams


def scripted_device(context: DeviceContext):
    from .plugins import registry

    return registry().call("task", context.task.name, "make_expert", context.rng)


@dataclass(frozen=True)
class ReplayParams:
    store: str = ""  # the store whose episodes are replayed
    # the episode the first take replays (take k replays first + k); default: the one after the last that the
    # output store holds a replay of from this store, so a session appending to its own output continues it
    first: int | None = None


class ReplayDevice:
    """Replays stored episodes in order: each take starts from its episode's seed and start state and acts its
    recorded actions, then ends (kept), its episode attrs naming the store and episode it replays
    (``replayed_from``). Recording the replay with other observations re-observes a store, e.g. camera frames
    for a store recorded from states."""

    def __init__(self, context: DeviceContext):
        from .store import EpisodeStore

        params: ReplayParams = context.params
        if not params.store:
            raise RoboilError("the replay device needs device.store=PATH (the store whose episodes it replays)")
        self.source = EpisodeStore.open(params.store, require_healthy=True)
        if ACTION not in self.source.features:
            raise RoboilError(f"store '{params.store}' holds observations only (no actions); replay a store with "
                              "actions")
        if (task := self.source.attrs.get("task")) != context.task.name:
            raise RoboilError(f"store '{params.store}' holds task '{task}', not '{context.task.name}'; replay it "
                              f"with --task {task}")
        self.source_path = str(Path(params.store).resolve())
        output = context.output
        if output is not None and Path(output.path).resolve() == Path(self.source_path):
            raise RoboilError(f"device.store '{params.store}' is the --out store; replay into another store")
        n = self.source.n_episodes
        if params.first is None:
            done = _replayed(output, self.source_path) if output is not None else []
            self.first = max(done) + 1 if done else 0
            where = f"episode {self.first}, after the replays --out holds" if done else "episode 0"
        elif 0 <= params.first < n:
            self.first, where = params.first, f"device.first={params.first}"
        else:
            raise RoboilError(f"device.first={params.first} is out of range: store '{params.store}' has {n} episodes")
        if context.episodes is not None and self.first + context.episodes > n:
            left = n - self.first
            raise RoboilError(f"--episodes {context.episodes}: store '{params.store}' has {left} episodes to replay "
                              f"from {where} (of {n}); ask for --episodes {left} at most" if left else
                              f"store '{params.store}' has no episode left to replay from {where} (it has {n}); "
                              "pass device.first=K to replay from episode K")
        if output is not None:  # appending (a moved source store starts again at 0): say where this session starts
            print(f"roboil: replaying '{params.store}' from {where}", file=sys.stderr)
        self.attrs = self.source.episode_attrs()
        self.actions: np.ndarray = np.zeros(0)
        self.step = 0

    def start(self, take: int) -> tuple[int, np.ndarray | None]:
        self.index = index = self.first + take
        attrs = self.attrs[index]
        self.actions = self.source.episode(index)[ACTION]
        state = attrs.get("start_state")
        return int(attrs["seed"]), None if state is None else np.asarray(state)

    def reset(self) -> None:
        self.step = 0

    def episode_attrs(self) -> dict:
        return {"replayed_from": {"store": self.source_path, "episode": self.index}}

    def act(self, raw_obs):
        if self.step >= len(self.actions):
            return None
        self.step += 1
        return self.actions[self.step - 1]


def _replayed(output, source: str) -> list[int]:
    """The episodes of store ``source`` (a resolved path) that ``output`` holds replays of."""
    origins = [attrs.get("replayed_from") for attrs in output.episode_attrs() if isinstance(attrs, dict)]
    return [origin["episode"] for origin in origins
            if isinstance(origin, dict) and origin.get("store") == source and isinstance(origin.get("episode"), int)]


@hookimpl
def register_devices():
    return [
        DeviceSpec("scripted", scripted_device, NoParams, summary="the task's scripted expert"),
        DeviceSpec("replay", ReplayDevice, ReplayParams, summary="the actions of stored episodes, from their starts"),
    ]
