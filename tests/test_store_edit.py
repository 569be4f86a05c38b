"""Editing an episode store: deleting the last episode, repairing a damaged one, and the recording summary.

A kill is simulated two ways: in-process, every zarr write from the k-th on fails (for each k, so every state
between two writes is visited), and for real, a child process SIGKILLed at a random moment.
"""

import contextlib
import itertools
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.core.sync import sync as zarr_sync
from zarr.storage import LocalStore

from conftest import main_fails_in_one_line, run_cli
from roboil.errors import RoboilError
from roboil.store import EpisodeStore, _settle_zarr_tasks
from test_store import FEATURES, LAYOUTS, ROOT, SHARDED, STORE_ATTRS, assert_episodes, drop_chunk, held, \
    make_attrs, make_episode, new_store, shard_index, tear_commit
from test_store_faults import set_ends, set_episode_attrs

# new_store(path, 4): lengths 3, 4, 5, 6 (ends 3, 7, 12, 18); one image row per chunk, state in one chunk.


class Killed(Exception):
    """Stands in for SIGKILL: raised instead of a store write."""


@contextlib.contextmanager
def killed_at_write(monkeypatch, k: int):
    """Every LocalStore write (set or delete) from the k-th on raises :class:`Killed` without writing, as if
    the process died just before it; yields the list of writes that happened."""
    done = []

    def wrap(original):
        async def write(self, key, *args, **kwargs):
            if len(done) >= k - 1:
                raise Killed(f"write {k}: {key}")
            done.append(key)
            return await original(self, key, *args, **kwargs)
        return write

    with monkeypatch.context() as m:
        m.setattr(LocalStore, "set", wrap(LocalStore.set))
        m.setattr(LocalStore, "delete", wrap(LocalStore.delete))
        try:
            yield done
        finally:
            zarr_sync(_settle_zarr_tasks())  # writes already under way when "killed" land (or not) now


def edits_killed_at_each_write(monkeypatch, base: Path, tmp_path: Path, edit):
    """For k = 1, 2, ... until an edit finishes: a copy of the store ``base`` opened for appending and
    ``edit(store)`` killed at its k-th write; yields (k, the copy's path, the store object, whether it finished)."""
    for k in itertools.count(1):
        path = tmp_path / f"killed-at-{k}"
        shutil.copytree(base, path)
        store = EpisodeStore.open(path, mode="a")
        with killed_at_write(monkeypatch, k):
            try:
                edit(store)
                finished = True
            except Killed:
                finished = False
        yield k, path, store, finished
        if finished:
            return


def files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def data_files(path: Path) -> dict[str, bytes]:
    """The chunk files of the data arrays (not their zarr.json, whose shape changes)."""
    return {k: v for k, v in files(path).items() if k.startswith("data/") and not k.endswith("zarr.json")}


def raw_episode_attrs(path: Path) -> list:
    return zarr.open_group(path, mode="r")["meta"].attrs["episodes"]


def assert_healthy_and_appendable(path: Path, n: int) -> None:
    """``n`` intact episodes, no problem (an uncommitted tail may remain), and appending trims the tail."""
    store = EpisodeStore.open(path)
    assert store.check() == []
    assert_episodes(store, n)
    with EpisodeStore.open(path, mode="a") as store:
        assert store.add_episode(make_episode(n), make_attrs(n)) == n
    store = EpisodeStore.open(path)
    assert store.check() == [] and store.notes == []
    assert_episodes(store, n + 1)


# ---- delete_last_episode ---------------------------------------------------------------------------------------

def test_delete_last_removes_exactly_the_last_episode(tmp_path):
    path = tmp_path / "s"
    new_store(path, 4).close()
    before_files, before_attrs = data_files(path), raw_episode_attrs(path)
    with EpisodeStore.open(path, mode="a") as store:
        assert store.delete_last_episode() == {**make_attrs(3), "seed": 3}
        assert store.n_episodes == 3 and store.n_steps == 12 and store.notes == []
    after = data_files(path)
    assert set(after) < set(before_files)  # chunks of the kept rows stay, byte for byte; none is rewritten
    assert all(after[k] == before_files[k] for k in after)
    assert not any((path / f"data/image/c/{row}/0/0/0").exists() for row in range(12, 18))
    assert raw_episode_attrs(path) == before_attrs[:3]  # checksums included
    root = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [3, 7, 12])
    assert all(arr.shape[0] == 12 for _, arr in root["data"].arrays())
    tear_commit(path)  # an append killed after resizing episode_ends: the slot must read 0, not the old end 18
    store = EpisodeStore.open(path)
    assert store.n_episodes == 3 and store.check() == [] and "torn commit" in store.notes[0]
    assert_healthy_and_appendable(path, 3)  # the new episode 3 is a different (shorter) one: no stale rows


def test_delete_down_to_empty_then_refuse_and_append_again(tmp_path):
    store = new_store(tmp_path / "s", 2)
    assert store.delete_last_episode()["seed"] == 1
    assert store.delete_last_episode()["seed"] == 0
    assert store.n_episodes == 0 and store.n_steps == 0
    with pytest.raises(RoboilError, match="no episodes to delete") as refused:
        store.delete_last_episode()
    assert "\n" not in str(refused.value)
    store.close()
    assert EpisodeStore.open(tmp_path / "s").check() == []
    assert_healthy_and_appendable(tmp_path / "s", 0)


def test_delete_refused_read_only(tmp_path):
    new_store(tmp_path / "s", 2).close()
    store = EpisodeStore.open(tmp_path / "s")
    with pytest.raises(RoboilError, match="read-only.*mode='a'") as refused:
        store.delete_last_episode()
    assert "\n" not in str(refused.value)
    assert EpisodeStore.open(tmp_path / "s").n_episodes == 2


@pytest.mark.parametrize("layouts", [LAYOUTS, SHARDED], ids=["file per chunk", "sharded"])
def test_delete_killed_at_every_write_leaves_the_episode_or_not(tmp_path, monkeypatch, layouts):
    base = tmp_path / "base"
    new_store(base, 4, layouts).close()
    outcomes = []
    for k, path, store, finished in edits_killed_at_each_write(monkeypatch, base, tmp_path,
                                                               EpisodeStore.delete_last_episode):
        reopened = EpisodeStore.open(path)
        assert reopened.check() == [], k
        assert reopened.n_episodes in (3, 4), k
        assert_episodes(reopened, reopened.n_episodes)
        outcomes.append(reopened.n_episodes)
        # the object that failed still appends after the episodes that are there (as after a full disk)
        n = store.n_episodes
        assert n == reopened.n_episodes and store.add_episode(make_episode(n), make_attrs(n)) == n
        store.close()
        assert_healthy_and_appendable(path, n + 1)
    assert k > 8 and outcomes[0] == 4 and outcomes[-1] == 3 and outcomes == sorted(outcomes, reverse=True)


DELETER = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from roboil.store import EpisodeStore
from test_store import make_attrs, make_episode
store = EpisodeStore.open({path!r}, mode="a")
print("ready", flush=True)
while True:
    store.delete_last_episode()
    i = store.n_episodes
    store.add_episode(make_episode(i), make_attrs(i))
"""


def test_sigkill_while_deleting_leaves_a_healthy_store(tmp_path):
    path, n = tmp_path / "s", 6
    new_store(path, n).close()
    script = tmp_path / "deleter.py"
    script.write_text(DELETER.format(root=str(ROOT), tests=str(ROOT / "tests"), path=str(path)))
    rng = random.Random(0)
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = EpisodeStore.open(path)
        assert store.check() == [] and store.n_episodes in (n - 1, n)  # killed after a delete, or not
        n = store.n_episodes
        assert_episodes(store, n)
    assert_healthy_and_appendable(path, n)


# ---- repair ----------------------------------------------------------------------------------------------------

def test_repair_of_a_healthy_store_changes_nothing(tmp_path):
    path = tmp_path / "s"
    new_store(path, 4).close()
    before = files(path)
    report = EpisodeStore.repair(path)
    assert files(path) == before
    assert report.healthy and not report.changed and report.dropped == [] and report.trimmed == []
    assert (report.episodes, report.steps) == (4, 18)
    assert report.lines() == [f"{path}: OK, unchanged (4 episodes, 18 steps)"]


def grow_data_only(path: Path) -> None:
    """Data rows past the end that nothing commits (a kill right after the first write of an append)."""
    for _, arr in zarr.open_group(path, mode="r+")["data"].arrays():
        arr.resize((arr.shape[0] + 3, *arr.shape[1:]))
        arr[-3:] = 7


@pytest.mark.parametrize("tear", [tear_commit, grow_data_only])
def test_repair_trims_a_torn_tail(tmp_path, tear):
    path = tmp_path / "s"
    new_store(path, 4).close()
    tear(path)
    before = data_files(path)
    report = EpisodeStore.repair(path)
    assert report.healthy and report.changed and report.dropped == [] and report.dropped_steps == 0
    assert any("uncommitted rows" in t for t in report.trimmed)
    assert (report.episodes, report.steps) == (4, 18)
    root = zarr.open_group(path, mode="r")
    assert root["meta/episode_ends"].shape == (4,) and len(root["meta"].attrs["episodes"]) == 4
    assert all(arr.shape[0] == 18 for _, arr in root["data"].arrays())
    after = data_files(path)
    assert set(after) < set(before) and all(after[k] == before[k] for k in after)  # only tail chunks go
    assert_healthy_and_appendable(path, 4)


def overwrite_rows(path: Path, key: str, lo: int, hi: int) -> None:
    arr = zarr.open_group(path, mode="r+")[f"data/{key}"]
    arr[lo:hi] = arr[lo:hi] + 1  # still decodes: only the checksums tell


# Each damages the last episode(s) of new_store(path, 4); the value is (damage, episodes dropped, their rows).
TRAILING_DAMAGE = {
    "checksum mismatch": (lambda p: overwrite_rows(p, "state", 12, 18), [3], 6),
    "undecodable chunk": (lambda p: (p / "data/image/c/15/0/0/0").write_bytes(b"garbage"), [3], 6),
    "wrong length attr": (lambda p: set_episode_attrs(p, lambda e: e[3].update(length=9)), [3], 6),
    "attrs list short": (lambda p: set_episode_attrs(p, lambda e: e.pop()), [3], 6),
    "data shorter than ends": (lambda p: zarr.open_group(p, mode="r+")["data/step"].resize((15,)), [3], 6),
    "missing chunk and mismatch": (lambda p: ((p / "data/image/c/10/0/0/0").unlink(),
                                              overwrite_rows(p, "step", 12, 18)), [2, 3], 11),
}


@pytest.mark.parametrize("damage", TRAILING_DAMAGE)
def test_repair_drops_damaged_episodes_at_the_end_and_keeps_the_rest_byte_for_byte(tmp_path, damage):
    path = tmp_path / "s"
    new_store(path, 4).close()
    mutate, dropped, rows = TRAILING_DAMAGE[damage]
    kept = dropped[0]
    attrs = raw_episode_attrs(path)[:kept]
    mutate(path)
    damaged = data_files(path)
    problems = EpisodeStore.open(path).check()
    assert problems
    report = EpisodeStore.repair(path)
    assert report.healthy and report.changed and report.dropped == dropped and report.dropped_steps == rows
    assert report.reasons == problems and report.unrepairable == [] and report.advice == ""
    assert (report.episodes, report.steps) == (kept, [0, 3, 7, 12][kept])
    assert report.lines()[-1] == f"{path}: OK, repaired ({kept} episodes, {report.steps} steps)"
    assert all(line.count("\n") == 0 for line in report.lines())
    after = data_files(path)
    assert all(after[k] == damaged[k] for k in after)  # no chunk rewritten: kept rows are byte for byte
    assert raw_episode_attrs(path) == attrs
    assert_healthy_and_appendable(path, kept)


MIDDLE_DAMAGE = {
    "checksum mismatch in episode 0": (lambda p: overwrite_rows(p, "image", 0, 3), "damage in episode 0 has good "
                                       "episodes 1, 2, 3 after it"),
    "checksum mismatch in episode 1": (lambda p: overwrite_rows(p, "image", 3, 7), "damage in episode 1 has good "
                                       "episodes 2, 3 after it"),
    "episodes 1 and 3 damaged": (lambda p: (overwrite_rows(p, "image", 3, 7), overwrite_rows(p, "state", 12, 18)),
                                 "damage in episodes 1, 3 has good episode 2 after it"),
    "middle damage and a torn tail": (lambda p: (overwrite_rows(p, "image", 3, 7), tear_commit(p)),
                                      "damage in episode 1"),
    "non-monotonic episode_ends": (lambda p: set_ends(p, 2, 5), "not confined to episodes (episode_ends[2]=5"),
    "array of another shape": (lambda p: zarr.open_group(p, mode="r+")["data/state"].resize((18, 5)),
                               "not confined to episodes (data/state is (5,)"),
}


@pytest.mark.parametrize("damage", MIDDLE_DAMAGE)
def test_repair_leaves_damage_with_good_episodes_after_it_as_found(tmp_path, damage):
    path = tmp_path / "s"
    new_store(path, 4).close()
    mutate, advice = MIDDLE_DAMAGE[damage]
    mutate(path)
    before = files(path)
    problems = EpisodeStore.open(path).check()
    report = EpisodeStore.repair(path)
    assert files(path) == before
    assert not report.healthy and not report.changed and report.dropped == [] and report.trimmed == []
    assert report.unrepairable == problems and advice in report.advice and "copy" in report.advice
    assert "BROKEN, unchanged" in report.lines()[-1]
    assert any(line.startswith("not repairable in place: ") for line in report.lines())


def test_repair_that_would_cut_every_episode_leaves_the_store_as_found(tmp_path):
    """A damaged shard holding every episode's rows: cutting them all would leave an empty store and say OK."""
    path = tmp_path / "s"
    new_store(path, 4).close()
    overwrite_rows(path, "state", 0, 18)
    before = files(path)
    report = EpisodeStore.repair(path)
    assert files(path) == before and not report.healthy and not report.changed and report.dropped == []
    assert "every episode is damaged" in report.advice and "BROKEN, unchanged (4 episodes" in report.lines()[-1]


def test_repair_refused_while_another_writer_holds_the_store(tmp_path):
    path = tmp_path / "s"
    with new_store(path, 2):
        tear_commit(path)
        before = files(path)
        with pytest.raises(RoboilError, match="another writer") as refused:
            EpisodeStore.repair(path)
        assert "\n" not in str(refused.value) and files(path) == before
    assert EpisodeStore.repair(path).changed  # and once it is free, the tail goes
    with pytest.raises(RoboilError, match="no episode store"):
        EpisodeStore.repair(tmp_path / "missing")


def damage_episodes_2_and_3(path: Path, layouts: dict) -> None:
    if layouts is SHARDED:  # chunks missing from their shards
        drop_chunk(path, "image", 9)
        drop_chunk(path, "image", 16)
    else:
        overwrite_rows(path, "step", 7, 18)


@pytest.mark.parametrize("layouts", [LAYOUTS, SHARDED], ids=["file per chunk", "sharded"])
def test_repair_killed_at_every_write_makes_nothing_worse(tmp_path, monkeypatch, layouts):
    base = tmp_path / "base"
    new_store(base, 4, layouts).close()
    damage_episodes_2_and_3(base, layouts)
    tear_commit(base)
    for k in itertools.count(1):
        path = tmp_path / f"killed-at-{k}"
        shutil.copytree(base, path)
        with killed_at_write(monkeypatch, k):
            try:
                EpisodeStore.repair(path)
                finished = True
            except Killed:
                finished = False
        store = EpisodeStore.open(path)
        assert store.n_episodes in (2, 3, 4), k
        assert all(any(s in p for s in ("time chunk", "episode 2", "episode 3", "episodes 2, 3"))
                   for p in store.check()), k
        assert_episodes(store, 2, exact=False)
        report = EpisodeStore.repair(path)  # finishes the job
        assert report.healthy and report.episodes == 2
        if layouts is SHARDED:
            assert held(shard_index(path, "image", 1)) == [0, 1]  # rows 5, 6: nothing of the dropped rows stays
        assert_healthy_and_appendable(path, 2)
        if finished:
            break
    assert k > 8


# ---- info ------------------------------------------------------------------------------------------------------

def test_info_summarizes_operators_devices_and_timing(tmp_path):
    takes = [
        {"operator": "ana", "device": "spacemouse", "paced": True, "on_time": True, "success": True},
        {"operator": "ana", "device": "keyboard", "paced": True, "on_time": False, "success": False,
         "achieved_fps": 7.5, "late_ticks": 12, "control_fps": 10.0},
        {"operator": None, "device": "scripted", "paced": False, "on_time": True, "success": True},
        {"operator": "bo", "device": "spacemouse", "paced": True, "on_time": False, "success": True},
        {"seed": 4},  # recorded by an older roboil
    ]
    with EpisodeStore.create(tmp_path / "s", FEATURES, LAYOUTS, STORE_ATTRS) as store:
        for i, attrs in enumerate(takes):
            store.add_episode(make_episode(i), attrs)
    info = EpisodeStore.open(tmp_path / "s").info()
    assert info["operators"] == {"ana": 2, "bo": 1}
    assert info["devices"] == {"keyboard": 1, "scripted": 1, "spacemouse": 2}
    assert info["timing"] == {"paced_episodes": 3, "late_episodes": [1, 3]}
    assert info["success_rate"] == 0.75 and info["frames"] == info["steps"] == 3 + 4 + 5 + 6 + 7
    assert info["features"]["state"]["shape"] == [4] and info["episodes"] == 5


def test_info_of_a_store_without_those_attrs(tmp_path):
    path = tmp_path / "s"
    new_store(path, 2).close()
    set_episode_attrs(path, lambda e: e.__setitem__(1, 5))  # a damaged entry must not crash the summary either
    info = EpisodeStore.open(path).info()
    assert info["operators"] == {} and info["devices"] == {} and info["timing"] is None
    assert info["frames"] == 7 and info["success_rate"] == 1.0
    assert {"path", "episodes", "steps", "features", "attrs", "episode_length", "bytes_on_disk"} <= set(info)
    empty = EpisodeStore.create(tmp_path / "e", FEATURES, LAYOUTS, STORE_ATTRS).info()
    assert empty["operators"] == {} and empty["timing"] is None and empty["frames"] == 0


def test_copy_and_export_refuse_a_damaged_episode_and_copy_leaves_it_out_when_asked(tmp_path):
    """A damaged episode with good ones after it: repair cannot trim it, and a copy or an export that passed it
    on would make damage look like a healthy store."""
    from roboil.interop.zarr2 import export_zarr2
    from roboil.store import copy_store

    path = tmp_path / "s"
    new_store(path, 4).close()
    overwrite_rows(path, "state", 3, 7)  # episode 1 of lengths 3, 4, 5, 6
    with pytest.raises(RoboilError, match=r"episode 1 differs from its checksum.*roboil store copy .* --out NEW "
                                          r"--skip-damaged"):
        copy_store(path, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    (tmp_path / "mine").mkdir()  # made by hand for the copy: it stays, empty, as it was
    with pytest.raises(RoboilError, match="episode 1 differs from its checksum"):
        copy_store(path, tmp_path / "mine")
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())
    with pytest.raises(RoboilError, match="data/state: episode 1 differs from its checksum"):
        export_zarr2(path, tmp_path / "export.zarr")
    assert not (tmp_path / "export.zarr").exists()
    result = run_cli("store", "copy", path, "--out", tmp_path / "copy", "--skip-damaged")
    assert result.returncode == 0 and "3 episodes, 14 steps; left out the damaged episodes 1" in result.stdout
    copy = EpisodeStore.open(tmp_path / "copy")
    assert copy.check() == [] and copy.episode_lengths.tolist() == [3, 5, 6]
    assert copy.attrs["copied_episodes"] == [0, 2, 3]
    source = EpisodeStore.open(path)
    for new, old in enumerate([0, 2, 3]):
        assert all(np.array_equal(copy.episode(new)[k], source.episode(old)[k]) for k in FEATURES)


def test_copy_keeps_the_episodes_chosen_and_leaves_the_rest_out(tmp_path, capsys):
    """Curating: only the last episode could be removed (teleop's delete), so a bad demonstration in the middle
    stayed in the store."""
    from roboil.cli import main

    path = tmp_path / "s"
    new_store(path, 4).close()
    source = EpisodeStore.open(path)
    for argv, kept in ((["--drop-episode", "1"], [0, 2, 3]), (["--episode", "3", "--episode", "0"], [0, 3])):
        out = tmp_path / "_".join(argv)
        assert main(["store", "copy", str(path), "--out", str(out), *argv]) == 0
        assert f"{len(kept)} episodes" in capsys.readouterr().out
        copy = EpisodeStore.open(out)
        assert copy.check() == [] and copy.attrs["copied_episodes"] == kept
        assert copy.episode_attrs() == [source.episode_attrs()[i] for i in kept]
        for new, old in enumerate(kept):
            assert all(np.array_equal(copy.episode(new)[k], source.episode(old)[k]) for k in FEATURES)
    for argv, problem in ((["--episode", "4"], f"episode 4 is out of range: store '{path}' has episodes 0..3"),
                          (["--drop-episode", "-1"], "episode -1 is out of range"),
                          ([f"--drop-episode={i}" for i in range(4)], "the episodes chosen leave none of store"),
                          (["--episode", "0", "--drop-episode", "1"], "give one of them")):
        main_fails_in_one_line(capsys, ["store", "copy", str(path), "--out", str(tmp_path / "none"), *argv], problem)
        assert not (tmp_path / "none").exists()


def test_skip_damaged_copies_a_store_that_fails_the_quick_check(tmp_path):
    """What the repair advice sends a user to: a chunk file missing from a middle episode fails the quick check,
    which every other command refuses on."""
    from roboil.store import copy_store

    path = tmp_path / "s"
    new_store(path, 4).close()
    (path / "data/image/c/4/0/0/0").unlink()  # a frame of episode 1 (lengths 3, 4, 5, 6)
    with pytest.raises(RoboilError, match="committed chunk files missing"):
        copy_store(path, tmp_path / "refused")
    copy, skipped = copy_store(path, tmp_path / "copy", skip_damaged=True)
    assert skipped == [1] and copy.episode_lengths.tolist() == [3, 5, 6] and copy.check() == []


def test_a_video_chunk_shared_by_two_episodes_fails_both_when_damaged(tmp_path):
    """An H.264 chunk of 8 frames holding the end of episode 0 and the start of episode 1 is checksummed with
    episode 1 (which completes it): verifying episode 0 alone must still see its damage, or a copy that skips
    damaged episodes would pass the frames on with fresh checksums."""
    pytest.importorskip("av")
    from roboil.specs import ArrayLayout, Feature
    from roboil.store import copy_store

    path = tmp_path / "s"
    rng = np.random.default_rng(0)
    features = {"image": Feature("pixels", (32, 32, 3), "uint8"), "state": Feature("proprio", (2,), "float32")}
    layouts = {"image": ArrayLayout(8, codec="h264", shard_rows=8), "state": ArrayLayout(8)}
    with EpisodeStore.create(path, features, layouts, {}) as store:
        for length in (5, 6, 7):  # ends 5, 11, 18
            store.add_episode({"image": rng.integers(0, 255, (length, 32, 32, 3), dtype=np.uint8),
                               "state": rng.random((length, 2), dtype=np.float32)}, {})
    frames = zarr.open_array(path / "data" / "image", mode="r+")
    frames[0:8] = 255 - frames[0:8]  # chunk 0, still decodable
    store = EpisodeStore.open(path)
    for index in (0, 1):
        with pytest.raises(RoboilError, match=f"episode {index} differs from its checksum"):
            store.episode(index, verify=True)
    store.episode(2, verify=True)
    copy, skipped = copy_store(path, tmp_path / "copy", skip_damaged=True)
    assert skipped == [0, 1] and copy.n_episodes == 1
