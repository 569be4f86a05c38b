"""The PushT task: coverage against closed-form areas, observations, and a scripted expert that succeeds and
is multimodal (the same start, two expert seeds, visibly different paths)."""

import numpy as np
import pytest

from roboil.envs import ObservedEnv
from roboil_pusht import MAX_EPISODE_STEPS
from roboil_pusht.env import TARGET_POSE, PushTEnv, coverage, t_polygon
from roboil_pusht.expert import PushTExpert

T_AREA = 0.2 * 0.05 + 0.05 * 0.15  # bar + stem


def test_coverage_closed_form():
    assert coverage(TARGET_POSE) == pytest.approx(1.0)
    # slide the T along its bar by 1 cm: the bar loses 1 cm x 5 cm, the stem overlaps 4 of its 5 cm width
    angle = TARGET_POSE[2]
    shifted = TARGET_POSE + np.array([0.01 * np.cos(angle), 0.01 * np.sin(angle), 0.0])
    expected = (0.19 * 0.05 + 0.04 * 0.15) / T_AREA
    assert coverage(shifted) == pytest.approx(expected, rel=1e-6)
    assert coverage(TARGET_POSE + np.array([0.5, 0.5, 0.0])) == 0.0


def test_observation_and_success_info():
    env = PushTEnv()
    obs, info = env.reset(seed=3)
    assert obs["agent_pos"].shape == (2,) and obs["block_pose"].shape == (4,)
    assert np.hypot(*obs["block_pose"][2:]) == pytest.approx(1.0, abs=1e-5)  # cos, sin of the block angle
    # the keypoints are the corners of the block's outline, the polygon the coverage is computed from
    x, y, c, s = obs["block_pose"]
    corners = obs["block_keypoints"].reshape(-1, 2)
    np.testing.assert_allclose(corners, t_polygon([x, y, np.arctan2(s, c)]).exterior.coords[:-1], atol=1e-6)
    assert info["coverage"] < 0.5 and info["is_success"] is False
    obs2, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs["block_pose"], obs2["block_pose"])  # seeded resets are reproducible
    env.close()


def rollout(seed: int, expert_seed: int):
    env = ObservedEnv("pusht", {"proprio": {}})
    obs, info = env.reset(seed=seed)
    expert = PushTExpert(np.random.default_rng(expert_seed))
    expert.reset()
    path, done = [obs["agent_pos"]], False
    while not done:
        obs, _, terminated, truncated, info = env.step(expert.act(env.raw_obs))
        path.append(obs["agent_pos"])
        done = terminated or truncated
    env.close()
    return info, np.array(path)


def test_expert_succeeds_and_is_multimodal():
    results = [rollout(seed, expert_seed) for seed in (0, 1) for expert_seed in (1, 2)]
    assert all(info["is_success"] and info["coverage"] >= 0.95 for info, _ in results)
    (_, a), (_, b) = results[0], results[1]  # one start, two expert seeds
    n = min(len(a), len(b))
    assert np.linalg.norm(a[:n] - b[:n], axis=1).max() > 0.1  # the paths go around different sides


@pytest.mark.parametrize("max_steps", [None, MAX_EPISODE_STEPS + 20])
def test_episodes_end_at_the_time_limit_eval_asks_for(max_steps):
    """300 steps by default; `roboil eval --max-steps` may lengthen episodes as well as shorten them."""
    env = ObservedEnv("pusht", {"proprio": {}}, max_steps=max_steps)
    env.reset(seed=0)
    for steps in range(1, 2 * MAX_EPISODE_STEPS):  # bounded, so a missing limit fails instead of hanging
        _, _, terminated, truncated, _ = env.step(env.action_space.high)  # park in a corner: never succeeds
        assert not terminated
        if truncated:
            break
    assert steps == (max_steps or MAX_EPISODE_STEPS)
    env.close()
