"""Recording roles: a trained policy acts while the scripted expert labels (DAgger), with a per-step record of
who acted; noise and device randomness are seeded per episode, so a resumed recording equals one run."""

import numpy as np
import pytest

from roboil.checkpoint import load_runner
from roboil.config import load_config
from roboil.errors import RoboilError
from roboil.record import record
from roboil.store import EpisodeStore
from roboil.train import train
from roboil_fetch.experts import ReachExpert


@pytest.fixture(scope="module")
def weak_policy(tmp_path_factory):
    """A barely trained reach policy: it acts, but not like the expert."""
    root = tmp_path_factory.mktemp("roles")
    record("fetch-reach", "scripted", 2, root / "demos.zarr", progress=False)
    config = load_config("configs/fetch_reach/gcbc.yaml", [f"data.path={root / 'demos.zarr'}", "train.steps=3",
                                                           "train.warmup_steps=1", "algorithm.hidden_dims=[16]"])
    return train(config, root / "run", progress=False)


def test_policy_acts_and_expert_labels_with_a_per_step_actor_record(weak_policy, tmp_path):
    path = tmp_path / "dagger.zarr"
    summary = record("fetch-reach", f"policy:{weak_policy}", 2, path, labeler="scripted", progress=False)
    assert summary["recorded"] == 2
    store = EpisodeStore.open(path)
    expert, (runner, _, _) = ReachExpert(np.random.default_rng(0)), load_runner(weak_policy)
    for index, attrs in enumerate(store.episode_attrs()):
        episode = store.episode(index)
        steps = len(episode["action"])
        assert attrs["acted_by"] == [["policy", steps]] and attrs["labeler"] == "scripted"
        observations = [{k: episode[k][t] for k in ("observation", "achieved_goal", "desired_goal")}
                        for t in range(steps)]
        labels = np.stack([expert.act(obs) for obs in observations])
        np.testing.assert_allclose(episode["action"], labels, atol=1e-5)  # (float32 store) the expert's action was recorded
        runner.reset(1)
        executed = np.stack([runner.act({k: v[None] for k, v in obs.items()})[0] for obs in observations])
        assert np.abs(executed - labels).max() > 0.1  # ... while the policy's own action moved the arm


def test_policy_cannot_label_and_bad_roles_leave_no_store(weak_policy, tmp_path):
    with pytest.raises(RoboilError, match="a policy cannot label another actor's steps"):
        record("fetch-reach", "scripted", 1, tmp_path / "a.zarr", labeler=f"policy:{weak_policy}", progress=False)
    with pytest.raises(RoboilError, match="unknown device 'wiimote'; valid: scripted"):
        record("fetch-reach", f"policy:{weak_policy}", 1, tmp_path / "b.zarr", labeler="wiimote", progress=False)
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


def test_noisy_recording_resumed_in_parts_equals_one_run(tmp_path):
    record("pusht", "scripted", 4, tmp_path / "one.zarr", action_noise=0.05, progress=False,
           obs_overrides={"pixels": {"cameras": []}})
    for _ in range(2):
        record("pusht", "scripted", 2, tmp_path / "parts.zarr", action_noise=0.05, progress=False,
               obs_overrides={"pixels": {"cameras": []}})
    one, parts = EpisodeStore.open(tmp_path / "one.zarr"), EpisodeStore.open(tmp_path / "parts.zarr")
    assert one.n_episodes == parts.n_episodes == 4
    for index in range(4):
        a, b = one.episode(index), parts.episode(index)
        assert all(np.array_equal(a[k], b[k]) for k in a)
