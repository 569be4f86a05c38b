"""Plugin loading through entry points: listing, third-party plugins, broken ones, clashes, blocking, tracing."""

import os
import subprocess
import sys

import pytest

import roboil
from roboil.plugins import load_registry
from roboil.errors import RoboilError
from conftest import run_cli


def with_path(path):
    return {"PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}


def test_builtin_plugins_register_through_entry_points():
    """register_tasks, register_algorithms and register_observations of the built-ins all land."""
    reg = load_registry()
    names = {p.name for p in reg.plugins}
    assert {"proprio", "pixels", "fetch", "gcbc"} <= names
    assert {"fetch-reach", "fetch-push", "fetch-pick-and-place"} <= set(reg.names("task"))
    assert "gcbc" in reg.names("algorithm")
    assert {"proprio", "pixels"} <= set(reg.names("observation"))
    assert reg.problems == []


def test_plugins_command_lists_versions_and_registrations():
    result = run_cli("plugins", check=True)
    assert "gcbc 0.1.0  algorithm: gcbc" in result.stdout
    assert "task: fetch-reach, fetch-push, fetch-pick-and-place" in result.stdout


def test_installed_third_party_plugin_loads_and_bad_ones_are_named(hello_plugin_path):
    result = run_cli("plugins", env=with_path(hello_plugin_path), check=True)
    assert "hello 1.2.3  algorithm: hello" in result.stdout
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert any("'hello-broken'" in p and "broken on purpose" in p for p in problems)
    assert any("'hello-clash'" in p and "algorithm 'gcbc' is already registered by built-in plugin 'gcbc'; rename it" in p for p in problems)
    assert any("'Bad Name' is invalid" in p for p in problems)
    assert "gcbc 0.1.0  algorithm: gcbc" in result.stdout  # the built-in still wins and still loads


def test_disable_env_blocks_named_plugins(hello_plugin_path):
    env = {**with_path(hello_plugin_path), "ROBOIL_DISABLE_PLUGINS": "hello-broken,hello-clash,gcbc"}
    result = run_cli("plugins", env=env, check=True)
    assert "problem:" not in result.stdout
    assert "gcbc 0.1.0" not in result.stdout
    assert "hello 1.2.3" in result.stdout


def test_trace_env_prints_hook_calls():
    result = run_cli("plugins", env={"ROBOIL_TRACE_PLUGINS": "1"}, check=True)
    assert "[roboil trace] gcbc.register_algorithms() -> ['gcbc']" in result.stderr


def test_unknown_name_error_lists_valid_names():
    reg = load_registry()
    with pytest.raises(RoboilError, match="unknown algorithm 'nope'; valid: .*gcbc"):
        reg.get("algorithm", "nope")


def test_roboil_and_every_builtin_plugin_load_without_torch():
    """Recording, the store and `roboil plugins` never build a model: they must not pay for importing torch."""
    code = ("import sys, roboil, roboil.store, roboil.record, roboil.cli\n"
            "from roboil.plugins import registry\n"
            "assert not registry().problems, registry().problems\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n"
            "roboil.PolicyModel\n"  # the torch-backed names still resolve, on first use
            "assert 'torch' in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_verbose_listing_shows_parameters_and_task_contracts():
    out = run_cli("plugins", "--verbose", check=True).stdout
    assert "  algorithm gcbc: " in out and "goal_conditioned: bool = True" in out and "relabel_prob: float = 0.5" in out
    assert "observes: achieved_goal (3,) float32 (proprio), desired_goal (3,) float32 (proprio)" in out
    assert "action: box (4,) float32 in [-1, 1]; episodes of 50 steps at 25 Hz; teleop" in out
    assert "action: discrete, 2 actions; episodes of 500 steps at 50 Hz" in out  # cartpole
    assert "success: info['is_success'] at the episode's final step (it does not end the episode)" in out
    assert "device replay: " in out and "config: store: str = '', first: int | None = None" in out
    assert "trains: offline, the core's loop over windows of the store's episodes (every train.* setting" in out
    assert ("trains: in its own loop, applying train.batch_size, "
            "train.lr, train.grad_clip and the core's train.steps, train.seed,") in out  # gail
    assert "train.checkpoint_every (others are refused)" in out and "eval_every: int = 0 (may change on resume)" in out


def test_public_names_for_plugin_authors():
    from roboil.checkpoint import load_policy
    from roboil.keys import ACTION, ACTION_IS_PAD

    assert roboil.ACTION == ACTION == "action" and roboil.ACTION_IS_PAD == ACTION_IS_PAD
    assert roboil.load_policy is load_policy and callable(roboil.load_runner)
    assert {"PolicyModel", "TaskSpec", "hookimpl", "load_runner", "__version__"} <= set(dir(roboil))  # lazy ones too
