"""Episode store under faults: concurrent writers, damaged stores, killed creations, corrupt chunks.

Writers run as real processes (a lock that only works within one process proves nothing).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from roboil.errors import RoboilError
from roboil.store import EpisodeStore
from test_store import ROOT, make_attrs, make_episode, new_store

# Modes: hold (open for appending until stdin closes), append WRITER N (N episodes with their own ids,
# reopening per episode and retrying while refused), create (create, then append until killed).
WORKER = """
import random, sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from roboil.errors import RoboilError
from roboil.store import EpisodeStore
from test_store import FEATURES, LAYOUTS, STORE_ATTRS, make_attrs, make_episode
path, mode = sys.argv[1], sys.argv[2]
if mode == "hold":
    try:
        store = EpisodeStore.open(path, mode="a")
    except RoboilError as e:
        print("refused:", e, flush=True)
        sys.exit(0)
    print("holding", flush=True)
    sys.stdin.readline()
    store.close()
    print("closed", flush=True)
    sys.stdin.readline()
elif mode == "append":
    writer, n = int(sys.argv[3]), int(sys.argv[4])
    for k in range(n):
        episode_id = 1000 * writer + k
        while True:
            try:
                with EpisodeStore.open(path, mode="a") as store:
                    store.add_episode(make_episode(episode_id), make_attrs(episode_id))
                break
            except RoboilError as e:
                assert "another writer" in str(e), e
                time.sleep(random.uniform(0, 0.003))
elif mode == "create":
    print("ready", flush=True)
    store = EpisodeStore.create(path, FEATURES, LAYOUTS, STORE_ATTRS)
    while True:
        i = store.n_episodes
        store.add_episode(make_episode(i), make_attrs(i))
"""


@pytest.fixture
def worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT), tests=str(ROOT / "tests")))

    def start(*args) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), *map(str, args)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    return start


def assert_intact(store: EpisodeStore) -> list[int]:
    """Every committed episode holds exactly the arrays of the id in its attrs (no rows of another episode)."""
    ids = []
    for i, attrs in enumerate(store.episode_attrs()):
        want, got = make_episode(attrs["seed"]), store.episode(i)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=f"episode {i} (id {attrs['seed']}) {k}")
        ids.append(attrs["seed"])
    return ids


# ---- one writer per store --------------------------------------------------------------------------------------

def test_second_writer_process_is_refused_while_the_first_holds_the_store(tmp_path, worker):
    path = tmp_path / "s"
    new_store(path, 2).close()
    holder = worker(path, "hold")
    assert holder.stdout.readline() == "holding\n"
    with pytest.raises(RoboilError, match="another writer") as refused:
        EpisodeStore.open(path, mode="a")
    assert "\n" not in str(refused.value) and str(path) in str(refused.value)
    assert EpisodeStore.open(path).n_episodes == 2  # readers are never refused
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == "closed\n"  # close() releases the lock while the process lives on
    with EpisodeStore.open(path, mode="a") as store:
        store.add_episode(make_episode(2), make_attrs(2))
        other = worker(path, "hold")  # refused by us, in another process
        assert other.stdout.readline().startswith("refused: ") and other.wait(10) == 0
    holder.stdin.close()
    assert holder.wait(10) == 0

    killed = worker(path, "hold")
    assert killed.stdout.readline() == "holding\n"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    with EpisodeStore.open(path, mode="a") as store:  # the kernel dropped a killed writer's lock
        assert store.n_episodes == 3


def test_one_writer_per_store_within_a_process_and_after_close(tmp_path):
    with new_store(tmp_path / "s", 1) as store:
        with pytest.raises(RoboilError, match="another writer"):
            EpisodeStore.open(tmp_path / "s", mode="a")
    with pytest.raises(RoboilError, match="read-only"):
        store.add_episode(make_episode(1), make_attrs(1))
    with EpisodeStore.open(tmp_path / "s", mode="a") as store:
        store.add_episode(make_episode(1), make_attrs(1))
    assert_intact(EpisodeStore.open(tmp_path / "s"))


def test_two_writer_processes_appending_lose_and_mix_nothing(tmp_path, worker):
    path, n = tmp_path / "s", 12
    new_store(path).close()
    writers = [worker(path, "append", w, n) for w in (1, 2)]
    assert [w.wait(120) for w in writers] == [0, 0]
    store = EpisodeStore.open(path)
    assert sorted(assert_intact(store)) == [1000 * w + k for w in (1, 2) for k in range(n)]
    assert store.check() == [] and store.notes == []


# ---- refusing damaged stores -----------------------------------------------------------------------------------

def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def set_episode_attrs(store_path: Path, edit) -> None:
    meta = zarr.open_group(store_path, mode="r+")["meta"]
    episodes = meta.attrs["episodes"]
    edit(episodes)
    meta.attrs["episodes"] = episodes


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def set_ends(store_path: Path, index: int, value: int) -> None:
    zarr.open_group(store_path, mode="r+")["meta/episode_ends"][index] = value


# The store from new_store(path, 4): lengths 3, 4, 5, 6 (ends 3, 7, 12, 18); one image row per chunk.
DAMAGE = {
    "missing chunk file": (lambda p: (p / "data/image/c/4/0/0/0").unlink(), "chunk files missing"),
    "non-monotonic episode_ends": (lambda p: set_ends(p, 2, 5), "episode_ends[2]=5"),
    "duplicated episode_ends": (lambda p: set_ends(p, 2, 7), "episode_ends[2]=7"),
    "episode_ends past the data": (lambda p: set_ends(p, 3, 40), "episode_ends[3]=40"),
    "data array shorter than episode_ends": (
        lambda p: zarr.open_group(p, mode="r+")["data/state"].resize((15, 4)), "episode_ends[3]=18"),
    "short attrs list": (lambda p: set_episode_attrs(p, lambda e: e.pop()), "attrs list 3 episodes"),
    "non-dict attrs": (lambda p: set_episode_attrs(p, lambda e: e.__setitem__(1, 5)), "not dicts"),
    "wrong length attr": (lambda p: set_episode_attrs(p, lambda e: e[1].update(length=9)), "'length'"),
    "garbage zarr.json": (lambda p: (p / "data/state/zarr.json").write_text("{garbage"), "data/state/zarr.json"),
    "dtype edit": (lambda p: edit_json(p / "data/state/zarr.json", data_type="float64"), "float64"),
    "shape edit": (lambda p: edit_json(p / "data/state/zarr.json", shape=[18, 5]), "(5,)"),
    "bytes flipped in the last episode": (lambda p: flip_last_byte(p / "data/image/c/15/0/0/0"), "crc32c"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_store_is_refused_for_appending_and_training(tmp_path, damage):
    path = tmp_path / "s"
    new_store(path, 4).close()
    mutate, match = DAMAGE[damage]
    mutate(path)
    for open_it in (lambda: EpisodeStore.open(path, mode="a"), lambda: EpisodeStore.open(path, require_healthy=True)):
        with pytest.raises(RoboilError, match="damaged") as refused:
            open_it()
        message = str(refused.value)
        # damage to what says what the store holds leaves nothing to check or copy episode by episode
        advice = "restore that file from a backup" if damage == "garbage zarr.json" else f"roboil store check {path}"
        assert "\n" not in message and match in message and advice in message
    if damage != "garbage zarr.json":
        assert EpisodeStore.open(path).check()  # and the full check names it too


def test_damaged_store_is_not_repaired_by_appending(tmp_path):
    """The reported defect: an append rewrote the missing chunk with zeros, after which check() said OK."""
    path = tmp_path / "s"
    new_store(path, 4).close()
    (path / "data/image/c/4/0/0/0").unlink()
    with pytest.raises(RoboilError, match="damaged"):
        EpisodeStore.open(path, mode="a").add_episode(make_episode(4), make_attrs(4))
    assert not (path / "data/image/c/4/0/0/0").exists()
    assert any("chunk files missing" in p for p in EpisodeStore.open(path).check())


@pytest.mark.parametrize("file", ["data/image/zarr.json", "meta/zarr.json"])
def test_unreadable_metadata_is_one_line_for_info_and_broken_for_check(tmp_path, capsys, file):
    """info fails in one line; check reports the store BROKEN (exit 1) with what to do, rather than telling the
    user to run check, and copying is refused in one line without leaving a copy."""
    from roboil.cli import main

    path = tmp_path / "s"
    new_store(path, 2).close()
    (path / file).write_text("{garbage")
    assert main(["store", "info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and f"{file} is unreadable" in err and "backup" in err
    assert main(["store", "check", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert err == "" and len(lines) == 2 and f"{file} is unreadable" in lines[0] and "store check" not in lines[0]
    assert lines[1] == f"{path}: BROKEN"
    assert main(["store", "copy", str(path), "--out", str(tmp_path / "c"), "--skip-damaged"]) == 2
    assert not (tmp_path / "c").exists()


def test_a_passed_quick_check_says_what_it_did_not_decode(tmp_path, capsys):
    from roboil.cli import main

    path = tmp_path / "s"
    new_store(path, 3).close()
    zarr.open_group(path, mode="r+")["data/state"][0] = 7.0  # inside the first episode: no file changes size
    steps = EpisodeStore.open(path).n_steps
    assert main(["store", "check", "--quick", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{path}: OK by the quick check (3 episodes, {steps} steps; without --quick every episode is decoded and "
        "checked)")
    assert main(["store", "check", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == f"{path}: BROKEN (3 episodes, {steps} steps)"


@pytest.mark.parametrize("damage, why", [
    # every episode's end: the rows are there, the episodes are not
    (lambda p: (p / "meta/episode_ends/c/0").unlink(), "episode_ends"),
    # every episode changed since recording, which only the checksums tell (the quick check passes)
    (lambda p: zarr.open_group(p, mode="r+")["data/state"].__setitem__(slice(0, 12), 7.0), "all 3 are damaged"),
])
def test_a_copy_that_would_hold_no_episode_of_a_broken_store_is_refused(tmp_path, capsys, damage, why):
    from roboil.cli import main

    path = tmp_path / "s"
    new_store(path, 3).close()
    damage(path)
    assert main(["store", "copy", str(path), "--out", str(tmp_path / "c"), "--skip-damaged"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"roboil: error: no episode of store '{path}' could be copied: ") and err.count("\n") == 1
    assert why in err and not (tmp_path / "c").exists()


# ---- noise from zarr's async pipeline --------------------------------------------------------------------------

NOISY_CHECK = """
import sys
sys.path[:0] = [{root!r}]
import numpy as np
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore, _shard_index
path = {path!r}
store = EpisodeStore.create(path, {{"image": Feature("pixels", (32, 32, 3), "uint8")}},
                            {{"image": ArrayLayout(1, shard_rows={shard_rows})}}, {{}})
frames = np.zeros((50, 32, 32, 3), np.uint8)
frames[:, 8:20] = np.arange(50)[:, None, None, None]  # compressible, so a damaged chunk fails to decode
for _ in range(20):
    store.add_episode({{"image": frames}}, {{}})
store.close()
{damage}
for problem in EpisodeStore.open(path).check():
    print(problem)
try:
    EpisodeStore.open(path).load()
except Exception as e:
    print(e)
"""
DAMAGED_CHUNK = {  # shard_rows, code damaging the chunk of row 3
    "file per chunk cut short": (1, """chunk = path + "/data/image/c/3/0/0/0"
data = open(chunk, "rb").read()
open(chunk, "wb").write(data[:len(data) // 2])"""),
    "zeroed chunk in a shard": (None, """with open(path + "/data/image/c/0/0/0/0", "r+b") as f:
    offset, nbytes = _shard_index(f, 1024)[3]
    f.seek(int(offset))
    f.write(bytes(int(nbytes)))  # the index still holds: only the chunk's bytes are bad"""),
}


@pytest.mark.parametrize("damage", DAMAGED_CHUNK)
def test_check_of_a_damaged_chunk_prints_one_line_and_no_asyncio_noise(tmp_path, damage):
    shard_rows, code = DAMAGED_CHUNK[damage]
    script = tmp_path / "check.py"
    script.write_text(NOISY_CHECK.format(root=str(ROOT), path=str(tmp_path / "s"), shard_rows=shard_rows,
                                         damage=code))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
    *lines, loading = result.stdout.splitlines()
    assert "data/image: episode 0 fails to decode" in lines[-1], result.stdout  # the episode of row 3 alone
    assert loading.startswith(f"store '{tmp_path / 's'}' is damaged: data/image: rows 0..1000 fail to decode: "
                              ) and "('" not in loading, loading  # one sentence, not the exception's args
    # a Blosc chunk file cut short is also found without decoding (what `store check --quick` reports)
    assert lines[:-1] == (["data/image: 1 committed chunk files shorter than their Blosc header says (first: time "
                           "chunk 3; cut short)"] if damage == "file per chunk cut short" else []), result.stdout


def test_a_shard_index_failing_its_checksum_is_named_without_raw_bytes(tmp_path):
    from roboil.specs import ArrayLayout, Feature

    path = tmp_path / "s"
    store = EpisodeStore.create(path, {"image": Feature("pixels", (8, 8, 3), "uint8")}, {"image": ArrayLayout(1)}, {})
    for _ in range(3):
        store.add_episode({"image": np.zeros((5, 8, 8, 3), np.uint8)}, {})
    store.close()
    with open(path / "data/image/c/0/0/0/0", "r+b") as shard:
        shard.seek(-8, os.SEEK_END)  # inside the index's last (offset, nbytes) pair
        byte = shard.read(1)[0]
        shard.seek(-8, os.SEEK_END)
        shard.write(bytes([byte ^ 0xFF]))
    problems = EpisodeStore.open(path).check()
    assert problems[0] == "data/image: 1 shard files unreadable (first: shard 0 has an index that fails its crc32c)"
    assert problems[1] == ("data/image: episodes 0, 1, 2 fail to decode: a chunk or its shard's index fails its "
                           "crc32c (changed on disk)")
    with pytest.raises(RoboilError, match=r"rows 0\.\.15 fail to decode: a chunk or its shard's index fails its "
                                          r"crc32c \(changed on disk\);"):
        EpisodeStore.open(path).load()


# ---- atomic creation -------------------------------------------------------------------------------------------

def test_creation_cut_short_leaves_nothing_that_blocks_the_next(tmp_path, monkeypatch):
    created = []

    def crash_after_first(self, *args, **kwargs):
        if created:
            raise KeyboardInterrupt  # like Ctrl-C between two arrays
        created.append(original(self, *args, **kwargs))
        return created[-1]

    original = zarr.Group.create_array
    monkeypatch.setattr(zarr.Group, "create_array", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        new_store(tmp_path / "s")
    monkeypatch.undo()
    assert not (tmp_path / "s").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f".s.creating-{dead.stdout.strip()}-0" / "data").mkdir(parents=True)  # killed before its rename
    (tmp_path / f".s.creating-{os.getpid()}-1").mkdir()  # a creation in progress: its process lives
    new_store(tmp_path / "s", 1).close()
    assert sorted(os.listdir(tmp_path)) == [f".s.creating-{os.getpid()}-1", "s"]


def test_killed_creations_never_block_a_later_one(tmp_path, worker):
    for trial in range(6):
        path = tmp_path / f"s{trial}"
        proc = worker(path, "create")
        assert proc.stdout.readline() == "ready\n"
        time.sleep(0.015 * trial)  # from inside the creation to appends after it
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # what `roboil record` does on the same --out: open the store if it is there, else create it
        store = EpisodeStore.open(path, mode="a") if path.exists() else new_store(path)
        n = store.n_episodes
        store.add_episode(make_episode(n), make_attrs(n))
        store.close()
        assert EpisodeStore.open(path).check() == []
    assert sorted(os.listdir(tmp_path)) == [*(f"s{t}" for t in range(6)), "worker.py"]


def test_the_quick_check_finds_a_blosc_chunk_file_cut_short_and_appending_refuses_it(tmp_path):
    path = tmp_path / "s"
    new_store(path, 3).close()  # "image": a file per frame, Blosc
    chunk = path / "data/image/c/4/0/0/0"  # a frame of episode 1 (lengths 3, 4, 5)
    chunk.write_bytes(chunk.read_bytes()[:-3])  # the crc32c after the Blosc data, cut: its length says so too
    assert EpisodeStore.open(path).check(deep=False) == [
        "data/image: 1 committed chunk files shorter than their Blosc header says (first: time chunk 4; cut short)"]
    with pytest.raises(RoboilError, match="cut short"):
        EpisodeStore.open(path, mode="a")


ENDS_DAMAGE = {"cut short": (lambda chunk: os.truncate(chunk, 10), "meta/episode_ends: rows 0..3 fail to decode"),
               "deleted": (os.unlink, "meta/episode_ends: chunk file 0 of 1 is missing")}  # zarr read it as zeros


@pytest.mark.parametrize("damage", ENDS_DAMAGE)
def test_episode_ends_that_no_longer_decode_are_rebuilt_from_the_recorded_lengths(tmp_path, capsys, damage):
    """Without episode_ends no episode can be read: info said 0 episodes (exit 0) and nothing could copy the
    store, though every episode's length is in its attrs and every row is still there."""
    import shutil

    from roboil.cli import main
    from roboil.record import record

    original, path = tmp_path / "original.zarr", tmp_path / "s.zarr"
    record("fetch-reach", 3, original, progress=False)
    shutil.copytree(original, path)
    spoil, problem = ENDS_DAMAGE[damage]
    spoil(path / "meta/episode_ends/c/0")
    assert main(["store", "info", str(path)]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 0 and problem in info["problems"][0] and len(info["problems"]) == 1
    assert "--repair` writes them again" in info["problems"][0]
    assert main(["store", "check", "--repair", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "rebuilt meta/episode_ends from the 3 episodes' recorded lengths", f"{path}: OK, repaired (3 episodes, 150 steps)"]
    before, after = EpisodeStore.open(original), EpisodeStore.open(path)
    assert after.check() == [] and list(after.episode_ends) == list(before.episode_ends)
    for index in range(3):
        assert all(np.array_equal(after.episode(index)[key], before.episode(index)[key]) for key in before.features)
