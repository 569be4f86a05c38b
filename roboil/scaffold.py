"""``roboil plugin new``: write a new, installable plugin package from the templates in
``roboil/templates/plugin`` (a task, an algorithm, a training config and tests that use :mod:`roboil.testing`)."""

from __future__ import annotations

import keyword
import shutil
import string
import sys
from importlib.resources import files
from pathlib import Path

from .errors import RoboilError, check_writable
from .specs import NAME_PATTERN

# template (in roboil/templates/plugin) -> its path in the new package; {module} is the package's module name
FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "bc.yaml.tmpl": "configs/bc.yaml",
    "__init__.py.tmpl": "{module}/__init__.py",
    "task.py.tmpl": "{module}/task.py",
    "model.py.tmpl": "{module}/model.py",
    "test_plugin.py.tmpl": "tests/test_{module}.py",
}
# module names a plugin package must not take: it would shadow them for every program in the environment
RESERVED = {"roboil", "test", "tests"}


def plugin_names(name: str) -> dict[str, str]:
    """The names a new plugin ``name`` gets: its entry point and distribution (``name``), its module (``-`` as
    ``_``), its task (``NAME-reach``) and its algorithm (``NAME-bc``). A RoboilError if ``name`` is not usable."""
    if not NAME_PATTERN.match(name):
        raise RoboilError(f"plugin name '{name}' is invalid: use lowercase letters, digits, '-' or '_', starting with "
                          "a letter (e.g. my-plugin)")
    module = name.replace("-", "_")
    if keyword.iskeyword(module):
        raise RoboilError(f"plugin name '{name}' makes the module '{module}', a Python keyword; pick another name")
    if module in RESERVED or module in sys.stdlib_module_names or module.startswith("roboil_"):
        raise RoboilError(f"plugin name '{name}' makes the module '{module}', which would shadow "
                          f"{'a built-in roboil plugin' if module.startswith('roboil_') else 'an existing module'}; "
                          "pick another name")
    names = {"name": name, "module": module, "task": f"{name}-reach", "algorithm": f"{name}-bc"}
    from .plugins import registry

    reg = registry()
    if owner := next((p for p in reg.plugins if p.name == name), None):
        raise RoboilError(f"plugin name '{name}' is taken by the installed {'built-in ' * owner.builtin}plugin "
                          f"'{name}' (roboil loads one plugin by a name); pick another name")
    for kind in ("task", "algorithm"):
        if names[kind] in reg.records[kind]:
            raise RoboilError(f"plugin name '{name}' makes the {kind} '{names[kind]}', which the installed plugin "
                              f"'{reg.owner(kind, names[kind])}' registers; pick another name")
    return names


def new_plugin(name: str, out: str | Path | None = None) -> Path:
    """Write the package for plugin ``name`` into the new directory ``out`` (default ``./NAME``) and return it.

    An existing ``out`` is refused (nothing is overwritten); the files are written into a scratch directory
    beside it and moved into place at the end, so a failure leaves no half-written package.
    """
    names = plugin_names(name)
    out = Path(out if out is not None else name)
    if out.exists() or out.is_symlink():
        raise RoboilError(f"'{out}' already exists; pass a new --out directory (nothing was written)")
    check_writable(out)
    templates = files("roboil").joinpath("templates", "plugin")
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for template, destination in FILES.items():
            text = string.Template(templates.joinpath(template).read_text(encoding="utf-8")).substitute(names)
            path = partial / destination.format(**names)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out
