"""Faulty third-party plugins (tests/fixtures/faulty_plugin, really installed) are named in one line and never
take roboil down: a clash with a built-in, a misspelled hook, malformed records, a lifecycle hook that raises,
an algorithm whose build raises."""

import pytest

import roboil
from roboil.plugins import load_registry
from conftest import install_fixture_plugin, plugin_pythonpath, run_cli

FAULTY = ["badplug", "clashtoo", "typo", "single", "badspecs", "mdnplug", "hookfail", "hooklog", "badenv", "badobs", "badmodel"]


@pytest.fixture(scope="module")
def faulty_site(tmp_path_factory):
    return install_fixture_plugin("faulty_plugin", tmp_path_factory)


def only(*names):
    """ROBOIL_DISABLE_PLUGINS blocking every faulty plugin but ``names``."""
    return {"ROBOIL_DISABLE_PLUGINS": ",".join(n for n in FAULTY if n not in names)}


@pytest.fixture
def loaded(faulty_site, monkeypatch):
    """load_registry() in this process with the faulty plugins installed and only ``names`` enabled."""
    monkeypatch.syspath_prepend(str(faulty_site))

    def load(*names, extra=()):
        monkeypatch.setenv("ROBOIL_DISABLE_PLUGINS", only(*names)["ROBOIL_DISABLE_PLUGINS"])
        return load_registry(extra_plugins=extra)
    return load


def cli_env(site, *names, **extra):
    return {**plugin_pythonpath(site), **only(*names), **extra}


# 1. name clashes

def test_third_party_cannot_replace_a_builtin_even_when_its_name_sorts_first(loaded, faulty_site):
    reg = loaded("badplug")
    assert reg.records["algorithm"]["gcbc"][1] == "gcbc"  # the built-in, not 'badplug'
    assert reg.owner("algorithm", "gcbc") == "gcbc"
    assert reg.problems == ["plugin 'badplug': algorithm 'gcbc' is already registered by built-in plugin 'gcbc'; "
                            "rename it"]
    result = run_cli("plugins", env=cli_env(faulty_site, "badplug"), check=True)
    assert "gcbc 0.1.0  algorithm: gcbc" in result.stdout
    assert "badplug 0.0.1  algorithm: faulty-shared" in result.stdout  # its other record still loads


def test_clash_between_third_parties_names_both(loaded):
    reg = loaded("badplug", "clashtoo")
    assert ("plugin 'clashtoo': algorithm 'faulty-shared' is already registered by plugin 'badplug'; rename one of "
            "them") in reg.problems
    assert reg.owner("algorithm", "faulty-shared") == "badplug"


# 2. a misspelled hook

TYPO_PROBLEM = ("plugin 'typo': implements 'register_algorithm', which roboil does not define (did you mean "
                "register_algorithms?); it was not loaded")


def test_misspelled_hook_is_one_line_and_the_other_plugins_load(loaded, faulty_site):
    reg = loaded("typo")
    assert reg.problems == [TYPO_PROBLEM]
    assert "typo" not in {p.name for p in reg.plugins} and "typo" not in reg.names("algorithm")
    assert reg.manager.get_plugin("typo") is None
    assert "gcbc" in reg.names("algorithm")
    result = run_cli("plugins", env=cli_env(faulty_site, "typo"), check=True)
    assert f"problem: {TYPO_PROBLEM}" in result.stdout.splitlines()
    assert result.stderr.splitlines() == [f"roboil: warning: {TYPO_PROBLEM}"]


def test_object_plugin_with_an_undefined_hook_is_named_too(loaded):
    class Stray:
        @roboil.hookimpl
        def register_widgets(self):
            return []

    class Odd:
        @roboil.hookimpl
        def frobnicate(self):
            pass

    reg = loaded(extra=(Stray(), Odd()))
    assert reg.problems == ["plugin 'Stray': implements 'register_widgets', which roboil does not define (did you "
                            "mean register_devices?); it was not loaded",
                            "plugin 'Odd': implements 'frobnicate', which roboil does not define; it was not loaded"]
    assert reg.manager.get_plugin("Stray") is None and {"Stray", "Odd"}.isdisjoint(p.name for p in reg.plugins)


def test_hook_asking_for_an_argument_roboil_does_not_pass_is_one_line(loaded):
    class Logger:
        @roboil.hookimpl
        def on_train_step_end(self, step, loss):
            pass

    class Registrar:
        @roboil.hookimpl
        def register_algorithms(self, config):
            return []

    reg = loaded(extra=(Logger(), Registrar()))
    assert reg.problems == [
        "plugin 'Logger': on_train_step_end: it takes loss, which roboil does not pass (it passes step, metrics, "
        "run_dir, config); it was not loaded",
        "plugin 'Registrar': register_algorithms: it takes config, which roboil does not pass (it passes no "
        "arguments); it was not loaded"]
    assert reg.manager.get_plugin("Logger") is None
    assert "Logger" not in {impl.plugin_name for impl in reg.hook.on_train_step_end.get_hookimpls()}


def test_a_hook_left_unmarked_and_a_parameter_without_default_are_named_when_loading(loaded):
    from dataclasses import dataclass

    @dataclass
    class WideParams:
        width: int

    class Forgetful:
        def register_algorithms(self):  # no @roboil.hookimpl: pluggy would skip it without a word
            return []

        @roboil.hookimpl
        def register_executors(self):
            return [roboil.ExecutorSpec(name="wide", make=lambda params, model: None, config=WideParams)]

        @roboil.hookimpl
        def on_train_step_end(self, step):
            pass

    class Idle:
        @roboil.hookimpl
        def register_tasks(self):
            return []

    reg = loaded(extra=(Forgetful(), Idle()))
    assert reg.problems == [
        "plugin 'Forgetful': function 'register_algorithms' is not marked @roboil.hookimpl, so roboil never calls it",
        "plugin 'Forgetful': executor 'wide' has config WideParams.width without a default; every parameter needs "
        "one (configs and the command line set only what they change)"]
    info = {p.name: p for p in reg.plugins}
    assert info["Forgetful"].lifecycle_hooks == ["on_train_step_end"] and info["Idle"].lifecycle_hooks == []
    assert reg.owner("executor", "wide") == "Forgetful"  # a warning: configs that set the width still work


# 4. records checked when the plugins load

def test_hook_returning_one_record_instead_of_a_list(loaded):
    assert loaded("single").problems == [
        "plugin 'single': register_algorithms must return a list of AlgorithmSpec; got one AlgorithmSpec: "
        "wrap it in [ ]"]


def test_fields_of_the_wrong_kind_are_named_with_plugin_and_record(loaded):
    reg = loaded("badspecs")
    assert reg.problems == [
        "plugin 'badspecs': algorithm 'plain-config' has config=NotADataclass, not a dataclass",
        "plugin 'badspecs': algorithm 'instance-config' has config=FaultyConfig(width=4), an instance; "
        "give the dataclass itself (FaultyConfig)",
        "plugin 'badspecs': algorithm 'string-build' has build='roboil_faulty:build_nothing', not a callable",
        "plugin 'badspecs': algorithm 'string-train' has train='fit', not a callable",
        "plugin 'badspecs': task 'no-env' has make_env=None, not a callable",
    ]
    assert "fine" in reg.names("algorithm") and "string-build" not in reg.names("algorithm")


# 3. lifecycle hooks that raise, and 2. the warning of a misspelled hook once, while a command goes on

def test_lifecycle_hook_failures_are_isolated_during_train_and_eval(faulty_site, tiny_reach_store, tmp_path):
    log = tmp_path / "hooks.log"
    env = cli_env(faulty_site, "hookfail", "hooklog", "typo", ROBOIL_FAULTY_LOG=str(log))
    run = tmp_path / "run"
    result = run_cli("train", "configs/fetch_reach/gcbc.yaml", f"data.path={tiny_reach_store}", "train.steps=4",
                     "train.checkpoint_every=2", "train.batch_size=8", "algorithm.hidden_dims=[8]", "--out", run,
                     env=env)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "roboil: " in line]
    assert warnings == [
        f"roboil: warning: {TYPO_PROBLEM}",
        "roboil: warning: plugin 'hookfail': on_train_step_end failed: KeyError('accuracy'); its later calls are "
        "skipped",
        "roboil: warning: plugin 'hookfail': on_checkpoint_saved failed: RuntimeError('upload server unreachable'); "
        "its later calls are skipped",
    ], result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("eval", run, "--episodes", 2, "--envs", 1, "--max-steps", 5, env=env)
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stderr.splitlines() if "roboil: " in line] == [
        f"roboil: warning: {TYPO_PROBLEM}",
        "roboil: warning: plugin 'hookfail': on_eval_episode_end failed: ZeroDivisionError('division by zero'); "
        "its later calls are skipped",
    ], result.stderr
    lines = log.read_text().splitlines()
    # the failing implementation ran once per hook; the healthy plugin's hooks ran every time
    assert [l for l in lines if l.startswith("hookfail")] == [
        "hookfail train_step 1", "hookfail checkpoint 2", "hookfail eval_episode 100000"]
    assert [l for l in lines if l.startswith("hooklog")] == [
        "hooklog train_step 1", "hooklog train_step 2", "hooklog checkpoint 2", "hooklog train_step 3",
        "hooklog train_step 4", "hooklog checkpoint 4", "hooklog eval_episode 100000", "hooklog eval_episode 100001"]


def test_documented_logger_example_does_not_assume_a_loss():
    from roboil import hookspecs

    assert "metrics['loss']" not in hookspecs.on_train_step_end.__doc__
    assert 'metrics["loss"]' not in hookspecs.on_train_step_end.__doc__


# 5. an algorithm whose build raises

MDN_CONFIG = """task: fetch-reach
algorithm:
  name: mdn
data:
  path: {store}
train:
  steps: 2
  batch_size: 8
"""


def test_exception_in_build_names_algorithm_and_plugin(faulty_site, tiny_reach_store, tmp_path):
    config = tmp_path / "mdn.yaml"
    config.write_text(MDN_CONFIG.format(store=tiny_reach_store))
    env = cli_env(faulty_site, "mdnplug")
    result = run_cli("train", config, "--out", tmp_path / "run", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "roboil: error: algorithm 'mdn' (plugin 'mdnplug') failed in build: ValueError('mdn needs at least 2 "
        "mixture components, got 1'); set ROBOIL_DEBUG=1 for the traceback"]
    result = run_cli("train", config, "--out", tmp_path / "run", env={**env, "ROBOIL_DEBUG": "1"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == ("roboil: error: algorithm 'mdn' (plugin 'mdnplug') failed in build: ValueError('mdn needs "
                        "at least 2 mixture components, got 1')")
    assert lines[1].startswith("Traceback") and "roboil_faulty" in result.stderr
    assert lines[-1] == "ValueError: mdn needs at least 2 mixture components, got 1"


def test_exception_in_a_tasks_make_env_names_task_and_plugin(faulty_site, tmp_path):
    result = run_cli("record", "--task", "broken-env", "--episodes", 1, "--out", tmp_path / "s.zarr",
                     env=cli_env(faulty_site, "badenv"))
    assert result.returncode == 1 and not (tmp_path / "s.zarr").exists()
    assert result.stderr.strip().splitlines() == [
        "roboil: error: task 'broken-env' (plugin 'badenv') failed in make_env: FileNotFoundError('broken-env.xml'); "
        "set ROBOIL_DEBUG=1 for the traceback"]


@pytest.mark.parametrize("kind, problem", [
    ("no-features", "roboil: error: observation 'no-features' (plugin 'badobs'): its observer's features is "
                    "NoneType, not a dict of roboil.Feature by array key"),
    ("undeclared", "roboil: error: observation 'undeclared' (plugin 'badobs'): its observer returned 'vec_typo', "
                   "which its features do not declare"),
    ("misshapen", "roboil: error: observation 'misshapen' (plugin 'badobs'): its observer returned 'vec' with shape "
                  "(4,); its features declare (3,)"),
    ("mislabelled", "roboil: error: observation 'mislabelled' (plugin 'badobs'): its observer declares 'vec' of "
                    "kind 'vec'; a Feature's kind is the name of the observation kind making it, 'mislabelled'"),
    ("acting", "roboil: error: observation 'acting' (plugin 'badobs'): its observer declares 'action', the array of "
               "the task's actions; rename it"),
    # proprio's array on fetch-reach: recording both used to keep one of them under the name, silently
    ("clashing", "roboil: error: observations 'proprio' and 'clashing' both write the array 'observation'; one "
                 "store array cannot hold both: drop one of them from obs"),
])
def test_an_observer_breaking_its_contract_is_one_line_before_anything_is_recorded(faulty_site, tmp_path, kind,
                                                                                   problem):
    result = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "s.zarr",
                     f"obs.{kind}={{}}", env=cli_env(faulty_site, "badobs"))
    errors = [line for line in result.stderr.splitlines() if not line.startswith("record fetch-reach: ")]
    assert result.returncode in (1, 2) and errors == [problem], result.stderr
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("mistake, problem", [
    ("loss-alone", "BadBC.compute_loss returned a tensor of shape () alone; it must return (loss, metrics)"),
    ("loss-per-row", "BadBC.compute_loss returned a loss of shape (8,) (reduce it to a scalar: a mean over the "
                     "batch); it must return (loss, metrics)"),
    ("narrow-actions", "BadBC.predict_action returned shape (1, 1, 2), not (batch, horizon, action_dim) = (1, 1, 4)"),
])
def test_a_model_breaking_its_contract_is_one_line_naming_the_method(faulty_site, tiny_reach_store, tmp_path,
                                                                     mistake, problem):
    config = tmp_path / "bad.yaml"
    config.write_text(f"task: fetch-reach\nalgorithm:\n  name: bad-bc\n  mistake: {mistake}\ndata:\n  path: "
                      f"{tiny_reach_store}\ntrain:\n  steps: 2\n  batch_size: 8\n")
    env = cli_env(faulty_site, "badmodel")
    result = run_cli("train", config, "--out", tmp_path / "run", env=env)
    if result.returncode == 0:  # the training contract holds: the mistake is in acting
        result = run_cli("eval", tmp_path / "run", "--episodes", 1, "--envs", 1, "--out", tmp_path / "eval", env=env)
    errors = [line for line in result.stderr.splitlines() if line.startswith("roboil: error: ")]
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and errors[0].startswith(f"roboil: error: {problem}"), result.stderr


def test_an_entry_point_name_another_package_holds_is_named_not_dropped(tmp_path, monkeypatch):
    """pluggy holds one plugin by a name: the second package's plugin used to vanish without a word."""
    for distribution, name in (("first-pkg", "same"), ("second-pkg", "same"), ("third-pkg", "gcbc")):
        module = distribution.replace("-", "_")
        metadata = tmp_path / f"{module}-1.0.dist-info"
        metadata.mkdir()
        (metadata / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.0\n")
        (metadata / "entry_points.txt").write_text(f"[roboil]\n{name} = {module}\n")
        (tmp_path / f"{module}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ROBOIL_DISABLE_PLUGINS", raising=False)
    reg = load_registry()
    assert "plugin 'gcbc' of third-pkg is not loaded: the built-in plugin 'gcbc' of roboil has that entry-point " \
           "name; rename one" in reg.problems
    kept = next(p for p in reg.plugins if p.name == "same").distribution
    dropped = ({"first-pkg", "second-pkg"} - {kept}).pop()
    assert f"plugin 'same' of {dropped} is not loaded: the plugin 'same' of {kept} has that entry-point name; " \
           "rename one" in reg.problems


def test_a_loss_of_one_value_in_any_shape_or_a_list_pair_trains(faulty_site, tiny_reach_store, tmp_path):
    """What backward() takes: a (1,)-shaped loss, returned in a list with its metrics, trains as a scalar would."""
    config = tmp_path / "list.yaml"
    config.write_text(f"task: fetch-reach\nalgorithm:\n  name: bad-bc\n  mistake: list-pair\ndata:\n  path: "
                      f"{tiny_reach_store}\ntrain:\n  steps: 2\n  batch_size: 8\n")
    run_cli("train", config, "--out", tmp_path / "run", env=cli_env(faulty_site, "badmodel"), check=True)
