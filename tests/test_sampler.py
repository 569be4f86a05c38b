"""Window sampling: edge padding, pad masks, episode boundaries, future-goal draws, statistics."""

import pickle

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, GzipCodec

from roboil.keys import ACTION, ACTION_IS_PAD, NEXT_IS_PAD
from roboil.rows import RowReader
from roboil.sampler import WindowSampler, compute_stats, gather

# three episodes of lengths 3, 5 and 2; each row's value encodes (episode, step) as 100*episode + step
LENGTHS = [3, 5, 2]
ENDS = np.cumsum(LENGTHS)
VALUES = np.concatenate([100 * e + np.arange(n) for e, n in enumerate(LENGTHS)]).astype(np.float32)
ARRAYS = {"state": VALUES[:, None], ACTION: VALUES[:, None] + 0.5}


def sampler(episodes=(0, 1, 2), n_obs=2, horizon=4, future=(), following=()):
    return WindowSampler(ARRAYS, ENDS, np.asarray(episodes), ["state"], n_obs, horizon, future, following, seed=0)


def test_next_observation_is_the_following_step_and_repeats_at_the_end():
    batch = sampler(following=("state",)).windows(np.array([0, 2, 3, 7]))  # e0 s0, e0 s2 (last), e1 s0, e1 s4
    assert batch["next.state"][:, 0].tolist() == [1, 2, 101, 104]
    assert batch[NEXT_IS_PAD].tolist() == [False, True, False, True]


def test_sampler_state_resumes_the_same_draws():
    s = sampler()
    s.sample(5)
    state = s.state()
    expected = s.sample(7)
    resumed = sampler()
    resumed.set_state(state)
    again = resumed.sample(7)
    assert all(np.array_equal(expected[k], again[k]) for k in expected)


def test_one_anchor_per_step_of_selected_episodes():
    assert len(sampler()) == sum(LENGTHS)
    assert len(sampler(episodes=(1,))) == 5


def test_window_at_episode_start_repeats_first_observation_and_masks_actions_before_start():
    s = sampler()
    batch = s.windows(np.array([0]))  # anchor: episode 0, step 0
    assert batch["state"][0, :, 0].tolist() == [0, 0]
    assert batch[ACTION][0, :, 0].tolist() == [0.5, 0.5, 1.5, 2.5]
    assert batch[ACTION_IS_PAD][0].tolist() == [True, False, False, False]


def test_window_at_episode_end_repeats_last_action_and_masks_it():
    s = sampler()
    batch = s.windows(np.array([7]))  # anchor: episode 1, step 4 (its last)
    assert batch["state"][0, :, 0].tolist() == [103, 104]
    assert batch[ACTION][0, :, 0].tolist() == [103.5, 104.5, 104.5, 104.5]
    assert batch[ACTION_IS_PAD][0].tolist() == [False, False, True, True]


def test_windows_never_cross_episodes():
    s = sampler(n_obs=3, horizon=8)
    batch = s.sample(512)
    episode_of = lambda v: np.floor(v / 100)
    for key in ("state", ACTION):
        values = batch[key][..., 0]
        assert (episode_of(values) == episode_of(values[:, -1:])).all()


def test_future_draws_come_from_the_rest_of_the_same_episode():
    s = sampler(n_obs=1, horizon=1, future=("state",))
    batch = s.sample(2000)
    now, future = batch["state"][:, -1, 0], batch["future.state"][:, 0]
    assert (np.floor(now / 100) == np.floor(future / 100)).all()
    assert (future >= now).all()
    assert len(np.unique(future - now)) > 2  # not always the same offset


@pytest.mark.parametrize("layout, fast", [
    (dict(chunks=(3, 2), compressors=BloscCodec(cname="zstd")), True),  # as our stores write them
    (dict(chunks=(1, 2), shards=(4, 2), compressors=BloscCodec(cname="lz4")), True),  # a partial edge shard
    (dict(chunks=(3, 2)), True),  # zarr's default compressor, Zstd
    (dict(chunks=(3, 2), compressors=None), True),
    (dict(chunks=(3, 1)), False),  # chunks of part of a row: read through zarr
    (dict(chunks=(3, 2), compressors=GzipCodec()), False),
])
def test_gather_reads_the_chunk_files_like_numpy(tmp_path, layout, fast):
    array = zarr.create_array(tmp_path / "a.zarr", shape=(10, 2), dtype="float32", **layout)
    array[:] = np.arange(20, dtype=np.float32).reshape(10, 2)
    reader = RowReader(array, tmp_path / "a.zarr")
    assert reader.fast == fast
    index = np.array([[9, 0], [3, 3], [8, 9]])
    np.testing.assert_array_equal(gather(reader, index), array[:][index])
    restored = pickle.loads(pickle.dumps(reader))  # as a loader's worker process gets it
    np.testing.assert_array_equal(gather(restored, index), array[:][index])


def test_stats_cover_only_selected_rows():
    stats = compute_stats(ARRAYS, np.arange(3, 8), ["state"])  # episode 1 only
    assert stats["state"]["min"][0] == 100 and stats["state"]["max"][0] == 104
    assert stats["state"]["mean"][0] == pytest.approx(102)


def test_scalar_actions_come_as_one_dimension_per_step():
    """A discrete task stores its action as one index per step: windows still hold (B, horizon, action_dim)."""
    arrays = {"state": VALUES[:, None], ACTION: np.arange(len(VALUES))}
    batch = WindowSampler(arrays, ENDS, np.arange(3), ["state"], 2, 4, seed=0).sample(5)
    assert batch[ACTION].shape == (5, 4, 1)
    assert compute_stats(arrays, np.arange(4), [ACTION])[ACTION]["max"].tolist() == [3]  # per dimension, 1-d


def test_gather_reads_never_written_frames_of_a_shard_as_the_fill_value(tmp_path):
    array = zarr.create_array(tmp_path / "a.zarr", shape=(8, 2), dtype="float32", chunks=(1, 2), shards=(4, 2),
                              fill_value=7)
    array[:5] = np.arange(10, dtype=np.float32).reshape(5, 2)  # shard 1 holds row 4 only
    reader = RowReader(array, tmp_path / "a.zarr")
    assert reader.fast
    np.testing.assert_array_equal(reader.read(np.array([3, 4, 5, 6])), array[:][[3, 4, 5, 6]])
    assert (reader.read(np.array([5, 6])) == 7).all()
