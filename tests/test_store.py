"""Episode store: layout, round trips, validation, check(), checksums, torn commits and SIGKILL while appending."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from roboil.errors import RoboilError
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore, _shard_index

ROOT = Path(__file__).resolve().parents[1]

FEATURES = {
    "state": Feature("proprio", (4,), "float32"),
    "step": Feature("proprio", (), "int64"),
    "image": Feature("pixels", (24, 32, 3), "uint8"),
}
# A file per chunk (shard_rows = time_chunk), as every store made before sharding: these tests, and those of
# test_store_edit and test_store_faults built on them, show such stores still open, check, append, delete and
# repair. New stores' default, sharded, layout is tested in test_store_sharding.
LAYOUTS = {"state": ArrayLayout(100, shard_rows=100), "step": ArrayLayout(50, "lz4", 5, shard_rows=50),
           "image": ArrayLayout(1, shard_rows=1)}
# new_store(path, 4, SHARDED): lengths 3, 4, 5, 6 (ends 3, 7, 12, 18). Image shards of 5 rows ([0, 5), [5, 10),
# [10, 15), [15, 18)) cut episodes apart; state has 4-row chunks, two to a shard; step gets the store's choice.
SHARDED = {"state": ArrayLayout(4, shard_rows=8), "step": ArrayLayout(50, "lz4", 5),
           "image": ArrayLayout(1, shard_rows=5)}
STORE_ATTRS = {"task": "push", "fps": 25.0, "observations": {"proprio": {}, "pixels": {"size": 32}}}


def shard_file(path: Path, key: str, shard: int) -> Path:
    arr = zarr.open_array(path / "data" / key, mode="r")
    return path / "data" / key / arr.metadata.encode_chunk_key((shard, *(0,) * (arr.ndim - 1)))


def shard_index(path: Path, key: str, shard: int) -> np.ndarray:
    arr = zarr.open_array(path / "data" / key, mode="r")
    with open(shard_file(path, key, shard), "rb") as f:
        return _shard_index(f, arr.shards[0] // arr.chunks[0])


def held(index: np.ndarray) -> list[int]:
    """The chunks a shard index lists."""
    return np.flatnonzero(index[:, 0] != 2**64 - 1).tolist()


def drop_chunk(path: Path, key: str, row: int) -> None:
    """Remove one chunk from its shard's index (what a shard written with write_empty_chunks=False and a fill-only
    chunk would hold), so zarr reads fill for it."""
    zarr.open_array(path / "data" / key, mode="r+").with_config({"write_empty_chunks": False})[row] = 0


def make_episode(i: int, length: int | None = None) -> dict[str, np.ndarray]:
    """Deterministic in ``i``, so a test can recompute what a (killed) writer wrote."""
    rng = np.random.default_rng(i)
    t = length or 3 + i % 5
    return {"state": rng.standard_normal((t, 4)).astype(np.float32),
            "step": np.arange(t) + 1000 * i,
            "image": rng.integers(0, 256, (t, 24, 32, 3), dtype=np.uint8)}


def make_attrs(i: int) -> dict:
    return {"seed": np.int64(i), "success": i % 2 == 0, "source": "scripted"}


def new_store(path, n=0, layouts=LAYOUTS) -> EpisodeStore:
    store = EpisodeStore.create(path, FEATURES, layouts, STORE_ATTRS)
    for i in range(n):
        assert store.add_episode(make_episode(i), make_attrs(i)) == i
    return store


def assert_episodes(store: EpisodeStore, n: int, exact: bool = True) -> None:
    assert store.n_episodes == n if exact else store.n_episodes >= n
    for i in range(n):
        want, got = make_episode(i), store.episode(i)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
        assert store.episode_attrs()[i] == {**make_attrs(i), "seed": i}


def test_round_trip_layout_and_info(tmp_path):
    store = new_store(tmp_path / "s", 4)
    zero = make_episode(4)
    zero["image"][:] = 0  # all-fill frames must still be written, or check() would call them missing
    store.add_episode(zero, make_attrs(4))
    assert store.array("image").chunks == (1, 24, 32, 3)
    assert store.array("state").chunks == (100, 4)
    assert store.array("step").chunks == (50,)
    assert store.array("step").compressors[0].cname.value == "lz4"
    assert_episodes(store, 4, exact=False)
    np.testing.assert_array_equal(store.episode(-1)["image"], zero["image"])
    lengths = [3, 4, 5, 6, 7]
    np.testing.assert_array_equal(store.episode_lengths, lengths)
    np.testing.assert_array_equal(store.episode_ends, np.cumsum(lengths))
    assert store.episode_ends.dtype == np.int64 and store.n_steps == 25
    loaded = store.load(["step"])
    np.testing.assert_array_equal(loaded["step"], np.concatenate([make_episode(i)["step"] for i in range(5)]))

    store = EpisodeStore.open(tmp_path / "s")
    assert store.features == FEATURES and store.attrs == STORE_ATTRS
    assert store.check() == [] and store.notes == []
    info = store.info()
    assert info["episodes"] == 5 and info["steps"] == 25 and info["success_rate"] == 0.6
    assert info["episode_length"] == {"mean": 5.0, "min": 3, "max": 7}
    assert info["features"]["image"]["chunks"] == [1, 24, 32, 3] and info["bytes_on_disk"] > 0
    with pytest.raises(RoboilError, match="read-only"):
        store.add_episode(make_episode(5), {})
    with pytest.raises(RoboilError, match="out of range"):
        store.episode(5)
    with pytest.raises(RoboilError, match="no array"):
        store.load(["nope"])


def test_plain_zarr_sees_replay_buffer_layout(tmp_path):
    new_store(tmp_path / "s", 3)
    root = zarr.open_group(tmp_path / "s", mode="r")
    np.testing.assert_array_equal(root["meta/episode_ends"][:], [3, 7, 12])
    assert root["meta/episode_ends"].dtype == np.int64
    for key in FEATURES:
        np.testing.assert_array_equal(root[f"data/{key}"][:], np.concatenate([make_episode(i)[key] for i in range(3)]))
    assert root.attrs["roboil"]["format"] == 1 and root.attrs["roboil"]["task"] == "push"
    assert root.attrs["roboil"]["features"]["image"] == {"kind": "pixels", "shape": [24, 32, 3], "dtype": "uint8"}
    assert [e["seed"] for e in root["meta"].attrs["episodes"]] == [0, 1, 2]


def test_append_after_reopen(tmp_path):
    new_store(tmp_path / "s", 2)
    store = EpisodeStore.open(tmp_path / "s", mode="a")
    for i in (2, 3):
        assert store.add_episode(make_episode(i), make_attrs(i)) == i
    store = EpisodeStore.open(tmp_path / "s")
    assert_episodes(store, 4)
    assert store.check() == []


@pytest.mark.parametrize("mutate, match", [
    (lambda d, a: d.pop("state"), "lacks keys"),
    (lambda d, a: d.update(extra=np.zeros(3)), "does not hold"),
    (lambda d, a: d.update(image=np.zeros((3, 24, 31, 3), np.uint8)), "shape"),
    (lambda d, a: d.update(image=np.zeros((3, 24, 32, 3), np.float32)), "dtype"),
    (lambda d, a: d.update(state=np.zeros((4, 4), np.float32)), "one length"),
    (lambda d, a: d.update({k: v[:0] for k, v in d.items()}), "one length"),
    (lambda d, a: a.update(bad=object()), "JSON"),
])
def test_bad_append_raises_and_leaves_store_intact(tmp_path, mutate, match):
    store = new_store(tmp_path / "s", 2)
    data, attrs = make_episode(2), make_attrs(2)
    mutate(data, attrs)
    with pytest.raises(RoboilError, match=match):
        store.add_episode(data, attrs)
    store = EpisodeStore.open(tmp_path / "s")
    assert_episodes(store, 2)
    assert store.check() == [] and store.notes == []
    assert zarr.open_group(tmp_path / "s", mode="r")["data/image"].shape[0] == 7


def test_open_and_create_errors(tmp_path):
    with pytest.raises(RoboilError, match="no episode store"):
        EpisodeStore.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RoboilError, match="not a roboil"):
        EpisodeStore.open(tmp_path / "plain")
    zarr.open_group(tmp_path / "other", mode="w")
    with pytest.raises(RoboilError, match="not a roboil"):
        EpisodeStore.open(tmp_path / "other")
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    with pytest.raises(RoboilError, match="already exists"):
        new_store(tmp_path / "plain")
    assert (tmp_path / "plain" / "notes.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()  # made by hand for the store: it goes there
    new_store(tmp_path / "empty", 1).close()
    assert EpisodeStore.open(tmp_path / "empty").n_episodes == 1
    with pytest.raises(RoboilError, match="no ArrayLayout"):
        EpisodeStore.create(tmp_path / "s", FEATURES, {"state": ArrayLayout(10)}, {})
    for bad in (ArrayLayout(0), ArrayLayout(10, clevel=12), ArrayLayout(10, cname="nope")):
        with pytest.raises(RoboilError, match="layout for 'image'"):
            EpisodeStore.create(tmp_path / "s", FEATURES, {**LAYOUTS, "image": bad}, {})
        assert not (tmp_path / "s").exists()
    new_store(tmp_path / "s")
    with pytest.raises(RoboilError, match="mode"):
        EpisodeStore.open(tmp_path / "s", mode="w")


def test_check_finds_non_monotonic_ends(tmp_path):
    new_store(tmp_path / "s", 4)
    zarr.open_group(tmp_path / "s", mode="r+")["meta/episode_ends"][2] = 5  # below ends[1] = 7
    store = EpisodeStore.open(tmp_path / "s")
    assert store.n_episodes == 2  # reads the valid prefix
    assert any("episode_ends[2]=5" in p for p in store.check())
    with pytest.raises(RoboilError, match="damaged"):  # appending would drop episodes 2 and 3
        EpisodeStore.open(tmp_path / "s", mode="a")


def test_check_finds_missing_and_corrupt_chunks(tmp_path):
    new_store(tmp_path / "s", 3)
    (tmp_path / "s/data/image/c/4/0/0/0").unlink()
    (tmp_path / "s/data/state/c/0/0").write_bytes(b"garbage")
    problems = EpisodeStore.open(tmp_path / "s").check()
    assert any("data/image: 1 committed chunk files missing" in p for p in problems)
    assert any("data/state" in p and "decode" in p for p in problems)


def tear_commit(path: Path) -> None:
    """What a kill inside add_episode leaves: data rows and attrs past the end, episode_ends resized only."""
    root = zarr.open_group(path, mode="r+")
    for key, arr in root["data"].arrays():
        arr.resize((arr.shape[0] + 3, *arr.shape[1:]))
        arr[-3:] = 7
    root["meta"].attrs["episodes"] = root["meta"].attrs["episodes"] + [{"seed": -1}]
    ends = root["meta/episode_ends"]
    ends.resize((ends.shape[0] + 1,))


def test_torn_commit_is_ignored_on_read_and_trimmed_on_append(tmp_path):
    new_store(tmp_path / "s", 2)
    tear_commit(tmp_path / "s")
    store = EpisodeStore.open(tmp_path / "s")
    assert_episodes(store, 2)
    assert store.check() == [] and len(store.notes) == 5  # ends slot, attrs, 3 data arrays
    # temp files that killed writes leave behind
    (tmp_path / "s/data/state/zarr.0123.partial").write_text("{")
    (tmp_path / "s/data/image/c/8/0/0/0.0123.partial").write_bytes(b"x")
    store = EpisodeStore.open(tmp_path / "s", mode="a")
    assert not list((tmp_path / "s").rglob("*.partial"))
    root = zarr.open_group(tmp_path / "s", mode="r")
    assert root["meta/episode_ends"].shape == (2,) and len(root["meta"].attrs["episodes"]) == 2
    assert all(arr.shape[0] == 7 for _, arr in root["data"].arrays())
    store.add_episode(make_episode(2), make_attrs(2))  # overwrites the stale rows in the boundary chunks
    store = EpisodeStore.open(tmp_path / "s")
    assert_episodes(store, 3)
    assert store.check() == [] and store.notes == []


WRITER = """
import sys
sys.path[:0] = [{root!r}, {tests!r}]
from roboil.store import EpisodeStore, _shard_index
from test_store import make_episode, make_attrs
store = EpisodeStore.open({path!r}, mode="a")
print("ready", flush=True)
while True:
    i = store.n_episodes
    assert store.add_episode(make_episode(i, length=10 + i % 7), make_attrs(i)) == i
"""


@pytest.mark.parametrize("layouts", [LAYOUTS, SHARDED], ids=["file per chunk", "sharded"])
def test_sigkill_while_appending_loses_at_most_the_episode_in_progress(tmp_path, layouts):
    path = tmp_path / "s"
    new_store(path, 0, layouts).close()
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(root=str(ROOT), tests=str(ROOT / "tests"), path=str(path)))
    rng = random.Random(0)
    torn = 0
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        store = EpisodeStore.open(path)
        assert store.check() == []
        torn += bool(store.notes)
        for i in range(store.n_episodes):
            want, got = make_episode(i, length=10 + i % 7), store.episode(i)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])
            assert store.episode_attrs()[i] == {**make_attrs(i), "seed": i}
    assert store.n_episodes > 0 and torn > 0  # the kills landed mid-episode at least once
    store = EpisodeStore.open(path, mode="a")
    n = store.n_episodes
    assert store.add_episode(make_episode(n), make_attrs(n)) == n
    store = EpisodeStore.open(path)
    assert store.n_episodes == n + 1 and store.check() == [] and store.notes == []
    assert not list(path.rglob("*.partial"))


def test_a_changed_byte_fails_its_chunks_crc32c(tmp_path):
    """The random frames are stored uncompressed by Blosc: one changed pixel would decode fine."""
    path = tmp_path / "s"
    new_store(path, 4).close()
    chunk = path / "data/image/c/4/0/0/0"  # of episode 1
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 1
    chunk.write_bytes(bytes(data))
    assert EpisodeStore.open(path).check() == [
        "data/image: episode 1 fails to decode: a chunk or its shard's index fails its crc32c (changed on disk)"]


def swap_files(a: Path, b: Path) -> None:
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def test_checksums_find_changed_bytes_that_still_decode(tmp_path):
    path = tmp_path / "s"
    new_store(path, 4).close()  # lengths 3, 4, 5, 6: image rows 3..6 are episode 1, 7..11 episode 2
    checksums = zarr.open_group(path, mode="r")["meta"].attrs["episodes"][0]["checksums"]
    assert sorted(checksums) == sorted(FEATURES) and all(v.startswith("crc32:") for v in checksums.values())
    image = path / "data/image/c"
    swap_files(image / "4/0/0/0", image / "5/0/0/0")  # frames out of order: each chunk whole, with its crc32c
    swap_files(image / "8/0/0/0", image / "9/0/0/0")
    store = EpisodeStore.open(path)
    assert store.check(deep=False) == []  # the cheap check verifies only the last episode
    assert store.check() == ["data/image: episodes 1, 2 differ from their checksums (changed since recording)"]
    arrays = store.load()
    assert store.verify_episodes(arrays) == store.check()
    assert store.verify_episodes({"state": arrays["state"]}) == []
    with pytest.raises(RoboilError, match="episodes 1, 2 differ .*roboil store check"):
        store.load(["image"], verify=True)


def test_store_recorded_without_checksums_still_opens_checks_and_appends(tmp_path):
    path = tmp_path / "s"
    new_store(path, 3).close()
    meta = zarr.open_group(path, mode="r+")["meta"]
    meta.attrs["episodes"] = [{k: v for k, v in e.items() if k != "checksums"} for e in meta.attrs["episodes"]]
    store = EpisodeStore.open(path, require_healthy=True)
    assert store.check() == [] and store.verify_episodes(store.load()) == []
    assert store.notes == ["episodes 0, 1, 2 have no checksums (recorded by an older roboil)"]
    with EpisodeStore.open(path, mode="a") as store:
        store.add_episode(make_episode(3), make_attrs(3))
    store = EpisodeStore.open(path)
    assert_episodes(store, 4)
    assert store.check() == [] and len(store.notes) == 1


def test_episode_attrs_the_store_owns_are_checked(tmp_path):
    store = new_store(tmp_path / "s", 1)
    with pytest.raises(RoboilError, match="'checksums' is reserved"):
        store.add_episode(make_episode(1), {"checksums": {}})
    with pytest.raises(RoboilError, match="'length' 5 .* 4 steps"):
        store.add_episode(make_episode(1), {"length": 5})
    store.add_episode(make_episode(1), {"length": 4})
    assert store.episode_attrs()[1] == {"length": 4}
    assert EpisodeStore.open(tmp_path / "s").check() == []


def test_an_append_costs_about_the_same_however_many_episodes_the_store_holds(tmp_path):
    """Every append writes all episodes' attrs (meta/zarr.json) again; encoding them all each time made an append
    cost 0.12 ms more per episode before it (260 ms at 2,000: tools/bench_append.py). Each is encoded once now."""
    import statistics

    features = {"state": Feature("proprio", (10,), "float32")}
    rows = {"state": np.zeros((20, 10), np.float32)}
    start_state = np.random.default_rng(0).normal(size=60).tolist()  # as a MuJoCo task's episodes carry

    def append(store) -> float:
        started = time.perf_counter()
        store.add_episode(rows, {"seed": store.n_episodes, "start_state": start_state})
        return time.perf_counter() - started

    with (EpisodeStore.create(tmp_path / "s", features, {"state": ArrayLayout(64)}, STORE_ATTRS) as large,
          EpisodeStore.create(tmp_path / "small", features, {"state": ArrayLayout(64)}, STORE_ATTRS) as small):
        for _ in range(400):
            append(large)
        # taken in turns, so both see the same load from whatever else the machine runs
        early, late = zip(*[(append(small), append(large)) for _ in range(15)])
    early, late = statistics.median(early), statistics.median(late)
    assert late < 2.5 * early, (early, late)  # before: about 5x at 400 episodes
    listed = zarr.open_group(tmp_path / "s" / "meta", mode="r").attrs["episodes"]  # what zarr reads back
    assert [a["seed"] for a in listed] == list(range(415)) and listed[-1]["start_state"] == start_state
    assert EpisodeStore.open(tmp_path / "s").check() == []
