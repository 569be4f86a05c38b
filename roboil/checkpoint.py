"""Checkpoints: safetensors weights and statistics plus the resolved config and a small JSON of metadata.
Loading one never executes code (no pickle): the model is rebuilt by its algorithm plugin from the config."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

import google_crc32c
import gymnasium as gym
import numpy as np
import torch
import yaml
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file as load_tensors, save_file as save_tensors

from .actions import ActionTransform, space_from_description
from .config import Config, named_section, to_dict, validate
from .errors import RoboilError, try_lock
from .plugins import registry
from .policy import BuildContext, PolicyModel, PolicyRunner
from .specs import Feature

MODEL_FILE = "model.safetensors"
STATS_FILE = "stats.safetensors"
CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
TRAINING_STATE_FILE = "training_state.pt"
# the files meta.json keeps a crc32c of: changed bytes in weights often still load (into NaN, or other numbers)
CHECKSUMMED = (MODEL_FILE, STATS_FILE, TRAINING_STATE_FILE)
METRICS_FILE = "metrics.jsonl"  # a run's, beside its checkpoints
RUN_LOCK = ".lock"  # held by the process training a run, so a second one into the same --out is refused
LAST_FILE = "last"  # names the newest complete checkpoint; written last, atomically
CHECKPOINTS = "checkpoints"
CHECKPOINT_NAME = re.compile(r"^step_\d{8,}$")  # step_{step:08d}: nine digits from step 100,000,000


def checkpoint_step(path: Path) -> int | None:
    """The training step of checkpoint directory ``path`` (None for another name)."""
    return int(path.name[len("step_"):]) if CHECKPOINT_NAME.match(path.name) else None


def pick_device(name: str, where: str) -> torch.device:
    """A usable torch device from ``auto``, ``cpu``, ``cuda``, ``cuda:1``...; ``where`` names the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RoboilError(f"{where}={name} is not a torch device; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise RoboilError(f"{where}={name}: roboil runs on cpu or cuda, not {device.type}; use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RoboilError(f"{where}={name} but no CUDA device is available; use {where}=cpu or auto")
    return device


def _sync(path: Path) -> None:
    """Flush a file, or a directory's entries (a rename), to the disk: what a power cut may not undo."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    """``path`` holds its old text or the new one, whenever the process or the machine stops (and whoever else
    writes it meanwhile: each writer has its own temporary file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        tmp.write_text(text)
        _sync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync(path.parent)


def flatten_stats(stats) -> dict[str, np.ndarray]:
    return {f"{key}/{name}": np.ascontiguousarray(value) for key, d in stats.items() for name, value in d.items()}


def unflatten_stats(flat) -> dict[str, dict[str, np.ndarray]]:
    stats: dict[str, dict[str, np.ndarray]] = {}
    for name, value in flat.items():
        key, _, stat = name.rpartition("/")
        stats.setdefault(key, {})[stat] = value
    return stats


def save_checkpoint(run_dir: Path, step: int, model: PolicyModel, stats, config: Config, meta: dict,
                    training_state: dict) -> Path:
    """Write ``run_dir/checkpoints/step_N`` and point ``last`` at it once it is complete.

    The files are written into ``step_N.partial`` and renamed when all are there; a write that fails (a full
    disk) removes the partial directory, so the previous checkpoint stays the one to resume from.
    """
    root = run_dir / CHECKPOINTS
    path = root / f"step_{step:08d}"
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        state = {k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
                 for k, v in model.state_dict().items()}
        save_tensors(state, partial / MODEL_FILE)
        save_numpy(flatten_stats(stats), partial / STATS_FILE)
        # json round trip turns tuples into lists so the YAML stays plain
        (partial / CONFIG_FILE).write_text(yaml.safe_dump(json.loads(json.dumps(to_dict(config))), sort_keys=False))
        torch.save(training_state, partial / TRAINING_STATE_FILE)  # for resuming; read back with weights_only=True
        checksums = {name: file_checksum(partial / name) for name in CHECKSUMMED}
        (partial / META_FILE).write_text(json.dumps({**meta, "step": step, "checksums": checksums}, indent=2))
        for written in [*partial.iterdir(), partial]:  # the files, and the directory's entries for them
            _sync(written)
        shutil.rmtree(path, ignore_errors=True)  # a step saved again (the run re-ended at its last step)
        partial.rename(path)
        write_text_atomic(root / LAST_FILE, path.name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    # Only the newest checkpoint is resumed from: older ones keep their weights (to evaluate or compare), not the
    # training state, 3-4x the weights' size (the weights, Adam's two moments, an EMA). Removed once the new
    # checkpoint and `last` are on the disk, so a kill or a power cut leaves an extra file at worst.
    for older in root.iterdir():
        if older != path and CHECKPOINT_NAME.match(older.name):
            (older / TRAINING_STATE_FILE).unlink(missing_ok=True)
    return path


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint ``last`` names (without it, the newest step_N), always inside this run; None for a run
    without checkpoints."""
    root = run_dir / CHECKPOINTS
    last = root / LAST_FILE
    if not root.exists():
        return None
    if not last.is_file():
        # killed between the first checkpoint's rename and `last` (a step_N directory is complete once named so),
        # or before any checkpoint completed: nothing to resume
        steps = [p for p in root.iterdir() if CHECKPOINT_NAME.match(p.name) and p.is_dir()]
        return max(steps, key=checkpoint_step, default=None)
    name = last.read_text().strip()
    if not CHECKPOINT_NAME.match(name) or not (root / name).is_dir():
        raise RoboilError(f"'{last}' names {name!r}, not a checkpoint of this run; write the name of a step_N "
                          f"directory under {root} into it")
    return root / name


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory (its newest checkpoint) or a checkpoint directory itself."""
    path = Path(path)
    if not path.exists():
        raise RoboilError(f"no run directory '{path}'; pass the --out directory of 'roboil train'")
    if (path / MODEL_FILE).is_file():
        return path
    if path.name == CHECKPOINTS:
        path = path.parent  # RUN/checkpoints: the run
    if CHECKPOINT_NAME.match(path.name):
        latest = path
    elif (latest := latest_checkpoint(path)) is None:
        if _being_trained(path):
            raise RoboilError(f"run '{path}' has no checkpoint yet: it is training, and saves one every "
                              "train.checkpoint_every steps and at its end; wait for one")
        if (path / CHECKPOINTS).is_dir() or (path / METRICS_FILE).is_file():
            raise RoboilError(f"run '{path}' has no checkpoint: its training stopped before saving one; train it "
                              "again")
        raise RoboilError(f"'{path}' holds no checkpoint; pass the --out directory of 'roboil train'")
    if not (latest / MODEL_FILE).is_file():
        earlier = sorted((p for p in latest.parent.iterdir() if CHECKPOINT_NAME.match(p.name) and (p / MODEL_FILE)
                          .is_file() and checkpoint_step(p) < checkpoint_step(latest)), key=checkpoint_step)
        other = f"pass an earlier one ({earlier[-1]})" if earlier else "train again"
        raise RoboilError(f"checkpoint file '{latest / MODEL_FILE}' is missing; restore it, or {other}")
    return latest


def _being_trained(run: Path) -> bool:
    """Whether a process holds the run's lock (see :func:`roboil.errors.claim_directory`)."""
    if not (run / RUN_LOCK).is_file():
        return False
    try:
        fd = try_lock(run / RUN_LOCK)
    except OSError:  # no locks here: nothing tells
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


def build_model(config: Config, features: dict[str, Feature], action_dim: int, stats,
                action_space: gym.Space | None = None) -> PolicyModel:
    """Ask the algorithm plugin to build its model for these features (used by training and loading)."""
    from .encoders import make_encoder_factory

    reg = registry()
    spec = reg.get("algorithm", config.algorithm_name)
    context = BuildContext(
        config=config.algorithm_params, features=features, action_dim=action_dim, stats=stats,
        task=reg.get("task", config.task), make_encoder=make_encoder_factory(features, config.encoder_params, stats),
        action_space=action_space,
    )
    model = reg.call("algorithm", spec.name, "build", context)  # a plugin's exception names the plugin
    if not isinstance(model, PolicyModel):
        raise RoboilError(f"algorithm '{spec.name}' built a {type(model).__name__}, not a roboil PolicyModel")
    return model


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[PolicyModel, Config, dict]:
    """Rebuild the model of a checkpoint and load its weights; returns (model, config, meta)."""
    ckpt = resolve_checkpoint(path)
    meta, features, action_dim = read_checkpoint_file(ckpt / META_FILE, _read_meta)
    raw = read_checkpoint_file(ckpt / CONFIG_FILE, lambda p: dict(yaml.safe_load(p.read_text())))
    trained = ", ".join(f"{name} {version}" for name, version in meta.get("plugins", {}).items())
    install = f"install the plugins it was trained with{f' ({trained})' if trained else ''}, or train again"
    try:
        config = validate(raw)
    except RoboilError as e:  # a plugin changed (or is gone) since the run was trained
        raise RoboilError(f"checkpoint '{ckpt}' was trained with a config the installed plugins do not take ({e}); "
                          f"{install}") from None
    if missing := sorted({f.kind for f in features.values()} - set(registry().names("observation"))):
        raise RoboilError(f"checkpoint '{ckpt}' reads observations of kind '{missing[0]}', which no installed plugin "
                          f"provides; {install}")
    stats = read_checkpoint_file(ckpt / STATS_FILE, lambda p: unflatten_stats(load_numpy(p)), meta=meta)
    model = build_model(config, features, action_dim, stats, space_from_description(meta.get("action_space")))
    weights = read_checkpoint_file(ckpt / MODEL_FILE, load_tensors, meta=meta)
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise RoboilError(f"the weights in '{ckpt / MODEL_FILE}' do not fit the model its config builds (saved by "
                          "another version of the algorithm's plugin?); train the run again") from None
    return model.to(device).eval(), config, meta


def _read_meta(path: Path) -> tuple[dict, dict[str, Feature], int]:
    meta = json.loads(path.read_text())
    return meta, {k: Feature.from_dict(v) for k, v in meta["features"].items()}, int(meta["action_dim"])


def file_checksum(path: Path) -> str:
    """The crc32c of a file's bytes, as meta.json keeps it for each of :data:`CHECKSUMMED`."""
    crc = 0
    with open(path, "rb") as file:
        while block := file.read(16 << 20):
            crc = google_crc32c.extend(crc, block)
    return f"crc32c:{crc:08x}"


def read_checkpoint_file(path: Path, read: Callable[[Path], Any], fix: str = "restore it, or pass another checkpoint",
                         meta: dict | None = None) -> Any:
    """``read(path)``, with a missing or damaged file (truncated, edited, not UTF-8, or its bytes other than the
    checksum ``meta`` keeps of it) as one line naming it."""
    if not path.is_file():
        raise RoboilError(f"checkpoint file '{path}' is missing; {fix}")
    expected = (meta or {}).get("checksums", {}).get(path.name)  # checkpoints of older roboil keep none
    if expected is not None and file_checksum(path) != expected:
        raise RoboilError(f"checkpoint file '{path}' is damaged (its bytes changed since it was saved: its crc32c "
                          f"differs from meta.json's); {fix}")
    try:
        return read(path)
    except RoboilError:
        raise
    except Exception as exc:
        raise RoboilError(f"checkpoint file '{path}' is damaged ({type(exc).__name__}); {fix}") from None


def chosen_executor(config: Config, executor: dict | None) -> tuple[Any, Any]:
    """The executor a run is evaluated with, as (its registered record, its params with every default filled in):
    params without a name tune the run's own ``eval.executor``; a new name starts from that executor's defaults."""
    section = executor if executor and "name" in executor else {**config.eval.executor, **(executor or {})}
    return named_section("executor", section, "executor")


def load_runner(path: str | Path, executor: dict | None = None, device: str | torch.device = "cpu"
                ) -> tuple[PolicyRunner, Config, dict]:
    """A checkpoint ready to act: its model, the chosen executor (``{"name": ..., **params}``, or params alone
    for the run's ``eval.executor``) and the action transform it was trained with. Returns (runner, config, meta)."""
    device = pick_device(str(device), "--torch-device")
    model, config, meta = load_policy(path, device)
    return make_runner(model, meta, *chosen_executor(config, executor), device), config, meta


def make_runner(model: PolicyModel, meta: dict, executor_spec, executor_params, device: torch.device) -> PolicyRunner:
    """A loaded checkpoint's model with an executor (from :func:`chosen_executor`) and its action transform."""
    return PolicyRunner(model, executor_spec.make(executor_params, model),
                        ActionTransform.from_meta(meta.get("action_transform")), device, meta.get("action_dim"),
                        {key: tuple(feature["shape"]) for key, feature in meta["features"].items()})
