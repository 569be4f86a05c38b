"""The teleop recording session, headless: a key script drives the keyboard device through start, move,
discard, retry, save, delete-last and quit, and the store holds exactly the saved takes, with their starts,
devices, operator and timing; killed recordings lose nothing completed; replay reproduces recorded success."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from roboil.plugins import registry
from roboil.errors import RoboilError
from roboil.record import record
from roboil.replay import replay
from roboil.store import EpisodeStore


def key_script(tmp_path, text: str):
    path = tmp_path / "keys.txt"
    path.write_text(text)
    return {"script": str(path)}


def test_keyboard_session_saves_exactly_the_kept_takes(tmp_path, capsys):
    keys = key_script(tmp_path, """
        wait*2 enter up*5 d             # a take at seed 0, moved, then discarded: a new start
        enter right*4 r                 # a take at seed 1, retried: the same start again
        enter page_up*3 s               # saved as episode 0 (seed 1)
        enter left+left_shift*2 s       # saved as episode 1 (seed 2), at a third of the speed
        backspace backspace             # deleted again
        space enter down*2 s            # the gripper closed; saved as episode 1 (seed 3)
        q
    """)
    path = tmp_path / "teleop.zarr"
    summary = record("fetch-reach", None, path, device="keyboard", device_params=keys, operator="ada",
                     viewer=False, progress=False)
    assert summary == {"store": str(path), "recorded": 2, "discarded": 2, "deleted": 1, "successes": 0,
                       "total_episodes": 2}
    # the session's log says what happened to each take, deletions and discards too (only saves before)
    assert [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()] == [
        "discarded: dropped 6 frames", "retry: dropped 5 frames", "saved episode 0", "saved episode 1",
        "deleted episode 1", "saved episode 1"]
    store = EpisodeStore.open(path)
    attrs = store.episode_attrs()
    assert [a["seed"] for a in attrs] == [1, 3]
    assert list(store.episode_lengths) == [4, 3]  # the tick that starts a take records its first frame
    first, second = store.episode(0)["action"], store.episode(1)["action"]
    np.testing.assert_array_equal(first[:, :3], [[0, 0, 0], [0, 0, 1], [0, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(second[:, :3], [[0, 0, 0], [-1, 0, 0], [-1, 0, 0]])
    assert (first[:, 3] == 1).all() and (second[:, 3] == -1).all()  # space closed the gripper
    for a in attrs:
        assert a["device"] == "keyboard" and a["operator"] == "ada" and a["acted_by"] == [["keyboard", a["length"]]]
        assert a["paced"] and a["control_fps"] == 25.0 and a["late_ticks"] is not None and a["end"] == "saved"
        assert len(a["start_state"]) > 10 and a["started"] <= a["finished"]
    # the start state is the seed's start: the first observation matches a fresh reset to it
    from roboil.envs import ObservedEnv

    env = ObservedEnv("fetch-reach", {"proprio": {}})
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs["observation"], store.episode(1)["observation"][0])
    np.testing.assert_array_equal(env.state(), attrs[1]["start_state"])


def test_a_late_session_is_flagged_not_stamped_on_time(tmp_path, monkeypatch):
    """A recording that cannot keep the task's rate says so in the store."""
    import roboil.record as recording

    original = recording.Session.step

    def slow_step(self, tick):  # a tick that takes 3 control periods
        time.sleep(3 / self.fps)
        original(self, tick)

    monkeypatch.setattr(recording.Session, "step", slow_step)
    keys = key_script(tmp_path, "enter up*6 s q")
    record("fetch-reach", None, tmp_path / "late.zarr", device="keyboard", device_params=keys, viewer=False,
           progress=False)
    store = EpisodeStore.open(tmp_path / "late.zarr")
    (attrs,) = store.episode_attrs()
    assert not attrs["on_time"] and attrs["late_ticks"] >= 5 and attrs["achieved_fps"] < 0.5 * 25
    assert store.info()["timing"] == {"paced_episodes": 1, "late_episodes": [0]}


def test_appending_checks_the_schema_and_bad_sessions_leave_no_store(tmp_path):
    path = tmp_path / "reach.zarr"
    record("fetch-reach", 1, path, progress=False)
    result = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", path, "obs.pixels.cameras=[external_camera_0]",
                     "obs.pixels.height=32", "obs.pixels.width=32")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "holds task 'fetch-reach' with arrays [" in result.stderr and "record into a new --out path" in result.stderr
    assert EpisodeStore.open(path).n_episodes == 1
    result = run_cli("record", "--task", "fetch-reach", "--device", "keyboard", "--out", tmp_path / "k.zarr",
                     "--no-viewer")
    assert result.returncode == 2 and "give device.script=FILE" in result.stderr
    result = run_cli("record", "--task", "fetch-reach", "--device", "keyboard", "--out", tmp_path / "k.zarr",
                     "--no-viewer", f"device.script={tmp_path / 'missing.txt'}")
    assert result.returncode == 2 and "cannot read the key script" in result.stderr
    (tmp_path / "bad.txt").write_text("enter jump*3")
    result = run_cli("record", "--task", "fetch-reach", "--device", "keyboard", "--out", tmp_path / "k.zarr",
                     "--no-viewer", f"device.script={tmp_path / 'bad.txt'}")
    assert result.returncode == 2 and "bad token 'jump*3'" in result.stderr
    assert not (tmp_path / "k.zarr").exists()
    with pytest.raises(RoboilError, match="--episodes is needed unless a person drives"):
        record("fetch-reach", None, tmp_path / "s.zarr", progress=False)


def test_killed_teleop_sessions_lose_nothing_saved_and_deletes_are_atomic(tmp_path):
    """SIGKILL a person's session (saves and deletes, paced in real time) at random moments: the store is always
    healthy and always one of the states the session passed through, episode for episode."""
    takes = ["enter up*3 s", "enter down*3 s", "enter left*3 s", "enter right*3 s", "enter up*2 s"]
    deletes = {1: "backspace backspace", 3: "backspace backspace"}  # after the 2nd and the 4th save
    (tmp_path / "all.txt").write_text(" ".join(takes) + " q")
    (tmp_path / "session.txt").write_text(" ".join(t + " " + deletes.get(i, "") for i, t in enumerate(takes)) + " q")
    reference = tmp_path / "reference.zarr"  # every take kept: seeds 0..4
    record("fetch-reach", None, reference, device="keyboard", device_params={"script": str(tmp_path / "all.txt")},
           viewer=False, progress=False)
    by_seed = {a["seed"]: i for i, a in enumerate(EpisodeStore.open(reference).episode_attrs())}
    assert sorted(by_seed) == [0, 1, 2, 3, 4]
    states = [[], [0], [0, 1], [0], [0, 2], [0, 2, 3], [0, 2], [0, 2, 4]]
    rng, seen = random.Random(11), set()
    for attempt in range(6):
        path = tmp_path / f"killed{attempt}.zarr"
        process = subprocess.Popen([sys.executable, "-m", "roboil.cli", "record", "--task", "fetch-reach", "--device",
                                    "keyboard", "--no-viewer", f"device.script={tmp_path / 'session.txt'}", "--out",
                                    str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.6))  # the session lasts about 1.7 s once the store exists
        process.send_signal(signal.SIGKILL)
        process.wait()
        store = EpisodeStore.open(path)
        assert not store.check()
        seeds = [a["seed"] for a in store.episode_attrs()]
        assert seeds in states, seeds
        seen.add(tuple(seeds))
        ours, theirs = store, EpisodeStore.open(reference)
        for index, seed in enumerate(seeds):
            a, b = ours.episode(index), theirs.episode(by_seed[seed])
            assert all(np.array_equal(a[k], b[k]) for k in a)
        with EpisodeStore.open(path, mode="a"):  # the next writer gets in
            pass
    assert len(seen) >= 2  # the kills landed at different moments of the session


def test_replay_reproduces_recorded_success_and_re_records_with_other_observations(tmp_path):
    path = tmp_path / "reach.zarr"
    record("fetch-reach", 3, path, seed=40, progress=False)
    report = replay(path)
    assert report["replayed"] == report["reproduced"] == 3
    assert all(r["max_observation_drift"] == 0 and r["recorded_success"] for r in report["episodes"])
    # the replay device re-records the same episodes with camera frames
    framed = tmp_path / "framed.zarr"
    record("fetch-reach", 2, framed, device="replay", device_params={"store": str(path), "first": 1},
           obs_overrides={"pixels": {"cameras": ["external_camera_0"], "height": 32, "width": 32}}, progress=False)
    store, source = EpisodeStore.open(framed), EpisodeStore.open(path)
    assert [a["seed"] for a in store.episode_attrs()] == [41, 42]
    for index in range(2):
        assert np.array_equal(store.episode(index)["observation"], source.episode(index + 1)["observation"])
        (camera,) = [k for k, f in store.features.items() if f.kind == "pixels"]
        assert store.episode(index)[camera].shape[1:] == (32, 32, 3) and store.episode(index)[camera].std() > 0
    # more episodes than the store has left to replay: refused before anything is recorded (it had saved the
    # ones there were, then failed)
    more = run_cli("record", "--task", "fetch-reach", "--device", "replay", f"device.store={path}", "device.first=1",
                   "--episodes", 3, "--out", tmp_path / "more.zarr")
    assert more.returncode == 2 and more.stderr.strip() == (
        f"roboil: error: --episodes 3: store '{path}' has 2 episodes to replay from device.first=1 (of 3); ask for "
        "--episodes 2 at most") and not (tmp_path / "more.zarr").exists()
    result = run_cli("replay", framed, "--episode", 0, "--video", tmp_path / "stored.mp4", "--stored-frames")
    assert result.returncode == 0 and (tmp_path / "stored.mp4").stat().st_size > 0
    result = run_cli("replay", path, "--episode", 2, "--video", tmp_path / "replay.mp4")
    assert result.returncode == 0 and "episode 2: from its start state, recorded success, replay success: " \
        "reproduced; observations identical" in result.stdout and (tmp_path / "replay.mp4").stat().st_size > 0
    result = run_cli("replay", path, "--episode", 7)
    assert result.returncode == 2 and "episode 7 is out of range" in result.stderr
    # a replay that does not reproduce is reported, with exit code 1
    with EpisodeStore.open(path, mode="a") as store:
        episode, attrs = store.episode(0), store.episode_attrs()[0]
        episode["action"][:] = 0  # the arm stays put: no success
        store.add_episode(episode, attrs)
    result = run_cli("replay", path, "--episode", 3)
    assert result.returncode == 1 and "NOT reproduced" in result.stdout and "0 of 1 replays" in result.stdout


@pytest.mark.parametrize("task", sorted(registry().names("task")))
def test_every_task_replays_its_expert_episode_exactly(task, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "tools"))
    from check_replay import check_task

    row = check_task(task, 1, tmp_path, seed=5)
    assert row == {"task": task, "episodes": 1, "recorded_successes": 1, "reproduced": 1, "identical_observations": 1}


@pytest.mark.parametrize("answer, kept", [("y", True), ("", False)])
def test_ctrl_c_asks_whether_to_keep_the_take_in_progress(tmp_path, answer, kept):
    import pty

    script = tmp_path / "keys.txt"
    script.write_text("enter up*3 s enter down*2000")  # a second take still recording when Ctrl-C comes
    path = tmp_path / "s.zarr"
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "roboil.cli", "record", "--task", "fetch-reach", "--device",
                                "keyboard", "--no-viewer", "--max-steps", "5000", f"device.script={script}", "--out",
                                str(path)], stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(follower)
    deadline = time.monotonic() + 60
    while (not path.exists() or EpisodeStore.open(path).n_episodes < 1) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the second take has frames
    process.send_signal(signal.SIGINT)
    time.sleep(1.0)  # the question is asked on the terminal
    os.write(leader, (answer + "\n").encode())
    _, stderr = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 130 and stderr.strip().endswith("roboil: interrupted"), stderr
    store = EpisodeStore.open(path)
    assert store.n_episodes == 1 + kept and not store.check()
    if kept:
        attrs = store.episode_attrs()[1]
        assert attrs["end"] == "interrupted" and attrs["length"] > 5 and "saved episode 1" in stderr
    else:
        assert "was not saved" in stderr


class StandInViewer:
    """The viewer as the session and the keyboard use it, without a window: keys per poll, the camera looking
    along +y, and the window closed by the person after ``close_after`` polls."""

    def __init__(self, ticks, close_after):
        import threading

        self.ticks, self.close_after, self.polls = ticks, close_after, 0
        self.lock, self.shown = threading.RLock(), []

    def poll(self):
        self.polls += 1

    @property
    def closed(self):
        return self.polls > self.close_after

    def held(self):
        return set(self.ticks[self.polls - 1][0]) if self.polls <= len(self.ticks) else set()

    def pressed(self):
        return list(self.ticks[self.polls - 1][1]) if self.polls <= len(self.ticks) else []

    def heading(self):
        return np.pi / 2

    def label(self, name):
        return name

    def show(self, status, help=()):
        self.shown.append(dict(status))

    def close(self):
        pass


def test_arrows_follow_the_camera_and_closing_the_window_drops_only_the_take_in_progress(tmp_path, monkeypatch,
                                                                                         capsys):
    import roboil.record as recording

    ticks = [((), ("enter",)), (("up",), ("up",)), (("up",), ()), ((), ("s",)),  # a take saved
             ((), ("enter",)), (("left",), ("left",)), (("left",), ())]  # a take the window closes on
    viewer = StandInViewer(ticks, close_after=len(ticks))
    monkeypatch.setattr(recording, "open_viewer", lambda task_spec, env: viewer)
    summary = record("fetch-reach", None, tmp_path / "s.zarr", device="keyboard", progress=False)
    assert summary["recorded"] == 1 and summary["discarded"] == 1
    store = EpisodeStore.open(tmp_path / "s.zarr")
    assert store.n_episodes == 1 and not store.check()
    # the camera looks along +y: up moves +y, left moves -x
    np.testing.assert_array_equal(store.episode(0)["action"][:, :3], [[0, 0, 0], [0, 1, 0], [0, 1, 0]])
    assert "window closed: dropped 3 frames" in capsys.readouterr().err
    assert any(s["state"] == "RECORDING" and s["in control"] == "keyboard" for s in viewer.shown)
    assert viewer.shown[-1]["frames"] == "3" and viewer.shown[-1]["saved"].startswith("1 this session")


def test_a_relabelled_replay_ends_with_the_driver_and_is_not_replayed_as_executed(tmp_path):
    """The replay device ends its take after the stored actions while the expert labeller still answers; such an
    episode stores labels, not what was executed, so `roboil replay` says it cannot redo it."""
    short = tmp_path / "short.zarr"
    record("fetch-reach", None, short, device="keyboard", device_params=key_script(tmp_path, "enter up*3 s q"),
           viewer=False, progress=False)
    path = tmp_path / "labelled.zarr"
    record("fetch-reach", 1, path, device="replay", device_params={"store": str(short)}, labeler="scripted",
           progress=False)
    (attrs,) = EpisodeStore.open(path).episode_attrs()
    assert attrs["length"] == 4 and attrs["acted_by"] == [["replay", 4]] and attrs["relabeled"]
    with pytest.raises(RoboilError, match="can be replayed"):
        replay(path)
    with pytest.raises(RoboilError, match="decides where takes start"):
        record("fetch-reach", 1, tmp_path / "x.zarr", labeler="replay", labeler_params={"store": str(short)},
               progress=False)


def test_store_check_repair_trims_a_damaged_last_episode_from_the_command_line(tmp_path):
    path = tmp_path / "reach.zarr"
    record("fetch-reach", 3, path, progress=False)
    import zarr

    actions = zarr.open_group(path, mode="r+")["data/action"]
    actions[-1] = actions[-1] + 1  # the last episode's rows no longer match their checksum
    assert run_cli("store", "check", path).returncode == 1
    result = run_cli("store", "check", path, "--repair")
    assert result.returncode == 0 and "dropped damaged episode 2" in result.stdout, result.stdout
    assert "OK, repaired (2 episodes" in result.stdout
    assert run_cli("store", "check", path).returncode == 0
    info = json.loads(run_cli("store", "info", path).stdout)
    assert info["episodes"] == 2 and info["devices"] == {"scripted": 2} and info["timing"] is None


def test_keyboard_without_a_display_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "roboil.cli", "record", "--task", "fetch-reach", "--device",
                             "keyboard", "--out", str(tmp_path / "k.zarr")], capture_output=True, text=True, env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot open the viewer window: no display (DISPLAY is unset)" in result.stderr
    assert "xvfb-run" in result.stderr and not (tmp_path / "k.zarr").exists()


def test_replay_sessions_appending_to_their_output_continue_the_source(tmp_path):
    """Each replayed episode names the stored episode it replays; a later session into the same --out carries on
    after the last one (it replayed the first again), and one with nothing left says so before recording."""
    source, out = tmp_path / "source.zarr", tmp_path / "out.zarr"
    record("fetch-reach", 3, source, seed=7, progress=False)
    replay_args = ("record", "--task", "fetch-reach", "--device", "replay", f"device.store={source}", "--out", out)
    run_cli(*replay_args, "--episodes", 2, check=True)
    run_cli(*replay_args, "--episodes", 1, check=True)
    attrs = EpisodeStore.open(out).episode_attrs()
    assert [a["replayed_from"] for a in attrs] == [{"store": str(source.resolve()), "episode": i} for i in range(3)]
    assert [a["seed"] for a in attrs] == [7, 8, 9]
    done = run_cli(*replay_args, "--episodes", 1)
    assert done.returncode == 2 and done.stderr.strip() == (
        f"roboil: error: store '{source}' has no episode left to replay from episode 3, after the replays --out "
        "holds (it has 3); pass device.first=K to replay from episode K")
    itself = run_cli("record", "--task", "fetch-reach", "--device", "replay", f"device.store={source}",
                     "--episodes", 1, "--out", source)
    assert itself.returncode == 2 and "is the --out store; replay into another store" in itself.stderr
    assert EpisodeStore.open(out).n_episodes == 3 and EpisodeStore.open(source).n_episodes == 3


def test_a_recoded_store_is_appended_to_in_its_codec(tmp_path):
    """A recoded store's recorded settings still name the old codec: appending without an override was refused,
    saying to drop an override that no one gave."""
    from roboil.codecs import unavailable

    if reason := unavailable("jpeg"):
        pytest.skip(reason)
    small = ["obs.pixels.cameras=[external_camera_0]", "obs.pixels.height=32", "obs.pixels.width=32"]
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "s.zarr", *small, check=True)
    run_cli("store", "recode", tmp_path / "s.zarr", "--codec", "jpeg", "--out", tmp_path / "jpeg.zarr", check=True)
    appended = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "jpeg.zarr",
                       "obs.pixels.codec=lossless", check=True)  # as recorded: no override of the store's codec
    assert f"roboil: note: store '{tmp_path / 'jpeg.zarr'}' keeps 'rgb_external_camera_0' as jpeg (quality 90), not " \
        "as recorded (lossless): it was recoded since; the new episodes are kept so too" in appended.stderr
    store = EpisodeStore.open(tmp_path / "jpeg.zarr")
    assert store.n_episodes == 2 and store.check() == []
    assert store.info()["features"]["rgb_external_camera_0"]["codec"] == "jpeg"
    other = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "jpeg.zarr",
                    "obs.pixels.codec=avif")  # an override asking for another codec is still refused
    assert other.returncode == 2 and "keeps 'rgb_external_camera_0' as jpeg (quality 90), this recording asks " \
        "for avif (quality 90)" in other.stderr


def test_appending_reuses_the_observation_settings_the_store_was_recorded_with(tmp_path):
    path = tmp_path / "small.zarr"
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", path, "obs.pixels.cameras=[external_camera_0]",
            "obs.pixels.height=32", "obs.pixels.width=32", check=True)
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", path, check=True)  # no overrides retyped
    store = EpisodeStore.open(path)
    assert store.n_episodes == 2 and store.episode(1)["rgb_external_camera_0"].shape[1:] == (32, 32, 3)
    other = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", path, "obs.pixels.height=48")
    assert other.returncode == 2 and "record into a new --out path" in other.stderr  # a change is still refused
    # as is one that changes no array's shape: the codec the camera is kept with (appended lossless before)
    recoded = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", path, "obs.pixels.codec=jpeg",
                      "obs.pixels.height=32")  # a setting retyped unchanged is no change
    assert recoded.returncode == 2 and recoded.stderr == (
        f"roboil: error: store '{path}' keeps 'rgb_external_camera_0' as lossless, this recording asks for jpeg "
        "(quality 90); one store keeps one codec an array: drop the override, record into a new --out path, or "
        "recode the store (roboil store recode)\n")
    assert EpisodeStore.open(path).n_episodes == 2
    # settings that make the same arrays the same way are no change: the proprio keys in another order
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "keys.zarr",
            "obs.proprio.keys=[observation,desired_goal]", check=True)
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "keys.zarr",
            "obs.proprio.keys=[desired_goal,observation]", check=True)
