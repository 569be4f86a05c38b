"""The devices every task has, registered through the ``roboil`` entry points as any plugin's are: ``scripted``
(the task's own expert) and ``replay`` (the actions of stored episodes, from their start states)."""

from __future__ import annotations

from dataclasses import dataclass

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
    first: int = 0  # the episode the first take replays; take k replays episode first + k


class ReplayDevice:
    """Replays stored episodes in order: each take starts from its episode's seed and start state and acts its
    recorded actions, then ends (kept). Recording the replay with other observations re-observes a store, e.g.
    camera frames for a store recorded from states."""

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
        if not 0 <= params.first < self.source.n_episodes:
            raise RoboilError(f"device.first={params.first} is out of range: store '{params.store}' has "
                              f"{self.source.n_episodes} episodes")
        if context.episodes is not None and params.first + context.episodes > self.source.n_episodes:
            left = self.source.n_episodes - params.first
            raise RoboilError(f"--episodes {context.episodes}: store '{params.store}' has {left} episodes to replay "
                              f"from device.first={params.first} (of {self.source.n_episodes}); ask for --episodes "
                              f"{left} at most")
        self.first, self.attrs = params.first, self.source.episode_attrs()
        self.actions: np.ndarray = np.zeros(0)
        self.step = 0

    def start(self, take: int) -> tuple[int, np.ndarray | None]:
        index = self.first + take
        attrs = self.attrs[index]
        self.actions = self.source.episode(index)[ACTION]
        state = attrs.get("start_state")
        return int(attrs["seed"]), None if state is None else np.asarray(state)

    def reset(self) -> None:
        self.step = 0

    def act(self, raw_obs):
        if self.step >= len(self.actions):
            return None
        self.step += 1
        return self.actions[self.step - 1]


@hookimpl
def register_devices():
    return [
        DeviceSpec("scripted", scripted_device, NoParams, summary="the task's scripted expert"),
        DeviceSpec("replay", ReplayDevice, ReplayParams, summary="the actions of stored episodes, from their starts"),
    ]
