"""Lossy codecs for camera arrays: the round trip within the stated error, checksums of the encoded frames,
one-line errors for bad layouts and params and for a missing imagecodecs or PyAV, and recorded PushT stores kept
as JPEG and as H.264 that check and train."""

import json
import sys

import numpy as np
import pytest
import zarr

from conftest import main_fails_in_one_line
from roboil.codecs import CODEC_NAME, H264_CHUNK_FRAMES, IMAGE_FORMATS, VIDEO, unavailable
from roboil.errors import RoboilError
from roboil.specs import ArrayLayout, Feature
from roboil.store import EpisodeStore, array_layout

# The error a lossy codec may add at quality 90 on rendered camera frames, in 0..255 levels: the mean absolute
# error, and the 99.9th percentile (sharp coloured edges cost the few largest errors, up to ~100 for JPEG XL).
MEAN_ERROR, P999_ERROR = 2.0, 32.0
CAMERA = {"image": Feature("pixels", (96, 96, 3), "uint8")}


def available(*codecs: str) -> list:
    return [pytest.param(f, marks=pytest.mark.skipif(unavailable(f) is not None, reason=f"{f}: {unavailable(f)}"))
            for f in codecs]


IMAGES, LOSSY = available(*IMAGE_FORMATS), available(*IMAGE_FORMATS, VIDEO)


def chunk_frames(codec: str) -> int:
    return H264_CHUNK_FRAMES if codec == VIDEO else 1


def rendered_scene(seed: int) -> np.ndarray:
    """A 96x96 frame like a simulator's: a lit floor, a grey T and a blue disc with sharp edges, a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:96] / 96
    image = np.empty((96, 96, 3))
    image[:] = (200 + 30 * x - 20 * y)[..., None]
    cx, cy, angle = *rng.uniform(0.3, 0.7, 2), rng.uniform(0, np.pi)
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = (y - cy) * np.cos(angle) - (x - cx) * np.sin(angle)
    image[((abs(u) < 0.2) & (abs(v) < 0.05)) | ((abs(u) < 0.05) & (v > 0) & (v < 0.3))] = (119, 136, 153)
    ax, ay = rng.uniform(0.1, 0.9, 2)
    image[(x - ax) ** 2 + (y - ay) ** 2 < 0.05 ** 2] = (65, 105, 225)
    return np.clip(image + rng.normal(0, 1.0, image.shape), 0, 255).astype(np.uint8)


def assert_within_stated_error(decoded: np.ndarray, original: np.ndarray) -> None:
    error = np.abs(decoded.astype(int) - original.astype(int))
    assert error.mean() <= MEAN_ERROR and np.percentile(error, 99.9) <= P999_ERROR, \
        (error.mean(), np.percentile(error, 99.9))


def camera_store(path, codec: str, episodes: list[np.ndarray], quality: int = 90) -> EpisodeStore:
    layout = ArrayLayout(chunk_frames(codec), codec=codec, quality=quality)
    with EpisodeStore.create(path, CAMERA, {"image": layout}, {}) as store:
        for frames in episodes:
            store.add_episode({"image": frames}, {})
    return EpisodeStore.open(path)


FRAMES = [np.stack([rendered_scene(10 * e + t) for t in range(n)]) for e, n in enumerate((7, 5))]


@pytest.mark.parametrize("codec", LOSSY)
def test_lossy_round_trip_within_the_stated_error(tmp_path, codec):
    store = camera_store(tmp_path / "s", codec, FRAMES)
    for index, frames in enumerate(FRAMES):
        assert_within_stated_error(store.episode(index)["image"], frames)
    assert store.check() == [] and store.notes == []
    assert store.info()["features"]["image"].items() >= {"codec": codec, "quality": 90, "shard_rows": 1024}.items()
    assert array_layout(store.array("image")) == ArrayLayout(chunk_frames(codec), shard_rows=1024, codec=codec,
                                                             quality=90)
    codecs = json.loads((tmp_path / "s/data/image/zarr.json").read_text())["codecs"][0]["configuration"]["codecs"]
    assert codecs == [{"name": CODEC_NAME, "configuration": {"image_format": codec, "quality": 90}}, {"name": "crc32c"}]
    # earlier roboil refuses it: format 2 for the image codecs, 3 for h264 (which format-2 roboil cannot decode)
    assert zarr.open_group(tmp_path / "s", mode="r").attrs["roboil"]["format"] == (3 if codec == VIDEO else 2)
    lower = camera_store(tmp_path / "q50", codec, FRAMES, quality=50)  # fewer bytes for more error
    assert lower.info()["bytes_on_disk"] < store.info()["bytes_on_disk"]


@pytest.mark.parametrize("codec", IMAGES)
@pytest.mark.parametrize("shape", [(96, 96), (96, 96, 1)])
def test_grey_frames_keep_their_shape(tmp_path, codec, shape):
    frames = np.stack([rendered_scene(seed)[..., 1].reshape(shape) for seed in range(3)])
    with EpisodeStore.create(tmp_path / "s", {"grey": Feature("pixels", shape, "uint8")},
                             {"grey": ArrayLayout(1, codec=codec)}, {}) as store:
        store.add_episode({"grey": frames}, {})
    store = EpisodeStore.open(tmp_path / "s")
    assert_within_stated_error(store.episode(0)["grey"], frames)
    assert store.check() == []


def test_lossless_round_trip_is_exact(tmp_path):
    store = camera_store(tmp_path / "s", "lossless", FRAMES)
    for index, frames in enumerate(FRAMES):
        np.testing.assert_array_equal(store.episode(index)["image"], frames)
    assert store.info()["features"]["image"]["codec"] == "lossless" and store.check() == []


@pytest.mark.parametrize("codec", IMAGES)
def test_checksums_cover_the_encoded_frames(tmp_path, codec):
    """A frame swapped for another still decodes; the checksums of what was encoded tell."""
    path = tmp_path / "s"
    camera_store(path, codec, FRAMES).close()
    zarr.open_array(path / "data/image", mode="r+")[8] = rendered_scene(99)  # episode 1
    store = EpisodeStore.open(path)
    assert store.check() == ["data/image: episode 1 differs from its checksum (changed since recording)"]
    assert store.verify_episodes(store.load()) == store.check()
    with pytest.raises(RoboilError, match="damaged"):  # the cheap check verifies the last episode
        EpisodeStore.open(path, mode="a")
    assert EpisodeStore.repair(path).dropped == [1]


@pytest.mark.skipif(unavailable(VIDEO) is not None, reason=f"h264: {unavailable(VIDEO)}")
def test_h264_checksums_cover_the_chunks_an_episode_completed(tmp_path):
    """Episodes of 7 and 5 frames in chunks of 8: episode 1's checksum covers chunk 0, which holds all of
    episode 0 too, so a frame of episode 0 swapped for another blames both (and repair, which would cut both and
    leave an empty store, leaves them as found)."""
    path = tmp_path / "s"
    camera_store(path, VIDEO, FRAMES).close()
    zarr.open_array(path / "data/image", mode="r+")[3] = rendered_scene(99)  # episode 0, in chunk 0
    store = EpisodeStore.open(path)
    assert store.check() == ["data/image: episodes 0, 1 differ from their checksums (changed since recording)"]
    report = EpisodeStore.repair(path)
    assert report.dropped == [] and "every episode is damaged" in report.advice and not report.healthy


@pytest.mark.skipif(unavailable(VIDEO) is not None, reason=f"h264: {unavailable(VIDEO)}")
@pytest.mark.parametrize("edit", ["append", "delete"])
def test_h264_edits_killed_at_every_write_leave_a_healthy_appendable_store(tmp_path, monkeypatch, edit):
    """Both edits encode the unfinished chunk again (an append adds to it, a delete cuts rows out of it); a kill
    after any of their writes leaves no checksum, complete or tail, that the store then fails."""
    from test_store_edit import edits_killed_at_each_write

    base = tmp_path / "base"
    camera_store(base, VIDEO, FRAMES).close()  # ends 7 and 12: chunk 1 unfinished

    def act(store):
        if edit == "append":
            store.add_episode({"image": FRAMES[0]}, {})
        else:
            store.delete_last_episode()

    for k, path, store, finished in edits_killed_at_each_write(monkeypatch, base, tmp_path, act):
        store.close()
        reopened = EpisodeStore.open(path)
        assert reopened.check() == [], (k, reopened.check())
        assert reopened.n_episodes in ((2, 3) if edit == "append" else (1, 2)), k
        with EpisodeStore.open(path, mode="a") as store:  # trims what the kill left, appends
            store.add_episode({"image": FRAMES[1]}, {})
        appended = EpisodeStore.open(path)
        assert appended.check() == [] and appended.notes == [], k
        assert_within_stated_error(appended.episode(0)["image"], FRAMES[0])
    assert k > 3


@pytest.mark.skipif(unavailable(VIDEO) is not None, reason=f"h264: {unavailable(VIDEO)}")
def test_h264_last_unfinished_chunk_has_its_own_checksum(tmp_path):
    """No episode has completed the chunk the last one ends in (rows 8-11 of episodes of 7 and 5 frames): the last
    episode's tail checksum covers it until the next append, so a frame swapped there is found (it decodes fine)
    and the append that would encode it again is refused. A delete takes the new last episode's tail again."""
    path = tmp_path / "s"
    camera_store(path, VIDEO, FRAMES).close()
    with EpisodeStore.open(path, mode="a") as store:  # a delete, then the store is as healthy as before
        store.delete_last_episode()
    assert EpisodeStore.open(path).check() == []
    with EpisodeStore.open(path, mode="a") as store:
        store.add_episode({"image": FRAMES[1]}, {})
    zarr.open_array(path / "data/image", mode="r+")[10] = rendered_scene(99)  # episode 1, in the unfinished chunk
    store = EpisodeStore.open(path)
    assert store.check() == ["data/image: the last, unfinished chunk differs from its checksum (episode 1; changed "
                             "since recording)"]
    with pytest.raises(RoboilError, match="damaged"):
        EpisodeStore.open(path, mode="a")
    assert EpisodeStore.repair(path).dropped == [1]
    assert EpisodeStore.open(path).check() == []


@pytest.mark.skipif(unavailable(VIDEO) is not None, reason=f"h264: {unavailable(VIDEO)}")
def test_h264_appends_keep_earlier_frames_and_a_torn_append_breaks_no_checksum(tmp_path):
    """Each append re-encodes the chunk holding the end of the episode before: over many short episodes (each
    chunk re-encoded up to three times) and a delete, every frame stays within the stated error. An append cut
    off after writing its rows, before the commit, leaves every committed checksum whole."""
    path = tmp_path / "s"
    episodes = [np.stack([rendered_scene(100 * e + t) for t in range(3)]) for e in range(6)]
    store = camera_store(path, VIDEO, episodes[:5])
    store.close()
    with EpisodeStore.open(path, mode="a") as store:
        store.delete_last_episode()
        store.add_episode({"image": episodes[5]}, {})
    store = EpisodeStore.open(path)
    assert store.check() == []
    for index, frames in enumerate(episodes[:4] + episodes[5:]):
        assert_within_stated_error(store.episode(index)["image"], frames)
    torn = zarr.open_array(path / "data/image", mode="r+")  # what add_episode writes before its commit point
    torn.resize((store.n_steps + 3, *torn.shape[1:]))
    torn[store.n_steps:] = episodes[0]
    reopened = EpisodeStore.open(path)
    assert reopened.check() == [] and reopened.n_episodes == 5
    assert_within_stated_error(reopened.episode(4)["image"], episodes[5])
    with EpisodeStore.open(path, mode="a") as store:  # trims the tail and appends
        store.add_episode({"image": episodes[1]}, {})
    assert EpisodeStore.open(path).check() == []


@pytest.mark.parametrize("codec", LOSSY)
def test_training_reads_frames_from_disk_as_zarr_decodes_them(tmp_path, codec):
    """The loader's direct reader (pread + the codec, no zarr pipeline) gives zarr's frames, in worker processes
    too."""
    import pickle

    from roboil.rows import RowReader

    store = camera_store(tmp_path / "s", codec, FRAMES)
    reader = RowReader(store.array("image"), store.path / "data" / "image")
    assert reader.fast
    rows = np.array([0, 3, 6, 7, 11])
    expected = store.array("image")[:][rows]
    np.testing.assert_array_equal(reader.read(rows), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reader)).read(rows), expected)


@pytest.mark.parametrize("layout, match", [
    (ArrayLayout(1, codec="png"), r"codec 'png'; valid: lossless, jpeg, jpegxl, avif, h264"),
    (ArrayLayout(1, codec="jpeg", quality=0), r"quality=0; use an integer from 1 to 100"),
    (ArrayLayout(1, codec="jpeg", quality=101), r"quality=101; use an integer from 1 to 100"),
    (ArrayLayout(2, codec="jpeg"), r"codec 'jpeg' with time_chunk=2; use time_chunk=1 \(an append would re-encode"),
])
def test_bad_codec_layouts_are_one_line_errors(tmp_path, layout, match):
    with pytest.raises(RoboilError, match=f"layout for 'image' has {match}") as refused:
        EpisodeStore.create(tmp_path / "s", CAMERA, {"image": layout}, {})
    assert "\n" not in str(refused.value) and not (tmp_path / "s").exists()


@pytest.mark.parametrize("feature", [Feature("proprio", (96, 96, 3), "float32"), Feature("pixels", (8, 8, 4), "uint8"),
                                     Feature("proprio", (7,), "uint8")])
def test_image_codecs_refuse_arrays_that_are_not_images(tmp_path, feature):
    with pytest.raises(RoboilError, match=r"codec 'jpeg' but its rows are .* not uint8 images .*use codec 'lossless'"):
        EpisodeStore.create(tmp_path / "s", {"x": feature}, {"x": ArrayLayout(1, codec="jpeg")}, {})


def test_h264_takes_colour_frames_only(tmp_path):
    with pytest.raises(RoboilError, match=r"codec 'h264' but its rows are \(96, 96\) uint8, not uint8 colour images "
                                          r"\(H, W, 3\); use codec 'lossless'"):
        EpisodeStore.create(tmp_path / "s", {"x": Feature("pixels", (96, 96), "uint8")},
                            {"x": ArrayLayout(8, codec="h264")}, {})


@pytest.mark.parametrize("codec, module, missing", [
    *[pytest.param(*case, marks=pytest.mark.skipif(unavailable(case[0]) is not None, reason=case[0]))
      for case in (("jpeg", "imagecodecs", "imagecodecs is not installed"), (VIDEO, "av", "PyAV is not installed"))]])
def test_a_store_with_a_codec_needs_its_library(tmp_path, monkeypatch, capsys, codec, module, missing):
    path = tmp_path / "s"
    camera_store(path, codec, FRAMES[:1]).close()
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: importing it fails
    for attempt in (lambda: EpisodeStore.open(path), lambda: camera_store(tmp_path / "t", codec, FRAMES)):
        with pytest.raises(RoboilError, match=rf"needs {module} \({missing}\); pip install "
                                              r"roboil\[codecs\]") as refused:
            attempt()
        assert "\n" not in str(refused.value)
    main_fails_in_one_line(capsys, ["store", "check", str(path)], f"data/image as {codec}",
                           "pip install roboil[codecs]")
    assert camera_store(tmp_path / "lossless", "lossless", FRAMES).check() == []  # only codec stores need it


@pytest.mark.skipif(unavailable(VIDEO) is not None, reason=f"h264: {unavailable(VIDEO)}")
def test_store_recode_keeps_the_cameras_in_another_codec_and_the_rest_as_is(tmp_path, capsys):
    """`roboil store recode` re-lays the camera arrays only; a store without any is one line."""
    from roboil.cli import main

    features = {**CAMERA, "state": Feature("proprio", (2,), "float32")}
    episodes = [{"image": frames, "state": np.random.default_rng(len(frames)).normal(size=(len(frames), 2))}
                for frames in FRAMES]
    with EpisodeStore.create(tmp_path / "s", features, {"image": ArrayLayout(1), "state": ArrayLayout(64)},
                             {"task": "test"}) as store:
        for index, episode in enumerate(episodes):
            store.add_episode(episode, {"seed": index})
    assert main(["store", "recode", str(tmp_path / "s"), "--codec", "h264", "--quality", "65",
                 "--out", str(tmp_path / "h264")]) == 0
    printed = capsys.readouterr().out
    assert "2 episodes, image as h264 (quality 65)" in printed and " MB on disk (" in printed, printed
    copy = EpisodeStore.open(tmp_path / "h264")
    assert copy.check() == [] and copy.episode_attrs() == [{"seed": 0}, {"seed": 1}]
    assert array_layout(copy.array("image")) == ArrayLayout(8, shard_rows=1024, codec="h264", quality=65)
    assert array_layout(copy.array("state")) == array_layout(EpisodeStore.open(tmp_path / "s").array("state"))
    for index, episode in enumerate(episodes):
        assert_within_stated_error(copy.episode(index)["image"], episode["image"])
        np.testing.assert_array_equal(copy.episode(index)["state"], episode["state"].astype(np.float32))
    with EpisodeStore.create(tmp_path / "states", {"state": features["state"]}, {"state": ArrayLayout(64)},
                             {}) as store:
        store.add_episode({"state": episodes[0]["state"]}, {})
    for argv, problem in ((["--codec", "h264"], "no camera arrays that codec 'h264' can hold"),
                          (["--codec", "png"], "codec 'png' is not one of lossless, jpeg, jpegxl, avif, h264"),
                          (["--codec", "lossless", "--quality", "50"], "--quality is for the lossy codecs")):
        main_fails_in_one_line(capsys, ["store", "recode", str(tmp_path / "states"), *argv, "--out",
                                        str(tmp_path / "none")], problem)
    assert not (tmp_path / "none").exists()


def test_pixels_params_choose_the_codec():
    from roboil_pixels import PixelParams, layout

    camera = Feature("pixels", (96, 96, 3), "uint8")
    assert layout(camera, PixelParams()) == ArrayLayout(time_chunk=1, clevel=3)
    assert layout(camera, PixelParams(codec="avif", quality=70)) == ArrayLayout(1, clevel=3, codec="avif", quality=70)
    assert layout(camera, PixelParams(codec="h264")) == ArrayLayout(8, clevel=3, codec="h264")
    for bad, match in ((dict(codec="png"), "obs.pixels.codec must be one of lossless, jpeg, jpegxl, avif, h264, got "
                                           "'png'"),
                       (dict(quality=0), "obs.pixels.quality must be between 1 and 100, got 0")):
        with pytest.raises(RoboilError, match=match):
            PixelParams(**bad)


@pytest.mark.parametrize("codec", available("jpeg", VIDEO))
def test_pusht_recorded_with_obs_pixels_codec_checks_trains_and_exports(tmp_path, capsys, codec):
    """`record ... obs.pixels.codec=jpeg` keeps the camera as JPEG (the recording's params reach the layout), and
    likewise H.264; the store checks, trains from disk and exports to zarr 2 with its frames decoded."""
    from roboil.cli import main
    from roboil.config import load_config
    from roboil.record import record
    from roboil.train import train

    lossless, path = tmp_path / "lossless.zarr", tmp_path / f"{codec}.zarr"
    record("pusht", 2, lossless, progress=False)
    record("pusht", 2, path, obs_overrides={"pixels": {"codec": codec}}, progress=False)
    assert main(["store", "check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out
    store, source = EpisodeStore.open(path, require_healthy=True), EpisodeStore.open(lossless)
    assert store.info()["features"]["rgb_top"]["codec"] == codec
    frames = store.load(["rgb_top"])["rgb_top"]
    assert_within_stated_error(frames, source.load(["rgb_top"])["rgb_top"])  # the same seeds, the same scenes

    # a replay reproduces the losslessly kept observations exactly; the coded frames are not compared (they
    # differed by the coding error, so GAIL's demo_state_resets refused every such store)
    from roboil.replay import REPLAY_TOLERANCE, demonstration_states, replay

    replayed = replay(path)
    assert replayed["reproduced"] == 2 and all(e["max_observation_drift"] <= REPLAY_TOLERANCE
                                               for e in replayed["episodes"]), replayed["lines"]
    assert replayed["lines"][-1].endswith("; observations compared without rgb_top (kept with a lossy codec)")
    assert len(demonstration_states(store, [0, 1])) == store.n_steps

    exported = tmp_path / "v2.zarr"
    assert main(["export", "--to", "zarr2", str(path), str(exported)]) == 0
    assert np.array_equal(zarr.open(str(exported), mode="r")["data"]["rgb_top"][:], frames)

    config = load_config("configs/pusht/diffusion_pixels.yaml", [
        f"data.path={path}", "data.cache_max_gb=0", "train.loader_workers=0", "train.steps=2", "train.batch_size=4",
        "train.warmup_steps=1", "algorithm.down_dims=[16,32]", "algorithm.horizon=8"])
    assert train(config, tmp_path / "run", progress=False).exists()


WORKERS_CLOSE = """
import sys
sys.path[:0] = [{root!r}]
import numpy as np, torch
from roboil.loader import batches
from roboil.rows import RowReader
from roboil.sampler import WindowSampler
from roboil.store import EpisodeStore
if __name__ == "__main__":
    store = EpisodeStore.open({path!r})
    arrays = {{"image": RowReader(store.array("image"), store.path / "data" / "image"),
              "action": np.zeros((store.n_steps, 1), np.float32)}}
    sampler = WindowSampler(arrays, store.episode_ends, np.arange(store.n_episodes), ["image"], 2, 1, seed=0)
    made = batches(sampler, 4, torch.device("cpu"), workers=2)
    for _ in range(3):
        next(made)
    made.close()
    print("done")
"""


@pytest.mark.parametrize("codec", LOSSY)
def test_loader_workers_decoding_frames_end_quietly(tmp_path, codec):
    """The AVIF and JPEG XL decoders' threads aborted each worker process as it exited (a traceback after
    training from such a store); H.264's decoder runs there too."""
    import subprocess
    from pathlib import Path

    camera_store(tmp_path / "s", codec, FRAMES)
    script = tmp_path / "close.py"
    script.write_text(WORKERS_CLOSE.format(root=str(Path(__file__).resolve().parents[1]), path=str(tmp_path / "s")))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
    assert "terminate called" not in result.stderr and "Aborted" not in result.stderr, result.stderr
