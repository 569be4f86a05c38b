"""The ALOHA tasks: strict success tests on hand-made states (held, touched, lying across the fingers, held by
both grippers, inserted, at the mouth, beside, crossed) and the scripted experts' success on a few seeds."""

import mujoco
import numpy as np
import pytest

from roboil_aloha.env import START_ARM, TOUCH, AlohaEnv, finger_geoms
from roboil_aloha.expert import BimanualExpert, transfer_cube_phases
from roboil_aloha.ik import ArmIK, rotation
from roboil_aloha.tasks import Insertion, TransferCube

FINGER_FACE = 0.0223  # a finger's inner face is this far inside its slide position (measured on the mesh)
CUBE_HALF = 0.02


def set_body(env, joint: str, xyz, quat=(1.0, 0.0, 0.0, 0.0)):
    adr = env.model.joint(joint).qposadr[0]
    env.data.qpos[adr: adr + 7] = np.r_[xyz, quat]


def place_left_gripper(env, xyz, roll=np.pi / 2, finger=0.057):
    """Put the left grasp point at ``xyz`` (level; rolled a quarter turn the fingers close along z) with the
    fingers at slide position ``finger``; returns the fingers' closing axis in the world."""
    ik = ArmIK(env.model, "left")
    q, start = START_ARM.copy(), ik.tcp(START_ARM)[0]
    for share in np.linspace(0, 1, 20)[1:]:  # small steps: damped least squares from far away can stall
        q = ik.solve(q, start + share * (np.asarray(xyz) - start), rotation(0.0, 0.0, roll))
    env.data.qpos[env.arm_qpos[0]] = q
    env.data.qpos[env.finger_qpos[0]] = [finger, -finger]
    tcp, rot = ik.tcp(q)
    assert np.allclose(tcp, xyz, atol=1e-3)
    return rot[:, 1]


def success_after_forward(env) -> bool:
    mujoco.mj_forward(env.model, env.data)  # contacts of the hand-made state, no time passes
    return env._info()["is_success"]


def lifted(env) -> float:
    mujoco.mj_forward(env.model, env.data)
    return env._info()["lifted"]


def reset_env(task):
    env = AlohaEnv(task)
    env.reset(seed=0)
    return env


def touches(env, geom_a: str, geom_b: str) -> bool:
    scene = env.scene
    return scene.gap(scene.geom[geom_a], scene.geom[geom_b]) <= TOUCH


@pytest.fixture
def cube_env():
    return reset_env(TransferCube())


HELD_AT = np.array([-0.05, 0.5, 0.2])


def test_cube_held_by_both_left_fingers_in_the_air_is_a_success(cube_env):
    place_left_gripper(cube_env, HELD_AT, finger=FINGER_FACE + CUBE_HALF - 0.001)  # 1 mm into each face
    set_body(cube_env, "red_box_joint", HELD_AT)
    assert success_after_forward(cube_env)
    assert lifted(cube_env) == 1.0


def test_cube_touched_by_one_left_finger_is_not_a_success(cube_env):
    axis = place_left_gripper(cube_env, HELD_AT, finger=0.057)
    set_body(cube_env, "red_box_joint", HELD_AT + axis * (0.057 - FINGER_FACE - CUBE_HALF + 0.001))
    assert not success_after_forward(cube_env)


def test_cube_held_on_the_table_is_not_a_success(cube_env):
    on_table = np.array([-0.05, 0.5, CUBE_HALF])
    place_left_gripper(cube_env, on_table + [0, 0, 0.004], finger=FINGER_FACE + CUBE_HALF - 0.001)
    set_body(cube_env, "red_box_joint", on_table)
    assert not success_after_forward(cube_env)
    assert lifted(cube_env) == 0.0


def test_cube_lying_across_both_left_fingers_is_not_a_success(cube_env):
    # level fingers side by side (no roll), nearly closed; the cube dropped onto them comes to rest on both
    place_left_gripper(cube_env, HELD_AT, roll=0.0, finger=0.03)
    set_body(cube_env, "red_box_joint", HELD_AT + [0, 0, 0.05])
    hold = cube_env.joints()
    for _ in range(50):
        *_, info = cube_env.step(hold)
    assert cube_env.data.body("box").xpos[2] > 0.15  # it rests on the gripper
    assert all(touches(cube_env, "red_box", finger) for finger in finger_geoms("left"))
    assert not info["is_success"]


def run_expert(env, expert, seed=0) -> tuple[list[bool], np.ndarray]:
    """The expert's episode: the success flag of every step and the actions."""
    obs, _ = env.reset(seed=seed)
    expert.reset()
    successes, actions = [], []
    for _ in range(400):
        actions.append(expert.act(obs))
        obs, _, _, _, info = env.step(actions[-1])
        successes.append(info["is_success"])
    return successes, np.array(actions)


def test_cube_held_by_both_grippers_or_lying_on_an_open_finger_is_not_a_success():
    task = TransferCube()
    env = AlohaEnv(task)
    obs, _ = env.reset(seed=0)
    expert = BimanualExpert(task, np.random.default_rng(0))
    left_closed = sum(phase.steps for phase in transfer_cube_phases()[:6])  # ...then the right gripper opens
    for _ in range(left_closed):
        obs, _, _, _, info = env.step(expert.act(obs))
    assert all(touches(env, "red_box", finger) for finger in finger_geoms("left"))
    assert any(touches(env, "red_box", finger) for finger in finger_geoms("right"))
    assert not info["is_success"] and info["lifted"] == 1.0  # picked up, not yet handed over
    for _ in range(400 - left_closed):
        obs, _, _, _, info = env.step(expert.act(obs))
    assert info["is_success"]  # the right gripper has let go
    hold_open = env.joints()
    hold_open[6] = 1.0  # the left gripper opens, the arms stay
    for _ in range(40):
        *_, info = env.step(hold_open)
    # the cube now lies on the lower finger of the open (rolled) gripper: off the table, touched, not held
    assert env.data.body("box").xpos[2] > 0.1 and touches(env, "red_box", finger_geoms("left")[1])
    assert not info["is_success"]


@pytest.fixture
def insertion_env():
    return reset_env(Insertion())


SOCKET_AT = np.array([-0.08, 0.5, 0.2])


@pytest.mark.parametrize("peg_offset, quat, expected", [
    ((0.105, 0, 0), (1, 0, 0, 0), True),
    ((0.115, 0, 0), (1, 0, 0, 0), False),
    ((0.105, 0.03, 0), (1, 0, 0, 0), False),
    ((0.105, 0, 0), (np.cos(np.pi / 8), 0, 0, np.sin(np.pi / 8)), False),
], ids=["1.5 cm inside", "0.5 cm at the mouth", "beside", "crossed at 45 degrees"])
def test_insertion_success_needs_the_peg_inside_the_tube(insertion_env, peg_offset, quat, expected):
    set_body(insertion_env, "blue_socket_joint", SOCKET_AT)
    set_body(insertion_env, "red_peg_joint", SOCKET_AT + peg_offset, quat)
    assert success_after_forward(insertion_env) is expected
    assert lifted(insertion_env) == 1.0


def test_insertion_on_the_table_is_not_a_success(insertion_env):
    socket = np.array([-0.08, 0.5, 0.022])
    set_body(insertion_env, "blue_socket_joint", socket)
    set_body(insertion_env, "red_peg_joint", socket + [0.105, 0, 0])
    assert not success_after_forward(insertion_env)
    assert insertion_env.task.inserted(insertion_env.scene)  # only the lift is missing
    assert lifted(insertion_env) == 0.0
    set_body(insertion_env, "blue_socket_joint", SOCKET_AT)  # the socket up, the peg still on the table
    assert lifted(insertion_env) == 0.5


@pytest.mark.parametrize("task_class", [TransferCube, Insertion])
def test_scripted_experts_succeed_and_reset_between_episodes(task_class):
    task = task_class()
    env = AlohaEnv(task)
    expert = BimanualExpert(task, np.random.default_rng(0))  # one expert, reset per episode, as `roboil record`
    episodes = [run_expert(env, expert, seed) for seed in (3, 17, 101)]
    assert all(successes[-1] for successes, _ in episodes)
    # every demonstration on one IK branch: the forearms do not roll half a turn (with the wrists turning back),
    # which would give a policy actions far apart for alike states
    forearm_rolls = np.concatenate([actions[:, [3, 10]] for _, actions in episodes])
    assert np.abs(forearm_rolls).max() < 0.6


def test_actions_and_observations_have_the_documented_shapes(cube_env):
    assert cube_env.action_space.shape == (14,)
    obs, _ = cube_env.reset(seed=5)
    assert obs["joints"].shape == (14,) and obs["objects"].shape == (7,)
    assert np.allclose(obs["joints"][[6, 13]], 1.0)  # grippers start open, within the fingers' range
    obs, *_ = cube_env.step(obs["joints"])
    assert np.allclose(obs["joints"][[6, 13]], 1.0, atol=0.02)
    assert 0.0 <= obs["objects"][0] <= 0.2 and 0.4 <= obs["objects"][1] <= 0.6


def test_a_diverged_simulation_ends_the_episode_as_a_failure(cube_env, tmp_path, monkeypatch):
    # MuJoCo resets a diverged simulation to the model's defaults and carries on; the episode must not
    monkeypatch.chdir(tmp_path)  # where MuJoCo writes its MUJOCO_LOG.TXT
    cube_env.data.qvel[:] = 1e30
    _, _, terminated, _, info = cube_env.step(cube_env.joints())
    assert terminated and info == {"is_success": False, "lifted": 0.0, "diverged": True}
