"""data.action_relative_to: training learns actions as offsets from an observation key, the checkpoint carries
the transform, and the runner adds the key's value at the step each queued offset is executed."""

import numpy as np
import pytest
import torch

from roboil.actions import ActionTransform
from roboil.checkpoint import load_runner
from roboil.config import load_config
from roboil.errors import RoboilError
from roboil.keys import ACTION
from roboil.policy import PolicyModel, PolicyRunner
from roboil.record import record
from roboil.sampler import compute_stats
from roboil.train import TrainingData, train

CONFIG = "configs/pusht/diffusion_state.yaml"


@pytest.fixture(scope="module")
def pusht_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("relative") / "pusht.zarr"
    record("pusht", 2, store, obs_overrides={"pixels": {"cameras": []}}, progress=False)
    return store


def training_data(store, *overrides):
    return TrainingData(load_config(CONFIG, [f"data.path={store}", *overrides]))


def test_training_sees_offsets_from_the_reference_key(pusht_store):
    absolute = training_data(pusht_store, "data.action_relative_to=null")
    relative = training_data(pusht_store, "data.action_relative_to=agent_pos")
    offsets = absolute.arrays[ACTION] - absolute.arrays["agent_pos"]
    np.testing.assert_allclose(relative.arrays[ACTION], offsets, atol=1e-6)
    expected = compute_stats({ACTION: offsets}, absolute.rows, [ACTION])[ACTION]
    for name in ("min", "max", "mean", "std"):
        np.testing.assert_allclose(relative.stats[ACTION][name], expected[name], atol=1e-6)
    # the expert moves at most 4 cm a step: offsets span a few centimetres, absolute targets most of the table
    assert np.ptp(relative.arrays[ACTION], axis=0).max() <= 0.081
    assert np.ptp(absolute.arrays[ACTION], axis=0).max() > 0.2


@pytest.mark.parametrize("reference", ["agent_pos", None])
def test_checkpoint_carries_the_transform_to_every_runner(pusht_store, reference, tmp_path):
    config = load_config(CONFIG, [f"data.path={pusht_store}", f"data.action_relative_to={reference or 'null'}",
                                  "train.steps=2", "train.batch_size=4", "algorithm.down_dims=[8,16,32]"])
    checkpoint = train(config, tmp_path / "run", progress=False)
    runner, _, meta = load_runner(checkpoint)
    assert meta["action_transform"] == {"relative_to": reference}
    assert runner.transform == ActionTransform(reference)


@pytest.mark.parametrize("overrides, message", [
    (["data.action_relative_to=block_pose"], "names 'block_pose', which the policy does not read; use one of"),
    (["data.action_relative_to=block_keypoints", "data.obs_keys=[agent_pos,block_keypoints]"],
     r"'block_keypoints' has shape \(16,\) but actions have \(2,\)"),
])
def test_bad_reference_key_is_a_one_line_error(pusht_store, overrides, message):
    with pytest.raises(RoboilError, match=message):
        training_data(pusht_store, *overrides)


class FixedChunk(PolicyModel):
    """Always plans the same offsets 0.1, 0.2, ... (one row per planned step)."""

    n_obs_steps, horizon, n_action_steps = 2, 4, 3

    def predict_action(self, obs):
        batch = next(iter(obs.values())).shape[0]
        return 0.1 * torch.arange(1, self.horizon + 1).float().repeat(batch, 1).unsqueeze(-1)


def test_runner_adds_the_reference_of_the_step_each_offset_runs_at():
    runner = PolicyRunner(FixedChunk(), transform=ActionTransform(relative_to="pos"))
    runner.reset(1)
    # executed offsets start at the last observation step: 0.2, 0.3, 0.4, then a new chunk
    positions = [1.0, 5.0, -2.0, 7.0]
    actions = [runner.act({"pos": np.array([[p]])})[0, 0] for p in positions]
    np.testing.assert_allclose(actions, [1.2, 5.3, -1.6, 7.2])
    plain = PolicyRunner(FixedChunk())
    plain.reset(1)
    np.testing.assert_allclose(plain.act({"pos": np.array([[9.0]])})[0], [0.2])
