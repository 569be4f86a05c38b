"""Recording roles: a trained policy acts while the scripted expert labels (DAgger), with a per-step record of
who acted; noise and device randomness are seeded per episode, so a resumed recording equals one run."""

import numpy as np
import pytest

from roboil.checkpoint import load_runner
from roboil.config import load_config
from roboil.errors import RoboilError
from roboil.record import acted_mask, record
from roboil.store import EpisodeStore
from roboil.train import train
from roboil_fetch.experts import ReachExpert


@pytest.fixture(scope="module")
def weak_policy(tmp_path_factory):
    """A barely trained reach policy: it acts, but not like the expert."""
    root = tmp_path_factory.mktemp("roles")
    record("fetch-reach", 2, root / "demos.zarr", progress=False)
    config = load_config("configs/fetch_reach/gcbc.yaml", [f"data.path={root / 'demos.zarr'}", "train.steps=3",
                                                           "train.warmup_steps=1", "algorithm.hidden_dims=[16]"])
    return train(config, root / "run", progress=False)


def test_policy_acts_and_expert_labels_with_a_per_step_actor_record(weak_policy, tmp_path):
    path = tmp_path / "dagger.zarr"
    summary = record("fetch-reach", 2, path, policy=str(weak_policy), labeler="scripted", progress=False)
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
    with pytest.raises(RoboilError, match="only a device a person holds can take over from a policy"):
        record("fetch-reach", 1, tmp_path / "a.zarr", device="scripted", policy=str(weak_policy), progress=False)
    with pytest.raises(RoboilError, match="unknown labeler 'wiimote'; valid: "):
        record("fetch-reach", 1, tmp_path / "b.zarr", policy=str(weak_policy), labeler="wiimote", progress=False)
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()


def test_a_policy_is_refused_where_its_camera_would_see_another_size(tmp_path):
    """Its observations checked only as they reached the model: mid-session, as a traceback from inside it."""
    camera = {"cameras": ["external_camera_0"], "height": 40, "width": 40}
    record("fetch-reach", 1, tmp_path / "demos.zarr", progress=False, obs_overrides={"pixels": camera})
    config = load_config("configs/fetch_reach/gcbc.yaml", [
        f"data.path={tmp_path / 'demos.zarr'}", "data.obs_keys=[rgb_external_camera_0]", "train.steps=1",
        "train.warmup_steps=0", "algorithm.goal_conditioned=false", "algorithm.hidden_dims=[8]"])
    run = train(config, tmp_path / "run", progress=False)
    with pytest.raises(RoboilError, match=r"^policy '.*' was trained on 'rgb_external_camera_0' of shape \(40, 40, 3\), "
                                          r"this recording observes \(48, 48, 3\); record with the observation "
                                          r"settings it was trained with \(obs.KIND.PARAM=value\)$"):
        record("fetch-reach", 1, tmp_path / "out.zarr", policy=str(run), progress=False,
               obs_overrides={"pixels": {**camera, "height": 48, "width": 48}})
    assert not (tmp_path / "out.zarr").exists()


def test_noisy_recording_resumed_in_parts_equals_one_run(tmp_path):
    record("pusht", 4, tmp_path / "one.zarr", action_noise=0.05, progress=False,
           obs_overrides={"pixels": {"cameras": []}})
    for _ in range(2):
        record("pusht", 2, tmp_path / "parts.zarr", action_noise=0.05, progress=False,
               obs_overrides={"pixels": {"cameras": []}})
    one, parts = EpisodeStore.open(tmp_path / "one.zarr"), EpisodeStore.open(tmp_path / "parts.zarr")
    assert one.n_episodes == parts.n_episodes == 4
    for index in range(4):
        a, b = one.episode(index), parts.episode(index)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_appending_says_the_seed_the_new_episodes_start_from(tmp_path, capsys):
    """After a session seeded from 3, the next one goes on past the store's highest seed (6, 7): the notice said
    "episode i is seeded 0+i"."""
    record("fetch-reach", 2, tmp_path / "s.zarr", seed=3, progress=False)
    record("fetch-reach", 2, tmp_path / "s.zarr")
    assert f"roboil: '{tmp_path / 's.zarr'}' holds 2 episodes; recording 2 more after them, seeded from 5 on" in \
        capsys.readouterr().err
    assert [a["seed"] for a in EpisodeStore.open(tmp_path / "s.zarr").episode_attrs()] == [3, 4, 5, 6]


def test_intervention_records_who_drove_each_step(weak_policy, tmp_path):
    """HG-DAgger: the policy drives, the person takes over with a key and hands back with another; the whole
    episode is recorded with who was in control at every step."""
    script = tmp_path / "keys.txt"
    script.write_text("enter wait*3 t up*4 h wait*3 s q")
    path = tmp_path / "hg.zarr"
    summary = record("fetch-reach", None, path, device="keyboard", policy=str(weak_policy), viewer=False,
                     device_params={"script": str(script)}, progress=False)
    assert summary["recorded"] == 1
    store = EpisodeStore.open(path)
    (attrs,) = store.episode_attrs()
    episode = store.episode(0)
    # enter and 3 waits: the policy; t and 4 ups: the person; h and 3 waits: the policy again
    assert attrs["acted_by"] == [["policy", 4], ["keyboard", 5], ["policy", 4]] and attrs["interventions"] == 1
    person = acted_mask(attrs, "keyboard")
    assert person.tolist() == [False] * 4 + [True] * 5 + [False] * 4
    np.testing.assert_array_equal(episode["action"][person][:, :3], [[0, 0, 0]] + [[1, 0, 0]] * 4)
    # the person's gripper takes over the policy's last command (a held object stays held)
    expected_gripper = 1.0 if episode["action"][3, 3] >= 0 else -1.0
    assert (episode["action"][person][:, 3] == expected_gripper).all()
    runner, _, _ = load_runner(weak_policy)
    runner.reset(1)
    keys = ("observation", "achieved_goal", "desired_goal")
    policy_actions = np.stack([runner.act({k: episode[k][t][None] for k in keys})[0] for t in range(len(person))])
    np.testing.assert_allclose(episode["action"][~person], policy_actions[~person], atol=1e-5)
    assert attrs["device"] == "keyboard" and attrs["source"] == "policy"
