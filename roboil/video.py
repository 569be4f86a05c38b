"""mp4 videos and png frames through OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    """Write RGB uint8 frames (H, W, 3) to an mp4 file and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_png(path: Path, frame: np.ndarray) -> Path:
    """Write one RGB uint8 frame as a png and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    return path
