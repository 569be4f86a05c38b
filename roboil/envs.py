"""A task's environment seen through the configured observation plugins: the one env the recorder, the
evaluator and deployment all step, so a policy sees at evaluation exactly the arrays it was trained on."""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import gymnasium as gym
import numpy as np

from .actions import to_env_action
from .config import make_observers
from .errors import RoboilError, leave_stops_to_the_main_process, sigint_kept_from_children
from .plugins import PluginError, registry
from .specs import Feature
from .video import write_mp4, write_png


class ObservedEnv(gym.Env):
    """Wraps ``task.make_env`` and turns each raw observation into ``{key: array}`` with the observers.

    The one time limit is applied here: ``max_steps``, or the task's ``max_episode_steps`` when None. ``raw_obs``
    keeps the task's own observation for scripted experts. With ``video_dir``, an episode reset with one of
    ``video_seeds`` is filmed and written as ``video_dir/seed_<seed>.mp4`` (and its final frame as a png) by
    the step that ends it, whose ``info`` then names them under ``video`` and ``final_frame``: each env
    process writes its own videos, so no episode's frames depend on when another one ends.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": gym.vector.AutoresetMode.DISABLED}

    def __init__(self, task: str, observations: Mapping[str, Mapping], render_mode: str | None = None,
                 max_steps: int | None = None, video_dir: str | Path | None = None,
                 video_seeds: tuple[int, ...] = ()):
        self.task = registry().get("task", task)
        with sigint_kept_from_children():
            env = registry().call("task", task, "make_env", render_mode=render_mode)
        limit = max_steps if max_steps is not None else self.task.max_episode_steps
        if limit is not None:
            env = gym.wrappers.TimeLimit(env, max_episode_steps=limit)
        self.env = env
        self.render_mode = render_mode
        self.observers = make_observers(env, observations)
        self.features: dict[str, Feature] = {}
        for observer in self.observers.values():
            self.features.update(observer.features)
        self.observation_space = gym.spaces.Dict({
            key: gym.spaces.Box(low=0 if f.dtype == "uint8" else -np.inf, high=255 if f.dtype == "uint8" else np.inf,
                                shape=f.shape, dtype=np.dtype(f.dtype))
            for key, f in self.features.items()
        })
        self.action_space = env.action_space
        self.raw_obs: Any = None
        self.last_obs: dict[str, np.ndarray] = {}
        self.video_dir = Path(video_dir) if video_dir is not None else None
        self.video_seeds = set(video_seeds) if self.video_dir is not None and render_mode == "rgb_array" else set()
        self._seed: int | None = None
        self._frames: list[np.ndarray] | None = None

    def _observe(self, raw_obs) -> dict[str, np.ndarray]:
        self.raw_obs = raw_obs
        out: dict[str, np.ndarray] = {}
        for kind, observer in self.observers.items():
            observed = observer(raw_obs)
            if problem := _unlike_declared(observed, observer.features):  # before it reaches a store
                raise PluginError(f"observation '{kind}' (plugin '{registry().owner('observation', kind)}'): its "
                                  f"observer {problem}")
            out.update(observed)
        self.last_obs = out
        return out

    def state(self) -> np.ndarray | None:
        """The task's simulation state (``TaskSpec.get_state``), or None for a task that does not expose it."""
        return None if self.task.get_state is None else np.asarray(self.task.get_state(self.env), np.float64)

    def restore(self, state) -> dict[str, np.ndarray]:
        """Put the env, just reset, in a state from :meth:`state` and return its observation."""
        if self.task.set_state is None:
            raise RoboilError(f"task '{self.task.name}' cannot restore a stored state (it has no set_state); "
                              "replay it from its seed")
        return self._observe(self.task.set_state(self.env, np.asarray(state, np.float64)))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset from ``seed``; with ``options={"state": state}`` (from :meth:`state`), the episode then starts in
        that state instead (a vector env passes options through to each env it resets)."""
        options = dict(options or {})
        state = options.pop("state", None)
        raw_obs, info = self.env.reset(seed=seed, options=options or None)
        obs = self._observe(raw_obs) if state is None else self.restore(state)
        self._seed = seed
        self._frames = [self.env.render()] if seed in self.video_seeds else None
        return obs, info

    def step(self, action):
        raw_obs, reward, terminated, truncated, info = self.env.step(to_env_action(self.action_space, action))
        if self._frames is not None:
            self._frames.append(self.env.render())
            if terminated or truncated:
                info = {**info, **self._write_video()}
        return self._observe(raw_obs), float(reward), bool(terminated), bool(truncated), info

    def _write_video(self) -> dict[str, str]:
        frames, self._frames = self._frames, None
        video = write_mp4(self.video_dir / f"seed_{self._seed}.mp4", frames, self.task.fps)
        return {"video": str(video), "final_frame": str(write_png(video.with_suffix(".png"), frames[-1]))}

    def render(self):
        return self.env.render()

    def close(self):
        self.env.close()


def _unlike_declared(observed, features: Mapping[str, Feature]) -> str | None:
    """How an observer's output differs from the arrays it declares (keys and shapes), or None."""
    if not isinstance(observed, Mapping):
        return f"returned {type(observed).__name__}, not a dict of arrays by key"
    if observed.keys() != features.keys():
        extra, missing = sorted(set(observed) - set(features)), sorted(set(features) - set(observed))
        return (f"returned {', '.join(map(repr, extra))}, which its features do not declare" if extra else
                f"returned no {', '.join(map(repr, missing))}, which its features declare")
    for key, feature in features.items():
        if np.shape(observed[key]) != tuple(feature.shape):
            return f"returned '{key}' with shape {np.shape(observed[key])}; its features declare {tuple(feature.shape)}"
    return None


class EnvPool:
    """``n`` environments from ``make_env``, each in its own worker process (spawned: MuJoCo's GL contexts do not
    survive a fork).

    A step is submitted (each env named gets its action) and collected later, so the caller can work while envs
    step; envs left out do nothing, so envs that have played their last episode no longer cost a core. Replies
    are a step's ``(obs, reward, terminated, truncated, info)`` pickled: tens of microseconds for a policy's few
    arrays, next to milliseconds of physics.
    """

    def __init__(self, make_env: Callable[[], gym.Env], n: int):
        context = multiprocessing.get_context("spawn")
        self._pipes, self._processes = [], []
        with sigint_kept_from_children():  # the main process closes the workers after a Ctrl-C
            for index in range(n):
                here, there = context.Pipe()
                process = context.Process(target=_serve, args=(make_env, there), name=f"roboil-env-{index}",
                                          daemon=True)
                process.start()
                there.close()
                self._pipes.append(here)
                self._processes.append(process)
        try:
            for index in range(n):
                self._receive(index)  # built
        except BaseException:
            self.close()
            raise

    def reset(self, seeds: Mapping[int, int]) -> dict[int, dict[str, np.ndarray]]:
        """Reset env i with seed ``seeds[i]``; returns each one's first observation."""
        self._send("reset", seeds)
        return {index: self._receive(index) for index in seeds}

    def submit(self, actions: Mapping[int, np.ndarray]) -> None:
        """Start a step of env i with ``actions[i]``; :meth:`collect` waits for its result."""
        self._send("step", actions)

    def collect(self, envs: Iterable[int]) -> dict[int, tuple]:
        """Wait for the submitted steps of ``envs``: each one's ``(obs, reward, terminated, truncated, info)``."""
        return {index: self._receive(index) for index in envs}

    def _send(self, command: str, data: Mapping[int, Any]) -> None:
        for index, value in data.items():
            self._pipes[index].send((command, value))

    def _receive(self, index: int):
        try:
            status, payload = self._pipes[index].recv()
        except EOFError:
            exitcode = self._processes[index].exitcode
            raise RuntimeError(f"environment worker {index} died (exit code {exitcode})") from None
        if status == "error":
            raise payload
        return payload

    def close(self) -> None:
        for index in range(len(self._pipes)):
            with contextlib.suppress(OSError):
                self._send("close", {index: None})
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()  # it ignores SIGTERM
                process.join()
        for pipe in self._pipes:
            pipe.close()


def _serve(make_env: Callable[[], gym.Env], pipe) -> None:
    """A worker: build the env, then answer ``reset`` and ``step`` until ``close`` or until the main process goes."""
    leave_stops_to_the_main_process()
    env = None
    try:
        env = make_env()
        pipe.send(("ok", None))
        while True:
            command, data = pipe.recv()
            if command == "step":
                pipe.send(("ok", env.step(data)))
            elif command == "reset":
                pipe.send(("ok", env.reset(seed=data)[0]))
            else:
                return
    except EOFError:
        return
    except Exception as exc:  # user mistakes (RoboilError) stay one line; anything else keeps the worker's traceback
        error = exc if isinstance(exc, RoboilError) else RuntimeError(f"in an env worker:\n{traceback.format_exc()}")
        with contextlib.suppress(OSError):
            pipe.send(("error", error))
    finally:
        if env is not None:
            env.close()
