"""Writing the event files (imported on a run's first event: it loads torch and tensorboard)."""

from __future__ import annotations

import atexit
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from roboil.checkpoint import META_FILE, latest_checkpoint, resolve_checkpoint
from roboil.config import missing_logger_package
from roboil.errors import RoboilError

try:
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter
except ImportError:  # torch.utils.tensorboard needs the tensorboard package
    raise RoboilError(missing_logger_package("tensorboard")) from None

LOG_DIR = "tensorboard"  # inside the run directory
FLUSH_SECS = 30  # between checkpoints, events reach the disk at least this often
GIF_MAX_SIDE = 256
GIF_MAX_FPS = 15.0


@dataclass
class _Training:
    """One training session of a run in this process: its writer and where the ``log_every`` cadence stands."""

    writer: SummaryWriter
    logged: int  # the last step written (at first: the step the session resumed from)
    seen: int  # the last step the hook reported


_training: dict[Path, _Training] = {}


def log_dir(run_dir: Path) -> Path:
    return Path(run_dir) / LOG_DIR


def _checkpoint_step(checkpoint: Path | None) -> int:
    if checkpoint is None:
        return 0
    return int(json.loads((checkpoint / META_FILE).read_text())["step"])


def log_train_step(step: int, metrics, run_dir: Path, config) -> None:
    key = Path(run_dir).resolve()
    session = _training.get(key)
    if session is None or step <= session.seen:  # the first step of a training session in this process
        if session is not None:
            session.writer.close()
        # The trainer continues from the newest checkpoint (none: from 0). Events of an earlier session past it are
        # purged (TensorBoard drops every step >= purge_step of the older files), as metrics.jsonl is trimmed.
        start = _checkpoint_step(latest_checkpoint(Path(run_dir)))
        writer = SummaryWriter(str(log_dir(run_dir)), purge_step=start + 1, flush_secs=FLUSH_SECS)
        session = _training[key] = _Training(writer, logged=start, seen=start)
    session.seen = step
    every = config.train.log_every
    # the trainer's own rule for metrics.jsonl: a multiple of log_every crossed, or the last step reached
    if step // every > session.logged // every or step >= config.train.steps > session.logged:
        session.logged = step
        for name, value in metrics.items():  # reading a value is what costs a device sync: only on logged steps
            session.writer.add_scalar(f"train/{name}", float(value), step)


def flush_train(run_dir: Path) -> None:
    session = _training.get(Path(run_dir).resolve())
    if session is not None:
        session.writer.flush()


@atexit.register
def _close_all() -> None:
    for session in _training.values():
        session.writer.close()
    _training.clear()


def log_eval(report: dict, run_dir: Path) -> None:
    """The report's numbers at the evaluated checkpoint's step, and its filmed episodes, into the run's logs."""
    checkpoint = resolve_checkpoint(run_dir)
    step = _checkpoint_step(checkpoint)
    root = checkpoint.parents[1]  # RUN/checkpoints/step_N
    writer = SummaryWriter(str(log_dir(root)))
    try:
        for name, value in report.items():
            if name == "success_rate" or name.startswith("mean_"):
                writer.add_scalar(f"eval/{name}", float(value), step)
        filmed = [episode for episode in report["episodes"] if "video" in episode]
        for episode in filmed:
            image = _gif(Path(episode["video"]))
            writer._get_file_writer().add_summary(
                Summary(value=[Summary.Value(tag=f"eval/video/seed_{episode['seed']}", image=image)]), step)
        if filmed:
            rows = "\n".join(
                f"| {e['seed']} | {'success' if e['success'] else 'failure'} | {e['return']:.3f} | "
                f"{_shown(Path(e['video']), root)} |" for e in filmed)
            writer.add_text("eval/videos", "| seed | outcome | return | video |\n|---|---|---|---|\n" + rows, step)
    finally:
        writer.close()


def _shown(path: Path, root: Path) -> str:
    """The video's path relative to the run directory when it is inside it (``roboil eval`` writes it there)."""
    try:
        return os.path.relpath(path.resolve(), root.resolve()) if path.resolve().is_relative_to(root.resolve()) \
            else str(path)
    except OSError:
        return str(path)


def _gif(path: Path) -> Summary.Image:
    """An mp4 as the animated GIF TensorBoard's Images tab plays (what ``add_video`` would write, without moviepy):
    scaled to at most GIF_MAX_SIDE pixels, every k-th frame for at most GIF_MAX_FPS frames a second."""
    import imageio_ffmpeg
    from PIL import Image

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    fps = float(meta.get("fps") or GIF_MAX_FPS)
    stride = max(1, math.ceil(fps / GIF_MAX_FPS - 1e-6))
    scale = min(1.0, GIF_MAX_SIDE / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    frames = []
    try:
        for i, raw in enumerate(reader):
            if i % stride == 0:
                frames.append(Image.frombytes("RGB", (width, height), raw).resize(size, Image.BILINEAR))
    finally:
        reader.close()
    if not frames:
        raise RuntimeError(f"{path} holds no frames")
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=round(1000 * stride / fps), loop=0)
    return Summary.Image(height=size[1], width=size[0], colorspace=3, encoded_image_string=buffer.getvalue())
