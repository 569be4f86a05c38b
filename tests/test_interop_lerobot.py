"""LeRobot v3.0 export/import on real directories: a recorded store exported (parquet, H.264 videos, metadata as
LeRobot lays it out) and imported back (low-dim arrays exact, frames within the codec's error, attrs restored),
the foreign path, odd frame sizes and several files, the one-line refusals; and, when a Python with lerobot is
at hand, LeRobot itself reading our export and writing a dataset we import."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import main_fails_in_one_line, store_layouts
from roboil.cli import main
from roboil.keys import ACTION
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

PIXELS = {"pixels": {"cameras": ["top"], "height": 48, "width": 48}}
STATE = ["agent_pos", "block_keypoints", "block_pose"]  # pusht's proprio arrays, in the store's order
ROOT = Path(__file__).resolve().parent.parent
# LeRobot's newest release here (0.6.1, Python 3.12), else 0.4.4 (Python 3.11): each in its own environment
LEROBOT_PYTHON = os.environ.get("ROBOIL_LEROBOT_PYTHON", next(
    (p for p in ("/tmp/lerobot6/bin/python", "/tmp/lerobot-env/bin/python") if Path(p).exists()),
    "/tmp/lerobot6/bin/python"))
MAX_MEAN_ERROR = 5.0  # of a frame's pixels (uint8 levels): H.264 at its default quality, 4:2:0 chroma
MAX_MEAN_ERROR_AV1 = 10.0  # LeRobot's AV1 (crf 30) on frames as tiny as 24x32


@pytest.fixture(scope="module")
def pusht_store(tmp_path_factory):
    """Three scripted pusht episodes: 48x48 frames of the top camera and the task's state vectors."""
    from roboil.record import record

    path = tmp_path_factory.mktemp("lr") / "pusht.zarr"
    record("pusht", 3, path, obs_overrides=PIXELS, progress=False)
    return path


@pytest.fixture(scope="module")
def exported(pusht_store):
    out = pusht_store.parent / "pusht_lerobot"
    assert main(["export", "--to", "lerobot", str(pusht_store), str(out)]) == 0
    return out


def _frames_match(name: str, got: np.ndarray, want: np.ndarray, limit: float = MAX_MEAN_ERROR) -> tuple[int, float]:
    """Frames within the codec's error, and nearer their own originals than the frames one step before or after
    (on average), so none is shifted in time. Returns the max and mean abs error."""
    assert got.shape == want.shape and got.dtype == np.uint8, (name, got.shape, want.shape)
    got, want = got.astype(np.float64), want.astype(np.float64)
    own = np.abs(got - want).mean(axis=(1, 2, 3))
    assert own.max() < limit, (name, own.max())
    assert own[1:].mean() < np.abs(got[1:] - want[:-1]).mean(), f"{name}: frames are nearer the ones before them"
    assert own[:-1].mean() < np.abs(got[:-1] - want[1:]).mean(), f"{name}: frames are nearer the ones after them"
    return int(np.abs(got - want).max()), float(np.abs(got - want).mean())


def test_export_is_a_lerobot_v3_dataset(pusht_store, exported):
    src = EpisodeStore.open(pusht_store)
    ends, steps = src.episode_ends, src.n_steps
    starts = np.concatenate([[0], ends[:-1]])
    files = sorted(str(p.relative_to(exported)) for p in exported.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet",
                     "meta/info.json", "meta/roboil.json", "meta/stats.json", "meta/tasks.parquet",
                     "videos/observation.images.top/chunk-000/file-000.mp4"]

    info = json.loads((exported / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10 and isinstance(info["fps"], int)
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, steps, 1)
    assert info["splits"] == {"train": "0:3"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert list(features) == ["observation.state", "observation.images.top", "action", "timestamp", "frame_index",
                              "episode_index", "index", "task_index"]
    state = features["observation.state"]
    assert state["dtype"] == "float32" and state["shape"] == [22]
    assert state["names"][:3] == ["agent_pos_0", "agent_pos_1", "block_keypoints_0"] and len(state["names"]) == 22
    camera = features["observation.images.top"]
    assert camera["dtype"] == "video" and camera["shape"] == [48, 48, 3]
    assert camera["names"] == ["height", "width", "channels"]
    assert camera["info"]["video.codec"] == "h264" and camera["info"]["video.fps"] == 10
    assert features["action"] == {"dtype": "float32", "shape": [2], "names": ["action_0", "action_1"]}
    assert features["index"] == {"dtype": "int64", "shape": [1], "names": None}

    table = pq.read_table(exported / "data/chunk-000/file-000.parquet")
    assert table.column_names == ["observation.state", "action", "timestamp", "frame_index", "episode_index",
                                  "index", "task_index"]
    assert table.schema.field("observation.state").type == pa.list_(pa.float32(), 22)  # fixed-size, as LeRobot's
    assert table.schema.field("timestamp").type == pa.float32()
    data = src.load()
    state_rows = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))
    np.testing.assert_array_equal(state_rows, np.concatenate([data[k] for k in STATE], axis=1))
    np.testing.assert_array_equal(np.stack(table.column("action").to_numpy(zero_copy_only=False)), data[ACTION])
    np.testing.assert_array_equal(table.column("index").to_numpy(), np.arange(steps))
    episode_of = np.repeat(np.arange(3), src.episode_lengths)
    np.testing.assert_array_equal(table.column("episode_index").to_numpy(), episode_of)
    frame_index = np.arange(steps) - starts[episode_of]
    np.testing.assert_array_equal(table.column("frame_index").to_numpy(), frame_index)
    np.testing.assert_allclose(table.column("timestamp").to_numpy(), frame_index / 10, rtol=1e-6)
    assert set(table.column("task_index").to_pylist()) == {0}

    episodes = pq.read_table(exported / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    attrs = src.episode_attrs()
    for i, e in enumerate(episodes):
        assert e["episode_index"] == i and e["tasks"] == ["pusht"] and e["length"] == src.episode_lengths[i]
        assert (e["dataset_from_index"], e["dataset_to_index"]) == (starts[i], ends[i])
        assert (e["data/chunk_index"], e["data/file_index"]) == (0, 0)
        key = "videos/observation.images.top"
        assert (e[f"{key}/chunk_index"], e[f"{key}/file_index"]) == (0, 0)
        assert e[f"{key}/from_timestamp"] == pytest.approx(starts[i] / 10)  # episodes one after another
        assert e[f"{key}/to_timestamp"] == pytest.approx(ends[i] / 10)
        assert e["stats/action/min"] == data[ACTION][starts[i]:ends[i]].min(axis=0).tolist()
        assert np.shape(e["stats/observation.images.top/mean"]) == (3, 1, 1)
        assert e["stats/frame_index/count"] == [src.episode_lengths[i]]
        assert json.loads(e["roboil"]) == attrs[i]

    tasks = pq.read_table(exported / "meta/tasks.parquet")
    assert tasks.column("task_index").to_pylist() == [0]
    index = json.loads(tasks.schema.metadata[b"pandas"])["index_columns"][0]  # pandas reads the texts as the index
    assert tasks.column(index).to_pylist() == ["pusht"]

    stats = json.loads((exported / "meta/stats.json").read_text())
    assert set(stats) == {"observation.state", "observation.images.top", "action", "timestamp", "frame_index",
                          "episode_index", "index", "task_index"}
    assert stats["action"]["min"] == data[ACTION].min(axis=0).tolist()
    assert stats["action"]["max"] == data[ACTION].max(axis=0).tolist()
    np.testing.assert_allclose(stats["action"]["mean"], data[ACTION].astype(np.float64).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats["action"]["std"], data[ACTION].astype(np.float64).std(axis=0), rtol=1e-9)
    assert stats["action"]["count"] == [steps] and set(stats["action"]) >= {"q01", "q10", "q50", "q90", "q99"}
    assert np.shape(stats["observation.images.top"]["mean"]) == (3, 1, 1)
    assert 0 <= np.min(stats["observation.images.top"]["min"]) <= np.max(stats["observation.images.top"]["max"]) <= 1

    import imageio_ffmpeg

    video = exported / "videos/observation.images.top/chunk-000/file-000.mp4"
    reader = imageio_ffmpeg.read_frames(str(video))
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["size"] == (48, 48) and meta["fps"] == 10
    assert sum(1 for _ in reader) == steps  # every frame, no duplicates or drops


def test_round_trip_restores_the_store(pusht_store, exported, tmp_path, capsys):
    out = tmp_path / "back.zarr"
    assert main(["import", "--from", "lerobot", str(exported), str(out)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "roboil attrs restored" in line
    src, dst = EpisodeStore.open(pusht_store), EpisodeStore.open(out)
    assert dst.features == src.features
    assert store_layouts(dst) == store_layouts(src)
    np.testing.assert_array_equal(dst.episode_ends, src.episode_ends)
    errors = []
    for index in range(src.n_episodes):
        a, b = src.episode(index), dst.episode(index)
        for key in a:
            if key == "rgb_top":
                errors.append(_frames_match(f"episode {index}", b[key], a[key]))
            else:
                assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), (index, key)
    assert dst.attrs == src.attrs and dst.attrs["fps"] == 10 and dst.attrs["task"] == "pusht"
    assert dst.episode_attrs() == src.episode_attrs()
    assert dst.check() == []
    worst, mean = max(e[0] for e in errors), float(np.mean([e[1] for e in errors]))
    with capsys.disabled():
        print(f"\nrgb_top through H.264 and back: abs error max {worst}, mean {mean:.3f} (of 255)")


def test_without_our_metadata_it_imports_as_lerobot_wrote_it(pusht_store, exported, tmp_path):
    """A tool that drops what it does not know (meta/roboil.json, our episodes column) leaves the arrays under
    LeRobot's names, the boundaries, fps and the task text."""
    stripped = tmp_path / "stripped"
    shutil.copytree(exported, stripped)
    (stripped / "meta/roboil.json").unlink()
    episodes = stripped / "meta/episodes/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(episodes).drop_columns(["roboil"]), episodes)
    out = tmp_path / "plain.zarr"
    assert main(["import", "--from", "lerobot", str(stripped), str(out)]) == 0
    src, dst = EpisodeStore.open(pusht_store), EpisodeStore.open(out)
    assert {k: (f.kind, f.shape, f.dtype) for k, f in dst.features.items()} == {
        "state": ("proprio", (22,), "float32"), "rgb_top": ("pixels", (48, 48, 3), "uint8"),
        ACTION: (ACTION, (2,), "float32")}
    assert dst.array("rgb_top").chunks[0] == 1 and dst.array("state").chunks[0] == 1024  # the plugins' layouts
    np.testing.assert_array_equal(dst.episode_ends, src.episode_ends)
    data = src.load()
    np.testing.assert_array_equal(dst.load(["state"])["state"], np.concatenate([data[k] for k in STATE], axis=1))
    np.testing.assert_array_equal(dst.load([ACTION])[ACTION], data[ACTION])
    _frames_match("rgb_top", dst.load(["rgb_top"])["rgb_top"], data["rgb_top"])
    assert dst.attrs["task"] == "pusht" and dst.attrs["fps"] == 10.0 and "note" not in dst.attrs  # a roboil task
    for i, a in enumerate(dst.episode_attrs()):
        assert a == {"task": "pusht", "seed": None, "source": "lerobot", "length": int(src.episode_lengths[i]),
                     "lerobot_episode_index": i}
    # only some observations
    out2 = tmp_path / "state_only.zarr"
    assert main(["import", "--from", "lerobot", str(stripped), str(out2), "--obs-keys", "state"]) == 0
    assert sorted(EpisodeStore.open(out2).features) == [ACTION, "state"]


def _synthetic_store(path: Path) -> EpisodeStore:
    """Odd frame sizes, arrays of other dtypes and shapes, a (1,) action, two task names and no fps."""
    features = {"rgb_side": Feature("pixels", (33, 47, 3), "uint8"), "joints": Feature("proprio", (3,), "float64"),
                "pose": Feature("proprio", (2, 2), "float32"), "contacts": Feature("proprio", (), "int32"),
                ACTION: Feature(ACTION, (1,), "float32")}
    layouts = {k: ArrayLayout(time_chunk=1 if k == "rgb_side" else 64) for k in features}
    store = EpisodeStore.create(path, features, layouts, {"task": "synthetic", "fps": None, "note": "made here"})
    rng = np.random.default_rng(1)
    for i, steps in enumerate([5, 3, 7]):
        y, x = np.mgrid[0:33, 0:47]
        frames = np.stack([np.stack([3 * x + 20 * t, 4 * y, np.full_like(x, 60 * i)], -1) for t in range(steps)])
        store.add_episode({"rgb_side": np.clip(frames, 0, 255).astype(np.uint8),
                           "joints": rng.normal(size=(steps, 3)), "pose": rng.normal(size=(steps, 2, 2)),
                           "contacts": rng.integers(0, 5, steps).astype(np.int32),
                           ACTION: rng.normal(size=(steps, 1))},
                          {"task": ["left", "right"][i % 2], "seed": i, "success": i != 1})
    store.close()
    return EpisodeStore.open(path)


def test_odd_sizes_other_dtypes_and_several_files(tmp_path, monkeypatch, capsys):
    from roboil.interop import lerobot

    src = _synthetic_store(tmp_path / "synthetic.zarr")
    out = tmp_path / "synthetic_lerobot"
    monkeypatch.setattr(lerobot, "GROUP_BYTES", 1)  # every episode in files of its own
    assert main(["export", "--to", "lerobot", str(src.path), str(out), "--fps", "12.5"]) == 0
    capsys.readouterr()
    assert sorted(str(p.relative_to(out / "data")) for p in (out / "data").rglob("*.parquet")) == [
        f"chunk-000/file-00{i}.parquet" for i in range(3)]
    assert len(list((out / "videos/observation.images.side").rglob("*.mp4"))) == 3
    info = json.loads((out / "meta/info.json").read_text())
    assert info["fps"] == 12.5 and info["total_tasks"] == 2
    features = info["features"]
    assert features["observation.state"]["shape"] == [4]  # pose, flattened: the only float32 observation
    assert features["observation.state"]["names"] == ["pose_0", "pose_1", "pose_2", "pose_3"]
    assert features["observation.joints"] == {"dtype": "float64", "shape": [3], "names": ["joints_0", "joints_1",
                                                                                          "joints_2"]}
    assert features["observation.contacts"]["dtype"] == "int32" and features["observation.contacts"]["shape"] == [1]
    assert features["observation.images.side"]["shape"] == [34, 48, 3]  # padded to even sizes, as the video is
    assert features[ACTION]["shape"] == [1]
    table = pq.read_table(out / "data/chunk-000/file-001.parquet")
    assert table.schema.field(ACTION).type == pa.float32()  # a (1,) feature is a scalar column, as LeRobot's
    assert table.schema.field("observation.contacts").type == pa.int32()
    assert table.column("index").to_pylist() == [5, 6, 7]
    episodes = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["data/file_index"] for e in episodes] == [0, 1, 2] and [e["tasks"] for e in episodes] == [
        ["left"], ["right"], ["left"]]
    assert [e["videos/observation.images.side/from_timestamp"] for e in episodes] == [0.0, 0.0, 0.0]
    tasks = pq.read_table(out / "meta/tasks.parquet")
    assert tasks.column("__index_level_0__").to_pylist() == ["left", "right"]

    back = tmp_path / "back.zarr"
    assert main(["import", "--from", "lerobot", str(out), str(back)]) == 0
    dst = EpisodeStore.open(back)
    assert dst.features == src.features and dst.attrs == src.attrs and dst.episode_attrs() == src.episode_attrs()
    for i in range(src.n_episodes):
        a, b = src.episode(i), dst.episode(i)
        for key in ("joints", "pose", "contacts", ACTION):
            assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), (i, key)
        _frames_match(f"episode {i}", b["rgb_side"], a["rgb_side"])  # cropped back to 33x47


def test_one_line_errors(pusht_store, exported, tmp_path, capsys):
    store = str(tmp_path / "s.zarr")
    imp = ["import", "--from", "lerobot"]
    main_fails_in_one_line(capsys, [*imp, str(tmp_path / "none"), store], "no LeRobot dataset at")
    (tmp_path / "empty").mkdir()
    main_fails_in_one_line(capsys, [*imp, str(tmp_path / "empty"), store], "not a LeRobot dataset", "meta/info.json")

    old = tmp_path / "v21"
    shutil.copytree(exported, old)
    info = json.loads((old / "meta/info.json").read_text())
    (old / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    main_fails_in_one_line(capsys, [*imp, str(old), store], "LeRobot v2.1 dataset", "convert")

    no_video = tmp_path / "no_video"
    shutil.copytree(exported, no_video)
    shutil.rmtree(no_video / "videos")
    main_fails_in_one_line(capsys, [*imp, str(no_video), store], "episode 0's video", "is missing")

    changed = tmp_path / "changed"
    shutil.copytree(exported, changed)
    ours = json.loads((changed / "meta/roboil.json").read_text())  # as if a tool renamed a feature since
    ours["columns"]["observation.proprio"] = ours["columns"].pop("observation.state")
    (changed / "meta/roboil.json").write_text(json.dumps(ours))
    main_fails_in_one_line(capsys, [*imp, str(changed), store], "does not match", "observation.proprio",
                    "remove meta/roboil.json")
    main_fails_in_one_line(capsys, [*imp, str(exported), store, "--obs-keys", "wrist"], "no observation 'wrist'", "rgb_top")
    assert not (tmp_path / "s.zarr").exists()  # nothing made by a refused import

    no_fps = _synthetic_store(tmp_path / "no_fps.zarr")
    main_fails_in_one_line(capsys, ["export", "--to", "lerobot", str(no_fps.path), str(tmp_path / "x")], "no frame rate",
                    "--fps")
    main_fails_in_one_line(capsys, ["export", "--to", "lerobot", str(pusht_store), str(exported)], "already exists")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp directories left
    assert [p.name for p in exported.parent.iterdir() if p.name.startswith(".")] == []


# ---- LeRobot itself, in its own venv ------------------------------------------------------------------------


def _lerobot(tmp_path, *args) -> str:
    if not Path(LEROBOT_PYTHON).exists():
        pytest.skip(f"no Python with lerobot at {LEROBOT_PYTHON} (python3.12 -m venv /tmp/lerobot6 && "
                    "/tmp/lerobot6/bin/pip install 'lerobot[dataset]', or set ROBOIL_LEROBOT_PYTHON)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_LEROBOT_HOME": str(tmp_path / "lerobot_home"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([LEROBOT_PYTHON, str(ROOT / "tools/check_lerobot_interop.py"), *map(str, args)],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


def _reference(store: EpisodeStore, export: Path, path: Path) -> Path:
    """The store's arrays under the LeRobot keys our export put them in (from meta/roboil.json)."""
    meta = json.loads((export / "meta/roboil.json").read_text())
    data = store.load()
    ref = {column: np.concatenate([data[k].reshape(store.n_steps, -1) for k in parts], axis=1)
           for column, parts in meta["columns"].items()}
    ref.update({key: data[array] for key, array in meta["videos"].items()})
    info = json.loads((export / "meta/info.json").read_text())
    tasks = [e["tasks"][0] for e in pq.read_table(export / "meta/episodes/chunk-000/file-000.parquet").to_pylist()]
    np.savez(path, **ref, episode_ends=store.episode_ends, fps=info["fps"], tasks=json.dumps(tasks))
    return path


def test_lerobot_reads_our_export(pusht_store, exported, tmp_path, monkeypatch, capsys):
    """LeRobotDataset (from disk, no hub) serves every frame of our export as the store holds it: state and action
    exact, frames within the codec's error, tasks, episode bounds, windows across episodes; also for odd frame
    sizes, other dtypes, a non-integer fps and episodes spread over several files."""
    output = _lerobot(tmp_path, "load", exported, "--reference",
                      _reference(EpisodeStore.open(pusht_store), exported, tmp_path / "pusht.npz"))
    assert output.rstrip().endswith("OK"), output

    from roboil.interop import lerobot

    src = _synthetic_store(tmp_path / "synthetic.zarr")
    out = tmp_path / "synthetic_lerobot"
    monkeypatch.setattr(lerobot, "GROUP_BYTES", 1)
    assert main(["export", "--to", "lerobot", str(src.path), str(out), "--fps", "12.5"]) == 0
    more = _lerobot(tmp_path, "load", out, "--reference", _reference(src, out, tmp_path / "synthetic.npz"))
    assert more.rstrip().endswith("OK"), more
    with capsys.disabled():  # LeRobot's decode of our H.264 frames, one line each
        print("".join(f"\n{line}" for line in (output + more).splitlines() if "abs error" in line))


@pytest.mark.parametrize("images", [False, True], ids=["av1-videos", "png-images"])
def test_import_what_lerobot_wrote(tmp_path, images, capsys):
    """LeRobot records a dataset with its own API (videos in its default AV1, or PNG frames in the parquet); the
    import keeps every array LeRobot was given, its boundaries, fps, tasks, success and done."""
    written = tmp_path / "written"
    output = _lerobot(tmp_path, "write", written, *(["--images"] if images else []))
    ref = np.load(written.with_suffix(".npz"))
    out = tmp_path / "imported.zarr"
    assert main(["import", "--from", "lerobot", str(written), str(out)]) == 0
    line = capsys.readouterr().out
    assert "not kept: next.reward" in line and "2 task texts" in line, line
    store = EpisodeStore.open(out)
    assert {k: (f.kind, f.shape, f.dtype) for k, f in store.features.items()} == {
        "state": ("proprio", (4,), "float32"), "environment_state": ("proprio", (3,), "float32"),
        "rgb_front": ("pixels", (32, 48, 3), "uint8"), "rgb_wrist": ("pixels", (24, 32, 3), "uint8"),
        ACTION: (ACTION, (2,), "float32")}
    np.testing.assert_array_equal(store.episode_ends, ref["episode_ends"])
    data = store.load()
    for key, array in (("observation.state", "state"), ("observation.environment_state", "environment_state"),
                       ("action", ACTION)):
        assert data[array].tobytes() == ref[key].tobytes(), key
    errors = {}
    for key, array in (("observation.images.front", "rgb_front"), ("observation.images.wrist", "rgb_wrist")):
        if images:  # PNG: lossless
            np.testing.assert_array_equal(data[array], ref[key])
        errors[array] = _frames_match(array, data[array], ref[key], MAX_MEAN_ERROR_AV1)
    assert store.attrs["fps"] == 15.0 and store.attrs["task"] is None
    assert store.attrs["lerobot_tasks"] == ["pick the cube", "place the cube"]
    attrs = store.episode_attrs()
    assert [a["task"] for a in attrs] == json.loads(str(ref["tasks"]))
    assert [a["success"] for a in attrs] == [True, False, True] and all(a["terminated"] for a in attrs)
    assert store.check() == []
    with capsys.disabled():
        print(f"\n{output.strip().splitlines()[-1]}\nimported; frames vs what LeRobot was given (max, mean abs "
              f"error): {errors}")
