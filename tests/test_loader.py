"""The worker-process loader (stores read from disk) gives the in-RAM sampler's windows, resumes its draws
exactly, and trains the same run as the in-RAM path."""

import json

import numpy as np
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


def image_store(path):
    rng = np.random.default_rng(0)
    features = {"image": Feature("pixels", (16, 16, 3), "uint8"), "state": Feature("proprio", (2,), "float32"),
                ACTION: Feature("action", (2,), "float32")}
    layouts = {"image": ArrayLayout(1), "state": ArrayLayout(8), ACTION: ArrayLayout(8)}
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
