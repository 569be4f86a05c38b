"""Record with the scripted expert, train GCBC, evaluate in simulation: the whole user path on a tiny budget."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr

from roboil.envs import ObservedEnv
from roboil.store import EpisodeStore
from conftest import run_cli

CONFIG = "configs/fetch_reach/gcbc.yaml"


@pytest.fixture(scope="module")
def reach_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reach.zarr"
    run_cli("record", "--task", "fetch-reach", "--episodes", 30, "--out", path,
            "--seed", 0, check=True)
    return path


@pytest.fixture(scope="module")
def reach_run(reach_store, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "gcbc"
    run_cli("train", CONFIG, f"data.path={reach_store}", "train.steps=1500", "train.checkpoint_every=500", "train.log_every=10",
            "algorithm.hidden_dims=[256,256]", "--out", run, check=True)
    return run


def test_recorded_store_is_a_plain_zarr_replay_buffer(reach_store):
    root = zarr.open_group(reach_store, mode="r")
    ends = root["meta/episode_ends"][:]
    assert ends.dtype == np.int64 and len(ends) == 30 and (np.diff(ends) > 0).all()
    assert root["data/action"].shape == (ends[-1], 4)
    assert root["data/observation"].shape == (ends[-1], 10)
    store = EpisodeStore.open(reach_store)
    attrs = store.episode_attrs()
    assert [a["seed"] for a in attrs] == list(range(30))
    assert all(a["task"] == "fetch-reach" and a["source"] == "scripted" for a in attrs)
    assert np.mean([a["success"] for a in attrs]) >= 0.95
    assert run_cli("store", "check", reach_store).returncode == 0


def test_trained_gcbc_reaches_goals_and_eval_is_reproducible(reach_run, tmp_path):
    metrics = [json.loads(line) for line in (reach_run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 1500
    assert metrics[-1]["loss"] < 0.2 * metrics[0]["loss"]  # the loss fell
    reports = []
    for name in ("a", "b"):
        run_cli("eval", reach_run, "--episodes", 10, "--envs", 2, "--seed", 100000, "--out", tmp_path / name,
                check=True)
        reports.append(json.loads((tmp_path / name / "eval.json").read_text()))
    first, second = reports
    assert first["success_rate"] >= 0.8  # the policy learned to reach (an untrained one scores ~0)
    assert first["success_rate"] == second["success_rate"] and first["mean_return"] == second["mean_return"]
    assert [e["seed"] for e in first["episodes"]] == list(range(100000, 100010))
    lo, hi = first["success_ci95"]
    assert lo <= first["success_rate"] <= hi


def test_untrained_policy_fails_where_trained_one_succeeds(reach_store, tmp_path):
    run = tmp_path / "untrained"
    run_cli("train", CONFIG, f"data.path={reach_store}", "train.steps=1", "train.warmup_steps=1",
            "algorithm.hidden_dims=[256,256]", "--out", run, check=True)
    run_cli("eval", run, "--episodes", 10, "--envs", 2, "--out", tmp_path / "eval", check=True)
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["success_rate"] <= 0.3


def test_eval_writes_videos(reach_run, tmp_path):
    import cv2

    run_cli("eval", reach_run, "--episodes", 3, "--envs", 2, "--video", "--out", tmp_path, check=True)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert [e["seed"] for e in report["episodes"] if "video" in e] == [100000, 100001, 100002]
    for episode in report["episodes"]:
        capture = cv2.VideoCapture(episode["video"])
        assert int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") in (b"h264", b"avc1")  # H.264
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = capture.read()
        assert ok and frames == episode["length"] + 1 and frame.std() > 10
        assert cv2.imread(episode["final_frame"]).shape == frame.shape
    page = (tmp_path / "report.html").read_text()
    assert page.count("<video ") == 3 and 'poster="videos/seed_100000.png"' in page
    assert 'src="videos/seed_100000.mp4"' in page and page.count("<tr>") == 4  # header + one row per episode


def test_eval_json_says_what_was_evaluated_and_drops_an_earlier_evaluations_videos(reach_run, tmp_path):
    run_cli("eval", reach_run, "--episodes", 2, "--video", "--out", tmp_path, check=True)
    assert len(list((tmp_path / "videos").iterdir())) == 4  # two episodes' video and final frame
    run_cli("eval", reach_run, "--episodes", 3, "--max-steps", 5, "--seed", 7, "--out", tmp_path, check=True)
    report = json.loads((tmp_path / "eval.json").read_text())
    checkpoint = reach_run / "checkpoints" / "step_00001500"
    evaluation = dict(report["evaluation"])
    trained = yaml.safe_load((checkpoint / "config.yaml").read_text())["algorithm"]
    assert evaluation.pop("algorithm") == trained and trained["name"] == "gcbc"  # every setting of what was trained
    assert evaluation == {"checkpoint": str(checkpoint.resolve()), "step": 1500, "task": "fetch-reach",
                          "episodes": 3, "seed": 7, "max_steps": 5,
                          "executor": {"name": "queue", "n_action_steps": None}}
    assert list((tmp_path / "videos").iterdir()) == []  # none of this evaluation's, none left from the last
    page = (tmp_path / "report.html").read_text()
    assert f"gcbc &middot; checkpoint {checkpoint.resolve()} (step 1500) &middot; seeds 7&ndash;9 &middot; " \
        "episode length at most 5 steps &middot; executor queue" in page
    assert "successs" not in page and ("failures" in page or "successes" in page)


def test_training_resumes_from_the_last_checkpoint(reach_store, tmp_path):
    run = tmp_path / "run"
    args = (CONFIG, f"data.path={reach_store}", "train.checkpoint_every=50", "algorithm.hidden_dims=[32]",
            "--out", run)
    run_cli("train", *args, "train.steps=100", check=True)
    run_cli("train", *args, "train.steps=150", check=True)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [100, 150]  # logged every 100 steps and at the end; the resumed run did not restart at 0
    assert (run / "checkpoints" / "last").read_text() == "step_00000150"


def test_pixels_are_stored_as_rendered(tmp_path):
    """Replaying the stored actions re-renders exactly the stored frames."""
    path = tmp_path / "pix.zarr"
    cameras = "obs.pixels.cameras=[external_camera_0]"
    run_cli("record", "--task", "fetch-reach", "--episodes", 2, "--out", path, "--seed", 5, cameras,
            "obs.pixels.height=32", "obs.pixels.width=48", check=True)
    store = EpisodeStore.open(path)
    assert store.features["rgb_external_camera_0"].shape == (32, 48, 3)
    assert store.array("rgb_external_camera_0").chunks == (1, 32, 48, 3)
    episode = store.episode(1)
    frames = episode["rgb_external_camera_0"]
    assert frames.dtype == np.uint8 and frames.std() > 10
    env = ObservedEnv("fetch-reach", {"proprio": {}, "pixels": {"cameras": ["external_camera_0"], "height": 32,
                                                                 "width": 48}})
    obs, _ = env.reset(seed=6)
    for t, action in enumerate(episode["action"][:5]):
        np.testing.assert_array_equal(obs["rgb_external_camera_0"], frames[t])
        obs, *_ = env.step(action)
    env.close()


def test_recording_into_a_store_of_another_task_is_refused(reach_store):
    result = run_cli("record", "--task", "fetch-push", "--episodes", 1, "--out", reach_store)
    assert result.returncode == 2 and result.stderr.strip() == (  # before any device or window is set up
        f"roboil: error: store '{reach_store}' holds task 'fetch-reach', not 'fetch-push'; record into a new --out path")
    assert EpisodeStore.open(reach_store).n_episodes == 30  # nothing recorded was lost


def test_killed_recording_keeps_every_completed_episode(tmp_path):
    """SIGKILL `roboil record` at random moments once it has committed an episode more; the store stays valid and
    re-running continues it."""
    import random
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "killed.zarr"
    rng = random.Random(1234)
    committed = 0
    for attempt in range(3):
        writer = subprocess.Popen([sys.executable, "-m", "roboil.cli", "record", "--task", "fetch-reach",
                                   "--episodes", "1000", "--out", str(path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not (path / "zarr.json").exists() or EpisodeStore.open(path).n_episodes <= committed:
            assert writer.poll() is None and time.monotonic() < deadline, "the recorder committed no episode"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.0))  # then kill it at a random moment of a later episode
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        check = run_cli("store", "check", path)
        assert check.returncode == 0, check.stdout
        store = EpisodeStore.open(path)
        assert store.n_episodes >= committed  # nothing committed was lost
        committed = store.n_episodes
        assert [a["seed"] for a in store.episode_attrs()] == list(range(committed))
        assert (store.episode_lengths == 50).all()
    assert committed > 0
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", path, check=True)
    assert EpisodeStore.open(path).n_episodes == committed + 1


def test_eval_json_names_its_videos_so_they_open_from_anywhere(reach_run, tmp_path):
    run_cli("eval", reach_run, "--episodes", 1, "--video", "--out", "report", check=True, cwd=tmp_path)
    episode = json.loads((tmp_path / "report" / "eval.json").read_text())["episodes"][0]
    assert os.path.isabs(episode["video"]) and os.path.isfile(episode["video"])
    assert os.path.isfile(episode["final_frame"])


@pytest.fixture(scope="module")
def mixed_outcomes(reach_store, tmp_path_factory):
    """A run that films one episode, and the outcomes of its first 12 episodes cut to 3 steps (about half
    succeed: a policy that reaches, given too little time for some goals)."""
    run = tmp_path_factory.mktemp("runs") / "film_one"
    run_cli("train", CONFIG, f"data.path={reach_store}", "train.steps=1500", "algorithm.hidden_dims=[256,256]",
            "eval.video_episodes=1", "--out", run, check=True)
    out = tmp_path_factory.mktemp("eval") / "outcomes"
    run_cli("eval", run, "--episodes", 12, "--max-steps", 3, "--out", out, check=True)
    outcomes = [e["success"] for e in json.loads((out / "eval.json").read_text())["episodes"]]
    assert 0 < sum(outcomes) < len(outcomes), outcomes  # both outcomes, or the test below has nothing to film
    return run, outcomes


def test_eval_films_the_other_outcome_when_the_first_episodes_lack_it(mixed_outcomes, tmp_path):
    """eval.video_episodes=1 films the first episode as it plays; the first episode of the other outcome is played
    again on camera, and the replay is the episode in the table (same outcome and length)."""
    import cv2

    run, outcomes = mixed_outcomes
    other = outcomes.index(not outcomes[0])
    run_cli("eval", run, "--episodes", other + 1, "--max-steps", 3, "--video", "--out", tmp_path, check=True)
    report = json.loads((tmp_path / "eval.json").read_text())
    assert [e["success"] for e in report["episodes"]] == outcomes[:other + 1]  # the same episodes as before
    filmed = [e for e in report["episodes"] if "video" in e]
    assert [e["seed"] for e in filmed] == [100000, 100000 + other]
    assert "filmed_again" not in filmed[0] and filmed[1]["filmed_again"]
    capture = cv2.VideoCapture(filmed[1]["video"])
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == filmed[1]["length"] + 1
    page = (tmp_path / "report.html").read_text()
    assert page.count("<video ") == 2 and page.count("(played again to film it)") == 1


def test_a_replay_that_ends_otherwise_is_not_filmed_as_the_episode(mixed_outcomes, tmp_path, capsys):
    """Should a second play of a seed end otherwise (floats differ between batch sizes), its video is dropped and
    the table keeps no video for that episode: a result claimed for a seed whose real play differs stands in."""
    import functools

    from roboil.checkpoint import load_runner
    from roboil.evaluate import _film_both_outcomes

    run, outcomes = mixed_outcomes
    runner, config, meta = load_runner(run, None, "cpu")
    make_env = functools.partial(ObservedEnv, config.task, meta["observations"], render_mode="rgb_array",
                                 max_steps=3, video_dir=tmp_path)
    claimed = {"seed": 100000, "success": not outcomes[0], "return": 0.0, "length": 3}
    results = [dict(claimed)]
    _film_both_outcomes(results, runner, make_env, list(meta["features"]), ())
    assert results == [claimed] and list(tmp_path.iterdir()) == []
    assert "seed 100000 played again ended otherwise" in capsys.readouterr().err


def test_progress_in_a_log_file_is_whole_lines_not_redraws(reach_store, tmp_path):
    """stderr to a file or a pipe (nohup, Slurm, CI): a line at the start and at the end (and every half minute
    between), not a carriage-return redraw several times a second."""
    result = run_cli("train", CONFIG, f"data.path={reach_store}", "train.steps=400", "train.log_every=10",
                     "algorithm.hidden_dims=[32]", "--out", tmp_path / "run", check=True)
    assert "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("train gcbc")]
    assert 2 <= len(lines) <= 3 and lines[0].startswith("train gcbc: 0/400 step"), result.stderr  # 3 if 30 s pass
    assert lines[-1].startswith("train gcbc: 400/400 step") and "loss=" in lines[-1]


def test_open_loop_error_tells_a_trained_policy_from_an_untrained_one(reach_store, reach_run, tmp_path):
    import re
    import subprocess
    import sys

    untrained = tmp_path / "untrained"
    run_cli("train", CONFIG, f"data.path={reach_store}", "train.steps=1", "train.warmup_steps=1",
            "algorithm.hidden_dims=[256,256]", "--out", untrained, check=True)
    tool = Path(__file__).parents[1] / "tools" / "open_loop_error.py"
    result = subprocess.run([sys.executable, str(tool), str(reach_store), str(reach_run),
                             str(untrained), "--episodes", "10"], capture_output=True, text=True, check=True)
    trained_ratio, untrained_ratio = map(float, re.findall(r"ratio ([0-9.]+)", result.stdout))
    assert trained_ratio < 0.4 and untrained_ratio > 0.8, result.stdout


def test_a_stream_that_replaced_stderr_keeps_the_live_bar(monkeypatch):
    """A notebook's stderr replaces sys.stderr and may report a pipe as its descriptor, yet shows redraws in
    place: only the process's own stderr on a file or a pipe gets log lines."""
    import os
    import sys

    from roboil.progress import progress_bar

    read, write = os.pipe()
    with open(write, "w") as stream, open(read, newline="") as reader:  # "\r" kept as written
        monkeypatch.setattr(sys, "stderr", stream)
        bar = progress_bar(3, "train x")
        bar.update(3)
        bar.close()
        stream.close()
        assert "\r" in reader.read()  # redrawn in place (log lines have none)
