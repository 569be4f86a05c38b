"""robomimic HDF5 export/import (and the zarr-format-2 export) on real files: a recorded store round-tripped byte
for byte, a file written the way robomimic writes one, and the one-line refusals."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import main_fails_in_one_line, store_layouts
from roboil.cli import main
from roboil.keys import ACTION
from roboil.store import EpisodeStore, copy_store

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[1]
PIXELS = {"pixels": {"cameras": ["top"], "height": 32, "width": 32}}


@pytest.fixture(scope="module")
def pusht_store(tmp_path_factory):
    """Two scripted pusht episodes (32x32 frames of the top camera and the task's state vectors) that reach the
    goal, then one cut by a 12-step limit: not terminated, not successful."""
    from roboil.record import record

    path = tmp_path_factory.mktemp("rm") / "pusht.zarr"
    record("pusht", 2, path, obs_overrides=PIXELS, progress=False)
    record("pusht", 1, path, obs_overrides=PIXELS, max_steps=12, progress=False)
    attrs = EpisodeStore.open(path).episode_attrs()
    assert [(a["terminated"], a["success"]) for a in attrs] == [(True, True), (True, True), (False, False)]
    return path


@pytest.fixture(scope="module")
def exported(pusht_store):
    out = pusht_store.parent / "pusht.hdf5"
    assert main(["export", "--to", "robomimic", str(pusht_store), str(out)]) == 0
    return out


def _checksums(store: EpisodeStore) -> list:
    return [a["checksums"] for a in store._episode_attrs]


def test_round_trip_restores_the_store_byte_for_byte(pusht_store, exported, tmp_path, capsys):
    src = EpisodeStore.open(pusht_store)
    assert ACTION in src.features and src.features["rgb_top"].dtype == "uint8"
    out = tmp_path / "back.zarr"
    assert main(["import", "--from", "robomimic", str(exported), str(out)]) == 0
    assert "roboil attrs restored" in capsys.readouterr().out
    dst = EpisodeStore.open(out)

    assert dst.features == src.features
    assert store_layouts(dst) == store_layouts(src)  # chunking and codecs as recorded
    np.testing.assert_array_equal(dst.episode_ends, src.episode_ends)
    for index in range(src.n_episodes):
        a, b = src.episode(index), dst.episode(index)
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape
            assert a[key].tobytes() == b[key].tobytes(), (index, key)
    # Every attr survives: the robomimic format has no place for most of them, our JSON attributes carry them.
    assert dst.attrs == src.attrs
    assert dst.episode_attrs() == src.episode_attrs()
    assert _checksums(dst) == _checksums(src)  # recomputed from the same bytes
    assert dst.check() == []


def test_export_is_a_robomimic_file(pusht_store, exported):
    src = EpisodeStore.open(pusht_store)
    episodes, attrs = [src.episode(i) for i in range(src.n_episodes)], src.episode_attrs()
    with h5py.File(exported, "r") as f:
        data = f["data"]
        assert sorted(data) == [f"demo_{i}" for i in range(src.n_episodes)]  # nothing else under data/
        assert int(data.attrs["total"]) == src.n_steps
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_name"] == "pusht" and env_args["type"] not in (1, 2, 3)  # no robomimic env type
        assert isinstance(env_args["env_kwargs"], dict)
        for i, (rows, a) in enumerate(zip(episodes, attrs)):
            demo, steps = data[f"demo_{i}"], len(rows[ACTION])
            assert int(demo.attrs["num_samples"]) == steps
            np.testing.assert_array_equal(demo["actions"][()], rows[ACTION])
            assert demo["actions"].shape == (steps, 2)
            np.testing.assert_array_equal(demo["rewards"][()], np.zeros(steps))
            dones = demo["dones"][()]
            assert dones.shape == (steps,) and dones[:-1].sum() == 0 and dones[-1] == int(a["terminated"])
            image = demo["obs/rgb_top"]
            assert image.dtype == np.uint8 and image.shape == (steps, 32, 32, 3)  # HWC, as robomimic keeps them
            for key in ("agent_pos", "block_keypoints", "block_pose", "rgb_top"):
                obs, following = demo[f"obs/{key}"][()], demo[f"next_obs/{key}"][()]
                np.testing.assert_array_equal(obs, rows[key])
                np.testing.assert_array_equal(following[:-1], obs[1:])
                np.testing.assert_array_equal(following[-1], obs[-1])
        successful = [n.decode() for n in f["mask/successful"][()]]
        assert successful == [f"demo_{i}" for i, a in enumerate(attrs) if a["success"]]


def test_without_our_attributes_only_what_robomimic_holds_survives(pusht_store, exported, tmp_path):
    """A tool that rewrites the file and drops unknown attributes leaves the arrays, the boundaries, success
    (the mask) and the task name (env_name); seeds, start states, operators, fps and layouts are lost."""
    stripped = tmp_path / "stripped.hdf5"
    with h5py.File(exported, "r") as f, h5py.File(stripped, "w") as g:
        f.copy("data", g)
        f.copy("mask", g)
        del g["data"].attrs["roboil"]
        for demo in g["data"].values():
            del demo.attrs["roboil"]
    out = tmp_path / "plain.zarr"
    assert main(["import", "--from", "robomimic", str(stripped), str(out)]) == 0
    src, dst = EpisodeStore.open(pusht_store), EpisodeStore.open(out)
    assert dst.features == src.features  # pixels for the uint8 frames, proprio float32, action float32
    np.testing.assert_array_equal(dst.episode_ends, src.episode_ends)
    for key in src.features:
        assert dst.load([key])[key].tobytes() == src.load([key])[key].tobytes(), key
    assert dst.attrs["task"] == "pusht" and "note" not in dst.attrs and dst.attrs["fps"] is None
    for a, b in zip(src.episode_attrs(), dst.episode_attrs()):
        assert b["success"] == a["success"] and b["terminated"] == a["terminated"] and b["length"] == a["length"]
        assert b["seed"] is None and b["source"] == "robomimic" and "start_state" not in b


def _robomimic_file(path, masked=True):
    """Three demos written the way robomimic's dataset_states_to_obs.py writes them."""
    rng = np.random.default_rng(0)
    lengths = [5, 7, 4]
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        total = 0
        for i, steps in enumerate(lengths):
            demo = data.create_group(f"demo_{i}")
            obs = {"agentview_image": rng.integers(0, 256, (steps + 1, 8, 8, 3), dtype=np.uint8),
                   "robot0_eef_pos": rng.normal(size=(steps + 1, 3))}  # float64, as robosuite gives it
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (steps, 7)))
            demo.create_dataset("states", data=rng.normal(size=(steps, 5)))
            demo.create_dataset("rewards", data=np.r_[np.zeros(steps - 1), 1.0])
            demo.create_dataset("dones", data=np.r_[np.zeros(steps - 1, np.int64), 1])
            for key, x in obs.items():
                demo.create_dataset(f"obs/{key}", data=x[:-1], compression="gzip")
                demo.create_dataset(f"next_obs/{key}", data=x[1:], compression="gzip")
            demo.attrs["num_samples"] = steps
            total += steps
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps({"env_name": "Lift", "type": 1,
                                             "env_kwargs": {"robots": ["Panda"], "control_freq": 20}}, indent=4)
        if masked:
            f["mask/successful"] = np.array(["demo_0", "demo_2"], dtype="S")
    return lengths


def test_import_a_file_robomimic_wrote(tmp_path, capsys):
    path = tmp_path / "lift.hdf5"
    lengths = _robomimic_file(path)
    out = tmp_path / "lift.zarr"
    assert main(["import", "--from", "robomimic", str(path), str(out)]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "not kept: " in line and "rewards" in line and "states" in line
    store = EpisodeStore.open(out)
    assert {k: (f.kind, f.shape, f.dtype) for k, f in store.features.items()} == {
        "agentview_image": ("pixels", (8, 8, 3), "uint8"), "robot0_eef_pos": ("proprio", (3,), "float32"),
        ACTION: (ACTION, (7,), "float32")}
    assert store.array("agentview_image").chunks[0] == 1  # the pixels plugin's layout: a frame per chunk
    assert store.array("robot0_eef_pos").chunks[0] == 1024
    assert store.episode_lengths.tolist() == lengths
    with h5py.File(path, "r") as f:
        for i in range(3):
            rows, demo = store.episode(i), f[f"data/demo_{i}"]
            np.testing.assert_array_equal(rows["agentview_image"], demo["obs/agentview_image"][()])
            np.testing.assert_array_equal(rows["robot0_eef_pos"], demo["obs/robot0_eef_pos"][()].astype(np.float32))
            np.testing.assert_array_equal(rows[ACTION], demo["actions"][()].astype(np.float32))
    attrs = store.episode_attrs()
    assert [a["success"] for a in attrs] == [True, False, True]
    assert all(a["seed"] is None and a["source"] == "robomimic" and a["terminated"] is True for a in attrs)
    assert [a["length"] for a in attrs] == lengths and [a["demo"] for a in attrs] == ["demo_0", "demo_1", "demo_2"]
    assert store.attrs["task"] == "Lift" and store.attrs["fps"] is None and "Lift" in store.attrs["note"]
    assert store.attrs["robomimic_env_args"]["env_kwargs"]["control_freq"] == 20
    assert store.check() == []

    # only some observations; without a mask success is unknown (left out)
    plain = tmp_path / "plain.hdf5"
    _robomimic_file(plain, masked=False)
    out2 = tmp_path / "eef.zarr"
    assert main(["import", "--from", "robomimic", str(plain), str(out2), "--obs-keys", "robot0_eef_pos"]) == 0
    store = EpisodeStore.open(out2)
    assert sorted(store.features) == [ACTION, "robot0_eef_pos"]
    assert all("success" not in a for a in store.episode_attrs())


def test_one_line_errors(pusht_store, exported, tmp_path, capsys):
    store = str(tmp_path / "s.zarr")
    main_fails_in_one_line(capsys, ["import", "--from", "robomimic", str(tmp_path / "none.hdf5"), store],
                    "no robomimic file at")
    no_data = tmp_path / "no_data.hdf5"
    with h5py.File(no_data, "w") as f:
        f.create_group("demos")
    main_fails_in_one_line(capsys, ["import", "--from", "robomimic", str(no_data), store], "has no 'data' group")
    text = tmp_path / "text.hdf5"
    text.write_text("not hdf5\n")
    main_fails_in_one_line(capsys, ["import", "--from", "robomimic", str(text), store], "not a readable HDF5 file")
    no_actions = tmp_path / "no_actions.hdf5"
    _robomimic_file(no_actions)
    with h5py.File(no_actions, "a") as f:
        del f["data/demo_1/actions"]
    main_fails_in_one_line(capsys, ["import", "--from", "robomimic", str(no_actions), store],
                    "data/demo_1 has no 'actions' dataset")
    main_fails_in_one_line(capsys, ["import", "--from", "robomimic", str(exported), store, "--obs-keys", "wrist"],
                    "no observation 'wrist'", "rgb_top")
    assert not (tmp_path / "s.zarr").exists()  # nothing made by a refused import

    obs_only = tmp_path / "obs_only.zarr"
    copy_store(pusht_store, obs_only, [ACTION])[0].close()
    out = tmp_path / "obs_only.hdf5"
    main_fails_in_one_line(capsys, ["export", "--to", "robomimic", str(obs_only), str(out)], "observations only")
    assert not out.exists()
    main_fails_in_one_line(capsys, ["export", "--to", "robomimic", str(pusht_store), str(exported)], "already exists")
    main_fails_in_one_line(capsys, ["export", "--to", "hdf5", str(pusht_store), str(out)], "invalid choice")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left behind


def test_zarr2_export_reads_like_a_replay_buffer(pusht_store, tmp_path):
    out = tmp_path / "pusht_v2.zarr"
    assert main(["export", "--to", "zarr2", str(pusht_store), str(out)]) == 0
    assert (out / ".zgroup").exists() and not (out / "zarr.json").exists()
    root = zarr.open(str(out), mode="r")  # format detected from the files, as zarr 2 would open it
    assert root.metadata.zarr_format == 2
    src = EpisodeStore.open(pusht_store)
    np.testing.assert_array_equal(root["meta"]["episode_ends"][:], src.episode_ends)
    assert root["meta"]["episode_ends"].dtype == np.int64
    assert sorted(root["data"].array_keys()) == sorted(src.features)
    for key in src.features:
        assert root["data"][key].chunks == src.array(key).chunks
        assert root["data"][key][:].tobytes() == src.load([key])[key].tobytes(), key
    assert root.attrs["roboil_export"]["attrs"] == src.attrs


# robomimic pins its own torch, and zarr 2 is what diffusion_policy's ReplayBuffer is written against: both live in
# a separate environment (python3 -m venv /tmp/rm && /tmp/rm/bin/pip install robomimic, which brings zarr 2)
OTHER_PYTHON = Path(os.environ.get("ROBOIL_ROBOMIMIC_PYTHON", "/tmp/rm/bin/python"))
needs_other = pytest.mark.skipif(not OTHER_PYTHON.exists(), reason=f"no robomimic environment at {OTHER_PYTHON} "
                                 "(python3 -m venv /tmp/rm && /tmp/rm/bin/pip install robomimic six)")


@needs_other
def test_robomimic_itself_reads_our_export(exported):
    result = subprocess.run([str(OTHER_PYTHON), str(ROOT / "tools" / "check_robomimic_interop.py"), str(exported)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("OK"), result.stdout + result.stderr


@needs_other
def test_zarr2_export_opens_with_zarr_2_as_diffusion_policy_does(pusht_store, tmp_path):
    out = tmp_path / "pusht_v2.zarr"
    assert main(["export", "--to", "zarr2", str(pusht_store), str(out)]) == 0
    src = EpisodeStore.open(pusht_store)
    np.savez(tmp_path / "ref.npz", episode_ends=src.episode_ends, **src.load())
    # the calls diffusion_policy's ReplayBuffer.copy_from_path makes, under zarr 2
    code = f"""
import numpy as np, zarr
assert zarr.__version__.startswith("2."), zarr.__version__
root = zarr.open({str(out)!r}, "r")
ref = np.load({str(tmp_path / "ref.npz")!r})
assert np.array_equal(root["meta"]["episode_ends"][:], ref["episode_ends"])
keys = sorted(root["data"].keys())
assert keys == sorted(k for k in ref.files if k != "episode_ends"), keys
for key in keys:
    assert root["data"][key].dtype == ref[key].dtype and np.array_equal(root["data"][key][:], ref[key]), key
print("zarr", zarr.__version__, "OK")
"""
    result = subprocess.run([str(OTHER_PYTHON), "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stdout + result.stderr
