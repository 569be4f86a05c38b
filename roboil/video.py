"""Videos that browsers play (H.264, yuv420p, through the ffmpeg binary that the imageio-ffmpeg wheel ships) and
png frames through OpenCV."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write RGB uint8 frames (H, W, 3) to an H.264 mp4 file and return its path.

    yuv420p halves the chroma resolution, so H.264 needs an even width and height: an odd one gets a black
    row or column. ``+faststart`` puts the index first, so a browser starts playing before the whole file
    has arrived.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", str(path),
    ]
    raw = b"".join(np.ascontiguousarray(frame, dtype=np.uint8).tobytes() for frame in frames)
    result = subprocess.run(command, input=raw, capture_output=True)
    if result.returncode != 0:
        path.unlink(missing_ok=True)  # no half-written video left to look played-through
        raise RuntimeError(f"ffmpeg could not write {path}: {result.stderr.decode(errors='replace').strip()}")
    return path


def write_png(path: Path, frame: np.ndarray) -> Path:
    """Write one RGB uint8 frame as a png and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR)):
        path.unlink(missing_ok=True)
        raise RuntimeError(f"OpenCV could not write {path}")
    return path
