"""Rows of a store's array read straight from its chunk files, for training from disk.

zarr-python decodes every selection through its asyncio pipeline: about 0.8 ms per chunk here, whatever its
size. A training window reads a few single-frame chunks, so that overhead, not decoding, held reading from
disk to a few hundred windows per second. For the layouts our stores write (whole rows per chunk, Blosc or one
of :mod:`roboil.codecs`' images or videos, maybe followed by a crc32c (checked here), optionally inside zarr v3
shards, whose format the zarr v3 specification fixes) this module reads a chunk's bytes with one ``os.pread`` at
the offset the shard index gives and decodes them directly: about 0.05 ms a 96x96 frame with Blosc. Any other
layout goes through zarr.

A reader keeps the files it read last open (at most ``RowReader.max_open``), each with its shard index: a store
appended to meanwhile replaces a shard by renaming a new file over it, so an open file and its index stay one
consistent snapshot, and a file opened again holds the same committed rows (an append only adds rows).
"""

from __future__ import annotations

import functools
import os
import resource
from collections import OrderedDict
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Zstd, blosc
from zarr.codecs import BytesCodec, Crc32cCodec, ShardingCodec
from zarr.codecs.sharding import ShardingCodecIndexLocation

from .codecs import VIDEO, ImageCodec, decode_chunk, decode_video
from .errors import one_line
from .store import _damaged

_MISSING = 2**64 - 1  # the shard index's offset and length of a chunk never written


def _as_is(data: bytes) -> bytes:
    return data


def _decompressed(decompress, dtype: np.dtype, data: bytes) -> np.ndarray:
    return np.frombuffer(decompress(data), dtype)


# zarr's bytes-to-bytes compressors (ours is Blosc; Zstd is zarr's default) and the numcodecs call decoding them
_DECOMPRESS = {"BloscCodec": blosc.decompress, "ZstdCodec": Zstd().decode}


class RowReader:
    """``read(rows)``: the given rows of one zarr array, as one numpy array."""

    # open files per reader: a reader per array on disk, in every worker process, all under the process's limit
    # (often 1,024; a 480x640 camera's shard holds 36 frames: 20,000 steps are 556 files)
    max_open = min(1024, max(64, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 16))

    def __init__(self, array: zarr.Array, path: str | Path):
        self.array, self.path = array, Path(path)
        meta = array.metadata
        self.row_shape = tuple(array.shape[1:])
        codecs = list(meta.codecs)
        self.file_rows = int(meta.chunk_grid.chunk_shape[0])  # rows per file: a shard's, or a chunk's
        self.sharded = len(codecs) == 1 and isinstance(codecs[0], ShardingCodec)
        self.chunk_rows, self.index_tail = self.file_rows, 0
        if self.sharded:
            sharding = codecs[0]
            self.chunk_rows = int(sharding.chunk_shape[0])
            index_codecs = [type(c).__name__ for c in sharding.index_codecs]
            # the index at the end, little-endian, maybe followed by its crc32c (4 bytes): what zarr writes
            readable = (sharding.index_location == ShardingCodecIndexLocation.end
                        and index_codecs in (["BytesCodec"], ["BytesCodec", "Crc32cCodec"]))
            self.index_tail = 4 * (len(index_codecs) - 1)
            codecs = list(sharding.codecs) if readable else []
        self.checked = bool(codecs) and isinstance(codecs[-1], Crc32cCodec)  # a chunk's last 4 bytes: its crc32c
        codecs = codecs[:-1] if self.checked else codecs
        whole_rows = tuple(meta.chunk_grid.chunk_shape[1:]) == self.row_shape
        self.dtype = np.dtype(array.dtype).newbyteorder("<")
        self.decode = None  # a chunk's bytes -> its rows' values, flat or as an image
        self.decompress_into = None  # (bytes, destination): Blosc writes into the output, saving a copy a frame
        self.decode_rows = None  # (bytes, sorted rows of the chunk) -> those rows only: H.264 decodes no further
        if len(codecs) == 1 and isinstance(codecs[0], ImageCodec):
            self.decode = functools.partial(decode_chunk, codecs[0].image_format)
            self.decode_rows = decode_video if codecs[0].image_format == VIDEO else None
        elif len(codecs) in (1, 2) and isinstance(codecs[0], BytesCodec) and np.dtype(array.dtype).byteorder in "=<|":
            decompress = _DECOMPRESS.get(type(codecs[1]).__name__) if len(codecs) == 2 else _as_is
            if decompress is not None:
                self.decode = functools.partial(_decompressed, decompress, self.dtype)
                self.decompress_into = blosc.decompress if decompress is blosc.decompress else None
        self.fast = whole_rows and self.decode is not None
        self._files: OrderedDict[int, tuple[int, np.ndarray | None]] = OrderedDict()  # the least recently read first

    def __getstate__(self):  # a worker process opens its own files
        return {**self.__dict__, "_files": OrderedDict()}

    def read(self, rows: np.ndarray) -> np.ndarray:
        """``array[rows]`` for a 1-d integer ``rows``, in any order, repeats allowed; a chunk that fails to
        decode is a StoreDamaged naming the array and the rows."""
        try:
            return self._read(rows)
        except Exception as exc:  # the codecs raise many types for corrupt bytes
            bad = next((row for row in np.unique(rows) if not self._decodes(row)), None)
            if bad is None:  # not the bytes of a row (memory, open files, a store moved away): as it came
                raise
            store, key = self.path.parent.parent, self.path.name  # STORE/data/KEY
            raise _damaged(store, [f"data/{key}: row {bad} fails to decode: {one_line(exc)}"]) from None

    def _decodes(self, row) -> bool:
        try:
            self._read(np.array([row]))
        except Exception:
            return False
        return True

    def _read(self, rows: np.ndarray) -> np.ndarray:
        if not self.fast or self.chunk_rows > 1:  # chunks of several rows: each decoded once, for all its rows
            unique, inverse = np.unique(rows, return_inverse=True)
            return self._sorted(unique)[inverse]
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        # a frame per chunk: each decoded straight into its place (a frame that repeats, at an episode's edge,
        # is decoded again: cheaper than sorting the batch and copying it back into order)
        for i, row in enumerate(rows.tolist()):
            data = self._chunk_bytes(row)
            if data is None:  # never written: zarr knows the fill value
                out[i] = self.array[row]
            elif self.decompress_into is not None:
                self.decompress_into(data, out[i])
            else:
                out[i] = self.decode(data).reshape(self.row_shape)
        return out

    def _sorted(self, rows: np.ndarray) -> np.ndarray:
        if not self.fast:
            return self.array.get_orthogonal_selection((rows,))
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        chunk_of = rows // self.chunk_rows
        starts = np.flatnonzero(np.diff(chunk_of, prepend=-1))  # rows sorted: each chunk is decoded once
        for first, last in zip(starts, [*starts[1:], len(rows)]):
            data = self._chunk_bytes(int(chunk_of[first]))
            inner = rows[first:last] - chunk_of[first] * self.chunk_rows
            if data is None:
                out[first:last] = self.array.get_orthogonal_selection((rows[first:last],))
            elif self.decode_rows is not None:
                out[first:last] = self.decode_rows(data, inner)
            else:
                out[first:last] = self.decode(data).reshape(self.chunk_rows, *self.row_shape)[inner]
        return out

    def _chunk_bytes(self, index: int) -> bytes | None:
        """The encoded bytes of chunk ``index`` (its crc32c checked and cut off); None if it was never written."""
        shard, inner = divmod(index, self.file_rows // self.chunk_rows)
        fd, shard_index = self._file(shard)
        if shard_index is None:
            data = os.pread(fd, os.fstat(fd).st_size, 0)
        else:
            offset, length = shard_index[inner]
            if offset == _MISSING:
                return None
            data = os.pread(fd, int(length), int(offset))
        if not self.checked:
            return data
        encoded = data[:-4]
        if len(data) < 4 or google_crc32c.value(encoded) != int.from_bytes(data[-4:], "little"):
            raise ValueError("its chunk fails its crc32c (changed on disk)")
        return encoded

    def _file(self, shard: int) -> tuple[int, np.ndarray | None]:
        if shard in self._files:
            self._files.move_to_end(shard)
        else:
            if len(self._files) >= self.max_open:
                os.close(self._files.popitem(last=False)[1][0])
            key = self.array.metadata.encode_chunk_key((shard,) + (0,) * len(self.row_shape))
            fd = os.open(self.path / key, os.O_RDONLY)
            shard_index = None
            if self.sharded:  # (offset, length) per inner chunk
                entries = 2 * (self.file_rows // self.chunk_rows)
                size = 8 * entries + self.index_tail
                raw = os.pread(fd, size, os.fstat(fd).st_size - size)
                shard_index = np.frombuffer(raw[:8 * entries], "<u8").reshape(-1, 2)
            self._files[shard] = (fd, shard_index)
        return self._files[shard]

    def __del__(self):
        for fd, _ in self._files.values():
            os.close(fd)
