"""YAML configs with dotted ``key=value`` overrides, validated into typed dataclasses.

Every mistake (unknown key, wrong type, unknown plugin name) is a RoboilError whose one line says what is
valid, so the CLI can print it and exit with code 2.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import RoboilError, one_line


@dataclass
class DataConfig:
    path: str = ""
    obs_keys: list[str] | None = None  # observation arrays the policy reads; None = all in the store
    only_success: bool = True  # train on successful episodes only
    # An observation key shaped like the action (e.g. agent_pos): learn each action as its offset from that key at
    # the same step, and add the current value back at execution. Small corrections are then small numbers the
    # network can resolve, instead of millimetres on a workspace-wide absolute scale.
    action_relative_to: str | None = None
    cache_max_gb: float = 8.0  # RAM for the arrays trained on, smallest first; the others are read from disk


@dataclass
class TrainConfig:
    steps: int = 10000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 500
    lr_schedule: str = "cosine"
    ema_decay: float = 0.0  # 0 disables the EMA of the weights
    grad_clip: float = 0.0  # 0 disables gradient-norm clipping
    device: str = "auto"
    seed: int = 0
    log_every: int = 100
    checkpoint_every: int = 5000
    compile: bool = False
    amp: bool = True  # bf16 autocast on CUDA
    # processes reading batches from disk when the store does not fit data.cache_max_gb; 0: a thread, the faster
    # for lossless frames (no copy between processes); processes pay off for AVIF/JPEG XL on many cores
    loader_workers: int = 0

    def __post_init__(self):
        if self.lr_schedule not in ("cosine", "constant"):
            raise RoboilError(f"train.lr_schedule '{self.lr_schedule}' is invalid; valid: cosine, constant")
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise RoboilError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        check_range("train.lr", self.lr, low=0.0, low_open=True)
        check_range("train.weight_decay", self.weight_decay, low=0.0)
        check_range("train.grad_clip", self.grad_clip, low=0.0)
        check_range("train.ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        for name in ("warmup_steps", "loader_workers"):
            if getattr(self, name) < 0:
                raise RoboilError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.seed < 0:
            raise RoboilError(f"train.seed must be >= 0, got {self.seed}")


def check_range(where: str, value: float, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    """A one-line error unless ``value`` is finite and within the bounds (open bounds exclude themselves)."""
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or too_low or too_high:
        bounds = " and ".join(b for b in (
            f"{'>' if low_open else '>='} {low}" if low is not None else "",
            f"{'<' if high_open else '<='} {high}" if high is not None else "") if b)
        raise RoboilError(f"config key '{where}' must be a finite number {bounds}, got {value}")


DEFAULT_EXECUTOR = "queue"


@dataclass
class EvalConfig:
    """Defaults of ``roboil eval`` for this run (its command-line options override them)."""

    episodes: int = 50
    envs: int = 2
    seed: int = 100000
    max_steps: int | None = None  # None = the task's own episode length
    # with --video the first ones are filmed, plus a failure and a success if they hold none (0: none filmed)
    video_episodes: int = 4
    executor: dict[str, Any] = field(default_factory=lambda: {"name": DEFAULT_EXECUTOR})  # name + its params

    def __post_init__(self):
        for name in ("episodes", "envs"):
            if getattr(self, name) < 1:
                raise RoboilError(f"eval.{name} must be at least 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise RoboilError(f"eval.seed must be >= 0, got {self.seed}")
        if self.max_steps is not None and self.max_steps < 1:
            raise RoboilError(f"eval.max_steps must be at least 1 (or null for the task's own), got {self.max_steps}")
        if self.video_episodes < 0:
            raise RoboilError(f"eval.video_episodes must be >= 0, got {self.video_episodes}")


@dataclass
class Config:
    task: str
    algorithm: dict[str, Any]
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # observation kind -> encoder params
    # logger plugins this run writes to, by plugin name (e.g. [tensorboard]); each acts only when it is listed here
    loggers: list[str] = field(default_factory=list)
    # the sections above validated into the plugins' dataclasses, by validate() (not part of the YAML)
    algorithm_params: Any = field(default=None, init=False, repr=False, compare=False)
    encoder_params: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def algorithm_name(self) -> str:
        return self.algorithm["name"]


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["train.steps=100", "data.path=x.zarr"]`` into a nested dict; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RoboilError(f"override '{item}' is not of the form key=value (e.g. train.steps=1000)")
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RoboilError(f"override '{item}' conflicts with another override of '{part}'")
        node[leaf] = yaml.safe_load(raw) if raw else ""
    return nested


def merge(base: dict, update: Mapping) -> dict:
    """Recursively merge ``update`` into a copy of ``base``."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RoboilError(f"config file '{path}' does not exist; pass one of the YAML files in configs/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise RoboilError(f"config file '{path}' is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}); save it as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise RoboilError(f"config file '{path}' is not valid YAML{where}; fix the syntax") from None
    if not isinstance(data, dict):
        raise RoboilError(f"config file '{path}' must hold a mapping of sections (task, algorithm, data, train, ...)")
    return data


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats, lists for tuples)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce(value, option, where)
            except RoboilError:
                pass
        raise RoboilError(f"config key '{where}' must be {' or '.join(map(_type_name, typing.get_args(tp)))}, "
                          f"got {value!r}")
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise RoboilError(f"config key '{where}' must be a list, got {value!r}")
        (item_type, *_) = typing.get_args(tp) or (Any,)
        items = [coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise RoboilError(f"config key '{where}' must be a mapping, got {value!r}")
        key_type, value_type = typing.get_args(tp) or (Any, Any)
        return {coerce(k, key_type, where): coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise RoboilError(f"config key '{where}' must be {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type, data: Any, where: str = ""):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise a one-line RoboilError."""
    prefix = f"{where}." if where else ""
    if not isinstance(data, Mapping):
        raise RoboilError(f"config section '{where or cls.__name__}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        valid = ', '.join(sorted(fields)) or "none, it takes no parameters"
        raise RoboilError(f"unknown config key '{prefix}{unknown[0]}'; valid keys"
                          f"{' in ' + where if where else ''}: {valid}")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise RoboilError(f"config key '{prefix}{missing[0]}' is required")
    kwargs = {name: coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, AssertionError) as exc:  # a plugin's __post_init__ refusing a value, say
        raise RoboilError(f"config section '{where or cls.__name__}' is invalid: {one_line(exc)}") from None


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config, apply dotted overrides, and validate it (the algorithm section too)."""
    return config_to_train(merge(read_yaml(path), parse_overrides(list(overrides))))


def config_to_train(raw: Mapping) -> Config:
    """A config as given to ``roboil train`` validated, with the checks that a checkpoint's config (which loads
    where its loggers are not installed, and lists every train.* key) does not get."""
    config = validate(raw)
    check_train_keys(raw.get("train") or {}, config.train, config.algorithm_name)
    check_loggers(config.loggers)
    return config


# what the core applies to every training loop, an algorithm's own included (TrainContext reads them)
CORE_TRAIN_KEYS = ("steps", "seed", "device", "log_every", "checkpoint_every")


def check_train_keys(given: Mapping, train: TrainConfig, algorithm: str) -> None:
    """``train.*`` keys the config sets that the algorithm's own loop does not apply are a one-line error, not
    settings silently ignored. A resolved config, listing every key (a checkpoint's config.yaml), is held to
    those it sets off their defaults (here, not in validate(), which reads a checkpoint's config to resume)."""
    from .plugins import registry

    read = registry().get("algorithm", algorithm).train_keys
    if read is None:  # the core's loop, or an own one that does not say
        return
    if set(given) >= {f.name for f in dataclasses.fields(TrainConfig)}:
        default = TrainConfig()
        given = [key for key in given if getattr(train, key) != getattr(default, key)]
    if ignored := sorted(set(given) - {*CORE_TRAIN_KEYS, *read}):
        keys = ", ".join(f"train.{key}" for key in ignored)
        raise RoboilError(f"config key{'s' if len(ignored) > 1 else ''} {keys} {'are' if len(ignored) > 1 else 'is'} "
                          f"not used by algorithm '{algorithm}', which trains in its own loop applying "
                          f"{honoured_train_keys(read)}; drop {'them' if len(ignored) > 1 else 'it'}")


def honoured_train_keys(read: tuple[str, ...]) -> str:
    """E.g. "train.lr and the core's train.steps, train.seed, ...": what an algorithm's own loop applies."""
    core = "train." + ", train.".join(CORE_TRAIN_KEYS)
    return f"{'train.' + ', train.'.join(read) + ' and ' if read else 'only '}the core's {core}"


# the lifecycle hooks a logger plugin implements (what makes a plugin's name valid in ``loggers``)
LOGGER_HOOKS = ("on_train_step_end", "on_checkpoint_saved", "on_eval_episode_end", "on_eval_end")
# built-in loggers whose package is an optional extra of roboil: logger name -> the module that extra installs
LOGGER_EXTRAS = {"tensorboard": "tensorboard"}


def missing_logger_package(name: str) -> str:
    """The one line for a built-in logger whose optional extra is not installed."""
    return (f"logger '{name}' needs the {LOGGER_EXTRAS[name]} package, which is not installed; "
            f"pip install 'roboil[{name}]' (or remove '{name}' from loggers)")


def check_loggers(loggers: list[str]) -> None:
    """At the start of training: each name in ``loggers`` must be an installed plugin implementing a lifecycle
    hook, and a built-in logger's optional package must be importable (one-line RoboilErrors)."""
    from .plugins import registry

    hook = registry().hook
    available = sorted({impl.plugin_name for name in LOGGER_HOOKS if hasattr(hook, name)
                        for impl in getattr(hook, name).get_hookimpls()})
    for name in loggers:
        if name in LOGGER_EXTRAS and importlib.util.find_spec(LOGGER_EXTRAS[name]) is None:
            raise RoboilError(missing_logger_package(name))
        if name not in available:
            raise RoboilError(f"unknown logger '{name}' in config key 'loggers'; valid: "
                              f"{', '.join(available) or 'none installed'}")


def named_section(kind: str, section: Mapping, where: str):
    """Split a ``{name: ..., **params}`` section into (the registered record, its params as the record's config
    dataclass); both steps give one-line errors listing what is valid."""
    from .plugins import registry

    reg = registry()
    if "name" not in section:
        raise RoboilError(f"config key '{where}.name' is required; valid: {', '.join(reg.names(kind))}")
    params = dict(section)
    spec = reg.get(kind, params.pop("name"))
    own = {f.name for f in dataclasses.fields(spec.config)}
    for key in sorted(set(params) - own):  # left from another one's config when only the name was changed
        if owners := [other for other in reg.names(kind) if key in {f.name for f in
                                                                   dataclasses.fields(reg.get(kind, other).config)}]:
            raise RoboilError(f"config key '{where}.{key}' is for {kind} '{owners[0]}', not '{spec.name}'; set "
                              f"{where}.name={owners[0]} or drop the key (a config written for {spec.name} has none "
                              f"of {owners[0]}'s)")
    return spec, from_dict(spec.config, params, where)


def make_observers(env, observations: Mapping[str, Mapping]) -> dict:
    """``{kind: observer}`` for a live env from ``{kind: params}``, each kind's params validated into its
    dataclass; an observer without a ``features`` dict of Features, or declaring a key another kind writes (one
    store array cannot hold both), is refused in one line naming the kinds."""
    from .keys import ACTION
    from .plugins import PluginError, registry
    from .specs import Feature

    reg = registry()
    observers, writer = {}, {ACTION: "the task's actions"}
    for kind, params in observations.items():
        spec = reg.get("observation", kind)
        observer = reg.call("observation", kind, "make_observer", env,
                            from_dict(spec.params, params or {}, f"obs.{kind}"))
        features = getattr(observer, "features", None)
        if not isinstance(features, Mapping) or not all(isinstance(f, Feature) for f in features.values()):
            raise PluginError(f"observation '{kind}' (plugin '{reg.owner('observation', kind)}'): its observer's "
                              f"features is {type(features).__name__}, not a dict of roboil.Feature by array key")
        for key, feature in features.items():
            if feature.kind != kind:  # the store's layout and the training encoder are looked up by it
                raise PluginError(f"observation '{kind}' (plugin '{reg.owner('observation', kind)}'): its observer "
                                  f"declares '{key}' of kind '{feature.kind}'; a Feature's kind is the name of the "
                                  f"observation kind making it, '{kind}'")
            if key in writer:
                if key == ACTION:
                    raise PluginError(f"observation '{kind}' (plugin '{reg.owner('observation', kind)}'): its "
                                      f"observer declares '{ACTION}', the array of the task's actions; rename it")
                raise RoboilError(f"observations '{writer[key]}' and '{kind}' both write the array '{key}'; one "
                                  f"store array cannot hold both: drop one of them from obs")
            writer[key] = kind
        observers[kind] = observer
    return observers


def validate(raw: Mapping) -> Config:
    from .plugins import registry

    config = from_dict(Config, raw)
    reg = registry()
    reg.get("task", config.task)
    spec, config.algorithm_params = named_section("algorithm", config.algorithm, "algorithm")
    # the validated params go back with defaults filled in, so the run dir is self-describing
    config.algorithm = {"name": spec.name, **dataclasses.asdict(config.algorithm_params)}
    executor, executor_params = named_section("executor", {"name": DEFAULT_EXECUTOR, **config.eval.executor},
                                              "eval.executor")
    config.eval.executor = {"name": executor.name, **dataclasses.asdict(executor_params)}
    for kind, params in config.encoders.items():
        observation = reg.get("observation", kind)
        config.encoder_params[kind] = from_dict(observation.encoder_params, params, f"encoders.{kind}")
    return config


def to_dict(config: Config) -> dict:
    """The YAML sections of a config (not the typed copies validate() adds)."""
    return {f.name: dataclasses.asdict(value) if dataclasses.is_dataclass(value := getattr(config, f.name))
            else value for f in dataclasses.fields(config) if f.init}
