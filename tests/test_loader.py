"""The worker-process loader (stores read from disk) gives the in-RAM sampler's windows, resumes its draws
exactly, and trains the same run as the in-RAM path."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from roboil.config import load_config
from roboil.keys import ACTION
from roboil.loader import batches
from roboil.record import record
from roboil.rows import RowReader
from roboil.sampler import WindowSampler
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore
from roboil.train import train

LENGTHS = [7, 3, 12, 5]


def image_store(path, image_layout=ArrayLayout(1)):
    rng = np.random.default_rng(0)
    features = {"image": Feature("pixels", (16, 16, 3), "uint8"), "state": Feature("proprio", (2,), "float32"),
                ACTION: Feature("action", (2,), "float32")}
    layouts = {"image": image_layout, "state": ArrayLayout(8), ACTION: ArrayLayout(8)}
    with EpisodeStore.create(path, features, layouts, {"task": "synthetic"}) as store:
        for length in LENGTHS:
            store.add_episode({"image": rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8),
                               "state": rng.normal(size=(length, 2)).astype(np.float32),
                               ACTION: rng.normal(size=(length, 2)).astype(np.float32)}, {})
    return EpisodeStore.open(path)


def sampler(arrays, store):
    return WindowSampler(arrays, store.episode_ends, np.arange(len(LENGTHS)), ["image", "state"], n_obs_steps=2,
                         horizon=4, future_keys=("state",), next_keys=("image",), seed=3)


def test_workers_reading_from_disk_give_the_in_ram_windows_and_resume_their_draws(tmp_path):
    store = image_store(tmp_path / "s.zarr")
    on_disk = {k: RowReader(store.array(k), store.path / "data" / k) for k in store.features}
    in_ram = store.load(list(store.features))
    made = batches(sampler(on_disk, store), 6, torch.device("cpu"), rows=slice(2, 5), workers=2)
    loaded = [next(made) for _ in range(5)]
    made.close()
    reference = sampler(in_ram, store)
    for batch, state in loaded:
        expected = reference.sample(6, slice(2, 5))
        assert state == reference.state()
        assert batch.keys() == expected.keys()
        for key in expected:
            assert np.array_equal(batch[key].numpy(), expected[key]), key
    resumed = sampler(in_ram, store)
    resumed.set_state(loaded[2][1])  # the state a checkpoint after the third batch keeps
    for batch, _ in loaded[3:]:
        assert np.array_equal(resumed.sample(6, slice(2, 5))["image"], batch["image"].numpy())


def test_a_run_read_from_disk_by_workers_trains_like_one_in_ram(tmp_path):
    path = tmp_path / "reach.zarr"
    record("fetch-reach", 3, path, progress=False)
    common = [f"data.path={path}", "train.steps=12", "train.log_every=1", "train.batch_size=16",
              "algorithm.hidden_dims=[32]"]
    train(load_config("configs/fetch_reach/gcbc.yaml", common), tmp_path / "ram", progress=False)
    train(load_config("configs/fetch_reach/gcbc.yaml", [*common, "data.cache_max_gb=0", "train.loader_workers=2"]),
          tmp_path / "disk", progress=False)

    def losses(run):
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "disk") == losses(tmp_path / "ram")


def test_a_reader_keeps_at_most_max_open_files_open_and_reads_the_same_rows(tmp_path, monkeypatch):
    """A long store read at random would otherwise keep every shard file it touched open, in every worker, until
    the process ran out of file descriptors."""
    import os

    store = image_store(tmp_path / "s.zarr", ArrayLayout(1, shard_rows=2))  # 27 frames in 14 shard files
    monkeypatch.setattr(RowReader, "max_open", 4)
    reader = RowReader(store.array("image"), store.path / "data" / "image")
    before = len(os.listdir("/proc/self/fd"))
    rows = np.random.default_rng(0).integers(0, sum(LENGTHS), 100)
    assert np.array_equal(reader.read(rows), store.load(["image"])["image"][rows])
    assert len(reader._files) == 4 and len(os.listdir("/proc/self/fd")) - before <= 4


@pytest.mark.parametrize("codec, sharded", [("lossless", True), ("lossless", False), ("jpeg", True), ("h264", True)])
def test_a_flipped_bit_that_still_decodes_is_damage_to_a_reader(tmp_path, codec, sharded):
    """Training that streams frames compares no episode checksums, and a flipped bit often decodes anyway (into
    a wrong frame: in 2 of 5 Blosc chunks, nearly every JPEG): each chunk's crc32c catches it, in a shard or in
    a file of its own (stores made before sharding)."""
    from roboil.codecs import chunk_frames, unavailable
    from roboil.store import StoreDamaged, _shard_index

    if codec != "lossless" and (reason := unavailable(codec)):
        pytest.skip(reason)
    row, per_chunk = 9, chunk_frames(codec)
    store = image_store(tmp_path / "s.zarr", ArrayLayout(per_chunk, codec=codec, quality=90,
                                                         shard_rows=None if sharded else per_chunk))
    frames = store.load(["image"])["image"]
    with open(store.path / f"data/image/c/{0 if sharded else row}/0/0/0", "r+b") as chunk:
        offset, nbytes = _shard_index(chunk, 1024 // per_chunk)[row // per_chunk] if sharded else (0, len(chunk.read()))
        chunk.seek(int(offset) + int(nbytes) // 2)
        byte = chunk.read(1)[0]
        chunk.seek(-1, 1)
        chunk.write(bytes([byte ^ 0x10]))
    reader = RowReader(store.array("image"), store.path / "data" / "image")
    assert reader.fast and reader.checked
    first = row - row % per_chunk
    with pytest.raises(StoreDamaged, match=rf"^store '.*' is damaged: data/image: row {first} fails to decode: its "
                                           r"chunk fails its crc32c \(changed on disk\);"):
        reader.read(np.arange(sum(LENGTHS)))
    assert np.array_equal(reader.read(np.arange(first)), frames[:first])  # the chunks before it read as written


def test_workers_get_only_the_arrays_on_disk_and_the_loader_stops_with_the_training(tmp_path, monkeypatch):
    """The arrays in RAM are gathered in the training process (each worker would hold a copy of them), and
    closing the batches (the end of training) ends the loader's thread or processes."""
    import multiprocessing
    import threading

    from roboil import loader

    handed = []

    class Loader(loader.DataLoader):  # notes the dataset the workers get
        def __init__(self, dataset, **options):
            handed.append(dataset.sampler)
            super().__init__(dataset, **options)

    monkeypatch.setattr(loader, "DataLoader", Loader)
    store = image_store(tmp_path / "s.zarr")
    in_ram = store.load(["state", ACTION])
    arrays = {"image": RowReader(store.array("image"), store.path / "data" / "image"), **in_ram}
    made = batches(sampler(arrays, store), 6, torch.device("cpu"), workers=1)
    batch, _ = next(made)
    assert [set(part.arrays) for part in handed] == [{"image"}]
    expected = sampler(store.load(list(store.features)), store).sample(6)
    assert batch.keys() == expected.keys() and all(np.array_equal(batch[k].numpy(), expected[k]) for k in expected)
    assert multiprocessing.active_children()
    made.close()
    assert not multiprocessing.active_children()
    threaded = batches(sampler(in_ram | {"image": store.load(["image"])["image"]}, store), 6, torch.device("cpu"))
    next(threaded)
    threaded.close()
    threading.Event().wait(0.5)  # the thread sees the stop within its 0.1 s wait
    assert not [t for t in threading.enumerate() if t.name == "roboil-batches"]


def test_a_second_ctrl_c_while_the_batch_thread_ends_waits_for_it_without_a_traceback(tmp_path, monkeypatch):
    """Ctrl-C twice in quick succession: the second one landed in the join of the batch thread as the stopping
    training closed its batches, and printed "Exception ignored in: <generator object _in_thread>" with a
    traceback after the stop's lines."""
    import threading

    store = image_store(tmp_path / "s.zarr")
    made = batches(sampler(store.load(list(store.features)), store), 6, torch.device("cpu"))
    next(made)
    join, landed = threading.Thread.join, []

    def join_until_interrupted(thread, timeout=None):
        if not landed:  # the second Ctrl-C, while the join waits
            landed.append(thread.name)
            raise KeyboardInterrupt
        return join(thread, timeout)

    monkeypatch.setattr(threading.Thread, "join", join_until_interrupted)
    made.close()
    assert landed == ["roboil-batches"] and not [t for t in threading.enumerate() if t.name == "roboil-batches"]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_damaged_frame_met_while_streaming_is_one_line_and_the_steps_trained_are_saved(tmp_path, workers):
    from conftest import run_cli
    from roboil.store import _shard_index

    path = tmp_path / "pusht.zarr"
    record("pusht", 4, path, progress=False, obs_overrides={"pixels": {"height": 48, "width": 48}})
    rows = EpisodeStore.open(path).n_steps
    with open(path / "data/rgb_top/c/0/0/0/0", "r+b") as shard:  # 4 frames zeroed: met after some steps
        for row in np.linspace(rows // 10, rows // 2, 4).astype(int):  # not the last episode, checked on opening
            offset, nbytes = _shard_index(shard, 1024)[row]
            shard.seek(int(offset) + 16)
            shard.write(bytes(int(nbytes) - 16))
    config = tmp_path / "pixels.yaml"
    config.write_text(f"task: pusht\nalgorithm:\n  name: gcbc\n  goal_conditioned: false\ndata:\n  path: {path}\n"
                      "  obs_keys: [rgb_top]\n  cache_max_gb: 0\ntrain:\n  steps: 500\n  batch_size: 4\n"
                      f"  loader_workers: {workers}\n")
    result = run_cli("train", config, "--out", tmp_path / "run")
    lines = [line for line in result.stderr.splitlines() if line.startswith("roboil: ")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[-1].startswith(f"roboil: error: store '{path}' is damaged: data/rgb_top: row ") and \
        " fails to decode: " in lines[-1], result.stderr
    saved = sorted((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert len(saved) == 1 and lines[-2] == f"roboil: saved step {int(saved[0].name[5:])} as {saved[0]} before stopping"


def test_a_store_made_before_chunks_had_a_crc32c_is_read_directly(tmp_path):
    """Its chunks are Blosc alone: the reader must not take their last 4 bytes for a checksum."""
    import zarr

    from roboil.store import _array_options

    store = image_store(tmp_path / "s.zarr")
    frames = store.load(["image"])["image"]
    options = _array_options("image", store.features["image"], ArrayLayout(1))
    options["compressors"] = options["compressors"][:1]  # as roboil made them before: no Crc32cCodec
    old = zarr.open_group(tmp_path / "old.zarr", mode="w").create_array("image", shape=frames.shape, dtype="uint8",
                                                                         **options)
    old[:] = frames
    reader = RowReader(old, tmp_path / "old.zarr" / "image")
    rows = np.random.default_rng(0).integers(0, len(frames), 50)
    assert reader.fast and not reader.checked and np.array_equal(reader.read(rows), frames[rows])


def training_read_by_a_worker(tmp_path) -> tuple[list[str], Path]:
    """The command of a long training whose camera frames one loader process reads from disk, and its run."""
    import sys

    path, run = tmp_path / "pusht.zarr", tmp_path / "run"
    record("pusht", 2, path, progress=False, obs_overrides={"pixels": {"height": 40, "width": 40}})
    config = tmp_path / "pixels.yaml"
    config.write_text(f"task: pusht\nalgorithm:\n  name: gcbc\n  goal_conditioned: false\ndata:\n  path: {path}\n"
                      "  obs_keys: [rgb_top]\n  cache_max_gb: 0\ntrain:\n  steps: 100000\n  batch_size: 4\n"
                      "  log_every: 1\n  loader_workers: 1\n")
    return [sys.executable, "-m", "roboil.cli", "train", str(config), "--out", str(run)], run


def loader_worker(pid: int) -> int:
    """The pid of the training ``pid``'s loader worker: its child that is not multiprocessing's resource tracker."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(next(child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()))


def test_a_loader_worker_killed_is_one_line_and_the_steps_trained_are_saved(tmp_path):
    """The kernel's out-of-memory killer takes a worker: torch raised its death mid optimizer step, as a
    traceback, and the steps trained since the last checkpoint were lost."""
    from conftest import interrupt_training

    def kill_the_worker(process):
        os.kill(loader_worker(process.pid), signal.SIGKILL)

    command, run = training_read_by_a_worker(tmp_path)
    returncode, stderr = interrupt_training(command, run, after_steps=5, interrupt=kill_the_worker)
    lines = [line for line in stderr.splitlines() if line.startswith("roboil: ")]
    assert returncode == 2 and "Traceback" not in stderr, stderr
    assert lines[-1].startswith("roboil: error: train.loader_workers: a loader process ended without a word") and \
        lines[-1].endswith("use fewer train.loader_workers or a smaller train.batch_size"), stderr
    saved = sorted((run / "checkpoints").glob("step_*"))
    assert len(saved) == 1 and lines[-2] == f"roboil: saved step {int(saved[0].name[5:])} as {saved[0]} before stopping"
    assert int(saved[0].name[5:]) >= 5


def test_a_sigterm_to_the_whole_process_group_saves_the_step_as_ctrl_c_does(tmp_path):
    """`timeout` and cluster schedulers signal every process of the job: the loader's workers died of it, and the
    training stopped with "a loader process ended without a word" instead of saving its step."""
    from conftest import interrupt_training

    command, run = training_read_by_a_worker(tmp_path)
    ignored = []

    def terminate_the_group(process):
        worker = loader_worker(process.pid)
        mask = next(line for line in Path(f"/proc/{worker}/status").read_text().splitlines()
                    if line.startswith("SigIgn:"))
        ignored.append(bool(int(mask.split()[1], 16) & 1 << (signal.SIGTERM - 1)))
        os.killpg(process.pid, signal.SIGTERM)

    returncode, stderr = interrupt_training(command, run, after_steps=5, interrupt=terminate_the_group)
    saved = sorted((run / "checkpoints").glob("step_*"))
    # the worker leaves it to the training (dead, it ended a wait for a batch with the message of a worker killed
    # for memory; the step was saved only when the batch had come before)
    assert ignored == [True], stderr
    assert returncode == 130 and "Traceback" not in stderr and len(saved) == 1, stderr
    assert f"roboil: stopped at step {int(saved[0].name[5:])}, saved as {saved[0]}" in stderr, stderr


def test_a_share_of_a_batch_too_large_for_memory_is_named_as_a_share(tmp_path):
    """Under torchrun train.batch_size is the global batch: a process refusing its share says so."""
    from roboil.errors import RoboilError

    store = image_store(tmp_path / "s.zarr")
    made = batches(sampler(store.load(list(store.features)), store), 10**12, torch.device("cpu"),
                   rows=slice(0, 5 * 10**11))
    with pytest.raises(RoboilError, match=r"^train.batch_size: this process's 500000000000 windows of a batch of "
                                          r"1000000000000 take .* use a smaller train.batch_size$"):
        next(made)


def test_a_read_failing_for_another_reason_than_its_bytes_is_not_called_damage(tmp_path, monkeypatch):
    """A row that decodes when read again (memory, open files) is no damaged store: the error passes as it came."""
    store = image_store(tmp_path / "s.zarr")
    reader = RowReader(store.array("image"), store.path / "data" / "image")
    original, failed = RowReader._read, []

    def fails_once(self, rows):
        if not failed:
            failed.append(rows)
            raise MemoryError("Unable to allocate 40 GiB")
        return original(self, rows)

    monkeypatch.setattr(RowReader, "_read", fails_once)
    with pytest.raises(MemoryError):
        reader.read(np.arange(5))
    assert np.array_equal(reader.read(np.arange(5)), store.array("image")[:5])
