"""Typed registration records that plugins return from the ``register_*`` hooks.

Every record is a small frozen dataclass with a ``name`` that the plugin manager validates (lowercase,
unique within its kind). Factories are plain callables so a plugin stays a few lines long.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields
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
    """How the episode store keeps one key.

    - ``time_chunk``: steps per chunk, the unit a read decodes (1 for images: a window decodes only its frames).
    - ``shard_rows``: steps per file, a multiple of ``time_chunk`` (zarr v3 sharding: a file holds many chunks,
      so the file count grows with steps / shard_rows). None: the store picks about 1024 steps, at most 32 MiB
      raw; ``time_chunk``: a file per chunk, as stores made before sharding.
    - ``codec``: ``"lossless"`` (Blosc with ``cname`` and ``clevel``), or for uint8 images a lossy codec at
      ``quality`` 1..100: ``"jpeg"``, ``"jpegxl"`` or ``"avif"`` with ``time_chunk`` 1, or ``"h264"`` (uint8
      (H, W, 3) frames, a chunk of ``time_chunk`` frames as one short video). They need
      ``pip install roboil[codecs]``; see :mod:`roboil.codecs`.
    """

    time_chunk: int
    cname: str = "zstd"
    clevel: int = 3
    shard_rows: int | None = None
    codec: str = "lossless"
    quality: int = 90


@dataclass(frozen=True)
class NoParams:
    """The parameters of a plugin part that takes none: any ``key=value`` given for it is an unknown-key error."""


def resumable(default: Any = MISSING, *, default_factory: Callable[[], Any] = MISSING):
    """An algorithm parameter a resumed run may change (how often to evaluate, say): ``every: int =
    roboil.resumable(0)``. The others are frozen once a run has a checkpoint, as they define the model it trains."""
    return field(default=default, default_factory=default_factory, metadata={RESUMABLE: True})


RESUMABLE = "roboil.resumable"
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
    - ``layout(feature, params)`` chooses the store chunking and codec for one of its arrays; ``params`` is the
      ``params`` instance the recording used (the defaults for an import).
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
    layout: Callable[[Feature, Any], ArrayLayout]
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


# Session controls: what a person asks of ``roboil record`` through an interactive device (Device.controls()).
START = "start"  # start recording a take from the start shown
SAVE = "save"  # commit the take as an episode
DISCARD = "discard"  # drop the take and move on to a new start; also what act() returns to drop it
RETRY = "retry"  # drop the take and go back to the same start
DELETE_LAST = "delete-last"  # delete the last saved episode (asks for a second press)
QUIT = "quit"  # end the session (asks for a second press while a take is being recorded)
TAKE_OVER = "take-over"  # intervention mode: the person drives instead of the policy
HAND_BACK = "hand-back"  # intervention mode: the policy drives again
CONTROLS = (START, SAVE, DISCARD, RETRY, DELETE_LAST, QUIT, TAKE_OVER, HAND_BACK)


@dataclass(frozen=True)
class EndEffectorCommand:
    """What an input device asks of the robot at one control tick, in end-effector space (world frame).

    Devices produce these; the task's :class:`TeleopSpec` controller turns them into its action space, so every
    device drives every task that has one.

    - ``translation``: (x, y, z) velocity, each in [-1, 1], as a fraction of the task's top speed.
    - ``rotation``: (x, y, z) angular velocity about the world axes, each in [-1, 1], as a fraction of the
      task's top angular speed (ignored by tasks whose ``TeleopSpec.rotation`` is False).
    - ``gripper``: the gripper's target opening, -1 closed to 1 open (a position, not a rate).
    - ``arm``: index into ``TeleopSpec.arms`` of the arm these commands drive; the others hold still.
    """

    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gripper: float = 1.0
    arm: int = 0


class Controller(Protocol):
    """A task's end-effector controller for one environment: ``reset()`` after each ``env.reset`` (or state
    restore) and when a person takes over (it re-reads where the robot is), then ``command -> action`` in the
    task's action space, once per control tick. Optional ``grippers(action)``: the opening (-1 closed .. 1 open)
    each arm's gripper is commanded to by an action, so a person taking over keeps what the policy held."""

    def reset(self) -> None: ...

    def __call__(self, command: EndEffectorCommand) -> np.ndarray: ...


@dataclass(frozen=True)
class TeleopSpec:
    """How end-effector commands drive a task (``TaskSpec.teleop``).

    ``make_controller(env)`` returns a :class:`Controller` for ``env``, the task's own gymnasium env (as
    ``make_env`` made it, maybe wrapped: use ``env.unwrapped``). ``arms`` names the arms a device can switch
    between (``("left", "right")`` for a bimanual robot); ``rotation`` says whether commands rotate the gripper.
    """

    make_controller: Callable[[Any], Controller]
    arms: tuple[str, ...] = ("arm",)
    rotation: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """A simulated task.

    - ``make_env(render_mode)`` returns a gymnasium env whose ``info`` carries ``is_success`` at every step, with
      no time limit of its own: the core applies one, ``max_episode_steps`` (``roboil eval --max-steps``
      replaces it), so a task's other wrappers are kept whatever the limit.
    - ``make_expert(rng)`` returns a scripted :class:`Expert` for ``roboil record --device scripted``.
    - ``observations``: the default observation kinds and their params, e.g. ``{"proprio": {}}``.
    - ``goal``: which observation arrays are goals, for goal-conditioned algorithms (None if not a goal task).
    - ``episode_metrics``: extra float ``info`` entries reported at episode end (e.g. ``coverage``).
    - ``get_state(env) -> 1-d float64 array``: everything ``env.reset`` randomized and the simulation's state
      (for MuJoCo, :func:`roboil.sim.mujoco_state` plus e.g. the goal); ``set_state(env, state) -> raw_obs`` puts
      a freshly reset env in that state and returns its observation. The recorder stores each episode's start
      state, and replay re-simulates from it. ``env`` is the task's own env, as for ``TeleopSpec``.
    - ``scene(env) -> (mujoco.MjModel, mujoco.MjData)``: the MuJoCo scene the teleop viewer shows.
    - ``teleop``: how input devices drive the task (None: only the scripted expert, replay and policies can).
    """

    name: str
    make_env: Callable[..., Any]
    make_expert: Callable[[np.random.Generator], Expert]
    observations: Mapping[str, Mapping] = field(default_factory=lambda: {"proprio": {}})
    goal: GoalKeys | None = None
    episode_metrics: tuple[str, ...] = ()
    max_episode_steps: int | None = None
    fps: float = 25.0
    get_state: Callable[[Any], np.ndarray] | None = None
    set_state: Callable[[Any, np.ndarray], Any] | None = None
    scene: Callable[[Any], tuple[Any, Any]] | None = None
    teleop: TeleopSpec | None = None
    summary: str = ""


class Device(Protocol):
    """Acts (or labels) in ``roboil record``.

    - ``reset()`` at the start of each take; ``act(raw_obs)`` returns an action in the task's action space, an
      :class:`EndEffectorCommand` (the task's teleop controller makes it an action), ``None`` to end the
      episode and keep it, or :data:`DISCARD` to end it and drop it.
    - Optional ``controls() -> list[str]``: the session controls (:data:`CONTROLS`) asked for since the last
      call; the session calls it once per control tick, recording or not. Devices whose spec is
      ``interactive`` have it.
    - Optional ``start(take) -> (seed, state or None)``: where take ``take`` (0-based, counted over the
      session's saved episodes) starts, instead of the session's seed (e.g. replaying a stored episode).
    - Optional ``episode_attrs() -> dict``: the driver's attrs saved with the take's episode besides the
      session's, which keep their names (e.g. the stored episode a replay came from).
    - Optional ``status() -> str``: one line for the viewer's overlay (e.g. the arm driven, its gripper).
    - Optional ``help() -> list[(keys, what they do)]``: the viewer shows it.
    - Optional ``take_over(grippers)``: a person takes over from a policy whose last action commanded these
      gripper openings (:meth:`Controller.grippers`); the device's gripper targets follow them.
    - Optional ``close()``: called once when recording ends, however it ends.
    """

    def reset(self) -> None: ...

    def act(self, raw_obs: Any) -> np.ndarray | EndEffectorCommand | None | str: ...


@dataclass(frozen=True)
class DeviceContext:
    """What a device is made from: the task, its live env (a :class:`roboil.envs.ObservedEnv`; the task's own
    env is ``env.env``), a random generator re-seeded with each take's seed (recordings are reproducible and
    resumable), the ``params`` instance from ``device.PARAM=value`` (or ``labeler.PARAM=value``), and the
    viewer window when the session shows one (``held()``/``pressed()`` give the keyboard, ``heading()`` the camera's
    direction; None when headless), ``episodes``, how many the session is to save (None: until a person quits),
    so a device with fewer takes to give can refuse before anything is recorded, and ``output``, the
    :class:`roboil.store.EpisodeStore` the session appends to, open for reading (None when it makes a new one),
    so a device can continue from what it holds."""

    task: TaskSpec
    env: Any
    rng: np.random.Generator
    params: Any
    viewer: Any = None
    episodes: int | None = None
    output: Any = None


@dataclass(frozen=True)
class DeviceSpec:
    """An input device for ``roboil record --device NAME`` (or ``--labeler NAME``).

    ``make_device(context)`` returns a :class:`Device` for a :class:`DeviceContext`; ``config`` is the dataclass
    of its parameters. ``interactive``: a person drives it, so the session shows the viewer (unless
    ``--no-viewer``), runs in real time at the task's rate and waits for the person's controls to start and
    save takes. A device that cannot work here (a library, the hardware or a display missing) raises a
    :class:`roboil.errors.RoboilError` saying what to install or set.
    """

    name: str
    make_device: Callable[[DeviceContext], Device]
    config: type = NoParams
    interactive: bool = False
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
    - ``train_keys``: with ``train``, the ``train.*`` settings that loop applies itself (say ``("batch_size",
      "lr")``; the core reads ``steps``, ``seed``, ``device``, ``log_every`` and ``checkpoint_every`` for every
      loop): a config setting another one is refused in one line instead of being ignored.
      ``None``: not declared, nothing is checked.
    """

    name: str
    config: type
    build: Callable[[Any], Any]
    train: Callable[[Any], None] | None = None
    summary: str = ""
    train_keys: tuple[str, ...] | None = None

    def train_keys_problem(self) -> str | None:
        """What is wrong with ``train_keys``, if anything."""
        from .config import CORE_TRAIN_KEYS, TrainConfig

        if self.train_keys is None:
            return None
        if self.train is None:
            return f"train_keys={self.train_keys!r} without a train loop of its own (the core's honours them all)"
        if not isinstance(self.train_keys, tuple):
            return f"train_keys={self.train_keys!r}; give a tuple of names of train.* settings"
        known = {f.name for f in fields(TrainConfig)} - set(CORE_TRAIN_KEYS)
        if unknown := [key for key in self.train_keys if key not in known]:
            return (f"train_keys names {unknown[0]!r}, not a train.* setting a loop applies itself; valid: "
                    f"{', '.join(sorted(known))} (the core reads {', '.join(CORE_TRAIN_KEYS)} for every loop)")
        if len(set(self.train_keys)) < len(self.train_keys):
            return f"train_keys={self.train_keys!r} names a key twice; name each once"
        return None


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
