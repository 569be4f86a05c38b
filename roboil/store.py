"""Episode store: a Zarr v3 directory in diffusion_policy's ReplayBuffer layout, appended crash-safely.

Layout: ``data/<key>`` holds every episode concatenated on axis 0; ``meta/episode_ends`` (int64, cumulative)
says where each ends. Our extras sit in attributes: the root's ``roboil`` (format, features, store attrs) and
the ``meta`` group's ``episodes`` (one dict per episode).

Crash safety: an append writes data rows, then the episode attrs list, then ``episode_ends`` last; each file
write is atomic (zarr's LocalStore writes a temp file and renames it). The committed episodes are the longest
prefix of ``episode_ends`` that is strictly increasing, positive and within every data array; anything past
it is an uncommitted tail that "r" ignores and "a" trims. Single writer per store.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle

from .errors import RoboilError
from .specs import ArrayLayout, Feature

FORMAT = 1
ENDS_CHUNK = 1024
# Without this zarr skips writing all-fill chunks (e.g. a black frame), which check() would see as missing.
_WRITE_ALL = {"write_empty_chunks": True}
_CHECK_BATCH_BYTES = 32 << 20


def _jsonable(obj, what: str):
    """A JSON round trip (numpy scalars/arrays become Python values), so bad attrs fail before any write."""

    def default(o):
        if isinstance(o, (np.generic, np.ndarray)):
            return o.tolist()
        raise TypeError(type(o).__name__)

    try:
        return json.loads(json.dumps(obj, default=default))
    except (TypeError, ValueError) as e:
        raise RoboilError(f"{what} must be JSON-serializable ({e}); pass plain numbers, strings, lists, dicts")


def _committed(ends: np.ndarray, limit: int) -> int:
    """Length of the longest prefix of ``ends`` that is strictly increasing, positive and <= ``limit``."""
    ok = (ends > np.concatenate([[0], ends[:-1]])) & (ends <= limit)
    return len(ends) if ok.all() else int(np.argmin(ok))


class EpisodeStore:
    """Open with :meth:`create` or :meth:`open`; ``n_episodes``/``n_steps`` count committed episodes only."""

    def __init__(self, path: Path, root: zarr.Group, mode: str):
        self.path, self.mode = path, mode
        meta = root.attrs["roboil"]
        self.features = {k: Feature.from_dict(d) for k, d in meta["features"].items()}
        self.attrs = {k: v for k, v in meta.items() if k not in ("format", "features")}
        self._meta = root["meta"]
        self._ends_arr = self._meta["episode_ends"].with_config(_WRITE_ALL)
        data = root["data"]
        missing = [k for k in self.features if k not in data]
        if missing:
            raise RoboilError(f"store '{path}' lacks data arrays {missing}; it is damaged, re-record it")
        self._arrays = {k: data[k].with_config(_WRITE_ALL) for k in self.features}
        self.notes: list[str] = []  # uncommitted tail found by the last scan (not a problem)
        problems = self._scan()
        if mode == "a":
            if problems:
                raise RoboilError(f"store '{path}' is damaged ({problems[0]}); open it read-only and copy the good "
                                  "episodes to a new store")
            # Chunk writes only happen after a resize, so chunk dirs can hold temp files only when there is a tail.
            self._remove_partials(chunks=bool(self.notes))
            if self.notes:
                self._trim()

    # ---- opening ---------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path, features: dict[str, Feature], layouts: dict[str, ArrayLayout], attrs: dict
               ) -> "EpisodeStore":
        path = Path(path)
        if path.exists():
            raise RoboilError(f"'{path}' already exists; choose a new path or open it with EpisodeStore.open")
        if not features:
            raise RoboilError("an episode store needs at least one feature")
        if missing := [k for k in features if k not in layouts]:
            raise RoboilError(f"no ArrayLayout for {missing}; give a layout for every feature")
        if clash := {"format", "features"} & set(attrs):
            raise RoboilError(f"store attrs {sorted(clash)} are reserved; rename them")
        root_attrs = {"format": FORMAT, "features": {k: f.to_dict() for k, f in features.items()},
                      **_jsonable(attrs, "store attrs")}
        codecs = {}  # built before any write, so a bad layout leaves no half-made directory
        for key, f in features.items():
            lay, dtype = layouts[key], np.dtype(f.dtype)
            if lay.time_chunk < 1 or not 0 <= lay.clevel <= 9:
                raise RoboilError(f"layout for '{key}' has time_chunk={lay.time_chunk}, clevel={lay.clevel}; use "
                                  "time_chunk >= 1 and clevel 0..9")
            # Byte shuffle helps multi-byte numbers; for 1-byte data (images) it is a no-op and bitshuffle is slow.
            shuffle = BloscShuffle.noshuffle if dtype.itemsize == 1 else BloscShuffle.shuffle
            try:
                codecs[key] = BloscCodec(cname=lay.cname, clevel=lay.clevel, shuffle=shuffle, typesize=dtype.itemsize)
            except ValueError as e:
                raise RoboilError(f"layout for '{key}' has a bad Blosc setting ({e}); use e.g. cname='zstd', clevel=3")
        root = zarr.open_group(path, mode="w-", zarr_format=3)
        data = root.create_group("data")
        for key, f in features.items():
            data.create_array(key, shape=(0, *f.shape), chunks=(layouts[key].time_chunk, *f.shape), dtype=f.dtype,
                              compressors=codecs[key])
        meta = root.create_group("meta", attributes={"episodes": []})
        meta.create_array("episode_ends", shape=(0,), chunks=(ENDS_CHUNK,), dtype="int64")
        root.attrs["roboil"] = root_attrs  # written last: a half-created directory is not taken for a store
        return cls(path, root, "a")

    @classmethod
    def open(cls, path, mode: str = "r") -> "EpisodeStore":
        path = Path(path)
        if mode not in ("r", "a"):
            raise RoboilError(f"store mode must be 'r' or 'a', not {mode!r}")
        if not path.exists():
            raise RoboilError(f"no episode store at '{path}'; check the path or record one with `roboil record`")
        try:
            root = zarr.open_group(path, mode="r" if mode == "r" else "r+", zarr_format=3)
            ok = "roboil" in root.attrs and "data" in root and "meta" in root and "episode_ends" in root["meta"]
        except (OSError, ValueError):  # zarr's not-found/not-a-group errors, unreadable metadata
            ok = False
        if not ok:
            raise RoboilError(f"'{path}' is not a roboil episode store; point at a directory made by `roboil record`")
        if root.attrs["roboil"].get("format") != FORMAT:
            raise RoboilError(f"store '{path}' has format {root.attrs['roboil'].get('format')}, this roboil reads "
                              f"{FORMAT}; use a matching roboil version")
        return cls(path, root, mode)

    # ---- committed state -------------------------------------------------------------------------------------

    def _scan(self) -> list[str]:
        """Find the committed prefix from disk; set notes for an uncommitted tail and return problems."""
        raw = self._ends_arr[:]
        lengths = {k: a.shape[0] for k, a in self._arrays.items()}
        n = _committed(raw, min(lengths.values()))
        self._ends = raw[:n].astype(np.int64)
        listed = self._meta.attrs.get("episodes", [])
        self._episode_attrs = list(listed[:n])
        problems, self.notes = [], []
        if n < len(raw):
            # Our write order can only leave one trailing slot that was resized but never written (fill 0).
            if n == len(raw) - 1 and raw[-1] == 0:
                self.notes.append(f"episode_ends[{n}] was resized but never written (torn commit)")
            else:
                problems.append(f"episode_ends[{n}]={raw[n]} is not above the previous end or past the data "
                                f"(data lengths {lengths})")
        if len(listed) < n:
            problems.append(f"meta attrs list {len(listed)} episodes but episode_ends commits {n}")
        elif len(listed) > n:
            self.notes.append(f"{len(listed) - n} uncommitted episode attrs past episode {n}")
        if not all(isinstance(a, dict) for a in self._episode_attrs):
            problems.append("meta attrs 'episodes' holds entries that are not dicts")
        for key, length in lengths.items():
            if length > self.n_steps:
                self.notes.append(f"data/{key} has {length - self.n_steps} uncommitted rows")
        return problems

    def _trim(self) -> None:
        """Cut the uncommitted tail, commit point first, so a kill mid-trim still leaves a valid store."""
        n, steps = self.n_episodes, self.n_steps
        if self._ends_arr.shape[0] > n:
            self._ends_arr[n:] = 0  # the boundary chunk keeps values past the shape; zero them for later resizes
            self._ends_arr.resize((n,))
        self._meta.attrs["episodes"] = self._episode_attrs
        for arr in self._arrays.values():
            if arr.shape[0] > steps:
                arr.resize((steps, *arr.shape[1:]))
        self.notes = []

    def _remove_partials(self, chunks: bool) -> None:
        """Delete temp files of writes a kill cut short: garbage that zarr warns about when listing a group."""
        arrays = [self.path / "meta" / "episode_ends", *(self.path / "data" / k for k in self.features)]
        for d in [self.path, self.path / "data", self.path / "meta", *arrays]:
            for p in d.glob("*.partial"):
                p.unlink()
        for a in arrays if chunks else ():
            for p in (a / "c").rglob("*.partial"):
                p.unlink()

    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    @property
    def episode_ends(self) -> np.ndarray:
        return self._ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self._ends, prepend=0)

    def episode_attrs(self) -> list[dict]:
        return [dict(a) for a in self._episode_attrs]

    # ---- writing ---------------------------------------------------------------------------------------------

    def add_episode(self, data: dict[str, np.ndarray], attrs: dict) -> int:
        """Append one episode (every feature key, same length T >= 1); returns its index once committed."""
        if self.mode != "a":
            raise RoboilError(f"store '{self.path}' is open read-only; open it with mode='a' to append")
        if missing := [k for k in self.features if k not in data]:
            raise RoboilError(f"episode lacks keys {missing}; give every store feature: {sorted(self.features)}")
        if extra := [k for k in data if k not in self.features]:
            raise RoboilError(f"episode has keys {extra} the store does not hold; drop them or use a new store")
        rows, lengths = {}, set()
        for key, f in self.features.items():
            x = np.asarray(data[key])
            if x.ndim < 1 or x.shape[1:] != f.shape:
                raise RoboilError(f"'{key}' has shape {x.shape}, expected (T, {', '.join(map(str, f.shape))}); "
                                  "stack the steps along axis 0")
            if not np.can_cast(x.dtype, f.dtype, "same_kind"):
                raise RoboilError(f"'{key}' has dtype {x.dtype}, the store holds {f.dtype}; convert it first")
            rows[key] = x.astype(f.dtype, copy=False)
            lengths.add(len(x))
        if len(lengths) > 1 or 0 in lengths:
            raise RoboilError(f"episode arrays must share one length T >= 1, got lengths {sorted(lengths)}")
        entry = _jsonable(attrs, "episode attrs")
        if not isinstance(entry, dict):
            raise RoboilError("episode attrs must be a dict")
        index, start = self.n_episodes, self.n_steps
        end = start + lengths.pop()
        for key, x in rows.items():  # 1) data rows (past the committed end, so invisible until step 3)
            arr = self._arrays[key]
            arr.resize((end, *arr.shape[1:]))
            arr[start:end] = x
        self._meta.attrs["episodes"] = self._episode_attrs + [entry]  # 2) per-episode attrs
        self._ends_arr.resize((index + 1,))  # 3) the commit point: a torn resize leaves a 0 that reads as tail
        self._ends_arr[index] = end
        self._ends = np.append(self._ends, np.int64(end))
        self._episode_attrs.append(entry)
        return index

    # ---- reading ---------------------------------------------------------------------------------------------

    def _key(self, key: str) -> zarr.Array:
        if key not in self._arrays:
            raise RoboilError(f"store has no array '{key}'; it holds {sorted(self._arrays)}")
        return self._arrays[key]

    def episode(self, index: int) -> dict[str, np.ndarray]:
        n = self.n_episodes
        if not -n <= index < n:
            raise RoboilError(f"episode {index} out of range; the store has {n} episodes")
        index %= n
        start = int(self._ends[index - 1]) if index else 0
        return {k: a[start:int(self._ends[index])] for k, a in self._arrays.items()}

    def array(self, key: str) -> zarr.Array:
        """The zarr array, for lazy reads; rows at or past ``n_steps`` are not committed."""
        return self._key(key)

    def load(self, keys=None) -> dict[str, np.ndarray]:
        return {k: self._key(k)[:self.n_steps] for k in (self.features if keys is None else keys)}

    # ---- health and summary ----------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found (empty = healthy); an uncommitted tail goes to ``self.notes`` instead.

        Array shapes are those seen at open; reopen to check a store another process changed since. Decodes
        every committed chunk, so it reads the whole store.
        """
        problems = self._scan()
        steps = self.n_steps
        data_dir = self.path / "data"
        on_disk = sorted(p.name for p in data_dir.iterdir() if (p / "zarr.json").exists())
        if extra := [k for k in on_disk if k not in self.features]:
            problems.append(f"data arrays {extra} are not listed in the store features")
        for key, f in self.features.items():
            arr = self._arrays[key]
            if arr.shape[1:] != f.shape or arr.dtype != np.dtype(f.dtype):
                problems.append(f"data/{key} is {arr.shape[1:]} {arr.dtype}, features say {f.shape} {f.dtype}")
                continue
            tc = arr.chunks[0]
            n_chunks = math.ceil(steps / tc)
            zeros = (0,) * (arr.ndim - 1)
            missing = [i for i in range(n_chunks)
                       if not (data_dir / key / arr.metadata.encode_chunk_key((i, *zeros))).exists()]
            if missing:
                problems.append(f"data/{key}: {len(missing)} committed chunk files missing (first: time chunk "
                                f"{missing[0]})")
            # Decode in batches of whole chunks to bound memory on image stores.
            batch = tc * max(1, _CHECK_BATCH_BYTES // max(1, tc * math.prod(f.shape) * arr.dtype.itemsize))
            for lo in range(0, steps, batch):
                try:
                    arr[lo:min(lo + batch, steps)]
                except Exception as e:  # any decode failure is a finding, not a crash of check()
                    problems.append(f"data/{key}: rows {lo}..{min(lo + batch, steps)} fail to decode: {e}")
        return problems

    def info(self) -> dict:
        lengths = self.episode_lengths
        success = [bool(a["success"]) for a in self._episode_attrs if a.get("success") is not None]
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(self.path) for f in files)
        return {
            "path": str(self.path),
            "episodes": self.n_episodes,
            "steps": self.n_steps,
            "features": {k: {**f.to_dict(), "chunks": list(self._arrays[k].chunks)}
                         for k, f in self.features.items()},
            "attrs": dict(self.attrs),
            "episode_length": {"mean": float(lengths.mean()), "min": int(lengths.min()), "max": int(lengths.max())}
            if len(lengths) else None,
            "success_rate": float(np.mean(success)) if success else None,
            "bytes_on_disk": size,
        }
