"""Helpers for testing roboil plugins, importable from any plugin's test suite (no pytest needed).

- :func:`check_plugin` / :func:`assert_plugin_ok`: a static check of a plugin against the contract of
  ``roboil/hookspecs.py`` and ``roboil/specs.py``: hook names and signatures, record types, names, parameter
  dataclasses, callables. It calls the ``register_*`` hooks, nothing else.
- :func:`smoke_run`: record a few scripted episodes, train a few steps and evaluate an episode, through the same
  functions ``roboil record``, ``roboil train`` and ``roboil eval`` run; a failure names the stage.
- :func:`fake_build_context` / :func:`fake_batch`: build an algorithm's model and feed it a batch shaped as the
  core's sampler shapes them, without an episode store.

Example (a plugin's ``tests/test_plugin.py``)::

    from roboil.testing import assert_plugin_ok, fake_batch, fake_build_context, smoke_run

    def test_plugin_is_valid():
        assert_plugin_ok("my-plugin")  # its entry-point name: also checks the package registers it

    def test_loss():
        context = fake_build_context({"state": (4,)}, action_dim=2, algorithm="my-bc")
        model = my_plugin.build(context)
        loss, metrics = model.compute_loss(fake_batch(context, 8, model))

    def test_record_train_evaluate(tmp_path):
        smoke_run("my-task", "configs/my_bc.yaml", tmp_path)

The torch-backed helpers import torch when called; importing this module does not.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import json
import math
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np

from . import hookspecs
from .keys import ACTION, ACTION_IS_PAD, FUTURE_PREFIX, NEXT_IS_PAD, NEXT_PREFIX
from .specs import (NAME_PATTERN, NORMALIZATIONS, AlgorithmSpec, DeviceSpec, ExecutorSpec, Feature, GoalKeys,
                    ObservationSpec, TaskSpec, TeleopSpec)

__all__ = ["check_plugin", "assert_plugin_ok", "smoke_run", "SmokeRunError", "fake_build_context", "fake_batch",
           "unit_stats"]

ENTRY_POINT_GROUP = "roboil"

# registration hook -> (the record type it returns, the kind's name in messages and in the registry)
REGISTRATIONS = {
    "register_algorithms": (AlgorithmSpec, "algorithm"),
    "register_observations": (ObservationSpec, "observation"),
    "register_tasks": (TaskSpec, "task"),
    "register_devices": (DeviceSpec, "device"),
    "register_executors": (ExecutorSpec, "executor"),
}
# fields of each record that must be callables, and those that may also be None
CALLABLE_FIELDS = {
    AlgorithmSpec: (("build",), ("train",)),
    ObservationSpec: (("make_observer", "layout", "make_encoder"), ()),
    TaskSpec: (("make_env", "make_expert"), ("get_state", "set_state", "scene")),
    DeviceSpec: (("make_device",), ()),
    ExecutorSpec: (("make",), ()),
}
# fields of a record that name a dataclass: configs and command-line parameters are validated against them
PARAMETER_FIELDS = ("config", "params", "encoder_params")


# --------------------------------------------------------------------------------------------- check_plugin


def check_plugin(plugin: Any, installed: bool = True) -> list[str]:
    """The problems of a plugin, one line each; an empty list means it follows the contract.

    ``plugin`` is an entry-point name of the ``roboil`` group (which also checks that the package registers
    it), a dotted module name, or the plugin object itself (a module, or an object whose methods are hooks).
    Checked: every ``@roboil.hookimpl`` names a hook roboil defines and takes only parameters that hook passes
    (by name, without defaults); functions named like a hook are marked; each ``register_*`` hook returns a
    list of the right record type, with valid and unique names, parameter dataclasses whose fields all have
    defaults, callables where callables belong (taking the arguments roboil passes them), and sensible task and
    observation settings. With ``installed``, names that another installed plugin already registers and task
    observation kinds that no plugin provides are problems too.
    """
    obj, problems = _resolve(plugin)
    if obj is None:
        return problems
    if installed and isinstance(plugin, str) and not any(
            ep.name == plugin or ep.module == plugin for ep in entry_points(group=ENTRY_POINT_GROUP)):
        problems.append(f"no entry point of the '{ENTRY_POINT_GROUP}' group loads '{plugin}', so roboil never loads "
                        f"it: declare it under [project.entry-points.{ENTRY_POINT_GROUP}] in pyproject.toml (that "
                        "spelling) and reinstall the package")
    specs = _hook_signatures()
    impls = _hook_implementations(obj, specs, problems)
    registered: dict[str, list] = {}
    for hook, function in impls.items():
        if hook in REGISTRATIONS:
            record_type, kind = REGISTRATIONS[hook]
            registered[kind] = _check_registration(hook, function, record_type, kind, problems)
    if installed:
        problems.extend(_check_against_installed(obj, registered))
    return problems


def assert_plugin_ok(plugin: Any, installed: bool = True) -> None:
    """Raise an AssertionError listing every problem :func:`check_plugin` finds (for a plugin's test suite)."""
    problems = check_plugin(plugin, installed=installed)
    if problems:
        name = plugin if isinstance(plugin, str) else getattr(plugin, "__name__", type(plugin).__name__)
        raise AssertionError(f"plugin '{name}' has {len(problems)} problem(s):\n"
                             + "\n".join(f"- {p}" for p in problems))


def _resolve(plugin: Any) -> tuple[Any, list[str]]:
    """The plugin object for an entry-point name or a module name (or the object itself), or None and why."""
    if not isinstance(plugin, str):
        return plugin, []
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == plugin]
    if found:
        try:
            return found[0].load(), []
        except Exception as exc:
            return None, [f"entry point '{plugin}' = '{found[0].value}' fails to import: {exc!r}"]
    try:
        return importlib.import_module(plugin), []
    except ModuleNotFoundError as exc:
        if exc.name and (plugin == exc.name or plugin.startswith(exc.name + ".")):
            return None, [f"no installed plugin (entry point in the '{ENTRY_POINT_GROUP}' group) and no module is "
                          f"named '{plugin}'; install its package (pip install -e .) or pass the module"]
        return None, [f"module '{plugin}' fails to import: {exc!r}"]
    except Exception as exc:
        return None, [f"module '{plugin}' fails to import: {exc!r}"]


def _hook_signatures() -> dict[str, inspect.Signature]:
    marker = hookspecs.PROJECT + "_spec"
    return {name: inspect.signature(function) for name, function in vars(hookspecs).items()
            if inspect.isfunction(function) and hasattr(function, marker)}


def _hook_implementations(obj: Any, specs: dict[str, inspect.Signature], problems: list[str]) -> dict:
    """The plugin's hook implementations by hook name, as pluggy finds them; problems with them are appended."""
    import pluggy

    finder = pluggy.PluginManager(hookspecs.PROJECT)  # its own discovery rules, so we see what roboil would
    impls = {}
    for attr in dir(obj):
        if attr.startswith("_"):
            continue
        try:
            opts = finder.parse_hookimpl_opts(obj, attr)
            value = getattr(obj, attr)
        except Exception:
            continue
        if opts is None:
            if inspect.isroutine(value) and _defined_by(value, obj):
                if attr in specs:
                    problems.append(f"function '{attr}' is not marked @roboil.hookimpl, so roboil never calls it")
                elif close := difflib.get_close_matches(attr, specs, n=1, cutoff=0.85):
                    problems.append(f"function '{attr}' looks like the hook '{close[0]}' misspelled and is not marked "
                                    "@roboil.hookimpl; roboil never calls it")
            continue
        hook = opts.get("specname") or attr
        if hook not in specs:
            if not opts.get("optionalhook"):
                close = difflib.get_close_matches(hook, specs, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"hooks: {', '.join(sorted(specs))}"
                problems.append(f"'{attr}' is marked @roboil.hookimpl but roboil defines no hook '{hook}'; {hint}")
            continue
        signature_problems = _check_signature(attr, value, specs[hook])
        problems.extend(signature_problems)
        if not signature_problems:
            impls[hook] = value
    return impls


def _defined_by(function: Any, obj: Any) -> bool:
    """Whether ``function`` belongs to the plugin (a method, or a function of the module), not an import."""
    if inspect.ismodule(obj):
        return getattr(function, "__module__", None) == obj.__name__
    return True


def _check_signature(attr: str, function: Any, spec: inspect.Signature) -> list[str]:
    """pluggy passes a hook's arguments by name, and only the positional parameters without defaults."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return [f"hook '{attr}': its signature cannot be read"]
    allowed = list(spec.parameters)
    may_take = f"it may take {', '.join(allowed)}" if allowed else "it takes no arguments"
    problems = []
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD, parameter.KEYWORD_ONLY):
            problems.append(f"hook '{attr}' takes '{parameter}': pluggy passes arguments by name to plain "
                            f"parameters only; {may_take}")
        elif parameter.name not in allowed:
            problems.append(f"hook '{attr}' takes '{parameter.name}', which the hook does not pass; {may_take}")
        elif parameter.default is not parameter.empty:
            problems.append(f"hook '{attr}': parameter '{parameter.name}' has a default, so pluggy never passes it; "
                            "drop the default")
    return problems


def _check_registration(hook: str, function: Any, record_type: type, kind: str, problems: list[str]) -> list:
    """Call a ``register_*`` hook and check what it returns; returns the records of the right type."""
    try:
        result = function()
    except Exception as exc:
        problems.append(f"{hook}() raised {exc!r}")
        return []
    if result is None:
        problems.append(f"{hook}() returned None; return a list of {record_type.__name__} (an empty list for none)")
        return []
    if isinstance(result, (str, bytes, Mapping)) or dataclasses.is_dataclass(result) \
            or not isinstance(result, Iterable):
        problems.append(f"{hook}() returned {_a(type(result).__name__)}, not a list of {record_type.__name__}; "
                        "wrap it: return [...]")
        return []
    records, seen = [], set()
    for record in result:
        if not isinstance(record, record_type):
            problems.append(f"{hook}() listed {_a(type(record).__name__)}, expected {record_type.__name__}")
            continue
        label = f"{kind} '{record.name}'"
        if not isinstance(record.name, str) or not NAME_PATTERN.match(record.name):
            problems.append(f"{label}: the name is invalid (use lowercase letters, digits, '-' or '_', starting "
                            "with a letter)")
        elif record.name in seen:
            problems.append(f"{label} is registered twice by this plugin")
        seen.add(record.name)
        problems.extend(_check_record(record, label))
        records.append(record)
    return records


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'AEIOUaeiou' else 'a'} {noun}"


def _check_record(record: Any, label: str) -> list[str]:
    problems = []
    for name in PARAMETER_FIELDS:
        if hasattr(record, name):
            problems.extend(_check_parameters(getattr(record, name), f"{label}: {name}"))
    required, optional = CALLABLE_FIELDS[type(record)]
    hints = typing.get_type_hints(type(record), localns={"np": np})  # specs.py imports numpy for annotations only
    for name in required + optional:
        value = getattr(record, name)
        if callable(value):
            problems.extend(_check_arguments(value, hints[name], f"{label}: {name}"))
        elif not (value is None and name in optional):
            problems.append(f"{label}: {name}={value!r} is not callable")
    if not isinstance(record.summary, str):
        problems.append(f"{label}: summary={record.summary!r} is not a string")
    if isinstance(record, ObservationSpec) and record.normalization not in NORMALIZATIONS:
        problems.append(f"{label}: normalization={record.normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    if isinstance(record, TaskSpec):
        problems.extend(_check_task(record, label))
    if isinstance(record, AlgorithmSpec) and (problem := record.train_keys_problem()):
        problems.append(f"{label}: {problem}")
    return problems


def _check_arguments(function: Any, hint: Any, where: str) -> list[str]:
    """A record's callable must take the positional arguments the core passes it, as many as its
    ``Callable[[...], R]`` annotation in ``roboil/specs.py`` lists (``Callable[..., R]`` takes any)."""
    for option in (hint, *typing.get_args(hint)):  # the Callable itself, or inside ``Callable[...] | None``
        if typing.get_origin(option) is Callable:
            arguments = typing.get_args(option)[0]
            break
    else:
        return []
    if arguments is Ellipsis:
        return []
    try:
        inspect.signature(function).bind(*arguments)
    except ValueError:  # a builtin without a readable signature: nothing to check
        return []
    except TypeError as exc:
        return [f"{where} cannot take the {len(arguments)} argument(s) roboil passes ({exc}); see its field in "
                "roboil/specs.py"]
    return []


def _check_parameters(cls: Any, where: str) -> list[str]:
    """A parameter dataclass: a class (not an instance) whose fields all have defaults and resolvable types."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        fix = "pass the class, not an instance" if dataclasses.is_dataclass(cls) else "decorate it with @dataclass"
        return [f"{where}={cls!r} is not a dataclass; {fix}"]
    from .plugins import fields_without_default

    if missing := fields_without_default(cls):
        return [f"{where} {cls.__name__}.{missing[0]} has no default; every parameter needs one (configs and the "
                "command line set only what they change)"]
    try:
        typing.get_type_hints(cls)  # what config values are checked against
    except Exception as exc:
        return [f"{where} {cls.__name__}: its annotations cannot be resolved ({exc!r}); configs are checked "
                "against them"]
    try:
        cls()
    except Exception as exc:
        return [f"{where} {cls.__name__}() fails with its own defaults: {exc!r}"]
    return []


def _check_task(task: TaskSpec, label: str) -> list[str]:
    problems = []
    steps = task.max_episode_steps
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
        problems.append(f"{label}: max_episode_steps={steps!r}; give a positive int (or None for no limit)")
    if not isinstance(task.fps, (int, float)) or not task.fps > 0:
        problems.append(f"{label}: fps={task.fps!r}; give a positive number")
    if (task.get_state is None) != (task.set_state is None):
        problems.append(f"{label}: give get_state and set_state together (one is None)")
    if not isinstance(task.observations, Mapping) or not all(
            isinstance(kind, str) and isinstance(params, Mapping) for kind, params in task.observations.items()):
        problems.append(f"{label}: observations={task.observations!r}; give {{kind: {{param: value}}}}, "
                        "e.g. {'proprio': {}}")
    elif not task.observations:
        problems.append(f"{label}: observations is empty; name at least one observation kind, e.g. {{'proprio': {{}}}}")
    if task.goal is not None and not isinstance(task.goal, GoalKeys):
        problems.append(f"{label}: goal={task.goal!r} is not a roboil.GoalKeys")
    if isinstance(task.episode_metrics, str) or not all(isinstance(m, str) for m in task.episode_metrics):
        problems.append(f"{label}: episode_metrics={task.episode_metrics!r}; give a tuple of info keys")
    if task.teleop is not None:
        if not isinstance(task.teleop, TeleopSpec):
            problems.append(f"{label}: teleop={task.teleop!r} is not a roboil.TeleopSpec")
        elif not callable(task.teleop.make_controller):
            problems.append(f"{label}: teleop.make_controller is not callable")
    return problems


def _check_against_installed(obj: Any, registered: dict[str, list]) -> list[str]:
    """Names another installed plugin owns, and task observation kinds nobody provides."""
    from .plugins import registry

    reg = registry()
    others: dict[tuple[str, str], str] = {}
    for info in reg.plugins:
        if reg.manager.get_plugin(info.name) is obj:
            continue  # the plugin itself, installed
        for kind, names in info.registers.items():
            for name in names:
                others[(kind, name)] = info.name
    problems = []
    for kind, records in registered.items():
        for record in records:
            if (owner := others.get((kind, record.name))) is not None:
                problems.append(f"{kind} '{record.name}' is already registered by the installed plugin '{owner}'; "
                                "pick another name")
    kinds = set(reg.names("observation")) | {r.name for r in registered.get("observation", [])}
    for task in registered.get("task", []):
        if isinstance(task.observations, Mapping):
            for kind in task.observations:
                if kind not in kinds:
                    problems.append(f"task '{task.name}' observes with '{kind}', which no installed plugin provides; "
                                    f"valid: {', '.join(sorted(kinds))}")
    return problems


# ------------------------------------------------------------------------------------------------ smoke_run


class SmokeRunError(Exception):
    """A stage of :func:`smoke_run` failed; ``stage`` names it (config, record, train or evaluate) and the
    exception it raised is chained as the cause."""

    def __init__(self, stage: str, message: str):
        super().__init__(message)
        self.stage = stage


def smoke_run(task: str, config: str | Path | Mapping, tmp_dir: str | Path, episodes: int = 2,
              train_steps: int = 2, eval_episodes: int = 1, overrides: Sequence[str] = (), seed: int = 0,
              max_steps: int | None = None, device: str = "cpu") -> dict:
    """Record ``episodes`` scripted episodes of ``task``, train ``train_steps`` steps with ``config`` (a YAML
    path or the dict a YAML file would hold) and evaluate ``eval_episodes`` episodes, in ``tmp_dir``.

    The config is used as ``roboil train`` would use it, with ``task``, ``data.path``, ``train.steps`` and
    ``train.device`` replaced, then ``overrides`` (``key=value`` strings, e.g. ``algorithm.hidden_dims=[8]``)
    applied. ``max_steps`` caps the episodes recorded and evaluated (default: the task's own length).
    Checks on the way: the expert succeeds at least once when the config trains on successes only, and the
    logged metrics are finite. Returns ``{"store", "run_dir", "checkpoint"`` (paths), ``"record"`` (the
    recording summary), ``"metrics"`` (the last logged training metrics, or None), ``"eval"`` (the evaluation
    report)``}``. Raises :class:`SmokeRunError` naming the stage that failed, with the error as its cause.
    """
    tmp_dir = Path(tmp_dir)
    store, run_dir = tmp_dir / "demonstrations.zarr", tmp_dir / "run"
    ours = [f"task={task}", f"data.path={store}", f"train.steps={train_steps}", f"train.device={device}"]

    with _stage("config", f"loading the training config {_describe(config)}"):
        from .config import config_to_train, load_config, merge, parse_overrides

        if isinstance(config, Mapping):
            loaded = config_to_train(merge(dict(config), parse_overrides([*ours, *overrides])))
        else:
            loaded = load_config(config, [*ours, *overrides])

    with _stage("record", f"recording {episodes} scripted episode(s) of task '{task}'"):
        from .record import record

        summary = record(task, episodes, store, device="scripted", seed=seed, max_steps=max_steps, viewer=False,
                         progress=False)
        if summary["recorded"] != episodes:
            raise AssertionError(f"{summary['recorded']} episodes were saved, not {episodes}: {summary}")
        if loaded.data.only_success and summary["successes"] == 0:
            raise AssertionError(f"the task's scripted expert succeeded in none of the {episodes} episodes "
                                 "(info['is_success'] at each episode's last step), and data.only_success keeps "
                                 "successful episodes only: check the expert and is_success")

    with _stage("train", f"training algorithm '{loaded.algorithm_name}' for {train_steps} step(s)"):
        from .checkpoint import METRICS_FILE
        from .train import train

        checkpoint = train(loaded, run_dir, progress=False)
        metrics = None
        if (run_dir / METRICS_FILE).is_file():
            lines = (run_dir / METRICS_FILE).read_text().splitlines()
            for line in lines:
                logged = json.loads(line)
                if bad := [k for k, v in logged.items() if isinstance(v, float) and not math.isfinite(v)]:
                    raise AssertionError(f"metric '{bad[0]}' is {logged[bad[0]]} at step {logged['step']}: {logged}")
            metrics = json.loads(lines[-1]) if lines else None

    with _stage("evaluate", f"evaluating the trained policy for {eval_episodes} episode(s)"):
        from .evaluate import evaluate

        report = evaluate(run_dir, episodes=eval_episodes, envs=1, max_steps=max_steps, device=device,
                          progress=False)
        if report["n_episodes"] != eval_episodes:
            raise AssertionError(f"the report counts {report['n_episodes']} episodes, not {eval_episodes}")

    return {"store": store, "run_dir": run_dir, "checkpoint": checkpoint, "record": summary, "metrics": metrics,
            "eval": report}


def _describe(config: Any) -> str:
    return "(a dict)" if isinstance(config, Mapping) else f"'{config}'"


class _stage:
    """Turns any error inside it into a SmokeRunError that names the stage (KeyboardInterrupt passes)."""

    def __init__(self, stage: str, doing: str):
        self.stage, self.doing = stage, doing

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or not isinstance(exc, Exception):
            return False
        raise SmokeRunError(self.stage, f"smoke run failed at stage '{self.stage}' ({self.doing}): "
                                        f"{type(exc).__name__}: {exc}") from exc


# --------------------------------------------------------------------------------------------------- fakes


def unit_stats(features: Mapping[str, Feature], action_dim: int) -> dict[str, dict[str, np.ndarray]]:
    """Training statistics that fit :func:`fake_batch`'s values: floats in [-1, 1], uint8 in [0, 255], other
    integers and bools in [0, 1]; for every feature and for ``action``."""
    stats = {key: _stats(feature.shape, feature.dtype) for key, feature in features.items()}
    stats[ACTION] = _stats((action_dim,), "float32")
    return stats


def _value_range(dtype: str) -> tuple[float, float]:
    kind = np.dtype(dtype).kind
    return (-1.0, 1.0) if kind == "f" else (0.0, 255.0) if np.dtype(dtype) == np.uint8 else (0.0, 1.0)


def _stats(shape: tuple[int, ...], dtype: str) -> dict[str, np.ndarray]:
    lo, hi = _value_range(dtype)
    full = lambda value: np.full(shape, value, dtype=np.float32)  # noqa: E731
    return {"min": full(lo), "max": full(hi), "mean": full((lo + hi) / 2), "std": full((hi - lo) / math.sqrt(12))}


def _no_environment(*args, **kwargs):
    raise RuntimeError("fake_build_context's placeholder task has no environment; pass task=NAME or a TaskSpec")


def fake_build_context(features: Mapping[str, Feature | Sequence[int]], action_dim: int, config: Any = None, *,
                       algorithm: str | None = None, task: TaskSpec | str | None = None,
                       stats: Mapping | None = None, encoder_params: Mapping[str, Any] | None = None,
                       action_space: Any = None):
    """A :class:`roboil.BuildContext` as training builds it, without a store: for unit tests of a model.

    - ``features``: ``{key: Feature}``, or ``{key: shape}`` for float32 ``proprio`` arrays. Their observation
      kinds must be installed (``make_encoder`` builds the kinds' encoders).
    - ``config``: the algorithm's config instance; or with ``algorithm`` (a registered name) leave it None for
      the config's defaults, or give a dict of parameters (validated as the ``algorithm:`` section is).
    - ``task``: a TaskSpec or a registered task name (for algorithms that read ``context.task.goal``); default
      a placeholder task named ``fake-task`` without an environment.
    - ``stats``: default :func:`unit_stats` (which fit :func:`fake_batch`'s values).
    - ``encoder_params``: ``{kind: params}`` like the config's ``encoders:`` section (dicts are validated).
    - ``action_space``: default a ``Box(-1, 1, (action_dim,))``.
    """
    import gymnasium as gym

    from .config import from_dict
    from .encoders import make_encoder_factory
    from .plugins import registry
    from .policy import BuildContext

    features = {key: value if isinstance(value, Feature) else Feature("proprio", tuple(value), "float32")
                for key, value in features.items()}
    reg = registry()
    if config is None or isinstance(config, Mapping):
        if algorithm is None:
            raise TypeError("fake_build_context needs the algorithm's config instance, or algorithm=NAME")
        config = from_dict(reg.get("algorithm", algorithm).config, dict(config or {}), "algorithm")
    if isinstance(task, str):
        task = reg.get("task", task)
    elif task is None:
        task = TaskSpec(name="fake-task", make_env=_no_environment, make_expert=_no_environment)
    params = {}
    for kind, value in (encoder_params or {}).items():
        spec = reg.get("observation", kind)
        params[kind] = from_dict(spec.encoder_params, value, f"encoders.{kind}") if isinstance(value, Mapping) \
            else value
    stats = dict(stats) if stats is not None else unit_stats(features, action_dim)
    if action_space is None:
        action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
    return BuildContext(config=config, features=features, action_dim=action_dim, stats=stats, task=task,
                        make_encoder=make_encoder_factory(features, params, stats), action_space=action_space)


def fake_batch(context, batch_size: int = 4, model: Any = None, *, seed: int = 0, device: Any = "cpu") -> dict:
    """A training batch for ``context`` shaped as the core's sampler shapes it, as torch tensors on ``device``.

    Every feature as ``(B, n_obs_steps, *shape)`` of its dtype, ``action`` as ``(B, horizon, action_dim)``
    float32, ``action_is_pad`` ``(B, horizon)`` bool (some rows padded as at an episode's start or end), and
    for the ``model``'s ``future_keys`` / ``next_keys`` the ``future.<key>`` / ``next.<key>`` arrays
    ``(B, *shape)`` (with ``next_is_pad`` ``(B,)``). The window sizes come from ``model`` when given, else
    from the config's ``n_obs_steps`` and ``horizon`` (default 1). Values fit :func:`unit_stats`.
    """
    import torch

    source = model if model is not None else context.config
    n_obs = int(getattr(source, "n_obs_steps", 1))
    horizon = int(getattr(source, "horizon", 1))
    future_keys = tuple(getattr(model, "future_keys", ()))
    next_keys = tuple(getattr(model, "next_keys", ()))
    features = dict(context.features)
    for what, keys in (("future_keys", future_keys), ("next_keys", next_keys)):
        if unknown := [k for k in keys if k not in features]:
            raise ValueError(f"the model's {what} name '{unknown[0]}', not among the features the policy reads "
                             f"({', '.join(features)}); the sampler could not draw it")
    rng = np.random.default_rng(seed)
    batch = {key: _random(rng, (batch_size, n_obs, *f.shape), f.dtype) for key, f in features.items()}
    batch[ACTION] = _random(rng, (batch_size, horizon, context.action_dim), "float32")
    pad = np.zeros((batch_size, horizon), dtype=bool)
    # the action window starts n_obs - 1 steps before the current one; the sampler flags its steps that fall
    # outside the episode: some rows end within the window, some start within it (with an observation history)
    pad[1::3, n_obs + (horizon - n_obs) // 2:] = True
    pad[2::3, : min(n_obs, horizon) - 1] = True  # each row keeps a step to learn from
    batch[ACTION_IS_PAD] = pad
    for key in future_keys:
        batch[FUTURE_PREFIX + key] = _random(rng, (batch_size, *features[key].shape), features[key].dtype)
    if next_keys:
        batch[NEXT_IS_PAD] = np.arange(batch_size) % 4 == 3
        for key in next_keys:
            batch[NEXT_PREFIX + key] = _random(rng, (batch_size, *features[key].shape), features[key].dtype)
    return {key: torch.from_numpy(np.ascontiguousarray(value)).to(device) for key, value in batch.items()}


def _random(rng: np.random.Generator, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    lo, hi = _value_range(dtype)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(lo, hi, shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(int(lo), int(hi) + 1, shape).astype(dtype)
