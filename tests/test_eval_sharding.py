"""Deterministic sharded evaluation: the same seeds give the same episodes however they are split over envs,
shards or torchrun's processes, and the shards gather into one eval.json."""

import json

import numpy as np
import pytest
import yaml

from roboil.config import load_config
from roboil.errors import RoboilError
from roboil.evaluate import evaluate
from roboil.plugins import registry
from roboil.policy import PolicyRunner
from roboil.record import record
from roboil.testing import fake_build_context
from roboil.train import train
from conftest import main_fails_in_one_line

# a diffusion policy small enough to play 20-step pendulum episodes in seconds; untrained, its actions are mostly
# its sampling noise, so every episode's return shows whether its noise was its own
TINY_DIFFUSION = {"horizon": 4, "n_obs_steps": 1, "n_action_steps": 2, "down_dims": [8],
                  "num_inference_steps": 3, "diffusion_step_embed_dim": 8, "kernel_size": 3}
EPISODES, MAX_STEPS = 5, 20


@pytest.fixture(scope="module")
def diffusion_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharding")
    store = tmp / "pendulum.zarr"
    record("pendulum", 2, store, progress=False)
    config = tmp / "diffusion.yaml"
    config.write_text(yaml.safe_dump({
        "task": "pendulum", "algorithm": {"name": "diffusion", **TINY_DIFFUSION}, "data": {"path": str(store)},
        "train": {"steps": 2, "batch_size": 8, "warmup_steps": 1, "device": "cpu"}}))
    return train(load_config(config), tmp / "run", progress=False).parents[1]


def play(run, out, **options):
    return evaluate(run, episodes=EPISODES, seed=100, max_steps=MAX_STEPS, out_dir=out, progress=False, **options)


def same_episodes(a: list[dict], b: list[dict]) -> None:
    """Seed, success and length identical; the return to rounding: a batched forward pass is not bit-identical
    across batch sizes (see PolicyModel), while another episode's noise would change it by far more."""
    assert [(e["seed"], e["success"], e["length"]) for e in a] == [(e["seed"], e["success"], e["length"]) for e in b]
    assert [e["return"] for e in a] == pytest.approx([e["return"] for e in b], rel=1e-5, abs=0)


def test_each_episode_draws_its_own_inference_noise():
    context = fake_build_context({"state": (3,)}, 2, algorithm="diffusion", config=TINY_DIFFUSION)
    model = registry().get("algorithm", "diffusion").build(context)
    states = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)

    def actions(rows, seeds=None):
        runner = PolicyRunner(model)
        runner.reset(len(rows), seeds)
        return runner.act({"state": states[rows]})

    together = actions([0, 1, 2], seeds=[10, 11, 12])
    np.testing.assert_allclose(actions([1], seeds=[11])[0], together[1], atol=1e-5)
    np.testing.assert_allclose(actions([2, 1], seeds=[12, 11])[1], together[1], atol=1e-5)
    assert not np.allclose(actions([1], seeds=[12])[0], together[1], atol=1e-3)  # the seed, not the state, decides
    # without seeds the noise comes from torch's global random state: it depends on the batch's other rows
    assert not np.allclose(actions([1])[0], actions([0, 1, 2])[1], atol=1e-3)


def test_sharded_evaluation_plays_each_seed_as_unsharded(diffusion_run, tmp_path, monkeypatch, capsys):
    whole = play(diffusion_run, tmp_path / "whole", envs=2)
    # each shard's episodes share batches with other episodes than unsharded, and envs differ too
    out = tmp_path / "shards"
    assert play(diffusion_run, out, envs=1, shard=(1, 2)) is None  # the other shard has not run yet
    assert [p.name for p in out.glob("eval.shard-*")] == ["eval.shard-1-of-2.json"]
    gathered = play(diffusion_run, out, envs=3, shard=(0, 2))
    same_episodes(gathered["episodes"], whole["episodes"])
    assert json.loads((out / "eval.json").read_text())["episodes"] == gathered["episodes"]
    assert [e["seed"] for e in gathered["episodes"]] == list(range(100, 100 + EPISODES))  # each seed once, in order
    assert gathered["n_episodes"] == EPISODES and (out / "report.html").is_file()
    assert not list(out.glob("eval.shard-*"))  # the partial files are consumed
    capsys.readouterr()
    play(diffusion_run, out, envs=1)  # after shards that ended as they do, no word of a killed one
    assert "was killed" not in capsys.readouterr().err
    # a shard left behind by an evaluation then played whole goes with it: it refused a later sharding
    assert play(diffusion_run, out, envs=1, shard=(1, 2)) is None and play(diffusion_run, out, envs=1)
    assert not list(out.glob("eval.shard-*")) and play(diffusion_run, out, envs=1, shard=(0, 1))

    # torchrun's processes are the shards
    out = tmp_path / "torchrun"
    monkeypatch.setenv("WORLD_SIZE", "3")
    reports = []
    for rank in (2, 0, 1):
        monkeypatch.setenv("RANK", str(rank))
        reports.append(play(diffusion_run, out, envs=2))
    assert reports[:2] == [None, None]  # the last process to finish gathers
    same_episodes(reports[2]["episodes"], whole["episodes"])
    assert [e["seed"] for e in json.loads((out / "eval.json").read_text())["episodes"]] == list(range(100, 105))


def test_shards_of_another_evaluation_are_refused(diffusion_run, tmp_path, capsys, monkeypatch):
    out = tmp_path / "eval"
    assert play(diffusion_run, out, envs=1, shard=(0, 2)) is None
    capsys.readouterr()
    shard = ["eval", str(diffusion_run), "--episodes", str(EPISODES), "--max-steps", str(MAX_STEPS), "--out",
             str(out)]
    main_fails_in_one_line(capsys, [*shard, "--seed", "7", "--shard", "1/2"], "eval.shard-0-of-2.json",
                           "another evaluation", "its seed 100, this one's 7")
    main_fails_in_one_line(capsys, [*shard, "--seed", "100", "--shard", "1/3"], "its shards 2, this one's 3")
    main_fails_in_one_line(capsys, [*shard, "--seed", "100", "--shard", "2/2"], "--shard 2/2 names no shard")
    main_fails_in_one_line(capsys, [*shard, "--shard", "-1/2"], "--shard -1/2 names no shard")  # was argparse's
    main_fails_in_one_line(capsys, [*shard, "--seed", "100", "--shard", "0/6"], "6 shards of 5 episodes")
    main_fails_in_one_line(capsys, [*shard, "--shard", "1"], "'1' is not K/N")
    # the result of a whole evaluation stays beside a shard of the same one, and goes for another one's
    assert play(diffusion_run, out, envs=1, shard=(1, 2))["n_episodes"] == EPISODES
    assert play(diffusion_run, out, envs=1, shard=(0, 2)) is None and (out / "eval.json").is_file()
    (out / "eval.shard-0-of-2.json").unlink()
    assert evaluate(diffusion_run, episodes=EPISODES, seed=7, max_steps=MAX_STEPS, out_dir=out, progress=False,
                    envs=1, shard=(0, 2)) is None
    assert not (out / "eval.json").exists() and not (out / "report.html").exists()
    assert "the eval.json and report.html of another evaluation there were removed" in capsys.readouterr().out
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RoboilError, match="under torchrun"):
        play(diffusion_run, out, shard=(1, 2))
