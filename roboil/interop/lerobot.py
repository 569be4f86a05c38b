"""LeRobot datasets (format v3.0), both ways: ``roboil export --to lerobot`` and ``roboil import --from lerobot``.

LeRobot's v3.0 layout, as its ``LeRobotDataset`` writes and reads it (lerobot 0.4)::

    meta/info.json          codebase_version "v3.0", fps, robot_type, total_episodes/frames/tasks, splits,
                            chunks_size, data_files_size_in_mb, video_files_size_in_mb, data_path and
                            video_path (templates with chunk_index, file_index, video_key) and features:
                            {key: {dtype, shape, names, info (videos: codec, size, fps, ...)}}
    meta/stats.json         per feature: min, max, mean, std, count, q01, q10, q50, q90, q99 (images: per
                            channel in [0, 1], shape (3, 1, 1))
    meta/tasks.parquet      one row per task text: task_index, the text as the pandas index
    meta/episodes/chunk-000/file-000.parquet
                            one row per episode: episode_index, tasks, length, data/chunk_index,
                            data/file_index, dataset_from_index, dataset_to_index, per video key
                            videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp}, the
                            episode's stats as stats/<key>/<stat>, meta/episodes/{chunk_index, file_index}
    data/chunk-000/file-000.parquet
                            one row per frame, episodes one after another: the non-video features (a (1,)
                            feature is a scalar column, a (D,) one a fixed-size list), timestamp (float32,
                            frame_index / fps), frame_index, episode_index, index (over the whole dataset),
                            task_index
    videos/<key>/chunk-000/file-000.mp4
                            a camera's frames, episodes one after another; an episode's frame at timestamp t
                            is the one shown at from_timestamp + t

Several episodes share a file; a new file starts when one grows past its size limit, and a new chunk
directory every ``chunks_size`` files.

What export writes:

- ``observation.state``: every float32 array but the action and the cameras (our proprio observations: agent
  and object state, goals), each flattened, concatenated in the store's order, with ``names`` like
  ``agent_pos_0``. LeRobot's policies (ACT, diffusion, ...) read the robot state from this one key, so the
  export trains there as it is. An array of another dtype (float64, integers, bool) keeps its dtype as its own
  ``observation.<key>`` (flattened), rather than being cast.
- ``observation.images.<camera>`` for every pixels array (uint8 (H, W, 3), ``rgb_<camera>``), as an H.264
  mp4 (yuv420p, through :func:`roboil.video.write_mp4`; LeRobot's own default is AV1, and it decodes both).
  H.264 needs even sizes: an odd height or width is padded by one black row or column, and the feature's
  shape is the video's (import crops it back). Video is lossy: frames come back within the codec's error.
- ``action`` with its dtype, flattened.
- ``fps``: the store's (an integer when it is one); ``--fps`` for a store that has none.
- the task: each episode's ``task`` attr (the roboil task name, e.g. ``pusht``) as its LeRobot task text.
- ``stats.json`` and per-episode stats computed as LeRobot computes them (images over at most 100 evenly spaced
  frames per episode); quantiles are exact per episode and averaged over episodes weighted by length, as
  LeRobot aggregates them.
- our extras, for a round trip: ``meta/roboil.json`` (the store's features, chunk layouts, store attrs and
  which LeRobot column holds which array) and a ``roboil`` column of the episodes parquet (each episode's
  attrs as JSON). LeRobot ignores both. Import restores them: low-dim arrays come back exact (same dtype and
  bytes), images within the video codec's error, with the store's episode boundaries, attrs and layouts.

Import of a dataset LeRobot wrote (no ``meta/roboil.json``): each video or image feature becomes a pixels
array ``rgb_<name>`` (``observation.images.front`` becomes ``rgb_front``; decoded with the ffmpeg of
imageio-ffmpeg, which reads AV1, H.264 and HEVC), each other numeric ``observation.<name>`` a proprio
float32 array ``<name>`` (``observation.state`` becomes ``state``), ``action`` a float32 action. Episodes get
their task text as ``task``, ``success`` when the dataset has ``next.success`` (any step) and ``terminated``
when it has ``next.done`` (the last step); the store's ``task`` is the one task text all episodes share. Other
columns (rewards, ...) are left out, and the summary says so.
"""

from __future__ import annotations

import dataclasses

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from ..errors import RoboilError, check_writable, one_line
from ..keys import ACTION
from ..specs import ArrayLayout, Feature
from ..store import EpisodeStore, array_layout, empty_directory
from . import temp_sibling

CODEBASE_VERSION = "v3.0"
EXPORT_FORMAT = 1  # of meta/roboil.json
ROBOIL_META = "meta/roboil.json"
ROBOIL_COLUMN = "roboil"  # of the episodes parquet: each episode's attrs as JSON
STATE = "observation.state"
IMAGES = "observation.images."
PIXELS_PREFIX = "rgb_"  # the pixels plugin's array names: rgb_<camera>
INFO_PATH, STATS_PATH, TASKS_PATH = "meta/info.json", "meta/stats.json", "meta/tasks.parquet"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
CHUNKS_SIZE = 1000  # files per chunk directory, as LeRobot's default
DATA_FILES_MB, VIDEO_FILES_MB = 100, 200  # LeRobot's default file size limits, written to info.json
# Episodes go to one data file and one video file per camera until their raw bytes pass this; then new files
# start. It bounds the frames held for one encode, and keeps every file well under LeRobot's limits.
GROUP_BYTES = 96 << 20
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STAT_FRAMES = 100  # image stats: at most this many evenly spaced frames per episode
DEFAULT_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                    "task_index": "int64"}


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise RoboilError("LeRobot datasets need pyarrow, which is not installed; pip install 'roboil[lerobot]'")
    return pyarrow, pyarrow.parquet


def _is_camera(feature: Feature) -> bool:
    return feature.dtype == "uint8" and len(feature.shape) == 3 and feature.shape[2] == 3


def _chunk_file(index: int) -> dict:
    return {"chunk_index": index // CHUNKS_SIZE, "file_index": index % CHUNKS_SIZE}


# ---- statistics, as LeRobot's compute_stats lays them out ---------------------------------------------------


def _stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """min, max, mean, std, count and quantiles of rows ``x`` (N, D) per column."""
    wide = x.astype(np.float64)
    stats = {"min": x.min(axis=0), "max": x.max(axis=0), "mean": wide.mean(axis=0), "std": wide.std(axis=0),
             "count": np.array([len(x)], np.int64)}
    for q, value in zip(QUANTILES, np.quantile(wide, QUANTILES, axis=0)):
        stats[f"q{round(q * 100):02d}"] = value
    return stats


def _image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats in [0, 1], shaped (3, 1, 1), of at most STAT_FRAMES evenly spaced frames (a large
    frame strided down to about 150 pixels a side, as LeRobot samples them); count is the frames sampled."""
    picked = frames[np.unique(np.round(np.linspace(0, len(frames) - 1, min(len(frames), STAT_FRAMES))).astype(int))]
    side = max(picked.shape[1:3])
    if side >= 300:
        picked = picked[:, ::side // 150, ::side // 150]
    stats = _stats(picked.reshape(-1, picked.shape[-1]).astype(np.float64) / 255.0)
    return {k: np.array([len(picked)], np.int64) if k == "count" else v.reshape(-1, 1, 1) for k, v in stats.items()}


def _aggregate(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One feature's dataset stats from its episodes' (as LeRobot's aggregate_stats: weighted means and
    variances, quantiles averaged weighted by count)."""
    counts = np.array([s["count"][0] for s in episodes], np.float64)
    weights = counts.reshape(-1, *[1] * np.ndim(episodes[0]["mean"])) / counts.sum()
    means = np.stack([s["mean"] for s in episodes])
    mean = (means * weights).sum(axis=0)
    variance = ((np.stack([s["std"] for s in episodes]) ** 2 + (means - mean) ** 2) * weights).sum(axis=0)
    out = {"min": np.min([s["min"] for s in episodes], axis=0), "max": np.max([s["max"] for s in episodes], axis=0),
           "mean": mean, "std": np.sqrt(variance), "count": np.array([int(counts.sum())])}
    for key in episodes[0]:
        if key.startswith("q"):
            out[key] = (np.stack([s[key] for s in episodes]) * weights).sum(axis=0)
    return out


# ---- export ------------------------------------------------------------------------------------------------


def export_lerobot(source, out, fps: float | None = None) -> dict:
    """Write the store ``source``'s committed episodes as a new LeRobot v3.0 dataset directory ``out`` (built in
    a hidden sibling and renamed into place complete); ``fps`` for a store whose attrs have none. Returns a
    summary with a one-line ``line``."""
    pa, pq = _pyarrow()
    from ..video import write_mp4

    out = Path(out)
    store = EpisodeStore.open(source, require_healthy=True)
    if not store.n_episodes:
        raise RoboilError(f"store '{source}' has no episodes to export; record some first")
    if fps is not None and not (math.isfinite(fps) and fps > 0):  # NaN fails both
        raise RoboilError(f"--fps must be a positive number of frames per second, got {fps}")
    fps = fps if fps is not None else store.attrs.get("fps")
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0:
        raise RoboilError(f"store '{source}' has no frame rate (attr fps is {fps!r}); give one with --fps")
    fps = int(fps) if float(fps).is_integer() else float(fps)
    if out.exists():
        raise RoboilError(f"'{out}' already exists; choose a new directory (export does not overwrite)")
    check_writable(out)
    plan = _ExportPlan(store)
    episodes = store.episode_attrs()
    tasks = list(dict.fromkeys(_task_text(a, store.attrs) for a in episodes))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    try:
        tmp.mkdir()
        rows_meta, stats = [], {key: [] for key in [*plan.columns, *plan.videos, *DEFAULT_FEATURES]}
        group, writer, frames, group_bytes, start = 0, None, {}, 0, 0
        for index, attrs in enumerate(episodes):
            rows = store.episode(index, verify=True)
            steps = len(next(iter(rows.values())))
            size = sum(x.nbytes for x in rows.values())
            if writer is not None and group_bytes + size > GROUP_BYTES:  # this file is full: the next one
                writer.close()
                _write_videos(tmp, group, frames, fps, write_mp4)
                group, writer, frames, group_bytes = group + 1, None, {}, 0
            task = _task_text(attrs, store.attrs)
            table, columns = plan.table(pa, rows, steps, fps, index, start, tasks.index(task))
            if writer is None:
                path = tmp / DATA_PATH.format(**_chunk_file(group))
                path.parent.mkdir(parents=True, exist_ok=True)
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table)
            meta = {"episode_index": index, "tasks": [task], "length": steps,
                    "data/chunk_index": _chunk_file(group)["chunk_index"],
                    "data/file_index": _chunk_file(group)["file_index"],
                    "dataset_from_index": start, "dataset_to_index": start + steps}
            for key, array in plan.videos.items():
                before = sum(len(f) for f in frames.get(key, []))
                frames.setdefault(key, []).append(plan.padded(rows[array]))
                meta.update({f"videos/{key}/chunk_index": _chunk_file(group)["chunk_index"],
                             f"videos/{key}/file_index": _chunk_file(group)["file_index"],
                             f"videos/{key}/from_timestamp": before / fps,
                             f"videos/{key}/to_timestamp": (before + steps) / fps})
                stats[key].append(_image_stats(rows[array]))
            for key, values in columns.items():
                stats[key].append(_stats(values))
            rows_meta.append((meta, json.dumps(attrs)))
            group_bytes += size
            start += steps
        writer.close()
        _write_videos(tmp, group, frames, fps, write_mp4)

        _write_episodes(pa, pq, tmp, rows_meta, stats)
        _write_tasks(pa, pq, tmp, tasks)
        dataset_stats = {key: {k: v.tolist() for k, v in _aggregate(s).items()} for key, s in stats.items()}
        (tmp / STATS_PATH).write_text(json.dumps(dataset_stats, indent=4))
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": None, "total_episodes": store.n_episodes,
                "total_frames": store.n_steps, "total_tasks": len(tasks), "chunks_size": CHUNKS_SIZE,
                "data_files_size_in_mb": DATA_FILES_MB, "video_files_size_in_mb": VIDEO_FILES_MB, "fps": fps,
                "splits": {"train": f"0:{store.n_episodes}"}, "data_path": DATA_PATH,
                "video_path": VIDEO_PATH if plan.videos else None, "features": plan.info_features(fps)}
        (tmp / INFO_PATH).write_text(json.dumps(info, indent=4))
        (tmp / ROBOIL_META).write_text(json.dumps(plan.roboil_meta(store, source), indent=1))
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cameras = f"{', '.join(plan.videos)} (H.264)" if plan.videos else "no cameras"
    state = f"{STATE} from {', '.join(plan.state_arrays)}" if plan.state_arrays else f"no {STATE}"
    return {"path": str(out), "episodes": store.n_episodes, "steps": store.n_steps, "fps": fps,
            "columns": list(plan.columns), "videos": list(plan.videos), "tasks": tasks,
            "line": f"{out}: LeRobot {CODEBASE_VERSION}, {store.n_episodes} episodes, {store.n_steps} frames at "
                    f"{fps} fps; {state}; {cameras}; tasks {', '.join(tasks)}"}


def _task_text(attrs: dict, store_attrs: dict) -> str:
    task = attrs.get("task") or store_attrs.get("task")
    return str(task) if task else "unknown"


class _ExportPlan:
    """Which LeRobot feature holds which store arrays."""

    def __init__(self, store: EpisodeStore):
        self.features = store.features
        self.columns: dict[str, list[str]] = {}  # parquet column -> the store arrays it holds, flattened
        self.videos: dict[str, str] = {}  # video key -> the store's camera array
        self.state_arrays = [k for k, f in store.features.items()
                             if k != ACTION and f.dtype == "float32" and not _is_camera(f)]
        if self.state_arrays:
            self.columns[STATE] = self.state_arrays
        for key, feature in store.features.items():
            if key == ACTION or key in self.state_arrays:
                continue
            if _is_camera(feature):
                name = IMAGES + (key[len(PIXELS_PREFIX):] if key.startswith(PIXELS_PREFIX) else key)
            else:
                name = f"observation.{key}"
            if name in self.columns or name in self.videos or name in DEFAULT_FEATURES:
                other = self.videos.get(name) or ", ".join(self.columns.get(name, [])) or "LeRobot's own column"
                raise RoboilError(f"store arrays '{key}' and '{other}' would both be LeRobot feature '{name}'; export "
                                  "a copy without one of them (roboil.store.copy_store)")
            if _is_camera(feature):
                self.videos[name] = key
            else:
                self.columns[name] = [key]
        if ACTION in store.features:
            self.columns[ACTION] = [ACTION]

    def width(self, key: str) -> int:
        return sum(math.prod(self.features[k].shape) for k in self.columns[key])

    def padded(self, frames: np.ndarray) -> np.ndarray:
        """Frames padded to even sizes with black, as write_mp4's encode pads them."""
        _, h, w, _ = frames.shape
        if h % 2 == 0 and w % 2 == 0:
            return frames
        return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))

    def table(self, pa, rows: dict, steps: int, fps, episode: int, start: int, task: int):
        """The episode's frames as a parquet table, and the values of each column as (T, D) for its stats."""
        values, arrays = {}, {}
        for key, parts in self.columns.items():
            x = np.concatenate([rows[k].reshape(steps, -1) for k in parts], axis=1)
            values[key] = x
            flat = pa.array(np.ascontiguousarray(x).ravel())
            # LeRobot keeps a (1,) feature as a scalar column, a (D,) one as a fixed-size list
            arrays[key] = flat if x.shape[1] == 1 else pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
        frame_index = np.arange(steps, dtype=np.int64)
        defaults = {"timestamp": (frame_index / fps).astype(np.float32), "frame_index": frame_index,
                    "episode_index": np.full(steps, episode, np.int64), "index": start + frame_index,
                    "task_index": np.full(steps, task, np.int64)}
        for key, x in defaults.items():
            arrays[key] = pa.array(x)
            values[key] = x.reshape(steps, 1)
        return pa.table(arrays), values

    def info_features(self, fps) -> dict:
        features = {}
        for key, parts in self.columns.items():
            dtype = self.features[parts[0]].dtype
            names = [f"{k}_{i}" if math.prod(self.features[k].shape) > 1 else k
                     for k in parts for i in range(math.prod(self.features[k].shape))]
            features[key] = {"dtype": dtype, "shape": [self.width(key)], "names": names}
        for key, array in self.videos.items():
            h, w, c = self.features[array].shape
            h, w = h + h % 2, w + w % 2
            features[key] = {"dtype": "video", "shape": [h, w, c], "names": ["height", "width", "channels"],
                             "info": {"video.height": h, "video.width": w, "video.codec": "h264",
                                      "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                                      "video.channels": c, "has_audio": False}}
        if ACTION in features:  # LeRobot's order: observations, then the action, then its own columns
            features[ACTION] = features.pop(ACTION)
        for key, dtype in DEFAULT_FEATURES.items():
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        return features

    def roboil_meta(self, store: EpisodeStore, source) -> dict:
        layouts = {k: array_layout(store.array(k)) for k in store.features}
        return {"format": EXPORT_FORMAT, "source": str(source),
                "features": {k: f.to_dict() for k, f in store.features.items()},
                "layouts": {k: dataclasses.asdict(lay) for k, lay in layouts.items()},
                "attrs": store.attrs, "columns": self.columns, "videos": self.videos}


def _write_videos(root: Path, group: int, frames: dict[str, list[np.ndarray]], fps, write_mp4) -> None:
    for key, parts in frames.items():
        path = root / VIDEO_PATH.format(video_key=key, **_chunk_file(group))
        write_mp4(path, list(np.concatenate(parts)), fps)


def _write_episodes(pa, pq, root: Path, rows: list[tuple[dict, str]], stats: dict[str, list[dict]]) -> None:
    columns: dict[str, list] = {key: [meta[key] for meta, _ in rows] for key in rows[0][0]}
    for key, per_episode in stats.items():
        for stat in per_episode[0]:
            columns[f"stats/{key}/{stat}"] = [s[stat].tolist() for s in per_episode]
    columns["meta/episodes/chunk_index"] = [0] * len(rows)
    columns["meta/episodes/file_index"] = [0] * len(rows)
    columns[ROBOIL_COLUMN] = [attrs for _, attrs in rows]
    path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: pa.array(v) for k, v in columns.items()}), path, compression="snappy")


def _write_tasks(pa, pq, root: Path, tasks: list[str]) -> None:
    """LeRobot reads tasks.parquet with pandas: the task texts are the index (task_index the column)."""
    index = "__index_level_0__"
    pandas = {"index_columns": [index],
              "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                                  "metadata": {"encoding": "UTF-8"}}],
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                           "numpy_type": "int64", "metadata": None},
                          {"name": None, "field_name": index, "pandas_type": "unicode", "numpy_type": "object",
                           "metadata": None}],
              "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0"}
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), index: pa.array(tasks, pa.string())})
    pq.write_table(table.replace_schema_metadata({"pandas": json.dumps(pandas)}), root / TASKS_PATH)


# ---- import ------------------------------------------------------------------------------------------------


def import_lerobot(path, out, obs_keys: list[str] | None = None) -> dict:
    """A new store ``out`` from the LeRobot v3.0 dataset directory ``path`` (``obs_keys``: only these of the
    store arrays it would make). A dataset that roboil exported gets its features, layouts and attrs back; any
    other is read as LeRobot writes it. The metadata is checked before the store is made; a failure while copying
    removes the partial store."""
    _pyarrow()
    path, out = Path(path), Path(out)
    if out.exists() and not empty_directory(out):
        raise RoboilError(f"'{out}' already exists; choose a new store path (import does not append)")
    dataset = _Dataset(path)
    plan = _ImportPlan(dataset, obs_keys)
    check_writable(out)
    store = EpisodeStore.create(out, plan.features, plan.layouts, plan.store_attrs)
    try:
        with _Videos(dataset) as videos:
            for episode in dataset.episodes:
                store.add_episode(*plan.read(episode, videos))
    except BaseException:
        store.discard()
        raise
    store.close()
    kept = ", ".join(k for k in plan.features if k != ACTION)
    left = f"; not kept: {', '.join(plan.left_out)}" if plan.left_out else ""
    task = plan.store_attrs.get("task")
    how = ("roboil attrs restored" if dataset.roboil else f"task '{task}'" if task
           else f"{len(plan.store_attrs['lerobot_tasks'])} task texts, so no store task")
    return {"store": str(out), "episodes": store.n_episodes, "steps": store.n_steps,
            "observations": [k for k in plan.features if k != ACTION], "restored": bool(dataset.roboil),
            "left_out": plan.left_out,
            "line": f"{out}: {store.n_episodes} episodes, {store.n_steps} steps from '{path}', observations {kept} "
                    f"({how}){left}"}


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise RoboilError(f"'{path}' is not readable JSON ({one_line(e)}); {what}")


class _Dataset:
    """A LeRobot v3.0 dataset's metadata, checked: one line naming the first problem, before anything is
    written."""

    def __init__(self, root: Path):
        pa, pq = _pyarrow()
        self.root = root
        if not root.exists():
            raise RoboilError(f"no LeRobot dataset at '{root}'; check the path")
        if not root.is_dir() or not (root / INFO_PATH).is_file():
            raise RoboilError(f"'{root}' is not a LeRobot dataset (no {INFO_PATH}); give the dataset's root "
                              "directory")
        info = _read_json(root / INFO_PATH, "give a LeRobot dataset")
        version = info.get("codebase_version") if isinstance(info, dict) else None
        if not isinstance(version, str):
            raise RoboilError(f"'{root / INFO_PATH}' names no codebase_version; give a LeRobot {CODEBASE_VERSION} "
                              "dataset")
        if not version.startswith("v3."):
            raise RoboilError(f"'{root}' is a LeRobot {version} dataset; this roboil reads {CODEBASE_VERSION}: "
                              "convert it with lerobot's convert_dataset_v21_to_v30 first")
        try:
            self.fps = float(info["fps"])
            self.features = {k: {**ft, "shape": tuple(ft["shape"])} for k, ft in info["features"].items()}
            self.data_path, self.video_path = str(info["data_path"]), info.get("video_path")
            self.total_episodes = int(info["total_episodes"])
            self.robot_type = info.get("robot_type")
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RoboilError(f"'{root / INFO_PATH}' is ill-formed (no {one_line(e)}); is this a LeRobot "
                              f"{CODEBASE_VERSION} dataset?")
        self.version = version
        self.video_keys = [k for k, ft in self.features.items() if ft.get("dtype") == "video"]
        if self.video_keys and not self.video_path:
            raise RoboilError(f"'{root / INFO_PATH}' has video features but no video_path")

        self.tasks = self._tasks(pa, pq)
        files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise RoboilError(f"'{root}' has no episode metadata (meta/episodes/chunk-*/file-*.parquet)")
        try:
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
        except (OSError, pa.ArrowException) as e:
            raise RoboilError(f"'{root}': meta/episodes is unreadable ({one_line(e)})")
        names = set(table.column_names)
        needed = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        needed += [f"videos/{k}/{c}" for k in self.video_keys for c in ("chunk_index", "file_index", "from_timestamp")]
        if missing := [c for c in needed if c not in names]:
            raise RoboilError(f"'{root}': meta/episodes lacks column '{missing[0]}'")
        keep = [c for c in table.column_names if not c.startswith("stats/")]
        self.episodes = sorted(table.select(keep).to_pylist(), key=lambda e: e["episode_index"])
        if not self.episodes:
            raise RoboilError(f"'{root}' holds no episodes; nothing to import")
        indices = [e["episode_index"] for e in self.episodes]
        if len(set(indices)) != len(indices):
            raise RoboilError(f"'{root}': meta/episodes lists an episode_index twice")
        for e in self.episodes:
            if not isinstance(e["length"], int) or e["length"] < 1:
                raise RoboilError(f"'{root}': episode {e['episode_index']} has length {e['length']}; remove it")
        self.roboil = self._roboil_meta()
        self._tables: dict[Path, object] = {}

    def _tasks(self, pa, pq) -> dict[int, str]:
        path = self.root / TASKS_PATH
        if not path.is_file():
            return {}
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise RoboilError(f"'{path}' is unreadable ({one_line(e)})")
        index = None
        if b"pandas" in (table.schema.metadata or {}):
            columns = json.loads(table.schema.metadata[b"pandas"]).get("index_columns", [])
            index = next((c for c in columns if isinstance(c, str)), None)
        text = "task" if "task" in table.column_names else index
        if "task_index" not in table.column_names or text not in table.column_names:
            raise RoboilError(f"'{path}' has no task texts with a task_index column")
        return dict(zip(table.column("task_index").to_pylist(), map(str, table.column(text).to_pylist())))

    def _roboil_meta(self) -> dict | None:
        path = self.root / ROBOIL_META
        if not path.is_file():
            return None
        meta = _read_json(path, f"remove {ROBOIL_META} to import the dataset as LeRobot wrote it")
        try:
            if meta["format"] != EXPORT_FORMAT:
                raise RoboilError(f"'{self.root}' was exported by a roboil with LeRobot export format "
                                  f"{meta['format']}; this roboil reads {EXPORT_FORMAT}: use a matching version")
            features = {k: Feature.from_dict(d) for k, d in meta["features"].items()}
            layouts = {k: ArrayLayout(**meta["layouts"][k]) for k in features}
            columns, videos = dict(meta["columns"]), dict(meta["videos"])
            if not isinstance(meta["attrs"], dict):
                raise KeyError("attrs")
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise RoboilError(f"'{path}' is ill-formed (no {one_line(e)}); remove it to import the dataset as "
                              "LeRobot wrote it")
        mapped = [k for parts in columns.values() for k in parts] + list(videos.values())
        absent = [k for k in [*columns, *videos] if k not in self.features]
        if absent or sorted(mapped) != sorted(features):
            raise RoboilError(f"'{path}' does not match {INFO_PATH} (the dataset was changed since roboil exported "
                              f"it{': no feature ' + repr(absent[0]) if absent else ''}); remove {ROBOIL_META} to "
                              "import it as LeRobot wrote it")
        return {**meta, "features": features, "layouts": layouts, "columns": columns, "videos": videos}

    def frames(self, episode: dict, columns: list[str]) -> dict:
        """The episode's rows of the data parquet, ``columns`` only, in frame order, as pyarrow arrays."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        index = episode["episode_index"]
        path = self.root / self.data_path.format(chunk_index=episode["data/chunk_index"],
                                                 file_index=episode["data/file_index"])
        if path not in self._tables:
            if not path.is_file():
                raise RoboilError(f"'{self.root}': episode {index}'s data file {path.relative_to(self.root)} is "
                                  "missing")
            try:
                self._tables = {path: pq.read_table(path)}  # episodes come in order: one file at a time
            except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise RoboilError(f"'{path}' is unreadable ({one_line(e)})")
        table = self._tables[path]
        if missing := [c for c in [*columns, "episode_index", "frame_index"] if c not in table.column_names]:
            raise RoboilError(f"'{path}' has no column '{missing[0]}' though {INFO_PATH} lists it")
        rows = table.filter(pc.equal(table.column("episode_index"), index))
        rows = rows.take(pc.sort_indices(rows.column("frame_index")))
        frame_index = rows.column("frame_index").to_numpy()
        if len(rows) != episode["length"] or not np.array_equal(frame_index, np.arange(episode["length"])):
            span = f" with frame_index {frame_index[0]}..{frame_index[-1]}" if len(rows) else ""
            raise RoboilError(f"'{path}': episode {index} has {len(rows)} rows{span}; meta/episodes says "
                              f"{episode['length']} from 0")
        return {c: rows.column(c).combine_chunks() for c in {*columns, "timestamp"} if c in rows.column_names}


def _numbers(column, steps: int, shape: tuple) -> np.ndarray:
    """A parquet column (scalars, fixed-size or plain lists of numbers, or nested lists) as (T, *shape)."""
    import pyarrow as pa

    flat = column
    while pa.types.is_fixed_size_list(flat.type) or pa.types.is_list(flat.type) or pa.types.is_large_list(flat.type):
        flat = flat.flatten()
    if isinstance(flat.type, pa.ExtensionType):  # datasets' Array2D..Array5D
        x = np.asarray(column.to_pylist())
    else:
        x = flat.to_numpy(zero_copy_only=False)
    if x.size != steps * math.prod(shape):
        raise ValueError(f"{x.size} values for {steps} rows of shape {shape}")
    return x.reshape(steps, *shape)


class _Videos:
    """Frames of the dataset's videos, each file read in one pass as long as its frames are asked for in order."""

    def __init__(self, dataset: _Dataset):
        self.dataset, self.open = dataset, {}  # video key -> [path, frame generator, (w, h), next index]

    def __enter__(self) -> "_Videos":
        return self

    def __exit__(self, *exc) -> None:
        for _, frames, _, _ in self.open.values():
            frames.close()

    def episode(self, key: str, episode: dict, timestamps: np.ndarray) -> np.ndarray:
        """The episode's frames (T, H, W, 3) of video ``key``: those shown at from_timestamp + timestamp."""
        import imageio_ffmpeg

        dataset = self.dataset
        path = dataset.root / dataset.video_path.format(video_key=key,
                                                        chunk_index=episode[f"videos/{key}/chunk_index"],
                                                        file_index=episode[f"videos/{key}/file_index"])
        fps = float(dataset.features[key].get("info", {}).get("video.fps") or dataset.fps)
        wanted = np.round((episode[f"videos/{key}/from_timestamp"] + timestamps.astype(np.float64)) * fps).astype(int)
        if np.any(np.diff(wanted) < 0) or wanted[0] < 0:
            raise RoboilError(f"'{dataset.root}': episode {episode['episode_index']}'s timestamps of {key} go back "
                              "in time")
        current = self.open.get(key)
        if current is None or current[0] != path or current[3] > wanted[0]:
            if current is not None:
                current[1].close()
            if not path.is_file():
                raise RoboilError(f"'{dataset.root}': episode {episode['episode_index']}'s video "
                                  f"{path.relative_to(dataset.root)} is missing")
            try:
                frames = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
                size = next(frames)["size"]
            except (OSError, RuntimeError, StopIteration) as e:
                raise RoboilError(f"'{path}' is not a readable video ({one_line(e)})")
            current = self.open[key] = [path, frames, size, 0]
        _, frames, (w, h), position = current
        out, last = [], None
        for index in wanted:
            while position <= index:
                try:
                    last = next(frames)
                except (StopIteration, RuntimeError):
                    raise RoboilError(f"'{path}' has {position} frames; episode {episode['episode_index']} needs "
                                      f"frame {index} (meta/episodes from_timestamp and the video disagree)")
                position += 1
            out.append(np.frombuffer(last, np.uint8).reshape(h, w, 3))
        current[3] = position
        return np.stack(out)


class _ImportPlan:
    """The store an import makes: its features, layouts and attrs, and how each episode's rows are read."""

    def __init__(self, dataset: _Dataset, obs_keys: list[str] | None):
        self.dataset = dataset
        self.left_out: list[str] = []
        if dataset.roboil:
            meta = dataset.roboil
            features, layouts = meta["features"], meta["layouts"]
            self.store_attrs = meta["attrs"]
        else:
            features, layouts = self._foreign()
            self.store_attrs = self._foreign_attrs()
        available = [k for k in features if k != ACTION]
        if obs_keys is not None:
            if unknown := [k for k in obs_keys if k not in available]:
                raise RoboilError(f"'{dataset.root}' has no observation '{unknown[0]}'; its observations (as store "
                                  f"arrays): {', '.join(available)}")
            self.left_out += [k for k in available if k not in obs_keys]
            available = list(dict.fromkeys(obs_keys))
        if not available:
            raise RoboilError(f"'{dataset.root}' has no observations roboil can store; nothing to import")
        keys = [*available, *([ACTION] if ACTION in features else [])]
        self.features = {k: features[k] for k in keys}
        self.layouts = {k: layouts[k] for k in keys}
        if dataset.roboil:  # parquet column -> [(store array, offset, size)] of the arrays kept
            self.columns, offset = {}, 0
            for column, parts in dataset.roboil["columns"].items():
                spans, offset = [], 0
                for key in parts:
                    size = math.prod(features[key].shape)
                    if key in self.features:
                        spans.append((key, offset, size))
                    offset += size
                if spans:
                    self.columns[column] = (offset, spans)
            self.videos = {k: a for k, a in dataset.roboil["videos"].items() if a in self.features}
        else:
            self.columns = {self.sources[a][0]: a for a in self.features if self.sources[a][1] != "video"}
            self.videos = {self.sources[a][0]: a for a in self.features if self.sources[a][1] == "video"}

    def _foreign(self) -> tuple[dict[str, Feature], dict[str, ArrayLayout]]:
        from ..plugins import registry
        from ..record import ACTION_LAYOUT

        dataset, reg = self.dataset, registry()
        features, layouts = {}, {}
        self.sources: dict[str, tuple[str, str]] = {}  # store array -> (LeRobot key, its dtype or "numbers")
        for key, ft in dataset.features.items():
            dtype, shape = ft.get("dtype"), tuple(ft.get("shape", ()))
            if key in DEFAULT_FEATURES:
                continue
            if dtype in ("video", "image"):
                names = ft.get("names") or []
                if len(shape) == 3 and names and names[0] in ("channel", "channels"):
                    shape = (shape[1], shape[2], shape[0])
                if len(shape) != 3 or shape[2] != 3 or ft.get("info", {}).get("video.is_depth_map"):
                    self.left_out.append(key)  # depth maps, grey or RGBA frames: the pixels kind holds RGB
                    continue
                name = key[len(IMAGES):] if key.startswith(IMAGES) else key.removeprefix("observation.")
                array, kind, feature = PIXELS_PREFIX + name.replace(".", "_"), dtype, Feature("pixels", shape, "uint8")
            elif not _numeric(dtype) or not shape:
                self.left_out.append(key)  # strings, ...
                continue
            elif key == ACTION:
                array, kind, feature = ACTION, "numbers", Feature(ACTION, shape, "float32")
            elif key.startswith("observation."):
                name = key[len("observation."):].replace(".", "_")
                array, kind, feature = name, "numbers", Feature("proprio", shape, "float32")
            else:  # next.reward, ...: neither observations nor actions (next.success and next.done: episode attrs)
                if key not in ("next.success", "next.done"):
                    self.left_out.append(key)
                continue
            if array in features:
                raise RoboilError(f"'{dataset.root}': features '{self.sources[array][0]}' and '{key}' would both be "
                                  f"stored as '{array}'; leave one out with --obs-keys")
            features[array] = feature
            if array == ACTION:
                layouts[array] = ACTION_LAYOUT
            else:
                params = reg.get("observation", feature.kind).params()
                layouts[array] = reg.call("observation", feature.kind, "layout", feature, params)
            self.sources[array] = (key, kind)
        return features, layouts

    def _foreign_attrs(self) -> dict:
        from ..plugins import registry

        dataset = self.dataset
        texts = list(dict.fromkeys(str(t) for e in dataset.episodes for t in e.get("tasks") or []))
        texts = texts or list(dataset.tasks.values())
        task = texts[0] if len(texts) == 1 else None
        attrs = {"task": task, "fps": dataset.fps, "source": "lerobot", "imported_from": str(dataset.root),
                 "lerobot_tasks": texts, "lerobot_robot_type": dataset.robot_type,
                 "lerobot_codebase_version": dataset.version}
        if task is None:
            attrs["note"] = (f"the dataset has {len(texts)} task texts, so the store names no task; training and "
                             "evaluation here need a registered roboil task")
        elif task not in registry().names("task"):
            attrs["note"] = (f"task '{task}' is LeRobot's task text, not a registered roboil task: training and "
                             "evaluation here need one")
        return attrs

    def read(self, episode: dict, videos: _Videos) -> tuple[dict[str, np.ndarray], dict]:
        """One episode's rows for the store and its attrs."""
        dataset, steps = self.dataset, episode["length"]
        extra = [c for c in ("next.success", "next.done", "task_index") if c in dataset.features]
        data = dataset.frames(episode, [*self.columns, *extra])
        out = {}
        try:
            for column, target in self.columns.items():
                if dataset.roboil:
                    width, spans = target
                    values = _numbers(data[column], steps, (width,))
                    for key, offset, size in spans:
                        f = self.features[key]
                        out[key] = values[:, offset:offset + size].reshape(steps, *f.shape).astype(f.dtype)
                elif self.sources[target][1] == "image":
                    out[target] = _images(data[column], self.features[target].shape)
                else:
                    f = self.features[target]
                    out[target] = _numbers(data[column], steps, f.shape).astype(f.dtype)
        except ValueError as e:
            raise RoboilError(f"'{dataset.root}': episode {episode['episode_index']}: {one_line(e)} (shapes in "
                              f"{INFO_PATH} and the data disagree)")
        # LeRobot writes frame_index / fps; a dataset without the column is read the same way
        timestamps = (data["timestamp"].to_numpy(zero_copy_only=False) if "timestamp" in data
                      else np.arange(steps) / dataset.fps)
        for key, array in self.videos.items():
            h, w, _ = self.features[array].shape
            frames = videos.episode(key, episode, timestamps)
            if frames.shape[1] < h or frames.shape[2] < w:
                raise RoboilError(f"'{dataset.root}': {key}'s video is {frames.shape[2]}x{frames.shape[1]}, "
                                  f"smaller than its feature's {w}x{h}")
            out[array] = np.ascontiguousarray(frames[:, :h, :w])
        return out, self._attrs(episode, data)

    def _attrs(self, episode: dict, data: dict) -> dict:
        dataset = self.dataset
        if dataset.roboil and episode.get(ROBOIL_COLUMN):
            try:
                attrs = json.loads(episode[ROBOIL_COLUMN])
            except ValueError as e:
                raise RoboilError(f"'{dataset.root}': episode {episode['episode_index']}'s roboil attrs are not JSON "
                                  f"({one_line(e)})")
            if isinstance(attrs, dict):
                return attrs
        tasks = [str(t) for t in episode.get("tasks") or []]
        if not tasks and "task_index" in data:
            tasks = [t for t in dict.fromkeys(dataset.tasks.get(i, "") for i in data["task_index"].to_pylist()) if t]
        attrs = {"task": tasks[0] if tasks else None, "seed": None, "source": "lerobot", "length": episode["length"],
                 "lerobot_episode_index": episode["episode_index"]}
        if len(tasks) > 1:
            attrs["tasks"] = tasks
        if "next.success" in data:
            attrs["success"] = bool(np.any(data["next.success"].to_numpy(zero_copy_only=False)))
        if "next.done" in data:
            attrs["terminated"] = bool(data["next.done"].to_numpy(zero_copy_only=False)[-1])
        return attrs


def _numeric(dtype) -> bool:
    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:
        return False


def _images(column, shape: tuple) -> np.ndarray:
    """An ``image`` column (PNG or JPEG bytes, as datasets' Image feature stores them) as (T, H, W, 3) RGB."""
    import cv2

    frames = []
    for cell in column.to_pylist():
        raw = cell.get("bytes") if isinstance(cell, dict) else None
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
        if image is None:
            raise ValueError("an image cell holds no decodable bytes")
        frames.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    x = np.stack(frames)
    if x.shape[1:] != shape:
        raise ValueError(f"images are {x.shape[1:]}, the feature says {shape}")
    return x
