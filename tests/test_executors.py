"""Chunk executors: temporal ensembling against a hand-computed case, the receding-horizon queue, per-env
reset, and choosing either by name as `roboil eval --executor` does."""

import math

import numpy as np
import pytest
import torch

import roboil
from roboil import ExecutorSpec, NoParams
from roboil.config import named_section
from roboil.errors import RoboilError
from roboil.executors import RecedingHorizon, TemporalEnsemble
from roboil.plugins import load_registry
from roboil.policy import PolicyModel, PolicyRunner


class ScriptedChunks(PolicyModel):
    """Predicts chunks 1, 2, 3 (times 10**k for its k-th prediction): every value says which chunk it came from."""

    n_obs_steps, horizon, n_action_steps = 1, 3, 2

    def __init__(self):
        super().__init__()
        self.calls = 0

    def predict_action(self, obs):
        batch = next(iter(obs.values())).shape[0]
        chunk = torch.tensor([1.0, 2.0, 3.0]) * 10 ** self.calls
        self.calls += 1
        return chunk.repeat(batch, 1).unsqueeze(-1)


def run(executor, steps, n_envs=1):
    runner = PolicyRunner(ScriptedChunks(), executor)
    runner.reset(n_envs)
    return [runner.act({"x": np.zeros((n_envs, 1))})[:, 0] for _ in range(steps)], runner


def test_temporal_ensemble_matches_the_hand_computed_average():
    m = 0.5
    actions, _ = run(TemporalEnsemble(coefficient=m), 4)
    w1, w2 = math.exp(-m), math.exp(-2 * m)
    expected = [
        1.0,  # step 0: only chunk 0 (1, 2, 3)
        (2 * 1 + 10 * w1) / (1 + w1),  # step 1: chunk 0's 2nd action (oldest, weight 1), chunk 1's 1st
        (3 * 1 + 20 * w1 + 100 * w2) / (1 + w1 + w2),  # step 2: three chunks overlap
        (30 * 1 + 200 * w1 + 1000 * w2) / (1 + w1 + w2),  # step 3: chunk 0 has run out
    ]
    np.testing.assert_allclose([a[0] for a in actions], expected, rtol=1e-6)


def test_zero_coefficient_is_a_plain_mean_and_reset_env_forgets_one_env():
    executor = TemporalEnsemble(coefficient=0.0)
    runner = PolicyRunner(ScriptedChunks(), executor)
    runner.reset(2)
    runner.act({"x": np.zeros((2, 1))})
    runner.reset_env(1)
    second = runner.act({"x": np.zeros((2, 1))})[:, 0]
    np.testing.assert_allclose(second, [(2 + 10) / 2, 10])  # env 1 only sees the chunk made after its reset


def test_receding_horizon_executes_n_actions_then_replans():
    actions, runner = run(RecedingHorizon(n_action_steps=2), 5)
    assert [a[0] for a in actions] == [1, 2, 10, 20, 100]
    assert runner.model.calls == 3


@pytest.mark.parametrize("executor", [RecedingHorizon(n_action_steps=2), TemporalEnsemble(coefficient=0.0)])
def test_envs_stepped_out_of_lockstep_keep_their_own_time(executor):
    """Evaluation acts for whichever envs are ready: stepping env 1 alone must not advance env 0."""
    runner = PolicyRunner(ScriptedChunks(), executor)
    runner.reset(2)
    one = lambda envs: runner.act({"x": np.zeros((len(envs), 1))}, envs)[:, 0].tolist()  # noqa: E731
    assert one([0, 1]) == [1, 1]  # one prediction for both
    if isinstance(executor, RecedingHorizon):
        assert one([1]) == [2] and one([1]) == [10] and one([0]) == [2]  # env 0 resumes its own queue
    else:  # env 1 is two steps in (chunks 1 and 10 overlap at its step 1); env 0 is at its step 1 with chunk 100
        assert one([1]) == [(2 + 10) / 2] and one([0]) == [(2 + 100) / 2]
    assert runner.model.calls == (3 if isinstance(executor, TemporalEnsemble) else 2)


def test_executors_are_chosen_by_name_with_typed_params():
    reg = load_registry()
    assert {"queue", "ensemble"} <= set(reg.names("executor"))
    spec, params = named_section("executor", {"name": "queue", "n_action_steps": 1}, "executor")
    actions, _ = run(spec.make(params, ScriptedChunks()), 3)
    assert [a[0] for a in actions] == [1, 10, 100]
    with pytest.raises(RoboilError, match="unknown config key 'executor.coef'; valid keys in executor: coefficient"):
        named_section("executor", {"name": "ensemble", "coef": 1}, "executor")
    with pytest.raises(RoboilError, match="unknown executor 'median'; valid: ensemble, queue"):
        named_section("executor", {"name": "median"}, "executor")


class LastActionOnly:
    """A third-party executor: replan every step and execute the last action of each chunk."""

    def reset(self, n_envs):
        self.chunks = [None] * n_envs

    def reset_env(self, index):
        self.chunks[index] = None

    def needs_chunk(self, envs):
        return list(envs)

    def add_chunk(self, index, chunk):
        self.chunks[index] = chunk

    def step(self, envs):
        return np.stack([self.chunks[i][-1] for i in envs])


class LastActionPlugin:
    @roboil.hookimpl
    def register_executors(self):
        return [ExecutorSpec(name="last", config=NoParams, make=lambda params, model: LastActionOnly())]


def test_a_plugin_registers_an_executor():
    reg = load_registry(extra_plugins=(LastActionPlugin(),))
    assert reg.problems == [] and "last" in reg.names("executor")
    actions, _ = run(reg.get("executor", "last").make(NoParams(), ScriptedChunks()), 2)
    assert [a[0] for a in actions] == [3, 30]
