"""The task plugins' state capture and teleop controllers, on the real simulations (proprio only, no rendering).

- Every task's ``get_state``/``set_state``: an env reset with another seed and restored continues bit for bit as
  the original (observations, rewards, ``is_success``), from the episode's start and from a state mid-way.
- Each controller maps end-effector commands to the action that moves the robot the commanded way.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from roboil import EndEffectorCommand
from roboil.plugins import registry

OUR_TASKS = {"fetch-reach", "fetch-push", "fetch-pick-and-place", "pusht", "aloha-transfer-cube", "aloha-insertion",
             "cartpole", "acrobot", "mountain-car", "pendulum"}
MUJOCO_TASKS = {"fetch-reach", "fetch-push", "fetch-pick-and-place", "pusht", "aloha-transfer-cube",
                "aloha-insertion"}
PREFIX, CONTINUE = 6, 12  # expert steps before the mid-episode state, and steps compared after each restore


def task(name):
    return registry().get("task", name)


def make(name):
    return task(name).make_env(render_mode=None)


def same_obs(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    return np.array_equal(a, b)


def test_our_tasks_are_registered_with_state_and_teleop():
    names = set(registry().names("task"))
    assert OUR_TASKS <= names
    for name in OUR_TASKS:
        spec = task(name)
        assert spec.get_state is not None and spec.set_state is not None and spec.teleop is not None, name
        assert (spec.scene is not None) == (name in MUJOCO_TASKS), name


@pytest.mark.parametrize("name", registry().names("task"))
def test_state_round_trip(name):
    spec = task(name)
    if spec.get_state is None:
        assert name not in OUR_TASKS
        pytest.skip(f"{name} has no get_state")
    original, restored = make(name), make(name)
    obs, info = original.reset(seed=1)
    expert = spec.make_expert(np.random.default_rng(0))
    expert.reset()
    states, observations, actions, rewards, successes, ends = [spec.get_state(original)], [obs], [], [], [], []
    for t in range(PREFIX + CONTINUE):
        actions.append(expert.act(obs))
        obs, reward, terminated, truncated, info = original.step(actions[-1])
        observations.append(obs)
        rewards.append(reward)
        successes.append(bool(info["is_success"]))
        ends.append(terminated)
        states.append(spec.get_state(original))
        assert not terminated, f"{name} ended at step {t}: the test needs a longer episode"
    assert all(s.ndim == 1 and s.dtype == np.float64 for s in states)

    for start in (0, PREFIX):
        restored.reset(seed=2)
        assert not np.array_equal(spec.get_state(restored), states[start])  # the restore has work to do
        obs = spec.set_state(restored, states[start])
        assert same_obs(obs, observations[start]), f"{name}: restored observation at step {start}"
        np.testing.assert_array_equal(spec.get_state(restored), states[start])
        for t in range(start, PREFIX + CONTINUE):
            obs, reward, terminated, _, info = restored.step(actions[t])
            assert same_obs(obs, observations[t + 1]), f"{name}: observation {t + 1} restored from step {start}"
            assert reward == rewards[t] and terminated == ends[t]
            assert bool(info["is_success"]) == successes[t]
    original.close()
    restored.close()


def test_state_round_trip_mid_manipulation():
    """Later in the episodes, with objects held and moving: the ALOHA cube already in the left hand (success
    every step), the Fetch block carried (Pick-and-Place observes the state one substep late and its actions
    read the gripper's stale pose: both must come back exactly)."""
    for name, prefix, more, successes_expected in (("aloha-transfer-cube", 330, 15, True),
                                                    ("fetch-pick-and-place", 20, 20, None)):
        spec = task(name)
        original, restored = make(name), make(name)
        obs, _ = original.reset(seed=1)
        expert = spec.make_expert(np.random.default_rng(0))
        expert.reset()
        for _ in range(prefix):
            obs, *_ = original.step(expert.act(obs))
        state = spec.get_state(original)
        restored.reset(seed=5)
        other = spec.set_state(restored, state)
        assert same_obs(other, obs)
        for _ in range(more):
            action = expert.act(obs)
            obs, reward, _, _, info = original.step(action)
            other, other_reward, _, _, other_info = restored.step(action)
            assert same_obs(obs, other) and reward == other_reward and info["is_success"] == other_info["is_success"]
            if successes_expected is not None:
                assert bool(info["is_success"]) == successes_expected


def test_set_state_rejects_a_wrong_size():
    for name in ("fetch-reach", "pusht", "cartpole"):
        env = make(name)
        env.reset(seed=0)
        state = task(name).get_state(env)
        with pytest.raises(ValueError):
            task(name).set_state(env, state[:-1])


def test_scene_is_the_envs_own():
    for name in MUJOCO_TASKS:
        env = make(name)
        env.reset(seed=0)
        model, data = task(name).scene(env)
        assert isinstance(model, mujoco.MjModel) and isinstance(data, mujoco.MjData)
        assert data is env.unwrapped.data
    assert task("cartpole").scene is None


def test_fetch_goal_marker_follows_the_goal():
    spec = task("fetch-push")
    env = make("fetch-push")
    obs, _ = env.reset(seed=3)
    data = env.unwrapped.data
    np.testing.assert_allclose(data.site("target0").xpos, obs["desired_goal"], atol=1e-12)  # no render() needed
    state = spec.get_state(env)
    env.reset(seed=4)
    obs = spec.set_state(env, state)
    np.testing.assert_allclose(data.site("target0").xpos, obs["desired_goal"], atol=1e-12)


def test_fetch_controller_passes_the_command_through():
    env = make("fetch-push")
    controller = task("fetch-push").teleop.make_controller(env)
    controller.reset()
    action = controller(EndEffectorCommand(translation=(1.0, -0.5, 0.25), gripper=-1.0))
    np.testing.assert_array_equal(action, np.array([1.0, -0.5, 0.25, -1.0], np.float32))
    assert env.action_space.contains(action)
    assert task("fetch-push").teleop.arms == ("arm",) and not task("fetch-push").teleop.rotation


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fetch_reach_by_proportional_commands(seed):
    spec = task("fetch-reach")
    env = make("fetch-reach")
    controller = spec.teleop.make_controller(env)
    obs, _ = env.reset(seed=seed)
    controller.reset()
    distance = lambda o: float(np.linalg.norm(o["desired_goal"] - o["observation"][:3]))
    assert distance(obs) > 0.1  # 2 to 4 steps of full speed away
    for _ in range(spec.max_episode_steps):
        error = obs["desired_goal"] - obs["observation"][:3]
        obs, _, _, _, info = env.step(controller(EndEffectorCommand(translation=tuple(np.clip(error / 0.05, -1, 1)))))
    assert info["is_success"]
    # there, not only within the 5 cm of success (seed 0's goal is 2 cm below where the arm can go)
    assert distance(obs) < 0.03


def test_fetch_gripper_command_opens_and_closes():
    env = make("fetch-pick-and-place")
    controller = task("fetch-pick-and-place").teleop.make_controller(env)
    obs, _ = env.reset(seed=0)
    controller.reset()
    width = lambda o: float(o["observation"][9] + o["observation"][10])
    widths = [width(obs)]
    for gripper in (1.0, -1.0):
        for _ in range(10):
            obs, *_ = env.step(controller(EndEffectorCommand(gripper=gripper)))
        widths.append(width(obs))
    assert widths[1] > widths[0] + 0.05  # opened
    assert widths[2] < widths[1] - 0.05  # closed


def test_pusht_command_moves_the_pusher():
    from roboil_pusht.teleop import SPEED

    spec = task("pusht")
    env = make("pusht")
    controller = spec.teleop.make_controller(env)
    obs, _ = env.reset(seed=0)
    controller.reset()
    start = obs["agent_pos"].copy()
    np.testing.assert_array_equal(controller(EndEffectorCommand()), start)  # the target starts on the pusher
    ticks = 5
    for _ in range(ticks):
        obs, *_ = env.step(controller(EndEffectorCommand(translation=(1.0, 0.0, 0.0))))
    for _ in range(2):  # let the pusher catch up with its target
        obs, *_ = env.step(controller(EndEffectorCommand()))
    moved = obs["agent_pos"] - start
    assert moved[0] == pytest.approx(SPEED * ticks / spec.fps, rel=0.05) and abs(moved[1]) < 1e-3
    for _ in range(3):
        obs, *_ = env.step(controller(EndEffectorCommand(translation=(0.0, -1.0, 0.0))))
    assert obs["agent_pos"][1] < start[1] - 0.03


def test_aloha_commands_move_one_arm():
    from roboil_aloha.ik import ArmIK
    from roboil_aloha.teleop import ANGULAR_SPEED, SPEED, rotation_angle

    spec = task("aloha-transfer-cube")
    assert spec.teleop.arms == ("left", "right") and spec.teleop.rotation
    env = make("aloha-transfer-cube")
    controller = spec.teleop.make_controller(env)
    obs, _ = env.reset(seed=0)
    controller.reset()
    right = ArmIK(env.unwrapped.model, "right")
    tcp = lambda o: right.tcp(np.asarray(o["joints"][7:13], dtype=np.float64))
    joints0 = obs["joints"].copy()
    position0, rot0 = (v.copy() for v in tcp(obs))
    ticks, settle = 25, 25

    def drive(command):
        nonlocal obs
        actions = []
        for n, c in ((ticks, command), (settle, EndEffectorCommand(arm=command.arm, gripper=command.gripper))):
            for _ in range(n):
                actions.append(controller(c))
                obs, *_ = env.step(actions[-1])
        return np.array(actions)

    # +z on the right arm: its grasp point rises by the commanded distance, the left arm's targets never change
    actions = drive(EndEffectorCommand(translation=(0.0, 0.0, 1.0), arm=1))
    position1, rot1 = (v.copy() for v in tcp(obs))
    rise = SPEED * ticks / spec.fps
    assert position1[2] - position0[2] == pytest.approx(rise, rel=0.15)
    assert np.linalg.norm(position1[:2] - position0[:2]) < 0.01
    assert rotation_angle(rot0, rot1) < 0.05
    assert (actions[:, :7] == joints0[:7]).all()  # the left arm's joint and gripper targets held
    assert np.abs(obs["joints"][:7] - joints0[:7]).max() < 0.02

    # a turn about the world z axis: the right gripper turns about z by the commanded angle, staying in place
    drive(EndEffectorCommand(rotation=(0.0, 0.0, 1.0), arm=1))
    position2, rot2 = tcp(obs)
    turn = rot2 @ rot1.T
    angle = rotation_angle(rot1, rot2)
    axis = np.array([turn[2, 1] - turn[1, 2], turn[0, 2] - turn[2, 0], turn[1, 0] - turn[0, 1]]) / (2 * np.sin(angle))
    assert angle == pytest.approx(ANGULAR_SPEED * ticks / spec.fps, rel=0.1)
    assert axis[2] > 0.99
    assert np.linalg.norm(position2 - position1) < 0.015

    # the left arm (arm 0) moves; now the right arm's targets hold, and its gripper closes on command
    before = obs["joints"].copy()
    actions = drive(EndEffectorCommand(translation=(0.0, -1.0, 0.0), arm=0, gripper=-1.0))
    assert (actions[:, 7:13] == actions[0, 7:13]).all() and (actions[:, 13] == actions[0, 13]).all()
    assert (actions[:, 6] == 0.0).all() and obs["joints"][6] < 0.1  # the left gripper closed
    left = ArmIK(env.unwrapped.model, "left")
    moved = left.tcp(obs["joints"][0:6].astype(np.float64))[0] - left.tcp(before[0:6].astype(np.float64))[0]
    assert moved[1] == pytest.approx(-SPEED * ticks / spec.fps, rel=0.15)


def test_aloha_target_stays_reachable():
    """Commands held far beyond the arm's reach leave a finite, reachable target, and the arm comes back."""
    spec = task("aloha-transfer-cube")
    env = make("aloha-transfer-cube")
    controller = spec.teleop.make_controller(env)
    env.reset(seed=0)
    controller.reset()
    for _ in range(150):  # the right arm stretched 1.5 m towards -x
        action = controller(EndEffectorCommand(translation=(-1.0, 0.0, 1.0), arm=1))
        env.step(action)
    assert np.isfinite(action).all() and env.action_space.contains(action)
    from roboil_aloha.ik import ArmIK

    right = ArmIK(env.unwrapped.model, "right")
    position, _ = controller.poses[1]
    np.testing.assert_allclose(right.tcp(action[7:13].astype(np.float64))[0], position, atol=2e-3)
    # one tick back: the target moves back at once (no wound-up distance to undo first)
    after = controller(EndEffectorCommand(translation=(1.0, 0.0, 0.0), arm=1))
    assert controller.poses[1][0][0] > position[0] and np.isfinite(after).all()


def test_classic_controllers_map_the_sign_of_x():
    def command(x):
        return EndEffectorCommand(translation=(x, 0.0, 0.0))

    env = make("cartpole")
    cartpole = task("cartpole").teleop.make_controller(env)
    cartpole.reset()
    assert cartpole(command(0.3)) == 1 and cartpole(command(-0.3)) == 0
    assert [cartpole(command(0.0)) for _ in range(4)] == [0, 1, 0, 1]  # no "none" action: alternate
    cartpole.reset()
    assert cartpole(command(0.0)) == 0
    start = env.reset(seed=0)[0]
    assert env.step(cartpole(command(1.0)))[0][1] > start[1] + 0.1  # pushed right: faster to the right

    for name in ("mountain-car", "acrobot"):
        env = make(name)
        controller = task(name).teleop.make_controller(env)
        controller.reset()
        actions = [controller(command(x)) for x in (-0.5, 0.0, 0.5)]
        assert actions == [0, 1, 2] and all(type(a) is int and env.action_space.contains(a) for a in actions)

    env = make("pendulum")
    pendulum = task("pendulum").teleop.make_controller(env)
    pendulum.reset()
    torque = pendulum(command(-0.5))
    assert torque.dtype == np.float32 and torque.shape == (1,) and torque[0] == pytest.approx(-1.0)
    assert env.action_space.contains(torque) and env.action_space.contains(pendulum(command(1.0)))
    assert pendulum(command(1.0))[0] == pytest.approx(2.0)
