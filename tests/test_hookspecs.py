"""Meta-test (as datasette does): every hook is documented with an example, and exercised by some test."""

import inspect
from pathlib import Path

import pytest

from roboil import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if hasattr(fn, "roboil_spec")]
TEST_SOURCES = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py") if p.name != Path(__file__).name)


def test_there_are_hooks():
    assert {"register_algorithms", "register_tasks", "on_train_step_end", "on_eval_episode_end"} <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_an_example(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc.splitlines()[0]) > 20, f"{name} needs a one-line summary"
    assert "Example" in doc and "@roboil.hookimpl" in doc, f"{name} needs an example implementation"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_tested(name):
    assert name in TEST_SOURCES, f"no test mentions the hook {name}"
