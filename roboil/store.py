"""Episode store: a Zarr v3 directory in diffusion_policy's ReplayBuffer layout, appended crash-safely.

Layout: ``data/<key>`` holds every episode concatenated on axis 0; ``meta/episode_ends`` (int64, cumulative)
says where each ends. Our extras sit in attributes: the root's ``roboil`` (format: 2 with a sharded or lossy
array, else 1 as before them; features; store attrs) and the ``meta`` group's ``episodes`` (one dict per
episode, with the store's ``checksums`` of its rows).

Crash safety: an append writes data rows, then the episode attrs list, then ``episode_ends`` last; each file
write is atomic (zarr's LocalStore writes a temp file and renames it, since zarr 3.1.3, the oldest we take). The
committed episodes are the longest prefix of ``episode_ends`` that is strictly increasing, positive and within
every data array; anything past it is an uncommitted tail that "r" ignores and "a" trims. Creation is atomic
too: the store is built in a hidden sibling ``.<name>.creating-<pid>-<token>`` and renamed into place complete;
a later create of the same name removes the ones whose process is dead (pids are checked on this machine only).

Files: each array is kept with zarr v3 sharding: a chunk of ``time_chunk`` rows is the unit a read decodes, and
a shard file holds ``shard_rows`` rows (see :class:`~roboil.specs.ArrayLayout`), so the file count grows with
steps / shard_rows, not steps / time_chunk. An array whose shard would be a single chunk is kept without
sharding, a file per chunk, as every array of stores made before sharding is; both layouts read, append, check
and repair alike. An append writes its last shard whole again: zarr reads the file, adds the new chunks and
writes it through a temp file and a rename, copying the chunks of committed rows byte for byte (never
re-encoded, but for a video chunk the new rows share), so a kill leaves the old file or the new one. Images may
use a lossy codec instead of Blosc (see :mod:`roboil.codecs`): an image format, one frame per chunk, or H.264, a
short video per chunk.

Integrity: every episode's attrs carry a crc32 per array of its rows, computed from the arrays given to
``add_episode`` (for a lossy codec: of the encoded chunks the episode completed, as written, since decoders of
other builds may differ by a unit; a video chunk shared with the next episode counts for that one, as its append
encodes it again, and until then the last episode's ``tail_checksums`` cover it) and written before the commit
point. ``check()`` verifies them all; opening for appending (or with ``require_healthy``) runs the cheap check:
metadata, episode_ends and attrs, that every committed chunk is on disk (its file, or its entry in its shard's
index), and the last episode's checksums. Episodes recorded before checksums existed have none: a note, not a
problem.

One writer per store: mode "a" (and create) holds an exclusive, non-blocking ``flock`` on ``roboil.lock`` in the
store directory (listing the root group with zarr warns that it is not a zarr node: harmless) until ``close()``
or the process ends (the kernel drops it even on SIGKILL); a second writer is refused. Readers take no lock:
the commit order keeps what they see consistent. A child forked while the store is open shares the lock. On
NFS, Linux implements flock with the server's byte-range locks, shared between clients only when the server
supports locking and the mount has no ``local_lock=flock``/``nolock``; other network and FUSE filesystems may
keep locks per machine. There, one writer per store is up to you.

Removing episodes mirrors appending: the commit point shrinks first (the last slot is zeroed, which reads as a
torn commit, then cut), then the attrs list, then the data arrays; every state between reads as a valid store
with an uncommitted tail. zarr deletes only the shard files wholly past a shrunk array's end, so the chunks
past it in the last shard are first dropped from that file: removed frames neither stay on disk nor read again
if the array grows. ``delete_last_episode`` removes one; ``repair`` trims a tail and drops damaged
episodes from the end, never from the middle.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import math
import os
import secrets
import shutil
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from zarr.codecs import BloscCodec, BloscShuffle, BytesCodec, Crc32cCodec, ShardingCodecIndexLocation
from zarr.core.buffer import cpu
from zarr.core.sync import sync as zarr_sync

from .codecs import (CODECS, INSTALL, LOSSLESS, VIDEO, ImageCodec, chunk_frames, frame_shape_problem, library,
                     unavailable)
from .errors import RoboilError, check_writable, one_line, try_lock
from .specs import ArrayLayout, Feature

# 2: a store with a sharded or lossy-coded array. An earlier roboil would misread one (it looks for a file per
# chunk, so its check finds them missing and its repair would drop those episodes), so it must refuse it.
# 1: neither, as every earlier store; new stores without such arrays stay 1, readable by earlier versions too.
# 3: a store with an H.264 array, which format-2 roboil cannot decode (it called such a store damaged).
VIDEO_FORMAT, FORMAT, PLAIN_FORMAT = 3, 2, 1
FORMATS = (PLAIN_FORMAT, FORMAT, VIDEO_FORMAT)
ENDS_CHUNK = 1024
SHARD_ROWS = 1024  # the steps per shard file the store picks: a few episodes per file
SHARD_BYTES = 32 << 20  # but at most this much raw data, as an append writes its last shard whole again
# zarr's shard index (its default, which we create): per chunk (offset, nbytes) as little-endian uint64, this
# pair for a chunk the shard lacks, then a crc32c of the pairs; at the end of the file.
_INDEX_CODECS = (BytesCodec(endian="little"), Crc32cCodec())
_NO_CHUNK = 2**64 - 1
LOCK_FILE = "roboil.lock"
CHECKSUMS = "checksums"  # the episode attr the store writes itself
# and the last episode's crc32 of each video array's unfinished last chunk: no episode has completed it yet, and the
# next append encodes it again, so it is checked only while that episode is last and no append is in flight
TAIL_CHECKSUMS = "tail_checksums"
RESERVED = (CHECKSUMS, TAIL_CHECKSUMS)
COPIED_EPISODES = "copied_episodes"  # a store attr of a copy of some episodes: which ones of its source, in order
# Without this zarr skips writing all-fill chunks (e.g. a black frame), which check() would see as missing.
_WRITE_ALL = {"write_empty_chunks": True}
_CHECK_BATCH_BYTES = 32 << 20


# A problem line (as check() returns it) and the committed episodes it is confined to; None: the store as a
# whole (metadata, layout), which dropping episodes cannot mend.
_Finding = tuple[str, "list[int] | None"]


class _Unreadable(Exception):
    """Rows that fail to decode; the message is one problem line, ``reason`` the decoder's words alone."""

    def __init__(self, problem: str, reason: str | None = None):
        super().__init__(problem)
        self.reason = reason or problem


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


def _checksum(rows: np.ndarray) -> str:
    """crc32 of the rows' little-endian bytes (zarr's byte order), so it matches on any machine."""
    return f"crc32:{zlib.crc32(np.ascontiguousarray(rows, rows.dtype.newbyteorder('<'))):08x}"


def _episodes(indices: list[int], shown: int = 8) -> str:
    """'episode 3', 'episodes 1, 4' or 'episodes 1, 4, 7, ... (12 in all)'."""
    if len(indices) == 1:
        return f"episode {indices[0]}"
    more = f", ... ({len(indices)} in all)" if len(indices) > shown else ""
    return f"episodes {', '.join(map(str, indices[:shown]))}{more}"


async def _settle_zarr_tasks() -> None:
    current = asyncio.current_task()
    await asyncio.gather(*(t for t in asyncio.all_tasks() if t is not current), return_exceptions=True)


def _blosc_cut_short(path: str, trailer: int) -> bool:
    """Whether a Blosc chunk file holds fewer bytes than its header's compressed size (bytes 12..15) and the
    ``trailer`` bytes after it (a crc32c)."""
    with open(path, "rb") as file:
        header = file.read(16)
        return len(header) < 16 or \
            os.fstat(file.fileno()).st_size < int.from_bytes(header[12:16], "little") + trailer


def _read(arr: zarr.Array, name: str, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of ``arr``; raises :class:`_Unreadable` if a chunk fails to decode.

    zarr decodes a selection's chunks as concurrent tasks on its event-loop thread and raises at the first
    failure, leaving the rest running; at exit they are destroyed mid-flight and print hundreds of lines of
    "Task was destroyed but it is pending" / "Event loop is closed". Letting them finish here keeps a corrupt
    chunk to one problem line.

    A sharded array is read once more before that: zarr reads a shard's index and then its chunks, each with a
    fresh open, so an append that replaces the shard in between (rewriting a chunk of several rows that grew)
    shows the old index the new file's bytes; the second read sees one file whole.
    """
    for retry in (bool(arr.shards), False):
        try:
            return arr[lo:hi]
        except Exception as e:  # zarr and the codecs raise many types for corrupt bytes; each is a finding
            zarr_sync(_settle_zarr_tasks())
            if not retry:
                reason = one_line(e)
                if reason.startswith("Stored and computed checksum do not match"):  # then the two sums' raw bytes
                    reason = "a chunk or its shard's index fails its crc32c (changed on disk)"
                raise _Unreadable(f"{name}: rows {lo}..{hi} fail to decode: {reason}", reason) from None


def _shard_index(file, chunks: int) -> np.ndarray:
    """The ``(chunks, 2)`` (offset, nbytes) index at the end of an open shard file; :class:`_Unreadable` if it is
    cut short, fails its crc32c or points past the data."""
    size = 16 * chunks + 4
    length = file.seek(0, os.SEEK_END)
    if length < size:
        raise _Unreadable(f"is {length} bytes, shorter than its index")
    file.seek(length - size)
    raw = file.read(size)
    if google_crc32c.value(raw[:-4]) != int.from_bytes(raw[-4:], "little"):
        raise _Unreadable("has an index that fails its crc32c")
    index = np.frombuffer(raw[:-4], "<u8").reshape(chunks, 2)
    held = index[:, 0] != _NO_CHUNK
    if np.any(index[held, 0] + index[held, 1] > length - size):
        raise _Unreadable("has an index that points past its data")
    return index


def _array_options(key: str, feature: Feature, lay: ArrayLayout) -> dict:
    """``create_array``'s chunks, shards and codecs for ``lay``; a bad layout is a RoboilError naming the fix.
    Every chunk ends with its crc32c: a flipped bit in a frame often still decodes (in about 2 of 5 Blosc chunks
    here, nearly every JPEG), and training that streams frames from disk has no episode checksums to compare."""
    dtype = np.dtype(feature.dtype)
    if lay.time_chunk < 1 or not 0 <= lay.clevel <= 9:
        raise RoboilError(f"layout for '{key}' has time_chunk={lay.time_chunk}, clevel={lay.clevel}; use "
                          "time_chunk >= 1 and clevel 0..9")
    row_bytes = math.prod(feature.shape) * dtype.itemsize
    shard_rows = lay.shard_rows
    if shard_rows is None:  # the most whole chunks within SHARD_ROWS steps and SHARD_BYTES, at least one
        fit = min(SHARD_ROWS, SHARD_BYTES // max(1, row_bytes))
        shard_rows = max(lay.time_chunk, fit // lay.time_chunk * lay.time_chunk)
    elif isinstance(shard_rows, bool) or not isinstance(shard_rows, int) or shard_rows < 1 \
            or shard_rows % lay.time_chunk:
        raise RoboilError(f"layout for '{key}' has shard_rows={shard_rows!r}; use a multiple of its time_chunk "
                          f"({lay.time_chunk}), or None to let the store pick")
    options = {"chunks": (lay.time_chunk, *feature.shape),
               "shards": (shard_rows, *feature.shape) if shard_rows > lay.time_chunk else None}
    if lay.codec == LOSSLESS:
        # Byte shuffle helps multi-byte numbers; for 1-byte data (images) it is a no-op and bitshuffle is slow.
        shuffle = BloscShuffle.noshuffle if dtype.itemsize == 1 else BloscShuffle.shuffle
        try:
            return {**options, "compressors": (BloscCodec(cname=lay.cname, clevel=lay.clevel, shuffle=shuffle,
                                                          typesize=dtype.itemsize), Crc32cCodec())}
        except ValueError as e:
            raise RoboilError(f"layout for '{key}' has a bad Blosc setting ({e}); use e.g. cname='zstd', clevel=3")
    if lay.codec not in CODECS:
        raise RoboilError(f"layout for '{key}' has codec {lay.codec!r}; valid: {', '.join(CODECS)}")
    if problem := frame_shape_problem(lay.codec, feature.shape, dtype):
        raise RoboilError(f"layout for '{key}' has codec '{lay.codec}' but its {problem}; use codec 'lossless'")
    if lay.time_chunk != 1 and lay.codec != VIDEO:
        raise RoboilError(f"layout for '{key}' has codec '{lay.codec}' with time_chunk={lay.time_chunk}; use "
                          "time_chunk=1 (an append would re-encode, and degrade, the frames already in a chunk)")
    if isinstance(lay.quality, bool) or not isinstance(lay.quality, int) or not 1 <= lay.quality <= 100:
        raise RoboilError(f"layout for '{key}' has quality={lay.quality!r}; use an integer from 1 to 100")
    if reason := unavailable(lay.codec):
        raise RoboilError(f"layout for '{key}' has codec '{lay.codec}', which needs {library(lay.codec)} "
                          f"({reason}); {INSTALL}")
    return {**options, "serializer": ImageCodec(image_format=lay.codec, quality=lay.quality),
            "compressors": (Crc32cCodec(),)}


def _lock(path: Path) -> int:
    """Take the store's writer lock; the returned descriptor holds it until closed (or the process dies)."""
    try:
        fd = try_lock(path / LOCK_FILE)
    except OSError as e:
        raise RoboilError(f"cannot lock store '{path}' for appending with '{path / LOCK_FILE}' ({e.strerror}); "
                          "check that you may write there, on a local filesystem")
    if fd is None:
        raise RoboilError(f"store '{path}' is being appended to by another writer (one per store: another "
                          "`roboil record`?); wait for it to finish or write to another path")
    return fd


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _remove_dead_creations(path: Path) -> None:
    """Delete the temp directories of earlier creations of ``path`` whose process died before the rename."""
    prefix = f".{path.name}.creating-"
    for tmp in path.parent.iterdir():
        pid = tmp.name[len(prefix):].split("-")[0] if tmp.name.startswith(prefix) else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _roboil_meta(path: Path) -> dict | None:
    """The roboil attrs of the zarr group at ``path``; None where there is none (no group, or not roboil's)."""
    if not (path / "zarr.json").is_file():
        return None
    try:
        meta = zarr.open_group(path, mode="r", zarr_format=3).attrs.get("roboil")
    except Exception:  # zarr raises many types for an unparsable root zarr.json
        return None
    return meta if isinstance(meta, dict) else None


def _require_store(path: Path) -> None:
    """Refuse a path that holds no roboil store of this format, before locking or scanning it."""
    if not path.exists():
        raise RoboilError(f"no episode store at '{path}'; check the path or record one with `roboil record`")
    meta = _roboil_meta(path)
    if meta is None:
        raise RoboilError(f"'{path}' is not a roboil episode store; point at a directory made by `roboil record`")
    if meta.get("format") not in FORMATS:
        raise RoboilError(f"store '{path}' has format {meta.get('format')}, this roboil reads "
                          f"{', '.join(map(str, FORMATS))}; use a matching roboil version")


def empty_directory(path: str | Path) -> bool:
    """Whether ``path`` is a directory with nothing in it (made by hand for a store to be made in)."""
    path = Path(path)
    return path.is_dir() and not any(path.iterdir())


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a roboil store (of any format)."""
    return _roboil_meta(Path(path)) is not None


def enclosing_store(path: str | Path) -> Path | None:
    """The roboil store that ``path`` lies strictly inside (writing there would add arrays the store does not
    list), or None."""
    # resolved: '..' and links point where the writes go
    return next((parent for parent in Path(path).resolve().parents if _roboil_meta(parent) is not None), None)


class StoreDamaged(RoboilError):
    """A store that fails its checks."""


def _damaged(path: Path, problems: list[str]) -> StoreDamaged:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return StoreDamaged(f"store '{path}' is damaged: {problems[0]}{more}; run `roboil store check {path}` for "
                        f"details, then re-record it or copy its good episodes: roboil store copy {path} --out NEW "
                        "--skip-damaged")


def _unopenable(path: Path, problem: str) -> StoreDamaged:
    """Damage to the metadata that says what the store holds: no episode can be read, or copied, without it."""
    return StoreDamaged(f"store '{path}' is damaged: {problem}; no episode can be read without it: restore that "
                        "file from a backup or re-record the store")


class EpisodeStore:
    """Open with :meth:`create` or :meth:`open`; ``n_episodes``/``n_steps`` count committed episodes only.

    A store opened for appending holds the writer lock until :meth:`close` (or use it as a context manager).
    """

    _lock_fd: int | None = None
    _in_empty_directory = False  # made where a directory with nothing in it was (see create)

    def __init__(self, path: Path, mode: str):
        self.path, self.mode = path, mode
        root = zarr.open_group(path, mode="r" if mode == "r" else "r+", zarr_format=3)
        meta = root.attrs["roboil"]
        try:
            self.features = {k: Feature.from_dict(d) for k, d in meta["features"].items()}
            for f in self.features.values():
                np.dtype(f.dtype)
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise _unopenable(path, f"the features in its root zarr.json are unreadable ({one_line(e)})")
        self.attrs = {k: v for k, v in meta.items() if k not in ("format", "features")}
        # An append writes data, then attrs, then episode_ends: reading them in the reverse order means a
        # concurrent append never shows episode_ends past the data or the attrs list.
        self._ends_arr = self._node(root, "meta/episode_ends", zarr.Array).with_config(_WRITE_ALL)
        self._meta = self._node(root, "meta", zarr.Group)
        self._arrays = {k: self._node(root, f"data/{k}", zarr.Array).with_config(_WRITE_ALL) for k in self.features}
        self._lossy = {k: a.serializer for k, a in self._arrays.items() if isinstance(a.serializer, ImageCodec)}
        for key, codec in self._lossy.items():
            if reason := unavailable(codec.image_format):
                raise RoboilError(f"store '{path}' keeps data/{key} as {codec.image_format}, which needs "
                                  f"{library(codec.image_format)} ({reason}); {INSTALL}")
        self.notes: list[str] = []  # findings of the last scan that are not problems
        self._encoded_episodes: list[tuple[dict, str]] = []  # (episode attrs, their JSON) as last written
        self._scan()

    def _node(self, root: zarr.Group, name: str, kind: type):
        try:
            node = root[name]
        except KeyError:
            raise _unopenable(self.path, f"it lacks {name}")
        except Exception as e:  # zarr raises many types for unparsable metadata
            raise _unopenable(self.path, f"{name}/zarr.json is unreadable ({one_line(e)})")
        if not isinstance(node, kind):
            raise _unopenable(self.path, f"{name} is not a zarr {kind.__name__.lower()}")
        return node

    # ---- opening and closing ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, path, features: dict[str, Feature], layouts: dict[str, ArrayLayout], attrs: dict
               ) -> "EpisodeStore":
        """A new store, open for appending (it holds the writer lock)."""
        path = Path(path)
        in_empty_directory = path.exists()  # made for it by hand: the store is renamed over it
        if in_empty_directory and not empty_directory(path):
            raise RoboilError(f"'{path}' already exists; pass a new path (the existing store is left as it is)")
        if not features:
            raise RoboilError("an episode store needs at least one feature")
        if missing := [k for k in features if k not in layouts]:
            raise RoboilError(f"no ArrayLayout for {missing}; give a layout for every feature")
        if clash := {"format", "features"} & set(attrs):
            raise RoboilError(f"store attrs {sorted(clash)} are reserved; rename them")
        # built before any write, so a bad layout leaves no half-made directory
        options = {key: _array_options(key, f, layouts[key]) for key, f in features.items()}
        plain = all(o["shards"] is None and "serializer" not in o for o in options.values())
        video = any(getattr(o.get("serializer"), "image_format", None) == VIDEO for o in options.values())
        root_attrs = {"format": VIDEO_FORMAT if video else PLAIN_FORMAT if plain else FORMAT,
                      "features": {k: f.to_dict() for k, f in features.items()}, **_jsonable(attrs, "store attrs")}
        tmp = path.parent / f".{path.name}.creating-{os.getpid()}-{secrets.token_hex(4)}"
        check_writable(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_dead_creations(path)
            tmp.mkdir()
        except OSError as e:
            raise RoboilError(f"cannot create a store in '{path.parent}' ({e.strerror}); check that you may write "
                              "there")
        lock = None
        try:
            root = zarr.open_group(tmp, mode="w-", zarr_format=3)
            data = root.create_group("data")
            for key, f in features.items():
                data.create_array(key, shape=(0, *f.shape), dtype=f.dtype, **options[key])
            meta = root.create_group("meta", attributes={"episodes": []})
            meta.create_array("episode_ends", shape=(0,), chunks=(ENDS_CHUNK,), dtype="int64")
            root.attrs["roboil"] = root_attrs
            lock = _lock(tmp)  # taken before the rename, so no other writer gets in between
            try:
                os.rename(tmp, path)
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise RoboilError(f"'{path}' already exists (another process made it meanwhile); pass a new path")
                raise RoboilError(f"cannot make the store at '{path}' ({e.strerror}); pass another path")
        except BaseException:
            if lock is not None:
                os.close(lock)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        store = cls._locked(path, lock)
        store._in_empty_directory = in_empty_directory
        return store

    @classmethod
    def open(cls, path, mode: str = "r", require_healthy: bool = False) -> "EpisodeStore":
        """``mode`` "a" takes the writer lock, refuses a store that fails ``check(deep=False)`` and trims an
        uncommitted tail. ``require_healthy`` (for "r", e.g. training) refuses such a store too: a
        :class:`RoboilError` naming the first problem."""
        path = Path(path)
        if mode not in ("r", "a"):
            raise RoboilError(f"store mode must be 'r' or 'a', not {mode!r}")
        _require_store(path)
        if mode == "r":
            store = cls(path, "r")
            if require_healthy and (problems := store.check(deep=False)):
                raise _damaged(path, problems)
            return store
        # Checked only once locked: before that, another writer may still change the store.
        store = cls._locked(path, _lock(path))
        try:
            if problems := store.check(deep=False):
                raise _damaged(path, problems)  # appending would hide the damage (zarr fills missing chunks)
            # Chunk writes only happen after a resize, so chunk dirs can hold temp files only when there is a tail.
            store._remove_partials(chunks=store._tail)
            if store._tail:
                store._trim()
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _locked(cls, path: Path, lock: int) -> "EpisodeStore":
        """The store opened for appending under ``lock``, which it then owns."""
        try:
            store = cls(path, "a")
        except BaseException:
            os.close(lock)
            raise
        store._lock_fd = lock
        return store

    def discard(self) -> None:
        """Remove a store this process made and could not fill (a recording, copy or import that failed), as if it
        had never been made: the empty directory it was made in stays."""
        shutil.rmtree(self.path, ignore_errors=True)  # under the writer lock still
        if self._in_empty_directory:
            self.path.mkdir(exist_ok=True)
        self.close()

    def close(self) -> None:
        """Release the writer lock; the store stays readable."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.mode = "r"

    def __enter__(self) -> "EpisodeStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    # ---- committed state -------------------------------------------------------------------------------------

    def _scan(self) -> list[_Finding]:
        """Find the committed prefix and its episode attrs from disk; set notes and return problems."""
        problems, self.notes = [], []
        raw = np.zeros(0, np.int64)
        self._ends_unreadable = False
        if self._ends_arr.ndim != 1 or self._ends_arr.dtype != np.int64:
            problems.append((f"meta/episode_ends is {self._ends_arr.ndim}-d {self._ends_arr.dtype}, not 1-d int64",
                             None))
        else:
            rebuild = "(`roboil store check --repair` writes them again from the episodes' recorded lengths)"
            try:
                raw = _read(self._ends_arr, "meta/episode_ends", 0, self._ends_arr.shape[0])
            except _Unreadable as e:
                problems.append((f"{e} {rebuild}", None))
                self._ends_unreadable = True
            else:
                if missing := self._missing_ends_chunks():  # zarr reads a lost chunk file as ends of 0: no episodes
                    problems.append((f"meta/episode_ends: chunk file {missing[0]} of {self._ends_arr.cdata_shape[0]} "
                                     f"is missing {rebuild}", None))
                    self._ends_unreadable, raw = True, np.zeros(0, np.int64)
        lengths = {k: a.shape[0] for k, a in self._arrays.items()}
        n = _committed(raw, min(lengths.values()))
        self._ends = raw[:n].astype(np.int64)
        listed = self._meta.attrs.get("episodes", [])
        if not isinstance(listed, list):
            problems.append(("meta attrs 'episodes' is not a list", None))
            listed = []
        self._episode_attrs = list(listed[:n])
        if n < len(raw):
            # Our write order can only leave one trailing slot that was resized but never written (fill 0).
            if n == len(raw) - 1 and raw[-1] == 0:
                self.notes.append(f"episode_ends[{n}] was resized but never written (torn commit)")
            else:
                # Ends that still rise only lack their rows: those episodes are damaged, the ones before intact.
                # Ends that do not rise leave the boundaries after them unknown: no episode holds the damage.
                past = raw[n:-1] if raw[-1] == 0 else raw[n:]
                rising = len(past) and bool(np.all(np.diff(past, prepend=raw[n - 1] if n else 0) > 0))
                problems.append((f"episode_ends[{n}]={raw[n]} is not above the previous end or past the data "
                                 f"(data lengths {lengths})", list(range(n, n + len(past))) if rising else None))
        if len(listed) < n:
            problems.append((f"meta attrs list {len(listed)} episodes but episode_ends commits {n}",
                             list(range(len(listed), n))))
        elif len(listed) > n:
            self.notes.append(f"{len(listed) - n} uncommitted episode attrs past episode {n}")
        for key, length in lengths.items():
            if length > self.n_steps:
                self.notes.append(f"data/{key} has {length - self.n_steps} uncommitted rows")
        self._tail_notes = list(self.notes)
        self._tail = bool(self._tail_notes)
        return problems + self._attr_findings()

    def _missing_ends_chunks(self) -> list[int]:
        """The chunks of episode_ends with no file on disk, but for a last chunk holding only the final slot: an
        append that resized the array and was killed before writing the slot (a torn commit) leaves that."""
        slots, folder = self._ends_arr.shape[0], self.path / "meta" / "episode_ends" / "c"
        missing = [i for i in range(self._ends_arr.cdata_shape[0]) if not (folder / str(i)).is_file()]
        torn = (slots - 1) // ENDS_CHUNK if (slots - 1) % ENDS_CHUNK == 0 else None
        return [i for i in missing if i != torn]

    def _attr_findings(self) -> list[_Finding]:
        """Check each committed episode's attrs; keep its checksums (None when it has none) for verifying."""
        not_dicts, wrong_length, partial, unchecked = [], [], [], []
        self._checksums: list[dict | None] = [None] * self.n_episodes  # also for attrs missing from the list
        for i, (a, length) in enumerate(zip(self._episode_attrs, self.episode_lengths)):
            if not isinstance(a, dict):
                not_dicts.append(i)
                continue
            if "length" in a and a["length"] != length:
                wrong_length.append(i)
            sums = a.get(CHECKSUMS)
            if sums is None:
                unchecked.append(i)
            elif isinstance(sums, dict) and sorted(sums) == sorted(self.features):
                self._checksums[i] = sums
            else:
                partial.append(i)
        problems = []
        if not_dicts:
            problems.append((f"meta attrs 'episodes' holds entries that are not dicts ({_episodes(not_dicts)})",
                             not_dicts))
        if wrong_length:
            problems.append((f"{_episodes(wrong_length)}: the 'length' attr differs from the episode_ends length",
                             wrong_length))
        if partial:
            problems.append((f"{_episodes(partial)}: checksums do not cover exactly the store's arrays", partial))
        if unchecked:
            self.notes.append(f"{_episodes(unchecked)} {'has' if len(unchecked) == 1 else 'have'} no checksums "
                              "(recorded by an older roboil)")
        return problems

    def _layout_findings(self, key: str) -> list[_Finding]:
        """Shape, dtype and chunking as created, and every chunk of the committed rows on disk: its file, or (in a
        sharded array) its shard file and its entry in that file's index."""
        arr, f = self._arrays[key], self.features[key]
        per_file = (arr.shards or arr.chunks)[0]
        if arr.shape[1:] != f.shape or arr.dtype != np.dtype(f.dtype) or arr.chunks[1:] != f.shape \
                or (arr.shards or arr.chunks)[1:] != f.shape:
            shards = f" and shards {arr.shards}" if arr.shards else ""
            return [(f"data/{key} is {arr.shape[1:]} {arr.dtype} in chunks {arr.chunks}{shards}, features say "
                     f"{f.shape} {f.dtype} (whole rows per chunk)", None)]
        if arr.shards and (arr.metadata.codecs[0].index_location != ShardingCodecIndexLocation.end
                           or tuple(arr.metadata.codecs[0].index_codecs) != _INDEX_CODECS):
            return [(f"data/{key}: its shards keep their index otherwise than zarr's default (at the end, with a "
                     "crc32c), which this roboil does not check", None)]
        zeros, base = (0,) * len(f.shape), f"{self.path}/data/{key}/"  # plain strings: a stat per file dominates
        rows = arr.chunks[0]
        codecs = [type(c).__name__ for c in arr.metadata.codecs]
        blosc = codecs[:2] == ["BytesCodec", "BloscCodec"] and codecs[2:] in ([], ["Crc32cCodec"])
        trailer = 4 * len(codecs[2:])
        missing_files, missing_chunks, unreadable, cut = [], [], [], []
        for i in range(math.ceil(self.n_steps / per_file)):
            path = base + arr.metadata.encode_chunk_key((i, *zeros))
            if not arr.shards:
                if not os.path.exists(path):
                    missing_files.append(i)
                elif blosc and _blosc_cut_short(path, trailer):
                    cut.append(i)
                continue
            try:
                with open(path, "rb") as file:
                    index = _shard_index(file, per_file // rows)
            except FileNotFoundError:
                missing_files.append(i)
                continue
            except (_Unreadable, OSError) as e:
                unreadable.append((i, one_line(e)))
                continue
            held = math.ceil(min(per_file, self.n_steps - i * per_file) / rows)  # committed chunks in this shard
            missing_chunks += [i * (per_file // rows) + int(c) for c in np.flatnonzero(index[:held, 0] == _NO_CHUNK)]
        problems = []
        if missing_files:
            kind, first = ("shard", "shard") if arr.shards else ("chunk", "time chunk")
            problems.append((f"data/{key}: {len(missing_files)} committed {kind} files missing (first: {first} "
                             f"{missing_files[0]})", self._holding(missing_files, per_file)))
        if missing_chunks:
            problems.append((f"data/{key}: {len(missing_chunks)} committed chunks missing from their shard files "
                             f"(first: time chunk {missing_chunks[0]})", self._holding(missing_chunks, rows)))
        if cut:
            problems.append((f"data/{key}: {len(cut)} committed chunk files shorter than their Blosc header says "
                             f"(first: time chunk {cut[0]}; cut short)", self._holding(cut, per_file)))
        if unreadable:
            i, reason = unreadable[0]
            problems.append((f"data/{key}: {len(unreadable)} shard files unreadable (first: shard {i} {reason})",
                             self._holding([i for i, _ in unreadable], per_file)))
        return problems

    def _holding(self, blocks: list[int], rows: int) -> list[int]:
        """The committed episodes with rows in any of ``blocks`` (block i: rows i*rows .. (i+1)*rows)."""
        episodes = set()
        for i in blocks:
            first, last = np.searchsorted(self._ends, [i * rows, min((i + 1) * rows, self.n_steps) - 1], "right")
            episodes.update(range(int(first), int(last) + 1))
        return sorted(episodes)

    def _write_episode_attrs(self, episodes: list) -> None:
        """The meta group's zarr.json with ``episodes`` as its attrs' list: written whole, through zarr's store (a
        temp file renamed into place), but from each episode's JSON kept since it was first encoded. zarr's own
        attrs update copies and encodes every episode again (indented, in pure Python): 0.12 ms for each episode
        already in the store, on every append. The dicts are never changed in place (a changed one is a new dict),
        so the one encoded is the one written."""
        kept = self._encoded_episodes
        self._encoded_episodes = [kept[i] if i < len(kept) and kept[i][0] is episode
                                  else (episode, json.dumps(episode, allow_nan=True, separators=(",", ":")))
                                  for i, episode in enumerate(episodes)]
        others = {k: v for k, v in self._meta.metadata.attributes.items() if k != "episodes"}
        head = json.dumps(others, allow_nan=True, separators=(",", ":"))[:-1] + ("," if others else "")
        data = (f'{{"attributes":{head}"episodes":[{",".join(text for _, text in self._encoded_episodes)}]}},'
                f'"zarr_format":3,"node_type":"group"}}')
        zarr_sync(self._meta.store.set(f"{self._meta.path}/zarr.json", cpu.Buffer.from_bytes(data.encode())))
        self._meta.metadata.attributes["episodes"] = episodes  # what the group object reads back

    def _uncommit(self, keep: int) -> None:
        """Shrink episode_ends to ``keep`` slots, last first, each zeroed before it is cut: a zero in the final
        slot reads as a torn commit (a tail), so a kill after any write leaves a valid store, and the boundary
        chunk keeps zeros, not old ends, past the shape (a later torn append must read its slot as 0)."""
        for slot in range(self._ends_arr.shape[0] - 1, keep - 1, -1):
            self._ends_arr[slot] = 0
            self._ends_arr.resize((slot,))

    def _trim(self) -> None:
        """Cut the uncommitted tail, commit point first, so a kill mid-trim still leaves a valid store. The last
        episode's tail checksums are taken again first: the append cut here (or a deleted episode's) encoded its
        unfinished chunk again, and cutting the rows past it leaves that chunk as it is now."""
        n, steps = self.n_episodes, self.n_steps
        self._uncommit(n)
        if n and isinstance(self._episode_attrs[-1], dict):
            last = {k: v for k, v in self._episode_attrs[-1].items() if k != TAIL_CHECKSUMS}
            if tails := self._tail_checksums(steps):
                last[TAIL_CHECKSUMS] = tails
            self._episode_attrs[-1] = last
        self._write_episode_attrs(self._episode_attrs)
        for arr in self._arrays.values():
            if arr.shape[0] > steps:
                if arr.shards:
                    self._drop_chunks_past(arr, steps)
                arr.resize((steps, *arr.shape[1:]))
        self._scan()  # drops the tail's notes

    @staticmethod
    def _drop_chunks_past(arr: zarr.Array, end: int) -> None:
        """Rewrite the shard holding row ``end`` without its chunks wholly past ``end`` (written as fill, which
        zarr then leaves out): resize deletes only the shard files wholly past. A chunk that also holds rows
        before ``end`` stays whole, as in an unsharded array; the rows are uncommitted, so a kill here is safe."""
        rows, per_file = arr.chunks[0], arr.shards[0]
        lo = -(-end // rows) * rows
        hi = min(arr.shape[0], -(-end // per_file) * per_file)
        if lo < hi:
            arr.with_config({"write_empty_chunks": False})[lo:hi] = arr.fill_value

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
        """The attrs each episode was added with (JSON round-tripped), without the store's checksums."""
        return [{k: v for k, v in a.items() if k not in RESERVED} for a in self._episode_attrs]

    def fingerprint(self) -> str:
        """A digest of the committed episodes (their ends, attrs and checksums, nothing decoded): equal for a
        copy of the store wherever it lies, different once an episode is added, dropped or changed."""
        digest = hashlib.sha256(json.dumps([self._ends.tolist(), self._episode_attrs], sort_keys=True).encode())
        return digest.hexdigest()

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
        length = lengths.pop()
        entry = _jsonable(attrs, "episode attrs")
        if not isinstance(entry, dict):
            raise RoboilError("episode attrs must be a dict")
        if reserved := [k for k in RESERVED if k in entry]:
            raise RoboilError(f"episode attr '{reserved[0]}' is reserved (the store writes it); rename it")
        if entry.get("length", length) != length:
            raise RoboilError(f"episode attr 'length' {entry['length']} but the arrays hold {length} steps; drop it "
                              "or fix it")
        entry[CHECKSUMS] = {key: _checksum(x) for key, x in rows.items() if key not in self._lossy}
        index, start = self.n_episodes, self.n_steps
        end = start + length
        for key, x in rows.items():  # 1) data rows (past the committed end, so invisible until step 3)
            arr = self._arrays[key]
            arr.resize((end, *arr.shape[1:]))
            arr[start:end] = x
            if key in self._lossy:
                entry[CHECKSUMS][key] = self._frames_checksum(key, start, end)
        if tails := self._tail_checksums(end):
            entry[TAIL_CHECKSUMS] = tails
        self._write_episode_attrs(self._episode_attrs + [entry])  # 2) per-episode attrs, with the checksums
        self._ends_arr.resize((index + 1,))  # 3) the commit point: a torn resize leaves a 0 that reads as tail
        self._ends_arr[index] = end
        self._ends = np.append(self._ends, np.int64(end))
        self._episode_attrs.append(entry)
        self._checksums.append(entry[CHECKSUMS])
        return index

    def delete_last_episode(self) -> dict:
        """Remove the last committed episode (e.g. a take the operator rejects after saving) and return its attrs
        (without checksums). Crash-safe like an append, in reverse: a kill leaves the store with the episode or
        without it. A reader that opened the store earlier may read the removed rows as fill values: reopen."""
        if self.mode != "a":
            raise RoboilError(f"store '{self.path}' is open read-only; open it with mode='a' to delete episodes")
        if not self.n_episodes:
            raise RoboilError(f"store '{self.path}' has no episodes to delete; record one first")
        removed = self.episode_attrs()[-1]
        try:
            self._uncommit(self.n_episodes - 1)  # the commit point: from here on the episode is a tail
        finally:
            self._scan()  # what is on disk, so after a failed write this object still appends in the right place
        self._trim()
        return removed

    @classmethod
    def repair(cls, path) -> "RepairReport":
        """For ``roboil store check --repair``: trim an uncommitted tail and drop the trailing run of damaged
        committed episodes (checked deep: every chunk decoded, every checksum compared), so every episode before
        the first damaged one is kept byte for byte. Damage with good episodes after it, or not confined to
        episodes (metadata, layout), is left exactly as found and reported: cutting it would lose good episodes.
        Takes the writer lock (refused while another writer holds it). A kill midway leaves a valid store
        holding some of the damaged episodes still: repair again."""
        path = Path(path)
        _require_store(path)
        store = cls._locked(path, _lock(path))
        try:
            return store._repair()
        finally:
            store.close()

    def _repair(self) -> "RepairReport":
        rebuilt = self._rebuild_ends() if self._ends_unreadable else None
        findings = self._findings(deep=True)
        tail = list(self._tail_notes)
        report = RepairReport(str(self.path), notes=[n for n in self.notes if n not in tail])
        report.rebuilt = [rebuilt] if rebuilt else []
        damaged = sorted({i for _, episodes in findings for i in episodes or ()})
        listed = max(self.n_episodes, damaged[-1] + 1) if damaged else self.n_episodes  # with ends past the data
        if whole := [problem for problem, episodes in findings if episodes is None]:
            report.unrepairable = [problem for problem, _ in findings]
            report.advice = (f"the damage is not confined to episodes ({whole[0]}), so it is left as found; "
                             "re-record the store or copy its good episodes to a new store")
        elif damaged and damaged == list(range(listed)):
            report.unrepairable = [problem for problem, _ in findings]
            report.advice = (f"every episode is damaged ({findings[0][0]}): cutting them would leave an empty "
                             "store, so it is left as found; re-record the store")
        elif damaged and damaged != list(range(damaged[0], listed)):
            good_after = sorted(set(range(damaged[0], listed)) - set(damaged))
            report.unrepairable = [problem for problem, _ in findings]
            report.advice = (f"damage in {_episodes(damaged)} has good {_episodes(good_after)} after it and "
                             "repair only cuts damage from the end, so it is left as found; copy the good "
                             f"episodes: roboil store copy {self.path} --out NEW --skip-damaged")
        elif damaged or tail:
            report.trimmed = tail
            self._remove_partials(chunks=True)
            if damaged:
                ends = self._ends_arr[:listed]  # past the committed ones too: episodes whose rows are missing
                report.dropped, report.reasons = damaged, [problem for problem, _ in findings]
                report.dropped_steps = int(ends[-1]) - (int(ends[damaged[0] - 1]) if damaged[0] else 0)
                self._uncommit(damaged[0])
                self._scan()
            self._trim()
            report.unrepairable = self.check(deep=False)  # empty unless this code missed something
        report.episodes, report.steps = self.n_episodes, self.n_steps
        return report

    def _rebuild_ends(self) -> str | None:
        """Write episode_ends again from the episodes' recorded lengths when its chunk no longer decodes (without
        it no episode can be read); the deep check that follows compares every episode with its checksums. None
        when the attrs cannot tell (lengths missing)."""
        slots = self._ends_arr.shape[0]
        listed = self._meta.attrs.get("episodes", [])
        lengths = [e.get("length") if isinstance(e, dict) else None for e in listed[:slots]] if isinstance(
            listed, list) else []
        if not lengths or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths):
            return None
        for chunk in (self.path / "meta" / "episode_ends" / "c").glob("*"):
            chunk.unlink()  # undecodable: a partial write would read it first
        ends = np.zeros(slots, np.int64)  # a slot past the recorded lengths reads as a torn commit
        ends[:len(lengths)] = np.cumsum(lengths)
        self._ends_arr[:] = ends
        self._scan()
        return f"rebuilt meta/episode_ends from the {len(lengths)} episodes' recorded lengths"

    # ---- reading ---------------------------------------------------------------------------------------------

    def _key(self, key: str) -> zarr.Array:
        if key not in self._arrays:
            raise RoboilError(f"store has no array '{key}'; it holds {sorted(self._arrays)}")
        return self._arrays[key]

    def _rows(self, key: str, lo: int, hi: int) -> np.ndarray:
        try:
            return _read(self._key(key), f"data/{key}", lo, hi)
        except _Unreadable as e:
            raise _damaged(self.path, [str(e)])

    def episode(self, index: int, verify: bool = False) -> dict[str, np.ndarray]:
        """Episode ``index``'s rows; ``verify`` raises a :class:`RoboilError` if they differ from its checksums
        (for a copy or an export, which would otherwise pass damage on as a healthy store)."""
        n = self.n_episodes
        if not -n <= index < n:
            raise RoboilError(f"episode {index} out of range; the store has {n} episodes")
        index %= n
        start, end = (int(self._ends[index - 1]) if index else 0), int(self._ends[index])
        rows = {k: self._rows(k, start, end) for k in self._arrays}
        if verify and (problems := [line for key in rows for line in self._episode_mismatch(key, index, rows[key])]):
            raise _damaged(self.path, problems)
        return rows

    def _episode_mismatch(self, key: str, index: int, rows: np.ndarray) -> list[str]:
        """The problem line (or none) of episode ``index``'s ``rows`` of ``key`` against its checksum; for a video,
        the chunk holding its last frames is checked with the episode that completes it."""
        start, end = (int(self._ends[index - 1]) if index else 0), int(self._ends[index])
        checked = range(index, index + 1)
        if key in self._lossy:
            chunk = self._arrays[key].chunks[0]
            checked = range(index, max(self._holding([(end - 1) // chunk], chunk)) + 1)
        return self._mismatch_problem(key, [index] if index in self._mismatched(key, rows, checked, start) else [])

    def array(self, key: str) -> zarr.Array:
        """The zarr array, for lazy reads; rows at or past ``n_steps`` are not committed."""
        return self._key(key)

    def load(self, keys=None, verify: bool = False) -> dict[str, np.ndarray]:
        """The committed rows of ``keys`` (default: all); ``verify`` raises a :class:`RoboilError` if any
        episode's rows differ from their checksums (cheap next to the decoding)."""
        arrays = {k: self._rows(k, 0, self.n_steps) for k in (self.features if keys is None else keys)}
        if verify and (problems := self.verify_episodes(arrays)):
            raise _damaged(self.path, problems)
        return arrays

    def verify_episodes(self, arrays: dict[str, np.ndarray]) -> list[str]:
        """Problems (empty = all match) comparing already-loaded committed rows ``{key: rows}`` with the
        checksums recorded for each episode; episodes without checksums are skipped."""
        problems = []
        for key, rows in arrays.items():
            self._key(key)  # a RoboilError for an array the store lacks
            problems += self._mismatch_problem(key, self._mismatched(key, rows, range(self.n_episodes), 0))
        return problems

    def _mismatched(self, key: str, rows: np.ndarray, episodes: range, row0: int) -> list[int]:
        """Which of ``episodes`` differ from their checksum for ``key``; ``rows`` holds store rows from ``row0``
        (unused for a lossy array: its checksums cover the encoded chunks, read here from disk). A lossy
        checksum that differs also blames the earlier episodes with rows in its chunks (a video chunk holds the
        end of the episode before)."""
        starts = np.concatenate([[0], self._ends[:-1]]).astype(np.int64)

        def checksum(i: int) -> str:
            if key in self._lossy:
                return self._frames_checksum(key, int(starts[i]), int(self._ends[i]))
            return _checksum(rows[starts[i] - row0:self._ends[i] - row0])

        bad = [i for i in episodes if self._checksums[i] is not None and checksum(i) != self._checksums[i][key]]
        if key in self._lossy:
            chunk = self._arrays[key].chunks[0]
            bad = sorted({j for i in bad
                          for j in (i, *self._holding(list(range(starts[i] // chunk, self._ends[i] // chunk)), chunk))})
        return bad

    def _tail_checksums(self, end: int, keys=None) -> dict[str, str]:
        """The crc32 of the chunk holding row ``end`` of each video array in ``keys`` (default: all) when rows
        before ``end`` are in it."""
        return {key: self._frames_checksum(key, end, end + self._arrays[key].chunks[0])
                for key in (self._lossy if keys is None else keys) if end % self._arrays[key].chunks[0]}

    def _tail_mismatch(self, key: str) -> list[_Finding]:
        """The last episode's tail checksum of ``key`` against the chunk as stored, unless an append or a trim in
        flight (rows past the committed end) may have encoded it again."""
        if not self.n_episodes or self._arrays[key].shape[0] > self.n_steps \
                or not isinstance(self._episode_attrs[-1], dict):
            return []
        expected = self._episode_attrs[-1].get(TAIL_CHECKSUMS, {}).get(key)
        if expected is None or self._tail_checksums(self.n_steps, [key]).get(key) == expected:
            return []
        rows = self._arrays[key].chunks[0]
        bad = self._holding([self.n_steps // rows], rows)
        return [(f"data/{key}: the last, unfinished chunk differs from its checksum ({_episodes(bad)}; changed "
                 "since recording)", bad)]

    def _frames_checksum(self, key: str, lo: int, hi: int) -> str:
        """crc32 of the encoded chunks of a lossy array that the episode of rows ``lo..hi`` completed, as stored:
        those from the one holding row ``lo`` up to the one holding row ``hi``, not included (for images, a frame
        per chunk, exactly the episode's frames). A video chunk holding the end of one episode is encoded again
        by the next append, so it counts for the episode that completes it. A missing chunk counts as no bytes.
        Each file is read through one open, so a concurrent append's rename of a shard cannot mix two versions."""
        arr, crc = self._arrays[key], 0
        rows = arr.chunks[0]
        lo, hi = lo // rows, hi // rows  # in chunks from here on
        per_file, zeros = (arr.shards or arr.chunks)[0] // rows, (0,) * (arr.ndim - 1)
        for i in range(lo // per_file, -(-hi // per_file)):
            try:
                with open(self.path / "data" / key / arr.metadata.encode_chunk_key((i, *zeros)), "rb") as file:
                    if not arr.shards:
                        crc = zlib.crc32(file.read(), crc)
                        continue
                    first, last = max(lo, i * per_file) - i * per_file, min(hi, (i + 1) * per_file) - i * per_file
                    for offset, nbytes in _shard_index(file, per_file)[first:last]:
                        if offset != _NO_CHUNK:
                            file.seek(int(offset))
                            crc = zlib.crc32(file.read(int(nbytes)), crc)
            except FileNotFoundError:
                pass
        return f"crc32:{crc:08x}"

    @staticmethod
    def _mismatch_problem(key: str, bad: list[int]) -> list[str]:
        if not bad:
            return []
        verb, what = ("differs", "its checksum") if len(bad) == 1 else ("differ", "their checksums")
        return [f"data/{key}: {_episodes(bad)} {verb} from {what} (changed since recording)"]

    # ---- health and summary ----------------------------------------------------------------------------------

    def check(self, deep: bool = True) -> list[str]:
        """Problems found (empty = healthy); findings that are not problems (an uncommitted tail, episodes
        recorded without checksums) go to ``self.notes``.

        ``deep`` decodes every committed chunk and verifies every episode's checksums, so it reads the whole
        store; ``deep=False`` checks metadata, episode_ends and attrs, that every committed chunk file exists
        (a stat each: under a second for 30k image frames) and only the last episode's checksums. Array shapes
        are those seen at open; reopen to check a store another process changed since.
        """
        return [problem for problem, _ in self._findings(deep)]

    def _findings(self, deep: bool) -> list[_Finding]:
        """check()'s problems, each with the episodes it is confined to (what repair may drop)."""
        problems = self._scan()
        on_disk = sorted(p.name for p in (self.path / "data").iterdir() if (p / "zarr.json").exists())
        if extra := [k for k in on_disk if k not in self.features]:
            problems.append((f"data arrays {extra} are not listed in the store features", None))
        first = 0 if deep else max(0, self.n_episodes - 1)
        for key in self.features:
            if layout := self._layout_findings(key):
                problems += layout
                if layout[0][1] is None:
                    continue  # rows of another shape or type cannot be compared
            problems += self._verify_stored(key, first)
        return problems

    def _verify_stored(self, key: str, first: int) -> list[_Finding]:
        """Decode ``key``'s rows of episodes ``first``.. in batches of whole episodes (to bound memory on image
        stores) and compare them with their checksums. A batch that fails to decode is read again episode by
        episode, so the finding names only the episodes that fail (and the others are still verified)."""
        arr, row_bytes = self._arrays[key], math.prod(self.features[key].shape) * self._arrays[key].dtype.itemsize
        starts = np.concatenate([[0], self._ends[:-1]]).astype(np.int64)
        problems, bad = [], []
        batch_first = first
        while batch_first < self.n_episodes:
            lo = int(starts[batch_first])
            last = int(np.searchsorted(self._ends, lo + _CHECK_BATCH_BYTES // row_bytes, side="right")) - 1
            last = max(batch_first, last)
            hi = int(self._ends[last])
            episodes = range(batch_first, last + 1)
            try:
                bad += self._mismatched(key, _read(arr, f"data/{key}", lo, hi), episodes, lo)
            except _Unreadable as e:
                failing = []
                for i in episodes:
                    try:
                        rows = _read(arr, f"data/{key}", int(starts[i]), int(self._ends[i]))
                    except _Unreadable:
                        failing.append(i)
                    else:
                        bad += self._mismatched(key, rows, range(i, i + 1), int(starts[i]))
                if failing:  # named by episode: the batch's rows span good episodes too
                    verb = "fails" if len(failing) == 1 else "fail"
                    problems.append((f"data/{key}: {_episodes(failing)} {verb} to decode: {e.reason}", failing))
                else:  # a batch that fails only as a whole: blame all of it
                    problems.append((f"{e} ({_episodes(list(episodes))})", list(episodes)))
            batch_first = last + 1
        return problems + [(line, bad) for line in self._mismatch_problem(key, bad)] + self._tail_mismatch(key)

    def _layout_info(self, key: str) -> dict:
        arr, codec = self._arrays[key], self._lossy.get(key)
        return {"shard_rows": (arr.shards or arr.chunks)[0], "codec": codec.image_format if codec else LOSSLESS,
                "quality": codec.quality if codec else None}

    def info(self) -> dict:
        """A summary; per-episode attrs that older stores lack (operator, device, timing) are simply not counted.
        ``timing`` covers the paced (person-driven) episodes, ``late_episodes`` those recorded below their
        control rate (None when no episode was paced)."""
        lengths = self.episode_lengths
        episodes = [a for a in self._episode_attrs if isinstance(a, dict)]
        success = [bool(a["success"]) for a in episodes if a.get("success") is not None]
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(self.path) for f in files)

        def counts(attr: str) -> dict[str, int]:
            return dict(sorted(Counter(str(a[attr]) for a in episodes if a.get(attr) is not None).items()))

        paced = [i for i, a in enumerate(self._episode_attrs) if isinstance(a, dict) and a.get("paced") is True]
        late = [i for i in paced if self._episode_attrs[i].get("on_time") is False]
        return {
            "path": str(self.path),
            "episodes": self.n_episodes,
            "steps": self.n_steps,
            "features": {k: {**f.to_dict(), "chunks": list(self._arrays[k].chunks), **self._layout_info(k)}
                         for k, f in self.features.items()},
            "attrs": dict(self.attrs),
            "episode_length": {"mean": float(lengths.mean()), "min": int(lengths.min()), "max": int(lengths.max())}
            if len(lengths) else None,
            "success_rate": float(np.mean(success)) if success else None,
            "operators": counts("operator"),
            "devices": counts("device"),
            "timing": {"paced_episodes": len(paced), "late_episodes": late} if paced else None,
            "frames": self.n_steps,
            "bytes_on_disk": size,
        }


@dataclass
class RepairReport:
    """What :meth:`EpisodeStore.repair` did; ``healthy`` is False when damage was left in place."""

    path: str
    trimmed: list[str] = field(default_factory=list)  # the uncommitted tail cut (the scan's notes on it)
    dropped: list[int] = field(default_factory=list)  # damaged trailing episodes dropped, by their former index
    dropped_steps: int = 0  # the rows episode_ends gave them
    reasons: list[str] = field(default_factory=list)  # the problems that condemned them, as check() words them
    unrepairable: list[str] = field(default_factory=list)  # problems left as found (the store is unchanged)
    advice: str = ""  # why they were left and what to do instead
    episodes: int = 0  # committed episodes now
    steps: int = 0
    notes: list[str] = field(default_factory=list)  # findings that are not problems (e.g. no checksums)
    rebuilt: list[str] = field(default_factory=list)  # metadata written again from what the store still holds

    @property
    def changed(self) -> bool:
        return bool(self.dropped or self.trimmed or self.rebuilt)

    @property
    def healthy(self) -> bool:
        return not self.unrepairable

    def lines(self) -> list[str]:
        """For the CLI: what was cut, what was left and why, then the store's state in one line."""
        out = [f"note: {note}" for note in self.notes] + self.rebuilt
        if self.trimmed:
            out.append(f"trimmed an uncommitted tail: {'; '.join(self.trimmed)}")
        if self.dropped:
            out.append(f"dropped damaged {_episodes(self.dropped)} ({self.dropped_steps} steps):")
            out += [f"  {reason}" for reason in self.reasons]
        out += [f"problem: {problem}" for problem in self.unrepairable]
        if self.advice:
            out.append(f"not repairable in place: {self.advice}")
        state = "OK" if self.healthy else "BROKEN"
        change = "repaired" if self.changed else "unchanged"
        out.append(f"{self.path}: {state}, {change} ({self.episodes} episodes, {self.steps} steps)")
        return out


def array_layout(array: zarr.Array) -> ArrayLayout:
    """The chunking, sharding and codec a store array was created with, to create another like it."""
    time_chunk, shard_rows = array.chunks[0], (array.shards or array.chunks)[0]
    if isinstance(array.serializer, ImageCodec):
        return ArrayLayout(time_chunk=time_chunk, shard_rows=shard_rows, codec=array.serializer.image_format,
                           quality=array.serializer.quality)
    codec = array.compressors[0]
    return ArrayLayout(time_chunk=time_chunk, cname=codec.cname.value, clevel=codec.clevel, shard_rows=shard_rows)


def recoded_layouts(store: EpisodeStore, codec: str, quality: int) -> dict[str, ArrayLayout]:
    """The layouts of ``store``'s arrays of uint8 frames that ``codec`` can hold, changed to ``codec`` at
    ``quality`` (with its frames per chunk; the store picks the shards); a RoboilError if there is none."""
    if codec not in CODECS:
        raise RoboilError(f"codec '{codec}' is not one of {', '.join(CODECS)}")
    layouts = {key: replace(array_layout(store.array(key)), time_chunk=chunk_frames(codec), shard_rows=None,
                             codec=codec, quality=quality)
               for key, f in store.features.items() if frame_shape_problem(codec, f.shape, f.dtype) is None}
    if not layouts:
        raise RoboilError(f"the store has no camera arrays that codec '{codec}' can hold (uint8 frames); its arrays "
                          f"are {', '.join(store.features)}")
    return layouts


def copy_store(source: str | Path, out: str | Path, drop: list[str] = (),
               layouts: dict[str, ArrayLayout] | None = None, skip_damaged: bool = False,
               episodes: list[int] | None = None, drop_episodes: list[int] = ()) -> tuple[EpisodeStore, list[int]]:
    """A new store at ``out`` holding ``source``'s committed ``episodes`` (default: all) but ``drop_episodes``,
    in their order, without the arrays ``drop`` (e.g. the actions, for observation-only demonstrations as video
    or another embodiment would give), the arrays in ``layouts`` kept so (e.g. a camera in another codec: frames
    of a lossy store are decoded and encoded again), the rest with the same chunking and codecs, and the same
    store and episode attrs; ``source`` is not changed. Each episode is verified against its checksums: a
    damaged one is a :class:`RoboilError` (and no copy is left), or with ``skip_damaged`` left out. Returns the
    copy and the indices of the damaged episodes left out."""
    # leaving damaged episodes out is how a store that fails the check is copied: each one is verified below
    src = EpisodeStore.open(source, require_healthy=not skip_damaged)
    if bad := [i for i in [*(episodes or ()), *drop_episodes] if not 0 <= i < src.n_episodes]:
        raise RoboilError(f"episode {bad[0]} is out of range: store '{source}' has episodes 0..{src.n_episodes - 1}")
    chosen = sorted(set(range(src.n_episodes) if episodes is None else episodes) - set(drop_episodes))
    if not chosen and (episodes is not None or drop_episodes):
        raise RoboilError(f"the episodes chosen leave none of store '{source}' to copy; choose at least one")
    if unknown := [k for k in [*drop, *(layouts or {})] if k not in src.features]:
        raise RoboilError(f"store '{source}' has no array '{unknown[0]}'; it holds {', '.join(src.features)}")
    kept = {k: f for k, f in src.features.items() if k not in drop}
    if not kept:
        raise RoboilError(f"dropping {', '.join(drop)} leaves store '{source}' without arrays; keep at least one")
    layouts = {key: (layouts or {}).get(key) or array_layout(src.array(key)) for key in kept}
    # which of the source's episodes the copy's are, in order (of this copy: a copy of a copy names its source)
    attrs = {**{k: v for k, v in src.attrs.items() if k != COPIED_EPISODES}, "copied_from": str(source)}
    if drop:
        attrs["dropped"] = [*src.attrs.get("dropped", []), *drop]
    if len(chosen) < src.n_episodes:
        attrs[COPIED_EPISODES] = chosen
    skipped, listed = [], src.episode_attrs()
    with EpisodeStore.create(out, kept, layouts, attrs) as copy:
        try:
            for index in chosen:
                episode_attrs = listed[index]
                try:
                    rows = src.episode(index, verify=True)
                except RoboilError:
                    if not skip_damaged:
                        raise
                    skipped.append(index)
                    continue
                copy.add_episode({k: rows[k] for k in kept}, episode_attrs)
            if not copy.n_episodes and (skipped or (problems := src.check(deep=False))):
                why = f"all {len(skipped)} are damaged" if skipped else problems[0]
                raise RoboilError(f"no episode of store '{source}' could be copied: {why}; re-record it")
            if skipped:  # the store attrs say which episodes the copy holds
                root = zarr.open_group(copy.path, mode="r+", zarr_format=3)
                copy.attrs[COPIED_EPISODES] = [i for i in chosen if i not in skipped]
                root.attrs["roboil"] = {**root.attrs["roboil"], COPIED_EPISODES: copy.attrs[COPIED_EPISODES]}
        except BaseException:
            copy.discard()  # a copy made in part would pass for the whole store
            raise
    return copy, skipped
