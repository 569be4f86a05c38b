"""Sharded episode stores (the default for new ones): files bounded by shards, appends into shards that hold
committed rows killed at every write, and damage only a shard can have (a chunk missing from its index, an
unreadable index), found and repaired from the end. (SIGKILL, deletes and repairs of any store: test_store.py and
test_store_edit.py.)"""

import math
from pathlib import Path

import numpy as np
import pytest
import zarr

from roboil.errors import RoboilError
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore, array_layout, copy_store
from test_store import FEATURES, LAYOUTS, SHARDED, assert_episodes, drop_chunk, held, make_attrs, make_episode, \
    new_store, shard_file, shard_index
from test_store_edit import assert_healthy_and_appendable, edits_killed_at_each_write

def counts(path: Path) -> tuple[int, int]:
    """Files and directories under ``path``."""
    entries = list(path.rglob("*"))
    return sum(p.is_file() for p in entries), sum(p.is_dir() for p in entries)


# ---- layout ----------------------------------------------------------------------------------------------------

def test_store_picks_shards_of_about_1024_steps_within_32_mib(tmp_path):
    pixels = lambda h, w: Feature("pixels", (h, w, 3), "uint8")  # noqa: E731
    cases = {  # feature, layout: (chunks, shards)
        "camera": (pixels(96, 96), ArrayLayout(1), 1024),
        "large camera": (pixels(480, 640), ArrayLayout(1), 36),  # 36 frames of 921,600 bytes fit in 32 MiB
        "proprio": (Feature("proprio", (7,), "float32"), ArrayLayout(1024), None),  # a chunk is its own shard
        "long chunks": (Feature("proprio", (), "int64"), ArrayLayout(300), 900),
        "explicit": (pixels(8, 8), ArrayLayout(2, shard_rows=6), 6),
        "unsharded": (pixels(8, 8), ArrayLayout(1, shard_rows=1), None),
    }
    store = EpisodeStore.create(tmp_path / "s", {k: f for k, (f, _, _) in cases.items()},
                                {k: lay for k, (_, lay, _) in cases.items()}, {})
    for key, (feature, lay, shard_rows) in cases.items():
        arr = store.array(key)
        assert arr.chunks == (lay.time_chunk, *feature.shape), key
        assert arr.shards == (None if shard_rows is None else (shard_rows, *feature.shape)), key
        assert array_layout(arr) == ArrayLayout(lay.time_chunk, shard_rows=shard_rows or lay.time_chunk), key
        assert store.info()["features"][key]["shard_rows"] == (shard_rows or lay.time_chunk)


@pytest.mark.parametrize("shard_rows", [3, 0, -4, 2.0])
def test_shard_rows_that_are_not_a_multiple_of_the_time_chunk_are_refused(tmp_path, shard_rows):
    with pytest.raises(RoboilError, match=r"layout for 'state' has shard_rows=.*multiple of its time_chunk \(2\)") \
            as refused:
        EpisodeStore.create(tmp_path / "s", FEATURES, {**SHARDED, "state": ArrayLayout(2, shard_rows=shard_rows)}, {})
    assert "\n" not in str(refused.value) and not (tmp_path / "s").exists()


def test_format_2_marks_the_stores_an_earlier_roboil_would_misread(tmp_path):
    """It would look for a file per chunk, find most missing and, repairing, drop the episodes holding them."""
    def store_format(path):
        return zarr.open_group(path, mode="r").attrs["roboil"]["format"]

    new_store(tmp_path / "plain", 1).close()
    new_store(tmp_path / "sharded", 1, SHARDED).close()
    assert store_format(tmp_path / "plain") == 1 and store_format(tmp_path / "sharded") == 2
    root = zarr.open_group(tmp_path / "sharded", mode="r+")
    root.attrs["roboil"] = {**root.attrs["roboil"], "format": 4}
    with pytest.raises(RoboilError, match="has format 4, this roboil reads 1, 2, 3; use a matching roboil version"):
        EpisodeStore.open(tmp_path / "sharded")


def test_file_count_grows_with_shards_not_frames(tmp_path):
    """The issue's measurement in small: frames of one camera in 25-frame episodes."""
    feature = {"image": Feature("pixels", (16, 16, 3), "uint8")}
    frames = np.random.default_rng(0).integers(0, 256, (25, 16, 16, 3), dtype=np.uint8)

    def store_counts(shard_rows, n_frames) -> tuple[int, int]:
        path = tmp_path / f"{shard_rows}-{n_frames}"
        with EpisodeStore.create(path, feature, {"image": ArrayLayout(1, shard_rows=shard_rows)}, {}) as store:
            for _ in range(n_frames // 25):
                store.add_episode({"image": frames}, {})
        assert EpisodeStore.open(path).check() == []
        return counts(path)

    (few_files, few_dirs), (many_files, many_dirs) = store_counts(64, 50), store_counts(64, 500)
    shards = math.ceil(500 / 64) - math.ceil(50 / 64)
    assert many_files - few_files == shards and many_dirs - few_dirs == 3 * shards  # c/<shard>/0/0/0
    assert store_counts(None, 500) == store_counts(None, 50)  # one 1024-frame shard holds them all
    unsharded_files, _ = store_counts(1, 500)
    assert unsharded_files - store_counts(1, 50)[0] == 450  # before sharding: a file per frame


def test_copy_keeps_each_array_layout(tmp_path):
    for name, layouts in (("sharded", SHARDED), ("unsharded", LAYOUTS)):
        new_store(tmp_path / name, 3, layouts).close()
        copy, _ = copy_store(tmp_path / name, tmp_path / f"{name}-copy", ["step"])
        for key in ("state", "image"):
            assert array_layout(copy.array(key)) == array_layout(EpisodeStore.open(tmp_path / name).array(key))
        assert copy.check() == []


# ---- appending -------------------------------------------------------------------------------------------------

def test_round_trip_append_after_reopen_and_check(tmp_path):
    path = tmp_path / "s"
    new_store(path, 3, SHARDED).close()
    with EpisodeStore.open(path, mode="a") as store:
        store.add_episode(make_episode(3), make_attrs(3))
    store = EpisodeStore.open(path)
    assert_episodes(store, 4)
    assert store.check() == [] and store.notes == []
    assert held(shard_index(path, "image", 3)) == [0, 1, 2]  # rows 15..17 of 18
    assert sorted(p.name for p in (path / "data/image/c").iterdir()) == ["0", "1", "2", "3"]


def test_append_into_a_shard_with_committed_rows_killed_at_every_write(tmp_path, monkeypatch):
    base = tmp_path / "base"
    new_store(base, 2, SHARDED).close()  # rows 0..6: image shard 1 and state shard 0 hold committed rows
    outcomes = []

    def append(store):  # rows 7..11: into image shard 1, on to 2
        store.add_episode(make_episode(2), make_attrs(2))

    for k, path, store, finished in edits_killed_at_each_write(monkeypatch, base, tmp_path, append):
        store.close()
        reopened = EpisodeStore.open(path)
        assert reopened.check() == [], k
        assert reopened.n_episodes == (3 if finished else 2), k
        assert_episodes(reopened, 2, exact=False)
        outcomes.append(reopened.n_episodes)
        assert_healthy_and_appendable(path, reopened.n_episodes)
    assert k > 5 and outcomes == [2] * (k - 1) + [3]


# ---- damage ----------------------------------------------------------------------------------------------------

def corrupt_index(path: Path, key: str, shard: int) -> None:
    file = shard_file(path, key, shard)
    data = bytearray(file.read_bytes())
    data[-10] ^= 0xFF
    file.write_bytes(bytes(data))


# new_store(path, 4, SHARDED) damaged at its end; the value: (damage, the problem, the episodes it is confined to)
DAMAGE = {
    "missing shard file": (lambda p: shard_file(p, "image", 3).unlink(),
                           "data/image: 1 committed shard files missing (first: shard 3)", [3]),
    "chunk missing from its shard": (lambda p: drop_chunk(p, "image", 16),
                                     "data/image: 1 committed chunks missing from their shard files (first: time "
                                     "chunk 16)", [3]),
    "unreadable shard index": (lambda p: corrupt_index(p, "state", 1),
                               "data/state: 1 shard files unreadable (first: shard 1 has an index that fails its "
                               "crc32c)", [2, 3]),
    "shard cut short": (lambda p: shard_file(p, "state", 2).write_bytes(b"x"),
                        "data/state: 1 shard files unreadable (first: shard 2 is 1 bytes, shorter than its index)",
                        [3]),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_shard_damage_is_found_refused_for_appending_and_repaired_from_the_end(tmp_path, damage):
    path = tmp_path / "s"
    new_store(path, 4, SHARDED).close()
    mutate, problem, episodes = DAMAGE[damage]
    mutate(path)
    store = EpisodeStore.open(path)
    assert problem in store.check(deep=False) and problem in store.check()
    assert dict(store._findings(deep=False))[problem] == episodes
    with pytest.raises(RoboilError, match="damaged") as refused:
        EpisodeStore.open(path, mode="a")
    assert "\n" not in str(refused.value)
    report = EpisodeStore.repair(path)
    assert report.healthy and report.dropped == episodes
    assert_healthy_and_appendable(path, episodes[0])
