"""An algorithm that owns its training loop, written entirely as a third-party plugin (tests/fixtures/
reinforce_plugin: REINFORCE on a toy task it registers), trains, checkpoints, resumes bit-exactly and is
evaluated through `roboil train` and `roboil eval` like any built-in algorithm."""

import json

import pytest
import yaml

from conftest import install_fixture_plugin, plugin_pythonpath, run_cli


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    return plugin_pythonpath(install_fixture_plugin("reinforce_plugin", tmp_path_factory))


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "reinforce.yaml"
    path.write_text(yaml.safe_dump({
        "task": "line-reach", "algorithm": {"name": "reinforce", "n_envs": 8},
        "train": {"steps": 40, "lr": 0.03, "checkpoint_every": 20, "log_every": 5},
    }))
    return path


def losses(run):
    return [(m["step"], m["loss"]) for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def test_own_loop_trains_resumes_exactly_and_evaluates(plugin, config, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_cli("train", config, "--out", whole, env=plugin, check=True)
    run_cli("train", config, "train.steps=20", "--out", resumed, env=plugin, check=True)  # stops at a checkpoint
    result = run_cli("train", config, "--out", resumed, env=plugin, check=True)  # and goes on from it
    assert "resumed from step 20" in result.stderr
    assert losses(resumed) == losses(whole) and losses(whole)[-1][0] == 40
    final = "checkpoints/step_00000040/model.safetensors"
    assert (resumed / final).read_bytes() == (whole / final).read_bytes()

    untrained = tmp_path / "untrained"
    run_cli("train", config, "train.steps=1", "--out", untrained, env=plugin, check=True)
    rates = {}
    for run in (whole, untrained):
        run_cli("eval", run, "--episodes", 20, "--envs", 2, env=plugin, check=True)
        rates[run.name] = json.loads((run / "eval" / "eval.json").read_text())["success_rate"]
    assert rates["whole"] >= 0.7 and rates["whole"] >= rates["untrained"] + 0.4, rates
