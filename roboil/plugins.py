"""Loads plugins from the ``roboil`` entry-point group and collects what they register.

Built-in plugins (the entry points of the ``roboil`` distribution itself) are found exactly like third-party
ones, and register first: a third-party record with a built-in's name is rejected, never swapped in. A plugin
that fails to import, implements a hook roboil does not define, registers an invalid or duplicate name, or
returns the wrong record type (or a field of the wrong kind) is reported in one line naming the plugin; the
others still load. A lifecycle hook that raises is reported once and that implementation is skipped for the rest
of the run (:meth:`Registry.notify`); a plugin's factory that raises (an algorithm's ``build``) becomes a
:class:`PluginError` naming the plugin (:meth:`Registry.call`; the CLI exits 1 and ``ROBOIL_DEBUG=1`` prints
the traceback). ``ROBOIL_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name; ``ROBOIL_TRACE_PLUGINS=1``
prints every hook call and its result to stderr.
"""

from __future__ import annotations

import dataclasses
import difflib
import multiprocessing
import os
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import RoboilError, interrupted
from .specs import NAME_PATTERN, NORMALIZATIONS, AlgorithmSpec, DeviceSpec, ExecutorSpec, ObservationSpec, TaskSpec

ENTRY_POINT_GROUP = "roboil"
BUILTIN_DISTRIBUTION = "roboil"
DISABLE_ENV = "ROBOIL_DISABLE_PLUGINS"
TRACE_ENV = "ROBOIL_TRACE_PLUGINS"
DEBUG_ENV = "ROBOIL_DEBUG"

# registration hook -> (record type, human name of the kind)
REGISTRIES = {
    "register_algorithms": (AlgorithmSpec, "algorithm"),
    "register_observations": (ObservationSpec, "observation"),
    "register_tasks": (TaskSpec, "task"),
    "register_devices": (DeviceSpec, "device"),
    "register_executors": (ExecutorSpec, "executor"),
}
RECORD_TYPES = tuple(record_type for record_type, _ in REGISTRIES.values())
# fields of a record that must name a dataclass: config files and the command line are validated against them
PARAMETER_FIELDS = ("config", "params", "encoder_params")


class PluginError(RoboilError):
    """A plugin's own code raised while roboil called it (an algorithm's ``build``, a task's ``make_env``).

    Not the user's mistake but a bug in the plugin: the message names the plugin and the record, ``details``
    holds the traceback (it survives pickling, so an error in an env worker keeps it), and the CLI exits with
    code 1 instead of the user-error 2 (``ROBOIL_DEBUG=1`` prints ``details`` after the line).
    """

    exit_code = 1

    def __init__(self, message: str, details: str = ""):
        super().__init__(message, details)
        self.message, self.details = message, details

    def __str__(self) -> str:
        return self.message


@dataclass
class PluginInfo:
    name: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)
    builtin: bool = False
    distribution: str = ""
    lifecycle_hooks: list[str] = field(default_factory=list)  # the hooks it implements besides register_*


class Registry:
    """The loaded plugin manager plus every registered record, keyed by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, plugins: list[PluginInfo], problems: list[str]):
        self.manager = manager
        self.hook = manager.hook
        self.plugins = plugins
        self.problems = problems
        self.records: dict[str, dict[str, object]] = {kind: {} for _, kind in REGISTRIES.values()}
        self._failed: set[tuple[str, str]] = set()  # (hook, plugin) whose lifecycle implementation raised
        by_plugin = {p.name: p for p in plugins}
        self.builtins = {p.name for p in plugins if p.builtin}
        for hook_name, (record_type, kind) in REGISTRIES.items():
            hook = getattr(manager.hook, hook_name)
            # built-ins first, whatever tryfirst/trylast a third party asks for: their names are never taken
            impls = sorted(hook.get_hookimpls(), key=lambda impl: manager.get_name(impl.plugin) not in self.builtins)
            for impl in impls:
                plugin_name = manager.get_name(impl.plugin)
                try:
                    result = impl.function()
                    if isinstance(result, RECORD_TYPES) or not isinstance(result, (list, tuple, Iterator, type(None))):
                        got = (f"one {type(result).__name__}: wrap it in [ ]" if isinstance(result, RECORD_TYPES)
                               else type(result).__name__)
                        problems.append(f"plugin '{plugin_name}': {hook_name} must return a list of "
                                        f"{record_type.__name__}; got {got}")
                        continue
                    records = list(result or [])  # a generator's body runs here
                    if _tracing():
                        names = [getattr(r, "name", r) for r in records]
                        print(f"[roboil trace] {plugin_name}.{hook_name}() -> {names}", file=sys.stderr)
                except Exception as exc:  # a broken plugin must not take the others down
                    problems.append(f"plugin '{plugin_name}': {hook_name} failed: {exc!r}")
                    continue
                for record in records:
                    problem = self._add(record, record_type, kind, plugin_name)
                    if problem:
                        problems.append(problem)
                        continue
                    if plugin_name in by_plugin:
                        by_plugin[plugin_name].registers.setdefault(kind, []).append(record.name)
                    problems += _without_defaults(record, kind, plugin_name)  # loaded all the same

    def _add(self, record, record_type, kind: str, plugin_name: str) -> str | None:
        if not isinstance(record, record_type):
            return f"plugin '{plugin_name}': registered {type(record).__name__}, expected {record_type.__name__}"
        if not NAME_PATTERN.match(record.name):
            return (
                f"plugin '{plugin_name}': {kind} name '{record.name}' is invalid "
                "(use lowercase letters, digits, '-' or '_', starting with a letter)"
            )
        where = f"plugin '{plugin_name}': {kind} '{record.name}' has"
        for name in PARAMETER_FIELDS:
            if not hasattr(record, name):
                continue
            value = getattr(record, name)
            if not dataclasses.is_dataclass(value):
                shown = value.__qualname__ if isinstance(value, type) else repr(value)
                return f"{where} {name}={shown}, not a dataclass"
            if not isinstance(value, type):
                return f"{where} {name}={value!r}, an instance; give the dataclass itself ({type(value).__qualname__})"
        for f in dataclasses.fields(record):  # every field annotated Callable (or Callable | None) must hold one
            if isinstance(f.type, str) and f.type.startswith("Callable"):
                value = getattr(record, f.name)
                if not callable(value) and not (value is None and f.type.endswith("| None")):
                    return f"{where} {f.name}={value!r}, not a callable"
        if getattr(record, "normalization", "none") not in NORMALIZATIONS:
            return (f"{where} normalization={record.normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
        if isinstance(record, AlgorithmSpec) and (problem := record.train_keys_problem()):
            return f"{where} {problem}"
        owner = self.records[kind].get(record.name)
        if owner is not None:
            if owner[1] in self.builtins:
                return (f"plugin '{plugin_name}': {kind} '{record.name}' is already registered by built-in plugin "
                        f"'{owner[1]}'; rename it")
            return (f"plugin '{plugin_name}': {kind} '{record.name}' is already registered by plugin '{owner[1]}'; "
                    "rename one of them")
        self.records[kind][record.name] = (record, plugin_name)
        return None

    def get(self, kind: str, name: str):
        """The record of this kind and name, or a RoboilError listing the valid names."""
        entry = self.records[kind].get(name)
        if entry is None:
            valid = ", ".join(sorted(self.records[kind])) or "none installed"
            raise RoboilError(f"unknown {kind} '{name}'; valid: {valid}")
        return entry[0]

    def owner(self, kind: str, name: str) -> str:
        """The entry-point name of the plugin that registered this record."""
        self.get(kind, name)
        return self.records[kind][name][1]

    def names(self, kind: str) -> list[str]:
        return sorted(self.records[kind])

    def call(self, kind: str, name: str, attr: str, *args, **kwargs):
        """``record.attr(*args, **kwargs)`` for the record of this kind and name (``"algorithm", "mdn", "build"``).

        An exception from the plugin's code becomes a :class:`PluginError` naming the record, its plugin and the
        exception in one line (the traceback in ``details``); a RoboilError (a user mistake the plugin
        reported) passes as it is.
        """
        record = self.get(kind, name)
        try:
            return getattr(record, attr)(*args, **kwargs)
        except RoboilError:
            raise
        except Exception as exc:
            raise PluginError(f"{kind} '{name}' (plugin '{self.owner(kind, name)}') failed in {attr}: {exc!r}",
                              traceback.format_exc()) from exc

    def notify(self, hook_name: str, **kwargs) -> None:
        """Call every implementation of the lifecycle hook ``hook_name`` (trainer and evaluator events).

        Each implementation runs on its own: one that raises is reported once ("plugin 'X': HOOK failed: ...;
        its later calls are skipped") and not called again in this process, and the others and the run go on.
        """
        hook = getattr(self.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # pluggy's own order: last registered first
            plugin_name = impl.plugin_name
            if (hook_name, plugin_name) in self._failed:
                continue
            try:
                result = impl.function(*(kwargs[arg] for arg in impl.argnames))
                if _tracing():
                    print(f"[roboil trace] {plugin_name}.{hook_name}({', '.join(impl.argnames)}) -> {result!r}",
                          file=sys.stderr)
            except Exception as exc:
                self._failed.add((hook_name, plugin_name))
                _warn(f"plugin '{plugin_name}': {hook_name} failed: {exc!r}; its later calls are skipped")


def _without_defaults(record, kind: str, plugin_name: str) -> list[str]:
    """A warning per parameter dataclass of ``record`` with a field lacking a default (a config that sets it still
    works, so the record stays)."""
    warnings = []
    for name in PARAMETER_FIELDS:
        cls = getattr(record, name, None)
        if isinstance(cls, type) and (missing := fields_without_default(cls)):
            warnings.append(f"plugin '{plugin_name}': {kind} '{record.name}' has {name} {cls.__name__}.{missing[0]} "
                            "without a default; every parameter needs one (configs and the command line set only "
                            "what they change)")
    return warnings


def fields_without_default(cls) -> list[str]:
    """The fields of a parameter dataclass that have no default."""
    return [f.name for f in dataclasses.fields(cls) if f.init and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING]


def unmarked_hooks(plugin, hook_names) -> list[str]:
    """Functions of a plugin named as a hook but not marked ``@roboil.hookimpl``: pluggy skips them silently."""
    finder = pluggy.PluginManager(hookspecs.PROJECT)
    found = []
    for name in hook_names:
        value = getattr(plugin, name, None)
        if callable(value) and finder.parse_hookimpl_opts(plugin, name) is None:
            found.append(name)
    return found


def _warn(message: str) -> None:
    from tqdm import tqdm  # a progress bar may be on screen: the line goes above it

    tqdm.write(f"roboil: warning: {message}", file=sys.stderr)


def _tracing() -> bool:
    return bool(os.environ.get(TRACE_ENV))


def _trace_before(hook_name, hook_impls, kwargs):
    plugins = [impl.plugin_name for impl in hook_impls]
    print(f"[roboil trace] {hook_name}({', '.join(kwargs)}) -> {plugins}", file=sys.stderr)


def _trace_after(outcome, hook_name, hook_impls, kwargs):
    print(f"[roboil trace] {hook_name} returned {outcome.get_result()!r}", file=sys.stderr)


def _is_builtin(ep) -> bool:
    name = getattr(ep.dist, "name", None) or ""
    return name.lower().replace("_", "-") == BUILTIN_DISTRIBUTION


def _undefined_hooks(manager: pluggy.PluginManager) -> list[tuple[str, str]]:
    """(plugin name, hook name) for every implementation of a hook roboil does not define (a misspelling, say);
    what ``check_pending`` would raise for, all of them."""
    found = []
    for hook_name in list(vars(manager.hook)):
        if hook_name.startswith("_"):
            continue
        caller = getattr(manager.hook, hook_name)
        if caller.has_spec():
            continue
        found += [(impl.plugin_name, hook_name) for impl in caller.get_hookimpls() if not impl.optionalhook]
    return found


def _register(manager: pluggy.PluginManager, plugin, name: str) -> str | None:
    """Register ``plugin``; one that pluggy rejects (a hook implementation asking for an argument roboil does not
    pass, say) is one problem line, and nothing of it stays registered."""
    try:
        manager.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        manager.unregister(name=name)  # pluggy >= 1.6 validates first; older ones left the plugin half registered
        match = re.search(r"hook '(\w+)'", str(exc))
        hook_name = match.group(1) if match else "a hook"
        reason = str(exc).strip().splitlines()[-1]
        if "can not be found in the hookspec" in reason:
            passed = getattr(manager.hook, hook_name).spec.argnames
            asked = re.search(r"Argument\(s\) \{(.*?)\}", str(exc))
            asked = asked.group(1).replace("'", "") if asked else "arguments"
            reason = (f"it takes {asked}, which roboil does not pass ("
                      f"{'it passes ' + ', '.join(passed) if passed else 'it passes no arguments'})")
        return f"plugin '{name}': {hook_name}: {reason}; it was not loaded"
    return None


def load_registry(extra_plugins: tuple = ()) -> Registry:
    """Build a Registry from the installed entry points (and ``extra_plugins`` objects, for tests)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    plugins: list[PluginInfo] = []
    problems: list[str] = []
    # built-ins first, then third parties, each by name (Registry also lets built-ins register first)
    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (not _is_builtin(e), e.name))
    for ep in eps:
        if ep.name in disabled:
            continue
        distribution = ep.dist.name if ep.dist else "?"
        if manager.get_plugin(ep.name) is not None:  # pluggy holds one plugin by a name
            holder = next(p for p in plugins if p.name == ep.name)
            problems.append(f"plugin '{ep.name}' of {distribution} is not loaded: the {'built-in ' * holder.builtin}"
                            f"plugin '{ep.name}' of {holder.distribution} has that entry-point name; rename one")
            continue
        version = ep.dist.version if ep.dist else "?"
        try:
            plugin = ep.load()
        except Exception as exc:
            if interrupted():  # Ctrl-C while its imports ran, not a broken plugin
                raise KeyboardInterrupt from None
            problems.append(f"plugin '{ep.name}' ({ep.value}) failed to load: {exc!r}")
            continue
        if problem := _register(manager, plugin, ep.name):
            problems.append(problem)
            continue
        plugins.append(PluginInfo(ep.name, version, builtin=_is_builtin(ep), distribution=distribution))
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        if problem := _register(manager, plugin, name):
            problems.append(problem)
            continue
        plugins.append(PluginInfo(name, "local"))
    hook_names = sorted(n for n in vars(manager.hook) if not n.startswith("_") and getattr(manager.hook, n).has_spec())
    unloaded = set()
    for plugin_name, hook_name in _undefined_hooks(manager):
        close = difflib.get_close_matches(hook_name, hook_names, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"plugin '{plugin_name}': implements '{hook_name}', which roboil does not define{hint}; "
                        "it was not loaded")
        unloaded.add(plugin_name)
    for plugin_name in unloaded:
        manager.unregister(name=plugin_name)
    plugins = [p for p in plugins if p.name not in unloaded]
    for info in plugins:
        plugin = manager.get_plugin(info.name)
        problems += [f"plugin '{info.name}': function '{hook}' is not marked @roboil.hookimpl, so roboil never calls "
                     "it" for hook in unmarked_hooks(plugin, hook_names)]
        info.lifecycle_hooks = sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()
                                      if caller.name not in REGISTRIES)
    manager.check_pending()  # nothing left to find; a change in pluggy would show here, not in a command
    if _tracing():
        manager.add_hookcall_monitoring(_trace_before, _trace_after)
    return Registry(manager, plugins, problems)


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry, loaded once; problems are printed as warnings, one line each (by the main
    process only: env workers load it too, and would repeat them)."""
    reg = load_registry()
    if multiprocessing.parent_process() is None:
        for problem in reg.problems:
            print(f"roboil: warning: {problem}", file=sys.stderr)
    return reg
