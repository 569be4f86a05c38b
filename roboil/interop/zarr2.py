"""A zarr-format-2 copy of a store, for code that reads diffusion_policy's ``ReplayBuffer`` with zarr 2
(``zarr.open(path, "r")``, ``root["data"][key]``, ``root["meta"]["episode_ends"]``): ``roboil export --to zarr2``.

Our stores are already in ReplayBuffer's layout, but as zarr format 3, which zarr 2 cannot open. The copy has the
same arrays, chunking (a file per chunk: zarr 2 has no shards) and Blosc settings (numcodecs' Blosc, which zarr 2
reads; frames kept with a lossy image codec are written decoded, with Blosc) and ``meta/episode_ends`` as
int64. ``meta`` holds that one array only (ReplayBuffer loads every array in it); our features, store attrs and
episode attrs go in the root's ``roboil_export`` attribute (not ``roboil``: this is no roboil store).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import zarr

from ..errors import RoboilError, check_writable
from ..specs import ArrayLayout
from ..store import EpisodeStore, array_layout
from . import temp_sibling


def export_zarr2(source, out) -> dict:
    """Write the store ``source``'s committed episodes as a new zarr-format-2 directory ``out`` (built in a hidden
    sibling and renamed into place complete). Returns a summary with a one-line ``line``."""
    import numcodecs

    out = Path(out)
    store = EpisodeStore.open(source, require_healthy=True)
    if out.exists():
        raise RoboilError(f"'{out}' already exists; choose a new path (export does not overwrite)")
    check_writable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    try:
        root = zarr.open_group(tmp, mode="w-", zarr_format=2)
        data, arrays = root.create_group("data"), {}
        for key, feature in store.features.items():
            layout, dtype = array_layout(store.array(key)), np.dtype(feature.dtype)
            if layout.codec != "lossless":  # zarr 2 readers lack our image codecs: decoded frames, kept losslessly
                layout = ArrayLayout(time_chunk=layout.time_chunk)
            shuffle = numcodecs.Blosc.NOSHUFFLE if dtype.itemsize == 1 else numcodecs.Blosc.SHUFFLE  # as ours
            arrays[key] = data.create_array(key, shape=(store.n_steps, *feature.shape),
                                            chunks=(layout.time_chunk, *feature.shape), dtype=dtype, fill_value=0,
                                            compressors=numcodecs.Blosc(cname=layout.cname, clevel=layout.clevel,
                                                                        shuffle=shuffle))
        ends = store.episode_ends
        for index in range(store.n_episodes):  # an episode at a time: image stores need not fit in memory
            lo = int(ends[index - 1]) if index else 0
            for key, rows in store.episode(index, verify=True).items():
                arrays[key][lo:int(ends[index])] = rows
        meta = root.create_group("meta")
        meta.create_array("episode_ends", shape=(store.n_episodes,), chunks=(max(1, store.n_episodes),),
                          dtype="int64", fill_value=0)[:] = ends
        root.attrs["roboil_export"] = {"source": str(source), "features": {k: f.to_dict()
                                                                          for k, f in store.features.items()},
                                       "attrs": store.attrs, "episodes": store.episode_attrs()}
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": str(out), "episodes": store.n_episodes, "steps": store.n_steps,
            "line": f"{out}: zarr format 2, {store.n_episodes} episodes, {store.n_steps} steps, arrays "
                    f"{', '.join(store.features)}"}
