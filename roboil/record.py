"""The recording session: who drives the robot (a person through an input device, the task's scripted expert, a
replayed episode, or a trained policy that a person may take over from), who labels the recorded action, and
the takes a person starts, saves, discards, retries and deletes.

Every saved take is committed to the episode store with a per-step record of who acted, its start seed and
start state, its device and operator, and honest timing: a person-driven session runs at the task's control
rate, counts the ticks it could not keep and flags an episode recorded below its rate. A crash loses at most the
take in progress (the store commits an episode in one small write); Ctrl-C asks whether to keep it.
"""

from __future__ import annotations

import contextlib
import getpass
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tqdm import tqdm

from .actions import action_feature
from .codecs import coding
from .config import from_dict, merge
from .envs import ObservedEnv
from .errors import RoboilError, check_writable
from .keys import ACTION
from .plugins import registry
from .progress import progress_bar
from .specs import (DELETE_LAST, DISCARD, HAND_BACK, QUIT, RETRY, SAVE, START, TAKE_OVER, ArrayLayout,
                    DeviceContext, EndEffectorCommand)
from .store import EpisodeStore, array_layout, empty_directory
from .teleop import teleop_spec

ACTION_LAYOUT = ArrayLayout(time_chunk=1024)
POLICY = "policy"  # the name a policy acts under in the per-step record
MAX_EMPTY_TAKES = 3  # takes in a row that devices end before their first step: a setup mistake, not a recording
CONFIRM_SECONDS = 3.0  # a second press of delete-last or quit within this time confirms it
# a take is flagged as not on time when its achieved rate falls below this share of the task's rate, or more
# than this share of its ticks ran late
ON_TIME_RATE, LATE_SHARE = 0.97, 0.02


class PolicyDevice:
    """A trained policy as an actor: the recorder feeds it the observations it was trained on."""

    def __init__(self, run_dir: str, env: ObservedEnv):
        from .checkpoint import load_runner  # torch loads only when a policy acts

        self.runner, _, meta = load_runner(run_dir)
        if (trained := meta.get("task")) not in (None, env.task.name):
            raise RoboilError(f"policy '{run_dir}' was trained on task '{trained}', not '{env.task.name}'; record "
                              f"with --task {trained} or another policy")
        self.keys = list(meta["features"])
        if missing := [k for k in self.keys if k not in env.features]:
            raise RoboilError(f"policy '{run_dir}' reads {', '.join(missing)}, which this recording does not observe; "
                              "record with the observations it was trained on (obs.KIND.PARAM=value)")
        if other := [k for k in self.keys if tuple(env.features[k].shape) != tuple(meta["features"][k]["shape"])]:
            raise RoboilError(f"policy '{run_dir}' was trained on '{other[0]}' of shape "
                              f"{tuple(meta['features'][other[0]]['shape'])}, this recording observes "
                              f"{tuple(env.features[other[0]].shape)}; record with the observation settings it was "
                              "trained with (obs.KIND.PARAM=value)")
        self.env = env

    def reset(self) -> None:
        self.runner.reset(1)

    def act(self, raw_obs: Any) -> np.ndarray:
        obs = self.env.last_obs
        return self.runner.act({k: obs[k][None] for k in self.keys})[0]


@dataclass(eq=False)
class Role:
    """Who acts or labels: its name (as recorded per step), its device, and whether a person drives it."""

    name: str
    device: Any
    interactive: bool = False

    def close(self) -> None:
        if hasattr(self.device, "close"):
            self.device.close()


def device_spec(name: str, role: str = "device"):
    reg = registry()
    if name not in reg.names("device"):
        raise RoboilError(f"unknown {role} '{name}'; valid: {', '.join(reg.names('device'))}")
    return reg.get("device", name)


def make_role(name: str, context: DeviceContext, where: str) -> Role:
    spec = device_spec(name, where)
    params = from_dict(spec.config, context.params, where)
    return Role(spec.name, spec.make_device(replace(context, params=params)), spec.interactive)


def _layouts(observations: Mapping, env: ObservedEnv) -> dict[str, ArrayLayout]:
    """How each array is kept, as the observation plugins choose from their params."""
    reg = registry()
    layouts = {ACTION: ACTION_LAYOUT}
    for observer_kind, params in observations.items():
        spec = reg.get("observation", observer_kind)
        params = from_dict(spec.params, params or {}, f"obs.{observer_kind}")
        for key, feature in env.features.items():
            if feature.kind == observer_kind:
                layouts[key] = reg.call("observation", observer_kind, "layout", feature, params)
    return layouts


def open_or_create(out: Path, task: str, observations: Mapping, env: ObservedEnv,
                   existing: EpisodeStore | None, recorded: Mapping | None = None) -> EpisodeStore:
    """The store to record into: ``existing`` (refused if this recording makes other arrays, or if the
    overrides on the ``recorded`` observation settings ask for another codec than it keeps), or a new one."""
    features = {**env.features, ACTION: action_feature(env.action_space)}
    layouts = _layouts(observations, env)
    if existing is None:
        return EpisodeStore.create(out, features, layouts,
                                   {"task": task, "fps": env.task.fps, "observations": dict(observations)})
    theirs = {k: f.to_dict() for k, f in existing.features.items()}
    ours = {k: f.to_dict() for k, f in features.items()}
    if theirs != ours:  # the task was compared on opening it
        existing.close()
        raise RoboilError(f"store '{out}' holds {_schema(existing.attrs.get('task'), theirs)}, this recording "
                          f"makes {_schema(task, ours)}; record into a new --out path")
    # a codec changes no array's shape: the schema alone let new episodes be kept the store's way, silently; but
    # a store recoded since it was recorded keeps its cameras otherwise than its recorded settings say
    unchanged = _layouts(recorded, env) if recorded is not None else {}
    for key, layout in layouts.items():
        kept_layout = array_layout(existing.array(key))
        asked, kept = coding(layout.codec, layout.quality), coding(kept_layout.codec, kept_layout.quality)
        if key in unchanged and asked == coding(unchanged[key].codec, unchanged[key].quality):
            if kept != asked:  # no override asks for another codec: the new rows are kept as the rest
                print(f"roboil: note: store '{out}' keeps '{key}' as {kept}, not as recorded ({asked}): it was "
                      "recoded since; the new episodes are kept so too", file=sys.stderr)
            continue
        if kept != asked:
            existing.close()
            raise RoboilError(f"store '{out}' keeps '{key}' as {kept}, this recording asks for {asked}; one store "
                              "keeps one codec an array: drop the override, record into a new --out path, or recode "
                              "the store (roboil store recode)")
    return existing


def _schema(task, features: dict) -> str:
    arrays = ", ".join(f"{k} {tuple(f['shape'])} {f['dtype']}" for k, f in sorted(features.items()))
    return f"task '{task}' with arrays [{arrays}]"


def run_lengths(names: list[str]) -> list[list]:
    """``["a", "a", "b"]`` as ``[["a", 2], ["b", 1]]``: the per-step actor record, compact in the attrs."""
    runs: list[list] = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return runs


def acted_mask(attrs: Mapping, name: str) -> np.ndarray:
    """Per step of an episode, whether ``name`` acted (e.g. the person's corrections in an intervention
    recording, ``acted_mask(attrs, "keyboard")``), from the episode attrs' run-length ``acted_by``."""
    return np.concatenate([np.full(count, who == name) for who, count in attrs["acted_by"]])


@dataclass
class Take:
    """One attempt at an episode: its start and the steps recorded so far."""

    seed: int
    state: np.ndarray | None
    steps: dict[str, list] = field(default_factory=dict)
    acted_by: list[str] = field(default_factory=list)
    tick_times: list[float] = field(default_factory=list)
    late_ticks: int = 0
    interventions: int = 0
    started: float = 0.0
    end: str | None = None  # why recording stopped: "terminated", "time-limit", "device"
    success: bool = False

    @property
    def frames(self) -> int:
        return len(self.acted_by)


def record(task: str, episodes: int | None, out: str | Path, device: str | None = None, seed: int = 0,
           policy: str | None = None, labeler: str | None = None, operator: str | None = None,
           obs_overrides: Mapping | None = None, device_params: Mapping | None = None,
           labeler_params: Mapping | None = None, action_noise: float = 0.0, max_steps: int | None = None,
           viewer: bool = True, progress: bool = True) -> dict:
    """Record episodes into the store ``out`` (created, or appended to when its task and arrays match).

    - ``device`` drives: ``scripted`` (the default without a policy), ``replay``, or an input device a person
      holds (``keyboard``, ``gamepad``, ...). With ``policy`` (a run directory) the policy drives and an
      interactive ``device`` lets the person take over and hand back (HG-DAgger); ``acted_by`` records who drove
      each step.
    - ``labeler`` (default: whoever drives) gives the action that is recorded (e.g. ``scripted`` for DAgger).
    - ``episodes``: how many to save; an interactive session may leave it None (until the person quits).
    - Take seeds: the store's episode i is seeded ``seed + i``; a discarded take moves on to the next unused
      seed and a retried one keeps its own, so re-running an interrupted non-interactive command continues where
      it stopped and records what one uninterrupted run would have.
    - ``action_noise`` (DART): the env executes the driver's action plus Gaussian noise with this standard
      deviation, as a fraction of each action's half-range (at most 1), while the store records the clean label.
    Returns a summary dict.
    """
    if episodes is not None and episodes < 1:
        raise RoboilError(f"--episodes must be at least 1, got {episodes}")
    if seed < 0:
        raise RoboilError(f"--seed must be >= 0, got {seed}")
    if not 0 <= action_noise <= 1:  # NaN too
        raise RoboilError(f"--action-noise must be between 0 and 1 (the noise's standard deviation as a fraction of "
                          f"each action's half-range, e.g. 0.1), got {action_noise}")
    if max_steps is not None and max_steps < 1:
        raise RoboilError(f"--max-steps must be at least 1, got {max_steps}")
    device = device or (None if policy else "scripted")
    interactive = device is not None and device_spec(device).interactive
    if policy and device is not None and not interactive:
        raise RoboilError(f"--policy with --device {device}: only a device a person holds can take over from a "
                          "policy (keyboard, gamepad, ...); for labels by the expert use --labeler scripted")
    if labeler is not None and device_spec(labeler, "labeler").interactive:
        raise RoboilError(f"--labeler {labeler}: a person cannot label the steps another actor takes; use "
                          "--labeler scripted")
    if episodes is None and not interactive:
        raise RoboilError("--episodes is needed unless a person drives (an interactive --device ends the session)")
    check_writable(out, store_ok=True)  # appended to
    task_spec = registry().get("task", task)
    env, window, roles, output = None, None, [], None
    try:
        # appended to: the writer lock from here, so what a device reads of it (where a replay continues) holds
        output = EpisodeStore.open(out, mode="a") if Path(out).exists() and not empty_directory(out) else None
        if output is not None and (recorded_task := output.attrs.get("task")) != task:
            raise RoboilError(f"store '{out}' holds task '{recorded_task}', not '{task}'; record into a new --out path")
        # the observations the store was recorded with, so a camera size set then need not be typed again
        recorded = output.attrs.get("observations") if output is not None else None
        recorded = {k: dict(v) for k, v in (recorded or task_spec.observations).items()}
        observations = merge(recorded, obs_overrides or {})
        rng = np.random.default_rng(seed)
        # frames are only rendered when an observation or the viewer asks for them, so this costs nothing
        env = ObservedEnv(task, observations, render_mode="rgb_array", max_steps=max_steps)
        if action_noise and action_feature(env.action_space).dtype != "float32":
            raise RoboilError(f"--action-noise needs continuous actions; task '{task}' has discrete ones: drop the "
                              "option")
        if interactive and viewer:
            window = open_viewer(task_spec, env)
        # roles before the store, so a bad device name or parameter leaves no store behind
        driver = policy_role = label_role = None
        if device is not None:
            driver = make_role(device, DeviceContext(task_spec, env, rng, device_params or {}, window, episodes,
                                                     output), "device")
            roles.append(driver)
        if policy:
            policy_role = Role(POLICY, PolicyDevice(policy, env))
            roles.append(policy_role)
        if labeler is not None and labeler != device:
            label_role = make_role(labeler, DeviceContext(task_spec, env, rng, labeler_params or {}, None, episodes,
                                                          output), "labeler")
            roles.append(label_role)
            if hasattr(label_role.device, "start"):
                raise RoboilError(f"--labeler {labeler} decides where takes start, which only the driver may; use it "
                                  "as --device")
        # made for every task that has one: any device may answer with end-effector commands
        controller = task_spec.teleop.make_controller(env.env) if task_spec.teleop is not None else None
        # holds the one-writer lock
        with open_or_create(Path(out), task, observations, env, output, recorded) as store:
            try:
                session = Session(store, env, task, driver, policy_role, label_role, controller, window, rng, seed,
                                  episodes, action_noise, operator or _user(), progress)
                if store.n_episodes and progress:
                    more = f"{episodes} more" if episodes is not None else "more"
                    tqdm.write(f"roboil: '{out}' holds {store.n_episodes} episodes; recording {more} after them, "
                               f"seeded from {session.next_seed()} on", file=sys.stderr)  # above the bar, now drawn
                return session.run()
            except BaseException:
                if output is None and store.n_episodes == 0:  # made by this call, still empty and still locked
                    store.discard()  # by it: leave nothing behind
                raise
    finally:
        for role in roles:
            role.close()
        if window is not None:
            window.close()
        if env is not None:
            env.close()
        if output is not None:
            output.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no $USER
        return "unknown"


def open_viewer(task_spec, env: ObservedEnv):
    if task_spec.scene is None:
        raise RoboilError(f"task '{task_spec.name}' has no MuJoCo scene for the viewer; record it with --no-viewer "
                          "and a key script (device.script=FILE), or with --device scripted")
    from .viewer import Viewer  # GLFW loads only when a window opens

    env.reset(seed=0)  # a scene to size the camera on; every take resets again
    model, data = task_spec.scene(env.env)
    return Viewer(model, data, title=f"roboil record: {task_spec.name}")


class Session:
    """The take loop. Each control tick: read the person's controls (or, with no person, start every take and
    save it when it ends), step the take being recorded, update the viewer's overlay (it draws on its own
    thread), and wait for the next tick (only when a person drives: otherwise as fast as the simulation goes)."""

    def __init__(self, store: EpisodeStore, env: ObservedEnv, task: str, driver: Role | None, policy: Role | None,
                 labeler: Role | None, controller, viewer, rng: np.random.Generator, seed: int,
                 episodes: int | None, action_noise: float, operator: str, progress: bool):
        self.store, self.env, self.task, self.viewer, self.rng = store, env, task, viewer, rng
        self.driver, self.policy, self.labeler, self.controller = driver, policy, labeler, controller
        self.person = driver if driver is not None and driver.interactive else None
        self.in_control = policy if policy is not None else driver  # who drives now
        self.seed, self.episodes, self.operator = seed, episodes, operator
        self.fps = env.task.fps
        self.action_dtype = store.features[ACTION].dtype
        self.action_noise = action_noise
        low, high = getattr(env.action_space, "low", None), getattr(env.action_space, "high", None)
        self.noise_scale = action_noise * (high - low) / 2 if action_noise else 0.0
        self.take: Take | None = None
        self.last_action: np.ndarray | None = None  # the last action executed (before noise)
        self.recording = False
        self.saved = self.discarded = self.deleted = self.successes = self.empty_takes = 0
        # a new session continues after the store's highest start seed: an earlier session's discards moved it on
        seeds = [a.get("seed") for a in store.episode_attrs() if isinstance(a.get("seed"), int)]
        self.last_seed: int | None = max(seeds) if seeds else None
        self.last_result = "-"
        self.confirm: tuple[str, float] | None = None  # a control waiting for its second press
        self.progress = progress_bar(episodes, f"record {task}", unit="ep", enabled=progress)
        self.done = False
        # the viewer draws the scene on its own thread: the simulation changes only while holding its lock
        self.scene_lock = viewer.lock if viewer is not None else contextlib.nullcontext()

    # ---- the loop ----------------------------------------------------------------------------------------

    def run(self) -> dict:
        interrupted = False
        try:
            self.new_take(retry=False)
            next_tick = time.monotonic()
            while not self.done:
                tick = time.monotonic()
                if self.viewer is not None:
                    self.viewer.poll()
                    if self.viewer.closed:
                        self.drop_take("window closed")
                        self.take = None
                        if failure := getattr(self.viewer, "failure", None):
                            raise RoboilError(f"{failure}; the episodes saved are kept: try again, or record "
                                              "with --no-viewer and a key script")
                        break
                for control in self.controls():
                    self.handle(control)
                    if self.done:
                        break
                if self.done:
                    break
                if self.recording:
                    with self.scene_lock:
                        self.step(tick)
                if self.person is None:
                    continue
                if self.viewer is not None:
                    self.viewer.show(self.status(), self.help())
                next_tick += 1.0 / self.fps
                now = time.monotonic()
                if now > next_tick:  # this tick overran its slot: counted, and the next starts now (no burst)
                    if self.recording and self.take is not None:
                        self.take.late_ticks += 1
                    next_tick = now
                else:
                    time.sleep(next_tick - now)
        except KeyboardInterrupt:
            interrupted = True
            self.progress.close()  # before the question, not through it
            if self.person is not None:  # a scripted take is cheaper to record again than to ask about
                self.ask_to_keep()
            if self.saved:  # what is kept, and how to go on (appending continues exactly)
                rest = f"; --episodes {self.episodes - self.saved} with the same --out records the rest" \
                    if self.episodes is not None and self.saved < self.episodes else ""
                print(f"roboil: stopped with {self.saved} episode(s) saved this time, {self.store.n_episodes} in "
                      f"'{self.store.path}'{rest}", file=sys.stderr)
            raise
        finally:
            self.progress.close()
            if not interrupted and self.take is not None and self.take.frames and self.person is not None:
                print(f"the take in progress ({self.take.frames} frames) was not saved", file=sys.stderr)
        return self.summary()

    def controls(self) -> list[str]:
        if self.episodes is not None and self.saved >= self.episodes:
            return [QUIT]
        if self.person is not None:
            return list(self.person.device.controls())
        if not self.recording:
            return [SAVE] if self.take is not None and self.take.end is not None else [START]
        return []

    def handle(self, control: str) -> None:
        now = time.monotonic()
        confirmed = self.confirm is not None and self.confirm[0] == control and now - self.confirm[1] < CONFIRM_SECONDS
        self.confirm = None
        take = self.take
        if control == START and not self.recording and take is not None and take.end is None:
            self.recording = True
            take.started = time.time()
        elif control == SAVE and take is not None and take.frames:
            self.save()
        elif control in (DISCARD, RETRY) and take is not None:  # a discard before any frame skips a bad start
            self.drop_take("discarded" if control == DISCARD else "retry")
            self.new_take(retry=control == RETRY)
        elif control == DELETE_LAST:
            if self.recording:
                self.last_result = "stop the take first (save or discard), then delete"
            elif not self.store.n_episodes:
                self.last_result = "no episode to delete"
            elif confirmed:
                attrs = self.store.delete_last_episode()
                self.deleted += 1
                if self.saved:  # one of this session's: it no longer counts toward --episodes
                    self.saved -= 1
                    self.successes -= bool(attrs.get("success"))
                    self.progress.update(-1)
                self.last_result = f"deleted episode {self.store.n_episodes} (seed {attrs.get('seed')})"
                print(self.last_result, file=sys.stderr)  # the session's log keeps what the store lost
            else:
                self.confirm = (control, now)
                self.last_result = f"press delete again to delete episode {self.store.n_episodes - 1}"
        elif control == QUIT:
            if take is not None and take.frames and self.person is not None and not confirmed:
                self.confirm = (control, now)
                self.last_result = "press quit again to drop this unsaved take (save keeps it)"
            else:
                self.done = True
        elif control == TAKE_OVER and self.policy is not None and self.in_control is self.policy:
            self.in_control = self.driver
            # the person starts from where the robot is: the controller re-reads the measured state, the device's
            # grippers take the policy's last command (a held object stays held)
            self.controller.reset()
            grippers = getattr(self.controller, "grippers", None)
            take_over = getattr(self.driver.device, "take_over", None)
            if grippers is not None and take_over is not None and self.last_action is not None:
                take_over(grippers(self.last_action))
            if take is not None and self.recording:
                take.interventions += 1
        elif control == HAND_BACK and self.policy is not None and self.in_control is not self.policy:
            self.in_control = self.policy
            self.policy.device.reset()  # its queued chunk and observation history predate the correction

    def next_seed(self) -> int:
        """The seed of the next new take: the store's episode count on from ``seed``, past every seed used."""
        seed = self.seed + self.store.n_episodes
        return seed if self.last_seed is None else max(seed, self.last_seed + 1)

    def new_take(self, retry: bool) -> None:
        """Reset the env to the next take's start (the same one on retry) and show it; recording waits for START."""
        if retry and self.take is not None:
            seed, state = self.take.seed, self.take.state
        else:
            seed, state = self.next_seed(), None
            starts = getattr(self.driver.device, "start", None) if self.driver is not None else None
            if starts is not None:
                seed, state = starts(self.saved)
        self.last_seed = seed
        device_seed, noise_seed = np.random.SeedSequence(seed).spawn(2)
        self.rng.bit_generator.state = np.random.PCG64(device_seed).state
        self.noise_rng = np.random.default_rng(noise_seed)
        with self.scene_lock:
            self.env.reset(seed=seed, options=None if state is None else {"state": state})
            if state is None:
                state = self.env.state()
        for role in (self.driver, self.policy, self.labeler):
            if role is not None:
                role.device.reset()
        if self.controller is not None:
            self.controller.reset()
        self.in_control = self.policy if self.policy is not None else self.driver
        self.take = Take(seed, state, steps={key: [] for key in self.store.features})
        self.recording = False

    def step(self, tick: float) -> None:
        take, env = self.take, self.env
        acting = self.in_control
        action = self.to_action(acting.device.act(env.raw_obs))
        label = action if self.labeler is None else self.to_action(self.labeler.device.act(env.raw_obs))
        ends = [out for out in (action, label) if out is None or isinstance(out, str)]
        if ends:  # a device ended the take: None keeps it, DISCARD drops it
            if DISCARD in ends or not take.frames:
                self.empty_takes += not take.frames
                if self.empty_takes >= MAX_EMPTY_TAKES:
                    raise RoboilError(f"the devices ended {MAX_EMPTY_TAKES} takes in a row before their first step; "
                                      "check --device and --labeler (e.g. a replay store without actions)")
                self.discarded += not take.frames  # drop_take counts a take with frames
                self.drop_take("discarded")
                self.new_take(retry=False)
            else:
                take.end = "device"
                self.recording = False
            return
        self.empty_takes = 0
        observed = env.last_obs
        executed = np.asarray(action, dtype=self.action_dtype)
        self.last_action = executed
        if self.action_noise:
            executed = np.clip(executed + self.noise_rng.normal(size=executed.shape) * self.noise_scale,
                               env.action_space.low, env.action_space.high)
        _, _, terminated, truncated, info = env.step(executed)
        # the step's row, appended in one place: an interrupt leaves the take's lists the same length
        take.tick_times.append(tick)
        for key, value in observed.items():
            take.steps[key].append(value)
        take.steps[ACTION].append(np.asarray(label, dtype=self.action_dtype))
        take.acted_by.append(acting.name)
        take.success = bool(info.get("is_success", False))
        if terminated or truncated:
            take.end = "terminated" if terminated else "time-limit"
            self.recording = False
            self.last_result = f"take ended ({take.end}, {'success' if take.success else 'no success'})"

    def to_action(self, output):
        if isinstance(output, EndEffectorCommand):
            if self.controller is None:
                teleop_spec(self.env.task)  # the one-line error: the task has no end-effector control
            return self.controller(output)
        return output

    # ---- ends of takes -----------------------------------------------------------------------------------

    def save(self, next_take: bool = True) -> None:
        take, self.take = self.take, None  # detached first: an interrupt from here on cannot offer it again
        self.recording = False
        times = np.asarray(take.tick_times)
        paced = self.person is not None
        achieved = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
        on_time = None if not paced else (achieved is None or (achieved >= ON_TIME_RATE * self.fps
                                                                and take.late_ticks <= LATE_SHARE * take.frames))
        driver_name = self.driver.name if self.driver is not None else POLICY
        attrs = {  # a driver's own first (where a replay came from): the session's below cannot be overridden
            **(describe() if (describe := getattr(self.driver and self.driver.device, "episode_attrs", None)) else {}),
            "seed": take.seed, "start_state": take.state.tolist() if take.state is not None else None,
            "success": take.success, "task": self.task, "device": driver_name, "operator": self.operator,
            "source": self.policy.name if self.policy is not None else driver_name,
            "labeler": self.labeler.name if self.labeler is not None else driver_name,
            "acted_by": run_lengths(take.acted_by), "interventions": take.interventions, "length": take.frames,
            "terminated": take.end == "terminated",  # ended in a terminal state (not cut by a limit or a person)
            "end": take.end or "saved", "action_noise": self.action_noise,
            # the recorded actions are labels, not what was executed (a labeler, or noise): replay cannot redo it
            "relabeled": self.labeler is not None or bool(self.action_noise),
            "started": take.started, "finished": time.time(), "control_fps": self.fps, "paced": paced,
            "achieved_fps": achieved if paced else None, "late_ticks": take.late_ticks if paced else None,
            "on_time": on_time,  # None: not paced (the steps' timing is the simulation's)
        }
        index = self.store.add_episode({k: np.stack(v) for k, v in take.steps.items()}, attrs)
        self.saved += 1
        self.successes += take.success
        self.progress.update(1)
        timing = "" if on_time is not False else f", below its rate ({achieved:.1f} of {self.fps:g} fps, flagged)"
        self.last_result = f"saved episode {index} ({'success' if take.success else 'no success'}{timing})"
        if self.person is not None or not next_take:
            print(self.last_result, file=sys.stderr)
        if next_take and (self.episodes is None or self.saved < self.episodes):
            self.new_take(retry=False)

    def drop_take(self, why: str) -> None:
        """Stop recording the take; its frames are dropped when the next take starts."""
        if self.take is not None and self.take.frames:
            self.discarded += 1
            self.last_result = f"{why}: dropped {self.take.frames} frames"
            if self.person is not None:  # beside the saves in the session's log (a scripted one says it in the end)
                print(self.last_result, file=sys.stderr)
        self.recording = False

    def ask_to_keep(self) -> None:
        """After Ctrl-C: a take with frames is kept only if the person says so (no terminal: not kept)."""
        take = self.take
        if take is None or not take.frames:
            return
        keep = False
        if sys.stdin is not None and sys.stdin.isatty():
            try:
                answer = input(f"\nkeep the take in progress ({take.frames} frames) as episode "
                               f"{self.store.n_episodes}? [y/N] ")
                keep = answer.strip().lower() in ("y", "yes")
            except (KeyboardInterrupt, EOFError):
                keep = False
        if keep:
            take.end = take.end or "interrupted"
            self.save(next_take=False)
        else:
            print(f"the take in progress ({take.frames} frames) was not saved", file=sys.stderr)
        self.take = None

    # ---- what the person sees ----------------------------------------------------------------------------

    def status(self) -> list[tuple[str, str]]:
        take = self.take
        if take is not None and take.tick_times:
            recent = np.asarray(take.tick_times[-int(self.fps) - 1:])
            rate = f"{(len(recent) - 1) / (recent[-1] - recent[0]):.1f} / {self.fps:g} Hz" if len(recent) > 1 \
                and recent[-1] > recent[0] else f"- / {self.fps:g} Hz"
        else:
            rate = f"- / {self.fps:g} Hz"
        state = "RECORDING" if self.recording else ("ended: save, discard or retry" if take and take.end
                                                    else "paused: start to record")
        lines = [("episode", f"{self.store.n_episodes} (seed {take.seed if take else '-'})"), ("state", state),
                 ("frames", str(take.frames if take else 0)), ("control rate", rate),
                 ("late ticks", str(take.late_ticks if take else 0)), ("last", self.last_result),
                 ("in control", self.in_control.name if self.in_control is not None else "-"),
                 ("saved", f"{self.saved} this session, {self.successes} successful")]
        device_status = getattr(self.person.device, "status", None) if self.person is not None else None
        if device_status is not None:
            lines.append(("device", device_status()))
        return lines

    def help(self) -> list[tuple[str, str]]:
        device_help = getattr(self.person.device, "help", None) if self.person is not None else None
        return device_help() if device_help is not None else []

    def summary(self) -> dict:
        return {"store": str(self.store.path), "recorded": self.saved, "discarded": self.discarded,
                "deleted": self.deleted, "successes": self.successes, "total_episodes": self.store.n_episodes}
