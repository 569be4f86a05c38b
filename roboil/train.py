"""The training loop shared by every algorithm: data from the store, the plugin's model, AdamW with warmup
and cosine decay, optional EMA, bf16 autocast on CUDA, metrics as JSON lines, checkpoints and resume."""

from __future__ import annotations

import copy
import json
import math
import queue
import random
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import build_model, latest_checkpoint, save_checkpoint
from .config import Config
from .errors import RoboilError
from .plugins import registry
from .policy import ACTION, PolicyModel
from .sampler import WindowSampler, compute_stats
from .store import EpisodeStore

METRICS_FILE = "metrics.jsonl"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RoboilError(f"train.device={name} but no CUDA device is available; use train.device=cpu or auto")
    return torch.device(name)


class TrainingData:
    """The episodes a run trains on: the arrays (in RAM when they fit), the features and the statistics."""

    def __init__(self, config: Config):
        path = config.data.path
        if not path:
            raise RoboilError("config key 'data.path' is required: the episode store to train on (data.path=STORE)")
        store = EpisodeStore.open(path)
        if store.attrs.get("task") != config.task:
            raise RoboilError(f"store '{path}' was recorded for task '{store.attrs.get('task')}', "
                              f"but the config trains '{config.task}'; set task= or data.path= to match")
        attrs = store.episode_attrs()
        keep = [i for i, a in enumerate(attrs) if a.get("success", True) or not config.data.only_success]
        if not keep:
            raise RoboilError(f"store '{path}' has no {'successful ' if config.data.only_success else ''}episodes "
                              "to train on; record some, or set data.only_success=false")
        obs_keys = [k for k in store.features if k != ACTION]
        chosen = config.data.obs_keys if config.data.obs_keys is not None else obs_keys
        unknown = [k for k in chosen if k not in obs_keys]
        if unknown:
            raise RoboilError(f"data.obs_keys names '{unknown[0]}', not in store '{path}'; valid: {', '.join(obs_keys)}")
        self.store = store
        self.episodes = np.asarray(keep)
        self.features = {k: store.features[k] for k in chosen}
        self.action_dim = int(np.prod(store.features[ACTION].shape))
        keys = [*chosen, ACTION]
        size = sum(store.array(k).nbytes for k in keys)
        self.arrays = store.load(keys) if size <= config.data.cache_max_gb * 2**30 else {k: store.array(k) for k in keys}
        ends = store.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        self.rows = np.concatenate([np.arange(starts[i], ends[i]) for i in keep])
        reference = config.data.action_relative_to
        if reference is not None:
            if reference not in chosen:
                raise RoboilError(f"data.action_relative_to names '{reference}', which the policy does not read; "
                                  f"use one of data.obs_keys: {', '.join(chosen)}")
            if store.features[reference].shape != store.features[ACTION].shape:
                raise RoboilError(f"data.action_relative_to: '{reference}' has shape {store.features[reference].shape} "
                                  f"but actions have {store.features[ACTION].shape}; name a key shaped like the action")
            # actions are low-dimensional: hold the offsets in RAM even when the rest stays on disk
            offsets = np.asarray(self.arrays[ACTION][:], np.float32) - np.asarray(self.arrays[reference][:], np.float32)
            self.arrays = {**self.arrays, ACTION: offsets}
        reg = registry()
        normalized = [k for k in chosen if reg.get("observation", self.features[k].kind).normalize]
        self.stats = compute_stats(self.arrays, self.rows, [*normalized, ACTION])

    def sampler(self, model: PolicyModel, seed: int) -> WindowSampler:
        return WindowSampler(self.arrays, self.store.episode_ends, self.episodes, list(self.features),
                             model.n_obs_steps, model.horizon, model.future_keys, seed=seed)


def prefetch(sampler: WindowSampler, batch_size: int, device: torch.device, depth: int = 3):
    """Yield torch batches built by a background thread (pinned for an asynchronous copy on CUDA)."""
    pin = device.type == "cuda"
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            while not stop.is_set():
                batch = {k: torch.from_numpy(v) for k, v in sampler.sample(batch_size).items()}
                out.put({k: v.pin_memory() for k, v in batch.items()} if pin else batch)
        except Exception as exc:  # hand the error to the training loop instead of leaving it waiting
            out.put(exc)

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            batch = out.get()
            if isinstance(batch, Exception):
                raise batch
            yield {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    finally:
        stop.set()


def lr_factor(step: int, config: Config) -> float:
    warmup = config.train.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if config.train.lr_schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, config.train.steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(config: Config, out_dir: str | Path, progress: bool = True) -> Path:
    """Train (or resume) a run in ``out_dir``; returns the final checkpoint directory."""
    out_dir = Path(out_dir)
    hook = registry().hook
    seed_everything(config.train.seed)
    device = pick_device(config.train.device)
    data = TrainingData(config)
    model = build_model(config, data.features, data.action_dim, data.stats).to(device)
    ema = copy.deepcopy(model).requires_grad_(False) if config.train.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay,
                                  fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    step = 0
    resume = latest_checkpoint(out_dir)
    if resume is not None and (resume / "training_state.pt").is_file():
        state = torch.load(resume / "training_state.pt", map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        if step >= config.train.steps:
            return resume
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"features": {k: f.to_dict() for k, f in data.features.items()}, "action_dim": data.action_dim,
            "task": config.task, "observations": data.store.attrs.get("observations", {}),
            "store": str(config.data.path), "train_episodes": len(data.episodes)}
    # a fresh sampler seed after a resume, so the resumed run does not replay the batches it already saw
    batches = prefetch(data.sampler(model, config.train.seed + step), config.train.batch_size, device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and config.train.amp)
    step_fn = torch.compile(model.compute_loss) if config.train.compile else model.compute_loss
    started = time.time()
    bar = tqdm(total=config.train.steps, initial=step, desc=f"train {config.algorithm_name}", disable=not progress)
    checkpoint = resume
    with open(out_dir / METRICS_FILE, "a") as metrics_file:
        model.train()
        while step < config.train.steps:
            batch = next(batches)
            with autocast:
                loss, metrics = step_fn(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.train.grad_clip > 0:
                metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip))
            optimizer.step()
            scheduler.step()
            step += 1
            if ema is not None:
                update_ema(ema, model, config.train.ema_decay, step)
            metrics = {**metrics, "lr": scheduler.get_last_lr()[0]}
            hook.on_train_step_end(step=step, metrics=metrics)
            if step % config.train.log_every == 0 or step == config.train.steps:
                record = {"step": step, "time": round(time.time() - started, 3), **metrics}
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4f}")
            bar.update(1)
            if step % config.train.checkpoint_every == 0 or step == config.train.steps:
                state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "step": step, "torch_rng": torch.get_rng_state()}
                if ema is not None:
                    state["ema"] = ema.state_dict()
                checkpoint = save_checkpoint(out_dir, step, ema or model, data.stats, config,
                                             {**meta, "train_seconds": round(time.time() - started, 1)}, state)
                hook.on_checkpoint_saved(path=checkpoint, step=step)
    bar.close()
    return checkpoint


@torch.no_grad()
def update_ema(ema: PolicyModel, model: PolicyModel, decay: float, step: int) -> None:
    """EMA with warm-up (decay grows from 0 toward ``decay``), so early averages forget the random init."""
    rate = min(decay, 1 - (1 + step) ** -0.75)
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - rate)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
