"""The plugin author's kit: `roboil plugin new` writes a package that installs, passes its own tests and is listed;
roboil.testing's spec checker finds what is wrong with a broken plugin (and nothing in the built-in ones); the
smoke run names the stage that failed; the fake build context and batch drive a built-in model."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch

import roboil
from roboil.errors import RoboilError
from roboil.plugins import registry
from roboil.scaffold import new_plugin
from roboil.testing import (SmokeRunError, assert_plugin_ok, check_plugin, fake_batch, fake_build_context,
                            smoke_run)
from conftest import plugin_pythonpath, run_cli


# --------------------------------------------------------------------------------------- roboil plugin new


@pytest.fixture(scope="module")
def demo_plugin(tmp_path_factory):
    """`roboil plugin new demo-plug`, pip-installed into a directory for PYTHONPATH."""
    root = tmp_path_factory.mktemp("demo")
    package = root / "pkg"
    result = run_cli("plugin", "new", "demo-plug", "--out", package, check=True)
    assert "plugin 'demo-plug' with task 'demo-plug-reach' and algorithm 'demo-plug-bc'" in result.stdout
    files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())  # before the build's
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(package)], check=True)
    return package, plugin_pythonpath(site), files


def test_new_plugin_has_the_package_layout(demo_plugin):
    package, _, files = demo_plugin
    assert files == ["README.md", "configs/bc.yaml", "demo_plug/__init__.py", "demo_plug/model.py",
                     "demo_plug/task.py", "pyproject.toml", "tests/test_demo_plug.py"]
    assert '[project.entry-points.roboil]\ndemo-plug = "demo_plug"' in (package / "pyproject.toml").read_text()
    assert "${" not in "".join((package / f).read_text() for f in files)  # every placeholder filled


def test_new_plugin_is_listed_and_passes_its_own_tests(demo_plugin, tmp_path):
    package, env, _ = demo_plugin
    listed = run_cli("plugins", env=env, check=True).stdout
    assert "demo-plug 0.1.0  algorithm: demo-plug-bc; task: demo-plug-reach" in listed
    assert not [line for line in listed.splitlines() if line.startswith("problem:")]
    # its generated tests, run as its author would (from elsewhere: the installed copy is what is imported)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0 and "4 passed" in result.stdout, result.stdout + result.stderr


def test_new_plugin_smoke_run_records_trains_and_evaluates(demo_plugin, tmp_path):
    package, env, _ = demo_plugin
    code = ("import json, sys\n"
            "from roboil.testing import smoke_run\n"
            "r = smoke_run('demo-plug-reach', sys.argv[1], sys.argv[2], overrides=['algorithm.hidden_dims=[8]'])\n"
            "print(json.dumps({k: str(v) if k in ('store', 'run_dir', 'checkpoint') else v for k, v in r.items()}))\n")
    result = subprocess.run([sys.executable, "-c", code, str(package / "configs" / "bc.yaml"), str(tmp_path)],
                            capture_output=True, text=True, env={**os.environ, **env}, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["record"]["recorded"] == 2 and report["record"]["successes"] == 2
    assert report["metrics"]["step"] == 2 and report["checkpoint"].endswith("step_00000002")
    assert report["eval"]["task"] == "demo-plug-reach" and report["eval"]["n_episodes"] == 1
    assert (tmp_path / "demonstrations.zarr").is_dir() and (tmp_path / "run" / "eval" / "eval.json").is_file()


def test_plugin_new_refuses_an_existing_directory_in_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = run_cli("plugin", "new", "demo-plug", "--out", tmp_path / "taken")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "already exists; pass a new --out directory" in result.stderr
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]  # no scratch directory left either


@pytest.mark.parametrize("name, message", [
    ("Demo", "is invalid: use lowercase letters"),
    ("1demo", "is invalid"),
    ("my plugin", "is invalid"),
    ("class", "a Python keyword"),
    ("os", "would shadow an existing module"),
    ("roboil", "would shadow an existing module"),
    ("roboil_gcbc", "would shadow a built-in roboil plugin"),
    ("fetch", "is taken by the installed built-in plugin 'fetch' \\(roboil loads one plugin by a name\\)"),
])
def test_plugin_new_refuses_bad_names(name, message, tmp_path):
    with pytest.raises(RoboilError, match=message):
        new_plugin(name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plugin_new_default_directory_is_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert new_plugin("my_plug").resolve() == tmp_path / "my_plug"
    assert (tmp_path / "my_plug" / "my_plug" / "task.py").is_file()
    assert 'my_plug = "my_plug"' in (tmp_path / "my_plug" / "pyproject.toml").read_text()


# ---------------------------------------------------------------------------------------------- check_plugin


@dataclass
class GoodConfig:
    width: int = 8


@dataclass
class NoDefault:
    width: int


class NotADataclass:
    width = 8


def build(context):
    return None


class BrokenPlugin:
    """Everything a plugin author gets wrong, once each."""

    @roboil.hookimpl
    def register_algorithms(self):
        return [
            roboil.AlgorithmSpec(name="Bad Name", config=GoodConfig, build=build),
            roboil.AlgorithmSpec(name="no-dataclass", config=NotADataclass, build=build),
            roboil.AlgorithmSpec(name="no-default", config=NoDefault, build=build),
            roboil.AlgorithmSpec(name="an-instance", config=GoodConfig(), build=build),
            roboil.AlgorithmSpec(name="not-callable", config=GoodConfig, build="build"),
            roboil.AlgorithmSpec(name="train-no-context", config=GoodConfig, build=build, train=lambda: None),
            roboil.AlgorithmSpec(name="keys-no-loop", config=GoodConfig, build=build, train_keys=("lr",)),
            roboil.AlgorithmSpec(name="unknown-key", config=GoodConfig, build=build, train=build,
                                 train_keys=("lr", "learning_rate")),
            roboil.AlgorithmSpec(name="key-twice", config=GoodConfig, build=build, train=build,
                                 train_keys=("lr", "lr")),
            roboil.AlgorithmSpec(name="twice", config=GoodConfig, build=build),
            roboil.AlgorithmSpec(name="twice", config=GoodConfig, build=build),
            roboil.AlgorithmSpec(name="gcbc", config=GoodConfig, build=build),  # a built-in owns it
        ]

    @roboil.hookimpl
    def register_tasks(self):
        return [roboil.TaskSpec(name="half-state", make_env=build, make_expert=build, get_state=build,
                                max_episode_steps=0, observations={"proprioception": {}})]

    @roboil.hookimpl
    def register_observations(self):
        return roboil.ObservationSpec(name="single", make_observer=build, layout=build, make_encoder=build)

    @roboil.hookimpl
    def on_train_step_end(self, step, loss):
        pass

    @roboil.hookimpl
    def on_eval_episode_end(self, result, config=None):
        pass

    @roboil.hookimpl
    def register_executor(self):
        return []

    def register_devices(self):
        return []


BROKEN_PROBLEMS = [
    "algorithm 'Bad Name': the name is invalid (use lowercase letters, digits, '-' or '_', starting with a letter)",
    "algorithm 'no-dataclass': config=<class 'test_plugin_kit.NotADataclass'> is not a dataclass; decorate it with "
    "@dataclass",
    "algorithm 'no-default': config NoDefault.width has no default; every parameter needs one",
    "algorithm 'an-instance': config=GoodConfig(width=8) is not a dataclass; pass the class, not an instance",
    "algorithm 'not-callable': build='build' is not callable",
    "algorithm 'train-no-context': train cannot take the 1 argument(s) roboil passes (too many positional "
    "arguments)",
    "algorithm 'keys-no-loop': train_keys=('lr',) without a train loop of its own",
    "algorithm 'unknown-key': train_keys names 'learning_rate', not a train.* setting a loop applies itself; "
    "valid: amp, batch_size, compile,",
    "algorithm 'key-twice': train_keys=('lr', 'lr') names a key twice; name each once",
    "algorithm 'twice' is registered twice by this plugin",
    "algorithm 'gcbc' is already registered by the installed plugin 'gcbc'; pick another name",
    "task 'half-state': max_episode_steps=0; give a positive int (or None for no limit)",
    "task 'half-state': give get_state and set_state together (one is None)",
    "task 'half-state' observes with 'proprioception', which no installed plugin provides",
    "register_observations() returned an ObservationSpec, not a list of ObservationSpec; wrap it",
    "hook 'on_train_step_end' takes 'loss', which the hook does not pass; it may take step, metrics, run_dir, config",
    "hook 'on_eval_episode_end': parameter 'config' has a default, so pluggy never passes it",
    "'register_executor' is marked @roboil.hookimpl but roboil defines no hook 'register_executor'; did you mean "
    "'register_executors'?",
    "function 'register_devices' is not marked @roboil.hookimpl, so roboil never calls it",
]


def test_check_plugin_names_every_problem_of_a_broken_plugin():
    problems = check_plugin(BrokenPlugin())
    for expected in BROKEN_PROBLEMS:
        assert any(expected in p for p in problems), f"not reported: {expected}\nreported: {problems}"
    assert len(problems) == len(BROKEN_PROBLEMS), problems


def test_assert_plugin_ok_lists_the_problems():
    listing = r"(?s)plugin 'BrokenPlugin' has 19 problem\(s\):\n- .*\n- algorithm 'Bad Name': the name is invalid"
    with pytest.raises(AssertionError, match=listing):
        assert_plugin_ok(BrokenPlugin())


def test_check_plugin_accepts_a_correct_plugin_and_every_builtin():
    class Good:
        @roboil.hookimpl
        def register_algorithms(self):
            return [roboil.AlgorithmSpec(name="kit-good", config=GoodConfig, build=build)]

        @roboil.hookimpl
        def on_train_step_end(self, metrics):
            pass

    assert check_plugin(Good()) == []
    builtins = sorted(ep.name for ep in entry_points(group="roboil") if ep.dist and ep.dist.name == "roboil")
    assert {"gcbc", "classic", "proprio", "executors"} <= set(builtins)
    assert {name: check_plugin(name) for name in builtins} == {name: [] for name in builtins}
    assert check_plugin("roboil_gcbc") == []  # a module name works too


def test_check_plugin_of_a_module_no_entry_point_loads(tmp_path, monkeypatch):
    """A misspelled entry-point group ([project.entry-points.robiol]) installs fine, and roboil never sees it."""
    (tmp_path / "loose_plugin.py").write_text("import roboil\n\n@roboil.hookimpl\ndef register_tasks():\n"
                                              "    return []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check_plugin("loose_plugin") == [
        "no entry point of the 'roboil' group loads 'loose_plugin', so roboil never loads it: declare it under "
        "[project.entry-points.roboil] in pyproject.toml (that spelling) and reinstall the package"]
    assert check_plugin("loose_plugin", installed=False) == []


def test_check_plugin_reports_an_unknown_name():
    assert check_plugin("no-such-plugin") == [
        "no installed plugin (entry point in the 'roboil' group) and no module is named 'no-such-plugin'; install its "
        "package (pip install -e .) or pass the module"]


# ------------------------------------------------------------------------------------------------- smoke_run


def test_smoke_run_names_the_config_stage(tmp_path):
    with pytest.raises(SmokeRunError, match=r"stage 'config'.*unknown algorithm 'nope'") as info:
        smoke_run("pendulum", {"algorithm": {"name": "nope"}}, tmp_path)
    assert info.value.stage == "config" and isinstance(info.value.__cause__, RoboilError)


def test_smoke_run_names_the_record_stage_when_the_expert_never_succeeds(tmp_path):
    # 5 steps take no car up the hill: no successful episode to train on
    with pytest.raises(SmokeRunError, match=r"stage 'record'.*succeeded in none of the 2 episodes") as info:
        smoke_run("mountain-car", {"algorithm": {"name": "gcbc", "goal_conditioned": False}}, tmp_path, max_steps=5)
    assert info.value.stage == "record"


def test_smoke_run_names_the_train_stage(tmp_path):
    # gcbc conditions on a goal by default; the pendulum has none, so building the model fails
    with pytest.raises(SmokeRunError, match=r"stage 'train'.*goal_conditioned=true needs the task's goal") as info:
        smoke_run("pendulum", {"algorithm": {"name": "gcbc"}}, tmp_path, max_steps=5,
                  overrides=["data.only_success=false"])
    assert info.value.stage == "train" and (tmp_path / "demonstrations.zarr").is_dir()


# ----------------------------------------------------------------------------- fake_build_context / fake_batch


REACH_FEATURES = {"observation": (10,), "achieved_goal": (3,), "desired_goal": (3,)}


def test_fake_context_and_batch_train_gcbc_with_hindsight_relabeling():
    torch.manual_seed(0)
    context = fake_build_context(REACH_FEATURES, action_dim=4, config={"hidden_dims": [16]}, algorithm="gcbc",
                                 task="fetch-reach")
    model = registry().get("algorithm", "gcbc").build(context)
    assert model.future_keys == ("achieved_goal",)
    batch = fake_batch(context, 8, model)
    assert {k: tuple(v.shape) for k, v in batch.items()} == {
        "observation": (8, 1, 10), "achieved_goal": (8, 1, 3), "desired_goal": (8, 1, 3), "action": (8, 1, 4),
        "action_is_pad": (8, 1), "future.achieved_goal": (8, 3)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss, metrics = model.compute_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    assert model.predict_action({k: batch[k] for k in REACH_FEATURES}).shape == (8, 1, 4)


def test_fake_batch_windows_follow_the_model():
    context = fake_build_context(REACH_FEATURES, action_dim=4, algorithm="gcbc", task="fetch-reach",
                                 config={"hidden_dims": [8], "n_obs_steps": 2, "horizon": 6, "n_action_steps": 2})
    model = registry().get("algorithm", "gcbc").build(context)
    batch = fake_batch(context, 6, model)
    assert batch["observation"].shape == (6, 2, 10) and batch["action"].shape == (6, 6, 4)
    pad = batch["action_is_pad"]
    assert pad.dtype == torch.bool and pad.any() and not pad[:, 1].any()  # the current step is never padding
    loss, _ = model.compute_loss(batch)
    assert torch.isfinite(loss)


def test_fake_batch_refuses_keys_the_sampler_could_not_draw():
    def context(*keys):
        return fake_build_context({key: (10,) if key == "observation" else (3,) for key in keys}, action_dim=4,
                                  algorithm="gcbc", task="fetch-reach", config={"hidden_dims": [8]})

    # relabels with achieved_goal, which the batch's features then lack
    model = registry().get("algorithm", "gcbc").build(context("observation", "achieved_goal", "desired_goal"))
    with pytest.raises(ValueError, match="future_keys name 'achieved_goal', not among the features"):
        fake_batch(context("observation", "desired_goal"), 4, model)


def test_fake_context_without_a_task_or_algorithm():
    context = fake_build_context({"state": (3,)}, action_dim=1, config=GoodConfig())
    assert context.task.name == "fake-task" and context.action_space.shape == (1,)
    assert context.make_encoder(["state"]).output_dim == 3
    with pytest.raises(TypeError, match="needs the algorithm's config instance, or algorithm=NAME"):
        fake_build_context({"state": (3,)}, action_dim=1)
