"""ACT through the user's path on a real bimanual task: record scripted aloha-transfer-cube demos, train a small
ACT from state (its L1 on the demonstrated chunks must fall), evaluate it with either executor."""

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def act_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("act")
    store = root / "tc.zarr"
    run_cli("record", "--task", "aloha-transfer-cube", "--episodes", 2, "--out", store, "obs.pixels.cameras=[]",
            check=True)
    run_cli("train", "configs/aloha_transfer_cube/act_state.yaml", f"data.path={store}", "--out", root / "run",
            "train.steps=400", "train.log_every=20", "train.warmup_steps=20", "train.batch_size=16",
            "algorithm.dim_model=32", "algorithm.dim_feedforward=64", "algorithm.chunk_size=10",
            "algorithm.n_action_steps=5", check=True)
    return root / "run"


def test_act_l1_on_demonstrated_chunks_falls(act_run):
    metrics = [json.loads(line) for line in (act_run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 400
    assert metrics[-1]["l1"] < 0.5 * metrics[0]["l1"], (metrics[0]["l1"], metrics[-1]["l1"])
    assert metrics[-1]["kl"] >= 0.0


@pytest.mark.parametrize("executor", [("queue", ["executor.n_action_steps=3"], {"n_action_steps": 3}),
                                      ("ensemble", [], {"coefficient": 0.01})], ids=["queue", "ensemble"])
def test_act_evaluates_with_either_executor(act_run, tmp_path, executor):
    name, params, recorded = executor
    run_cli("eval", act_run, "--episodes", 1, "--max-steps", 30, "--executor", name, *params, "--out", tmp_path,
            check=True)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert len(report["episodes"]) == 1 and report["episodes"][0]["length"] == 30
    assert report["evaluation"]["executor"] == {"name": name, **recorded}  # defaults too: what ran, in full
