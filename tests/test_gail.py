"""GAIL / GAIfO: the reward forms and the mixing formula against hand-computed values, absorbing-state
transitions, a discriminator that learns to tell expert from random transitions, observation-only stores
(accepted by GAIfO, refused in one line by algorithms that need actions), exact resume, and a tiny cartpole
run that beats a random policy clearly."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import yaml
import zarr

from conftest import main_fails_in_one_line, run_cli
from roboil.checkpoint import build_model
from roboil.config import load_config, validate
from roboil.envs import ObservedEnv
from roboil.errors import RoboilError
from roboil.record import record
from roboil.replay import demonstration_states
from roboil.store import EpisodeStore
from roboil.train import TrainContext, TrainingData
from roboil_gail.loop import Discriminating, Episodes, bc_loss, behaviour_clone, expert_transitions, with_absorbing
from roboil_gail.sac import SAC
from roboil_gail.model import imitation_reward, mix_rewards


def gail_config(store, **algorithm):
    return validate({"task": EpisodeStore.open(store).attrs["task"], "algorithm": {"name": "gail", **algorithm},
                     "data": {"path": str(store)}, "train": {"steps": 1000, "batch_size": 128}})


def model_and_data(store, **algorithm):
    config = gail_config(store, **algorithm)
    cfg = config.algorithm_params
    data = TrainingData(config, actions=cfg.needs_actions)
    env = ObservedEnv(config.task, {"proprio": {}})
    model = build_model(config, data.features, data.action_dim or 0, data.stats, env.action_space)
    env.close()
    return model, data, config


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("gail")
    for task in ("cartpole", "mountain-car"):
        run_cli("record", "--task", task, "--episodes", 3, "--out", root / f"{task}.zarr", check=True)
    run_cli("store", "drop-actions", root / "cartpole.zarr", "--out", root / "cartpole_obs.zarr", check=True)
    return root


def test_reward_forms_match_hand_computed_values():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    d = [1 / (1 + math.exp(2.0)), 0.5, 1 / (1 + math.exp(-3.0))]  # D = P(expert) = sigmoid(logit)
    assert imitation_reward(logits, "gail").tolist() == pytest.approx([-math.log(1 - p) for p in d], abs=1e-6)
    assert imitation_reward(logits, "logd").tolist() == pytest.approx([math.log(p) for p in d], abs=1e-6)
    assert imitation_reward(logits, "logit").tolist() == pytest.approx([math.log(p / (1 - p)) for p in d], abs=1e-6)
    assert imitation_reward(torch.tensor([0.0]), "gail").item() == pytest.approx(math.log(2))


def test_mixing_formula_and_its_schedule(stores):
    imitation, task = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 1.0])
    assert mix_rewards(imitation, task, 0.25).tolist() == pytest.approx([0.25 * 2 - 0.75, 0.25 * 0.5 + 0.75])
    assert mix_rewards(imitation, task, 1.0).tolist() == imitation.tolist()
    assert mix_rewards(imitation, task, 0.0).tolist() == task.tolist()
    model, data, config = model_and_data(stores / "cartpole.zarr", imitation_weight=1.0, imitation_weight_final=0.2)
    expert = expert_transitions(data, model, config.algorithm_params, "cpu")
    schedule = Discriminating(model, config.algorithm_params, expert, 128, total_steps := 1000)
    assert [schedule.imitation_weight(s) for s in (0, total_steps // 2, total_steps, 2 * total_steps)] == \
        pytest.approx([1.0, 0.6, 0.2, 0.2])


def test_absorbing_state_transitions(stores):
    # three transitions, the second terminal: it leads to the absorbing state, which adds its own transition
    obs = {"state": torch.arange(6.0).view(3, 2)}
    out = with_absorbing(obs, obs, torch.zeros(3, 2), torch.tensor([False, True, False]), absorbing=True)
    assert out["absorbing"].tolist() == [[0, 0], [0, 1], [0, 0], [1, 1]]
    assert with_absorbing(obs, obs, torch.zeros(3, 2), torch.tensor([False, True, False]), False).size == 3

    # mountain-car demonstrations end at the goal (terminated): state-only pairs stop one step early and each
    # episode adds (last state, absorbing) and (absorbing, absorbing)
    store = EpisodeStore.open(stores / "mountain-car.zarr")
    lengths = store.episode_lengths
    assert all(a["terminated"] for a in store.episode_attrs())
    for state_only, expected in ((True, sum(lengths - 1) + 2 * len(lengths)), (False, sum(lengths) + len(lengths))):
        model, data, config = model_and_data(stores / "mountain-car.zarr", state_only=state_only)
        expert = expert_transitions(data, model, config.algorithm_params, "cpu")
        assert expert.size == expected
        flags = expert["absorbing"]
        assert int(flags[:, 0].sum()) == len(lengths)  # one absorbing-to-absorbing row per episode
        # an absorbing state's features are zeroed, whatever values sit under the flag
        disc = model.discriminator
        rows = flags[:, 0] == 1
        x = disc.inputs(expert["obs"], expert["next"] if state_only else expert["action"], flags)[rows]
        assert torch.equal(x, disc.absorbing_input().expand_as(x))

        # a terminal transition earns the absorbing state's discounted value after its own reward
        cfg = config.algorithm_params
        scoring = Discriminating(model, cfg, expert, 128, 1000)
        real = expert.rows(torch.nonzero(~rows)[:, 0][:4])
        terminal = torch.tensor([False, True, False, True])
        reward, _ = scoring.rewards(real, terminal, torch.zeros(4), 0)
        plain = imitation_reward(disc(real["obs"], real["next"] if state_only else real["action"],
                                      real["absorbing"]), "gail")
        r_absorbing = imitation_reward(disc.head(disc.absorbing_input())[:, 0], "gail")
        assert torch.allclose(reward, plain + terminal * cfg.gamma * r_absorbing / (1 - cfg.gamma))


def random_transitions(model, n_steps: int, seed: int):
    """Transitions of a uniformly random cartpole policy, as the discriminator reads them."""
    env = ObservedEnv("cartpole", {"proprio": {}})
    rng = np.random.default_rng(seed)
    states, nexts, actions, ends = [], [], [], []
    obs, _ = env.reset(seed=seed)
    for _ in range(n_steps):
        action = int(rng.integers(2))
        following, _, terminated, truncated, _ = env.step(action)
        states.append(obs["state"]), nexts.append(following["state"]), actions.append(action)
        ends.append(terminated)
        obs = env.reset(seed=int(rng.integers(1 << 30)))[0] if terminated or truncated else following
    env.close()
    action = model.action_input(torch.tensor(actions))
    return with_absorbing({"state": torch.as_tensor(np.array(states))}, {"state": torch.as_tensor(np.array(nexts))},
                          action, torch.tensor(ends), absorbing=True)


@pytest.mark.parametrize("state_only", [True, False])
def test_discriminator_learns_to_separate_expert_from_random_transitions(stores, state_only):
    torch.manual_seed(0)
    model, data, config = model_and_data(stores / "cartpole.zarr", state_only=state_only)
    cfg = config.algorithm_params
    expert = expert_transitions(data, model, cfg, "cpu")
    training, held_out = random_transitions(model, 1500, seed=1), random_transitions(model, 1500, seed=2)
    disc = Discriminating(model, cfg, expert, 128, 1000)

    def accuracy():
        with torch.no_grad():
            other = "next" if state_only else "action"
            on_expert = (model.discriminator(expert["obs"], expert[other], expert["absorbing"]) > 0).float().mean()
            on_random = (model.discriminator(held_out["obs"], held_out[other], held_out["absorbing"]) < 0).float()
            return float(on_expert), float(on_random.mean())

    before = accuracy()
    for _ in range(300):
        disc.step(expert.sample(128), training.sample(128))
    after = accuracy()
    # a random policy's first steps look like the expert's (both start upright), so not every random
    # transition can be told apart: the balanced accuracy is what must rise
    assert min(after) >= 0.6 and np.mean(after) >= 0.8 and np.mean(after) >= np.mean(before) + 0.2, (before, after)


def write_config(path, store, **algorithm):
    path.write_text(yaml.safe_dump({
        "task": "cartpole", "data": {"path": str(store)},
        "algorithm": {"name": "gail", "n_envs": 4, "rollout_steps": 128, "minibatches": 4, **algorithm},
        "train": {"steps": 1024, "lr": 1e-3, "batch_size": 128, "log_every": 512, "checkpoint_every": 512}}))
    return path


def one_line_error(result, message):
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_observation_only_store_is_accepted_by_gaifo_and_refused_by_algorithms_that_need_actions(stores, tmp_path):
    source, copy = EpisodeStore.open(stores / "cartpole.zarr"), EpisodeStore.open(stores / "cartpole_obs.zarr")
    assert "action" in source.features and list(copy.features) == ["state"]
    assert source.features["action"].dtype == "int64" and source.features["action"].shape == ()  # discrete
    assert np.array_equal(copy.load()["state"], source.load()["state"])
    assert [a["seed"] for a in copy.episode_attrs()] == [a["seed"] for a in source.episode_attrs()]

    gaifo = write_config(tmp_path / "gaifo.yaml", stores / "cartpole_obs.zarr", state_only=True)
    run_cli("train", gaifo, "train.steps=512", "--out", tmp_path / "run", check=True)
    refused = "holds observations only (no actions)"
    one_line_error(run_cli("train", gaifo, "algorithm.state_only=false", "--out", tmp_path / "sa"), refused)
    one_line_error(run_cli("train", gaifo, "algorithm.bc_steps=10", "--out", tmp_path / "bc"),
                   f"{refused}, which algorithm.bc_steps>0 needs; set algorithm.state_only=true and leave out what "
                   "learns")
    one_line_error(run_cli("train", "configs/fetch_reach/gcbc.yaml", "task=cartpole",
                           f"data.path={stores / 'cartpole_obs.zarr'}", "--out", tmp_path / "gcbc"), refused)
    one_line_error(run_cli("train", gaifo, "algorithm.learner=sac", "--out", tmp_path / "sac"),
                   "task 'cartpole' has discrete actions, which the sac learner does not take")
    one_line_error(run_cli("train", gaifo, "algorithm.learner=trpo", "--out", tmp_path / "trpo"),
                   "algorithm.learner 'trpo' is invalid; valid: ppo, sac")
    # a traceback and a plugin failure (exit 1) before
    one_line_error(run_cli("train", gaifo, "algorithm.discriminator_keys=[]", "--out", tmp_path / "keys"),
                   "algorithm.discriminator_keys is empty: the discriminator would see nothing")
    one_line_error(run_cli("train", gaifo, "algorithm.hidden=[-4]", "--out", tmp_path / "hidden"),
                   "algorithm.hidden must list positive layer widths, got [-4]")
    one_line_error(run_cli("record", "--task", "cartpole", "--episodes", 1, "--action-noise", 0.1,
                           "--out", tmp_path / "noisy.zarr"), "--action-noise needs continuous actions")
    one_line_error(run_cli("store", "drop-actions", stores / "cartpole_obs.zarr", "--out", tmp_path / "again.zarr"),
                   "holds observations only already (it has no array 'action'); train on it as it is")
    assert not (tmp_path / "noisy.zarr").exists() and not (tmp_path / "again.zarr").exists()


def test_resume_continues_exactly(stores, tmp_path):
    config = write_config(tmp_path / "gail.yaml", stores / "cartpole.zarr", bc_steps=20, eval_every=512,
                          eval_episodes=2)
    whole, split = tmp_path / "whole", tmp_path / "split"
    run_cli("train", config, "--out", whole, check=True)
    run_cli("train", config, "train.steps=512", "--out", split, check=True)
    one_line_error(run_cli("train", config, "algorithm.clip=0.1", "--out", split), "with a changed algorithm.clip: "
                   "0.2 -> 0.1 (the algorithm's settings define the model and how it learns, so they stay as the run "
                   "began, but for algorithm.eval_episodes, algorithm.eval_every); undo the change")
    # how often and on how many episodes it evaluates may change (it was refused with the rest of the section),
    # and training goes on as if never stopped
    resumed = run_cli("train", config, "algorithm.eval_episodes=3", "--out", split, check=True).stderr
    assert "resumed from step 512" in resumed and "algorithm.eval_episodes: 2 -> 3" in resumed, resumed
    final = "checkpoints/step_00001024/model.safetensors"
    assert (split / final).read_bytes() == (whole / final).read_bytes()
    lines = lambda run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert [m["step"] for m in lines(split)] == [512, 1024] and "eval_return" in lines(split)[-1]
    trained = lambda run: [{k: v for k, v in m.items() if k != "time" and not k.startswith("eval_")}  # noqa: E731
                           for m in lines(run)]
    assert trained(split) == trained(whole) and lines(split)[0] == lines(whole)[0] | {"time": lines(split)[0]["time"]}


def test_a_learning_rate_changed_on_resume_is_the_one_trained_with(stores, tmp_path):
    """The resume said "train.lr: 0.001 -> 0.0003" and went on at the saved optimizer's 0.001."""
    config, run = write_config(tmp_path / "gail.yaml", stores / "cartpole.zarr"), tmp_path / "run"
    run_cli("train", config, "train.steps=512", "--out", run, check=True)
    run_cli("train", config, "train.lr=0.0003", "--out", run, check=True)
    state = torch.load(run / "checkpoints/step_00001024/training_state.pt", weights_only=True)
    assert [group["lr"] for group in state["algorithm"]["learner"]["optimizer"]["param_groups"]] == [0.0003]


def test_ctrl_c_saves_the_step_it_came_at_and_the_same_command_resumes(stores, tmp_path):
    """An algorithm's own loop: Ctrl-C printed "roboil: interrupted" and lost everything since the last checkpoint
    (the cartpole config saves every 50,000 steps)."""
    import sys

    from conftest import interrupt_training

    config, run = write_config(tmp_path / "gail.yaml", stores / "cartpole.zarr"), tmp_path / "run"
    command = [sys.executable, "-m", "roboil.cli", "train", str(config), "train.steps=1000000",
               "train.checkpoint_every=1000000", "train.log_every=1", "--out", str(run)]
    returncode, stderr = interrupt_training(command, run, after_steps=2)
    saved = sorted((run / "checkpoints").glob("step_*"))
    assert returncode == 130 and len(saved) == 1, stderr
    step = int(saved[0].name[5:])
    assert f"roboil: stopped at step {step}, saved as {saved[0]}; the same command resumes from there" in stderr
    assert step >= 1024 and "roboil: Ctrl-C: saving at the end of this step" in stderr
    # rollouts of 4 x 128 steps: 1,000,000 is no multiple of them
    assert ("roboil: gail takes environment steps 512 at a time (algorithm.n_envs x rollout_steps): it trains "
            "1000448 steps, and logs and saves at the first stride past each multiple of train.log_every") in stderr
    resumed = run_cli("train", config, f"train.steps={step + 512}", "train.checkpoint_every=1000000",
                      "train.log_every=1", "--out", run, check=True)
    assert f"resumed from step {step}" in resumed.stderr


def test_discriminator_deltas_let_it_see_what_an_action_changed(stores):
    """Mountain-car transitions from the demonstrations' own states but with the other push: s' differs from the
    expert's by one step of the action's force, about 1% of the velocity's range."""
    model, data, config = model_and_data(stores / "mountain-car.zarr", state_only=True)
    expert = expert_transitions(data, model, config.algorithm_params, "cpu")
    states = demonstration_states(data.store, data.episodes.tolist())
    env = ObservedEnv("mountain-car", {"proprio": {}})
    pushed = {"obs": [], "next": []}
    for state, action in zip(states, data.store.load()["action"]):
        obs, _ = env.reset(seed=0, options={"state": state})
        pushed["obs"].append(obs["state"]), pushed["next"].append(env.step(2 - action)[0]["state"])
    env.close()
    other = with_absorbing(*({"state": torch.as_tensor(np.array(pushed[k]))} for k in ("obs", "next")),
                           torch.zeros(len(states), model.action_size), torch.zeros(len(states), dtype=torch.bool),
                           absorbing=False)
    live = expert.live()
    accuracy = {}
    for deltas in (False, True):
        torch.manual_seed(0)
        model, _, config = model_and_data(stores / "mountain-car.zarr", state_only=True, discriminator_deltas=deltas)
        disc = model.discriminator
        if deltas:
            disc.fit_delta_scale(live["obs"], live["next"])
        discriminating = Discriminating(model, config.algorithm_params, live, 128, 1000)
        for _ in range(1000):
            discriminating.step(live.sample(128), other.sample(128))
        with torch.no_grad():
            accuracy[deltas] = float(((disc(live["obs"], live["next"], live["absorbing"]) > 0).float().mean()
                                      + (disc(other["obs"], other["next"], other["absorbing"]) < 0).float().mean()) / 2)
    # measured: 0.95 with the deltas, 0.57 (chance is 0.5) without
    assert accuracy[True] >= 0.9 and accuracy[True] >= accuracy[False] + 0.2, accuracy


def test_demonstration_states_are_the_states_along_the_stored_episodes(stores, tmp_path):
    store = EpisodeStore.open(stores / "mountain-car.zarr")
    states = demonstration_states(store, [0, 2])
    lengths = store.episode_lengths[[0, 2]]
    assert len(states) == lengths.sum()
    stored = np.concatenate([store.episode(i)["state"] for i in (0, 2)])
    env = ObservedEnv("mountain-car", {"proprio": {}})
    for t in (0, 1, int(lengths[0]) - 1, int(lengths[0]), len(states) - 1):  # each restores its stored frame
        obs, _ = env.reset(seed=1, options={"state": states[t]})
        assert np.allclose(obs["state"], stored[t], atol=1e-6), t
    env.close()

    tampered = tmp_path / "tampered.zarr"
    shutil.copytree(stores / "mountain-car.zarr", tampered)
    actions = zarr.open_array(tampered / "data/action", mode="r+")
    actions[:] = (actions[:] + 1) % 3  # other actions than those recorded: another trajectory
    with pytest.raises(RoboilError, match="episode 1 of .* does not replay to its stored observations"):
        demonstration_states(EpisodeStore.open(tampered), [1])


def test_a_share_of_episodes_starts_along_the_demonstrations(stores, tmp_path):
    config = gail_config(stores / "mountain-car.zarr")
    data = TrainingData(config, actions=True)
    states = demonstration_states(data.store, data.episodes.tolist())
    stored = data.store.load()["state"]
    along = lambda obs: [bool(np.isclose(stored, row, atol=1e-6).all(-1).any()) for row in obs["state"]]  # noqa: E731
    context = TrainContext(config, tmp_path)
    runs = {}
    for share in (0.0, 0.5, 1.0):
        episodes = Episodes(context, 8, seed=0, demo_states=states, demo_share=share)
        episodes.restart()
        first = along(episodes.obs)
        episodes.step(np.zeros(8, np.int64))
        runs[share] = (first, episodes.obs["state"].copy())
        episodes.close()
    assert sum(runs[1.0][0]) == 8 and 1 <= sum(runs[0.5][0]) <= 7 and sum(runs[0.0][0]) == 0, runs
    again = Episodes(context, 8, seed=0, demo_states=states, demo_share=0.5)  # the same draws, so resumes are exact
    again.restart()
    again.step(np.zeros(8, np.int64))
    assert np.array_equal(again.obs["state"], runs[0.5][1])
    again.close()
    with pytest.raises(RoboilError, match="holds observations only"):
        demonstration_states(EpisodeStore.open(stores / "cartpole_obs.zarr"), [0])


def test_bc_weight_holds_the_sac_actor_to_the_demonstrations(tmp_path):
    store = tmp_path / "pendulum.zarr"
    run_cli("record", "--task", "pendulum", "--episodes", 2, "--out", store, check=True)
    after = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        config = validate({"task": "pendulum", "data": {"path": str(store)}, "train": {"lr": 3e-3, "batch_size": 128},
                           "algorithm": {"name": "gail", "learner": "sac", "state_only": True, "bc_weight": weight,
                                         "n_envs": 2, "learning_starts": 0}})
        cfg, context = config.algorithm_params, TrainContext(config, tmp_path / f"run_{weight}")
        data = context.load_demonstrations(actions=True)
        model = context.build_policy(data.features, data.action_dim, data.stats)
        behaviour_clone(model, data, steps=300, batch_size=128, lr=1e-3, device="cpu")
        with torch.no_grad():
            cloned = float(bc_loss(model, data, 4096, "cpu"))
        discriminating = Discriminating(model, cfg, expert_transitions(data, model, cfg, "cpu"), 128, 800)
        learner, episodes, step = SAC(context, model, discriminating, data), Episodes(context, 2, seed=0), 0
        episodes.restart()
        while step < 800:
            step, metrics = learner.advance(episodes, step)
        episodes.close()
        assert ("bc_loss" in metrics) == bool(weight)
        with torch.no_grad():
            after[weight] = float(bc_loss(model, data, 4096, "cpu")) / cloned
    # measured: 5.3x the cloned loss without the term, 0.5x with it
    assert after[1.0] < 1.5 and after[0.0] > 3 * after[1.0], after
    with pytest.raises(RoboilError, match="algorithm.bc_weight is a term of SAC's actor loss"):
        gail_config(store, bc_weight=1.0)


def test_sac_clips_its_gradients_to_train_grad_clip(tmp_path):
    """SAC used to ignore train.grad_clip (PPO honoured it)."""
    store = tmp_path / "pendulum.zarr"
    record("pendulum", 1, store, progress=False)
    config = validate({"task": "pendulum", "data": {"path": str(store)}, "train": {"grad_clip": 1e-3},
                       "algorithm": {"name": "gail", "learner": "sac", "n_envs": 2, "learning_starts": 0}})
    context = TrainContext(config, tmp_path / "run")
    data = context.load_demonstrations(actions=True)
    model = context.build_policy(data.features, data.action_dim, data.stats)
    discriminating = Discriminating(model, config.algorithm_params, expert_transitions(data, model,
                                                                                        config.algorithm_params, "cpu"),
                                    64, 100)
    learner, episodes = SAC(context, model, discriminating, data), Episodes(context, 2, seed=0)
    episodes.restart()
    learner.advance(episodes, 0)
    episodes.close()
    # the actor's gradients of the last update stay (the critics' gain the actor loss's after their step)
    norm = torch.nn.utils.clip_grad_norm_([p for p in model.policy_params() if p.grad is not None], float("inf"))
    assert 0 < norm <= 1e-3 * 1.0001, norm


def test_train_keys_its_own_loop_does_not_read_are_refused(stores, capsys, tmp_path):
    config = ["train", "configs/cartpole/gail_state_only.yaml", f"data.path={stores / 'cartpole_obs.zarr'}",
              "--out", str(tmp_path / "run")]
    main_fails_in_one_line(capsys, [*config, "train.warmup_steps=10", "train.ema_decay=0.99",
                                    "train.lr_schedule=constant", "train.compile=true"],
                           "config keys train.compile, train.ema_decay, train.lr_schedule, train.warmup_steps are "
                           "not used by algorithm 'gail', which trains in its own loop applying train.batch_size, "
                           "train.lr, train.grad_clip and the core's train.steps, train.seed", "drop them")
    # set to its default it is not applied either (gail does not warm up)
    main_fails_in_one_line(capsys, [*config, "train.warmup_steps=500"], "config key train.warmup_steps is not used",
                           "drop it")
    assert not (tmp_path / "run").exists()
    load_config(config[1], ["train.grad_clip=1.0", "train.seed=3", "train.device=cpu"])  # what it applies is taken
    # a checkpoint's config.yaml lists every train.* key: those at their defaults pass, one edited does not
    run_cli("train", config[1], config[2], "train.steps=1024", "--out", tmp_path / "done", check=True)
    resolved = tmp_path / "done" / "checkpoints" / "step_00001024" / "config.yaml"
    load_config(resolved)
    with pytest.raises(RoboilError, match="config key train.ema_decay is not used by algorithm 'gail'"):
        load_config(resolved, ["train.ema_decay=0.5"])


def test_an_exception_in_its_own_loop_is_one_line_naming_the_plugin(stores, tmp_path, monkeypatch, capsys):
    """It was a whole traceback; a build's exception was one line already."""
    import errno

    import roboil_gail.loop
    from roboil.cli import main

    def broken(context):
        raise AttributeError("'dict' object has no attribute 'eval_every'")

    monkeypatch.setattr(roboil_gail.loop, "train_gail", broken)
    argv = ["train", "configs/cartpole/gail_state_only.yaml", f"data.path={stores / 'cartpole_obs.zarr'}", "--out",
            str(tmp_path / "run")]
    assert main(argv) == 1
    assert capsys.readouterr().err == ("roboil: error: algorithm 'gail' (plugin 'gail') failed in train: AttributeError("
                                       "\"'dict' object has no attribute 'eval_every'\"); set ROBOIL_DEBUG=1 for the "
                                       "traceback\n")

    def disk_full(context):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(roboil_gail.loop, "train_gail", disk_full)  # as a save of its checkpoint would
    main_fails_in_one_line(capsys, argv, f"no space left on the device holding '{tmp_path / 'run'}'")


@pytest.mark.slow
def test_tiny_gaifo_cartpole_run_beats_a_random_policy_clearly(stores, tmp_path):
    """GAIfO from 3 observation-only demonstrations, 61K environment steps (about 30 s here)."""
    config = write_config(tmp_path / "gaifo.yaml", stores / "cartpole_obs.zarr", state_only=True, n_envs=8,
                          discriminator_ratio=4)
    returns = {}
    for name, steps in (("untrained", 1024), ("trained", 61440)):
        run_cli("train", config, f"train.steps={steps}", "--out", tmp_path / name, check=True)
        run_cli("eval", tmp_path / name, "--episodes", 10, "--envs", 2, check=True)
        returns[name] = json.loads((tmp_path / name / "eval" / "eval.json").read_text())["mean_return"]
    assert returns["trained"] >= 200 and returns["trained"] >= 5 * returns["untrained"], returns
