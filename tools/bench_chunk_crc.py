"""What each chunk's crc32c buys and costs when training reads frames from disk (`roboil/rows.py`).

    python tools/bench_chunk_crc.py [--episodes 10] [--flips 40]

Records PushT episodes (96x96 top camera) losslessly and as JPEG, then:
- flips one bit at a random place inside one frame's encoded bytes, `--flips` times per codec, and counts the
  flips that still decode (into a wrong frame, with no error) when the crc32c is not looked at;
- times the reader's row reads against the crc32c check alone on the same chunks (its share of a read).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import google_crc32c
import numpy as np

from roboil.codecs import decode_chunk
from roboil.record import record
from roboil.rows import RowReader
from roboil.store import EpisodeStore


def silent_flips(reader: RowReader, flips: int, rng: np.random.Generator) -> int:
    """How many single-bit flips in the payload of a frame's chunk decode without an error to other pixels."""
    silent = 0
    for _ in range(flips):
        row = int(rng.integers(0, reader.array.shape[0]))
        payload = bytearray(reader._chunk_bytes(row))  # crc32c checked and cut off: the codec's own bytes
        want = reader.read(np.array([row]))[0]
        payload[int(rng.integers(0, len(payload)))] ^= 1 << int(rng.integers(0, 8))
        try:
            got = decode(reader, bytes(payload))
        except Exception:
            continue  # the codec noticed
        silent += got.shape != want.shape or bool((got != want).any())
    return silent


def decode(reader: RowReader, payload: bytes) -> np.ndarray:
    if reader.decompress_into is not None:
        out = np.empty(reader.row_shape, np.uint8)
        reader.decompress_into(payload, out)
        return out
    return decode_chunk("jpeg", payload).reshape(reader.row_shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--flips", type=int, default=40)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("lossless", "jpeg"):
            path = Path(tmp) / f"{codec}.zarr"
            record("pusht", args.episodes, path, progress=False, obs_overrides={"pixels": {"codec": codec}})
            store = EpisodeStore.open(path)
            reader = RowReader(store.array("rgb_top"), path / "data" / "rgb_top")
            assert reader.fast and reader.checked
            silent = silent_flips(reader, args.flips, rng)
            rows = rng.integers(0, store.n_steps, 20000)
            reads = []
            for _ in range(5):
                start = time.perf_counter()
                reader.read(rows)
                reads.append((time.perf_counter() - start) / len(rows))
            stored = [os.pread(*_bytes_at(reader, int(row))) for row in rows[:2000]]
            start = time.perf_counter()
            for data in stored:
                google_crc32c.value(data[:-4]) == int.from_bytes(data[-4:], "little")  # noqa: B015 (timed)
            check = (time.perf_counter() - start) / len(stored)
            print(f"{codec}: {silent} of {args.flips} bit flips decode silently without the crc32c; a row read "
                  f"{min(reads) * 1e6:.1f} us, its crc32c check {check * 1e6:.2f} us ({check / min(reads):.1%})")


def _bytes_at(reader: RowReader, row: int) -> tuple[int, int, int]:
    """(file descriptor, length, offset) of the stored chunk holding ``row`` (a frame per chunk, sharded)."""
    shard, inner = divmod(row, reader.file_rows // reader.chunk_rows)
    fd, index = reader._file(shard)
    offset, length = index[inner]
    return fd, int(length), int(offset)


if __name__ == "__main__":
    main()
