"""Loads plugins from the ``roboil`` entry-point group and collects what they register.

Built-in plugins are found exactly like third-party ones. A plugin that fails to import, registers an invalid
or duplicate name, or returns the wrong record type is reported in one line naming the plugin; the others
still load. ``ROBOIL_DISABLE_PLUGINS=a,b`` blocks plugins by entry-point name; ``ROBOIL_TRACE_PLUGINS=1``
prints every hook call and its result to stderr.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points

import pluggy

from . import hookspecs
from .errors import RoboilError, interrupted
from .specs import NAME_PATTERN, NORMALIZATIONS, AlgorithmSpec, DeviceSpec, ExecutorSpec, ObservationSpec, TaskSpec

ENTRY_POINT_GROUP = "roboil"
DISABLE_ENV = "ROBOIL_DISABLE_PLUGINS"
TRACE_ENV = "ROBOIL_TRACE_PLUGINS"

# registration hook -> (record type, human name of the kind)
REGISTRIES = {
    "register_algorithms": (AlgorithmSpec, "algorithm"),
    "register_observations": (ObservationSpec, "observation"),
    "register_tasks": (TaskSpec, "task"),
    "register_devices": (DeviceSpec, "device"),
    "register_executors": (ExecutorSpec, "executor"),
}
# fields of a record that must name a dataclass: config files and the command line are validated against them
PARAMETER_FIELDS = ("config", "params", "encoder_params")


@dataclass
class PluginInfo:
    name: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)


class Registry:
    """The loaded plugin manager plus every registered record, keyed by kind and name."""

    def __init__(self, manager: pluggy.PluginManager, plugins: list[PluginInfo], problems: list[str]):
        self.manager = manager
        self.hook = manager.hook
        self.plugins = plugins
        self.problems = problems
        self.records: dict[str, dict[str, object]] = {kind: {} for _, kind in REGISTRIES.values()}
        by_plugin = {p.name: p for p in plugins}
        for hook_name, (record_type, kind) in REGISTRIES.items():
            hook = getattr(manager.hook, hook_name)
            for impl in hook.get_hookimpls():
                plugin_name = manager.get_name(impl.plugin)
                try:
                    records = list(impl.function() or [])
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
                    elif plugin_name in by_plugin:
                        by_plugin[plugin_name].registers.setdefault(kind, []).append(record.name)

    def _add(self, record, record_type, kind: str, plugin_name: str) -> str | None:
        if not isinstance(record, record_type):
            return f"plugin '{plugin_name}': registered {type(record).__name__}, expected {record_type.__name__}"
        if not NAME_PATTERN.match(record.name):
            return (
                f"plugin '{plugin_name}': {kind} name '{record.name}' is invalid "
                "(use lowercase letters, digits, '-' or '_', starting with a letter)"
            )
        for name in PARAMETER_FIELDS:
            if hasattr(record, name) and not dataclasses.is_dataclass(getattr(record, name)):
                return (f"plugin '{plugin_name}': {kind} '{record.name}' has {name}={getattr(record, name)!r}, "
                        "not a dataclass")
        if getattr(record, "normalization", "none") not in NORMALIZATIONS:
            return (f"plugin '{plugin_name}': {kind} '{record.name}' has normalization={record.normalization!r}; "
                    f"valid: {', '.join(NORMALIZATIONS)}")
        owner = self.records[kind].get(record.name)
        if owner is not None:
            return f"plugin '{plugin_name}': {kind} '{record.name}' is already registered by '{owner[1]}'"
        self.records[kind][record.name] = (record, plugin_name)
        return None

    def get(self, kind: str, name: str):
        """The record of this kind and name, or a RoboilError listing the valid names."""
        entry = self.records[kind].get(name)
        if entry is None:
            valid = ", ".join(sorted(self.records[kind])) or "none installed"
            raise RoboilError(f"unknown {kind} '{name}'; valid: {valid}")
        return entry[0]

    def names(self, kind: str) -> list[str]:
        return sorted(self.records[kind])


def _tracing() -> bool:
    return bool(os.environ.get(TRACE_ENV))


def _trace_before(hook_name, hook_impls, kwargs):
    plugins = [impl.plugin_name for impl in hook_impls]
    print(f"[roboil trace] {hook_name}({', '.join(kwargs)}) -> {plugins}", file=sys.stderr)


def _trace_after(outcome, hook_name, hook_impls, kwargs):
    print(f"[roboil trace] {hook_name} returned {outcome.get_result()!r}", file=sys.stderr)


def load_registry(extra_plugins: tuple = ()) -> Registry:
    """Build a Registry from the installed entry points (and ``extra_plugins`` objects, for tests)."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    disabled = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    plugins: list[PluginInfo] = []
    problems: list[str] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in disabled or manager.get_plugin(ep.name) is not None:
            continue
        version = ep.dist.version if ep.dist else "?"
        try:
            manager.register(ep.load(), name=ep.name)
        except Exception as exc:
            if interrupted():  # Ctrl-C while its imports ran, not a broken plugin
                raise KeyboardInterrupt from None
            problems.append(f"plugin '{ep.name}' ({ep.value}) failed to load: {exc!r}")
            continue
        plugins.append(PluginInfo(ep.name, version))
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        manager.register(plugin, name=name)
        plugins.append(PluginInfo(name, "local"))
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise RoboilError(f"plugin '{exc.plugin}' implements a hook roboil does not define: {exc}") from None
    if _tracing():
        manager.add_hookcall_monitoring(_trace_before, _trace_after)
    return Registry(manager, plugins, problems)


@lru_cache(maxsize=1)
def registry() -> Registry:
    """The process-wide registry, loaded once; problems are printed as warnings, one line each."""
    reg = load_registry()
    for problem in reg.problems:
        print(f"roboil: warning: {problem}", file=sys.stderr)
    return reg
