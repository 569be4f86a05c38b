"""Training: the context the core hands every algorithm, and the offline loop offline algorithms keep using.

An algorithm that owns its loop (``AlgorithmSpec.train``: online imitation, RL fine-tuning, DAgger) receives
a :class:`TrainContext`; every other algorithm is trained by :func:`fit_offline` on windows of the store:
AdamW over the model's parameter groups with warmup and cosine decay, optional EMA, bf16 autocast on CUDA.
Both write ``metrics.jsonl`` and checkpoints the same way, and resume bit-exactly from the last checkpoint.
"""

from __future__ import annotations

import collections.abc
import contextlib
import copy
import dataclasses
import functools
import io
import json
import math
import random
import shutil
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import gymnasium as gym
import numpy as np
import torch
import yaml

from . import distributed
from .actions import ActionTransform, describe_space
from .checkpoint import (CHECKPOINTS, CONFIG_FILE, META_FILE, METRICS_FILE, RUN_LOCK, TRAINING_STATE_FILE,
                         build_model, latest_checkpoint, pick_device, read_checkpoint_file, save_checkpoint,
                         write_text_atomic)
from .config import Config, to_dict
from .distributed import Ranks, launched_ranks
from .envs import ObservedEnv
from .errors import (RoboilError, check_writable, claim_directory, interrupted, interrupts_deferred,
                     leave_stops_to_the_main_process, one_line)
from .keys import ACTION
from .loader import batches as load_batches
from .plugins import PluginError, registry
from .policy import PolicyModel
from .progress import progress_bar
from .rows import RowReader
from .sampler import WindowSampler, compute_stats
from .specs import RESUMABLE, Feature
from .store import EpisodeStore

INTERRUPT_NOTICE = ("roboil: Ctrl-C: saving at the end of this step, then stopping (Ctrl-C again stops at once, "
                    "unsaved)")
# sections a resumed run may not change (but for parameters marked roboil.resumable): they define the model and the
# data it learns from
FROZEN_ON_RESUME = ("task", "algorithm", "data", "encoders")


class TrainingData:
    """The episodes a run trains on: the arrays (in RAM when they fit, actions encoded by the run's action
    transform), the features and the statistics. With ``actions=False`` a store of observations only is
    accepted too (``action_dim`` is then None when it has none); with ``actions=True`` such a store is refused."""

    def __init__(self, config: Config, actions: bool = True):
        path = config.data.path
        if not path:
            raise RoboilError("config key 'data.path' is required: the episode store to train on (data.path=STORE)")
        store = EpisodeStore.open(path, require_healthy=True)
        if store.attrs.get("task") != config.task:
            raise RoboilError(f"store '{path}' was recorded for task '{store.attrs.get('task')}', "
                              f"but the config trains '{config.task}'; set task= or data.path= to match")
        has_actions = ACTION in store.features
        if actions and not has_actions:
            raise RoboilError(f"store '{path}' holds observations only (no actions); algorithm "
                              f"'{config.algorithm_name}' as configured learns from actions: train on a store "
                              "recorded with actions, or configure it to learn from states alone")
        attrs = store.episode_attrs()
        keep = [i for i, a in enumerate(attrs) if a.get("success", True) or not config.data.only_success]
        if not keep:
            only = config.data.only_success and bool(attrs)  # an empty store: no setting helps
            raise RoboilError(f"store '{path}' has no {'successful ' if only else ''}episodes to train on; record some"
                              f"{', or set data.only_success=false' if only else ''}")
        if dropped := len(attrs) - len(keep):  # said, not silent: a plugin author's own task may fail often
            print(f"roboil: training on {len(keep)} of {len(attrs)} episodes: data.only_success leaves out the "
                  f"{dropped} without success (data.only_success=false keeps them)", file=sys.stderr)
        obs_keys = [k for k in store.features if k != ACTION]
        chosen = config.data.obs_keys if config.data.obs_keys is not None else obs_keys
        unknown = [k for k in chosen if k not in obs_keys]
        if unknown:
            raise RoboilError(f"data.obs_keys names '{unknown[0]}', not in store '{path}'; valid: {', '.join(obs_keys)}")
        self.store = store
        self.episodes = np.asarray(keep)
        # whether each kept episode ended in a terminal state (stores recorded before this was kept: not)
        self.terminated = np.asarray([bool(attrs[i].get("terminated", False)) for i in keep])
        self.features = {k: store.features[k] for k in chosen}
        self.action_dim = int(np.prod(store.features[ACTION].shape)) if has_actions else None
        self.transform = ActionTransform(config.data.action_relative_to)
        if has_actions:
            self.transform.check(self.features, store.features[ACTION])
        keys = [*chosen, ACTION] if has_actions else list(chosen)
        # RAM for the arrays that fit data.cache_max_gb, smallest first: state and actions long before cameras.
        # What is loaded has every episode's checksums verified (arrays read from disk get the cheap check only).
        budget, cached = config.data.cache_max_gb * 2**30, []
        for key in sorted(keys, key=lambda k: store.array(k).nbytes):
            budget -= store.array(key).nbytes
            if budget < 0:
                break
            cached.append(key)
        loaded = store.load(cached, verify=True)
        self.in_ram = len(cached) == len(keys)
        self.arrays = {k: loaded[k] if k in loaded else RowReader(store.array(k), store.path / "data" / k)
                       for k in keys}
        if has_actions and self.transform.relative_to is not None:
            # actions are low-dimensional: hold the encoded ones in RAM even when the rest stays on disk
            reference = self.transform.relative_to
            whole = {k: loaded[k] if k in loaded else store.array(k)[:store.n_steps] for k in (ACTION, reference)}
            encoded = self.transform.encode(whole[ACTION], {reference: whole[reference]})
            self.arrays = {**self.arrays, ACTION: encoded}
        ends = store.episode_ends
        starts = np.concatenate([[0], ends[:-1]])
        self.rows = np.concatenate([np.arange(starts[i], ends[i]) for i in keep])
        reg = registry()
        normalized = [k for k in chosen if reg.get("observation", self.features[k].kind).normalization != "none"]
        self.stats = compute_stats(self.arrays, self.rows, normalized + ([ACTION] if has_actions else []))

    def sampler(self, model: PolicyModel, seed: int) -> WindowSampler:
        return WindowSampler(self.arrays, self.store.episode_ends, self.episodes, list(self.features),
                             model.n_obs_steps, model.horizon, model.future_keys, model.next_keys, seed=seed)


def random_states() -> dict:
    """Every generator a run draws from, so a resumed run continues exactly where it stopped."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    # plain values: the state file is read back with torch.load(weights_only=True), which refuses numpy arrays
    states = {"torch": torch.get_rng_state(), "numpy": [name, keys.tolist(), position, has_gauss, gauss],
              "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: Mapping) -> None:
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class TrainContext:
    """What the core hands an algorithm's training loop.

    - ``config`` (its ``algorithm_params`` typed), ``run_dir``, ``device``, ``autocast()`` (bf16 on CUDA when
      ``train.amp``), ``hook`` (the plugin hooks), ``ranks`` (this process among those torchrun launched; see
      :mod:`roboil.distributed`: only the offline loop trains on several processes today).
    - ``demonstrations``: the :class:`TrainingData` of ``data.path`` (loaded on first use);
      ``load_demonstrations(actions=False)`` also accepts a store of observations only (for algorithms that
      learn from states alone).
    - ``make_envs(n)``: a vector of ``n`` task environments observed through the observation plugins, with
      the observations the demonstrations were recorded with (the task's defaults without a store);
      ``observation_features()`` names their arrays and ``action_space`` is the task's (Box or Discrete).
    - ``build_policy(features, action_dim, stats)``: the algorithm's own PolicyModel, as checkpoints rebuild it
      (its BuildContext carries the task's ``action_space``).
    - ``log(step, metrics)``: metrics may stay tensors; they become floats only when written or hooked.
    - ``save_checkpoint(step, model, state)``: weights + statistics + config (what ``roboil eval`` loads)
      and ``state`` (tensors and plain values, given back by ``resume()``) with every random state.
    - ``start_step``: where a resumed run continues (0 for a new run); ``resume()``: the ``state`` of the
      checkpoint it continues from (None for a new run), and every random generator set back to where it
      was then. Call it once, after building the models (their initialization draws random numbers).
    - ``should_checkpoint(step)``: ask it every step and save when it says so. After a Ctrl-C it says so at once,
      and that ``save_checkpoint`` ends the run (KeyboardInterrupt), so the same command resumes from that step.
    """

    def __init__(self, config: Config, run_dir: Path, progress: bool = True, ranks: Ranks = Ranks()):
        self.config = config
        self.run_dir = run_dir
        self.ranks = ranks
        self.device = distributed.start(ranks, pick_device(config.train.device, "train.device"))
        self.hook = registry().hook
        self.progress = progress and ranks.main
        self.start_step, self._saved = 0, None
        self._saved_store: tuple[int, int] | None = None  # (episodes, steps) of the store a resumed run trained on
        self.resumes: list[dict] = []
        self._built: tuple | None = None
        self._data: TrainingData | None = None
        self._state_checked = False
        self.saves_on_interrupt = False  # an algorithm's own loop: Ctrl-C makes the next checkpoint its last
        self._started = time.time()
        self._step_hooked = bool(self.hook.on_train_step_end.get_hookimpls())
        resume = latest_checkpoint(run_dir)
        if resume is not None:
            self._resume_from(resume)
        else:  # a run that stopped before its first checkpoint starts over: its metrics too
            self._trim_metrics(0)

    def _resume_from(self, checkpoint: Path) -> None:
        fix = "restore it, or train into a new --out directory"
        saved = read_checkpoint_file(checkpoint / CONFIG_FILE, lambda p: dict(yaml.safe_load(p.read_text())), fix)
        meta = read_checkpoint_file(checkpoint / META_FILE, lambda p: json.loads(p.read_text()), fix)
        before, after = flatten(saved), flatten(to_dict(self.config))
        moved = False  # the same episodes at another path (copied to another disk or machine)
        if "store_steps" in meta:  # (checkpoints of older roboil do not say)
            self._saved_store = (meta["store_episodes"], meta["store_steps"])
            if after.get("data.path") and Path(after["data.path"]).resolve() == Path(meta["store"]):
                after["data.path"] = before.get("data.path")  # the same store, named from elsewhere
            elif after.get("data.path") != before.get("data.path") and "store_fingerprint" in meta:
                moved = _fingerprint_at(after.get("data.path")) == meta["store_fingerprint"]
        changes = {k: [before.get(k), after.get(k)] for k in sorted(before.keys() | after.keys())
                   if before.get(k) != after.get(k)}
        resumable = self._resumable_keys()
        frozen = [k for k in changes if k.split(".")[0] in FROZEN_ON_RESUME and ".".join(k.split(".")[:2])
                  not in resumable]
        if changed := [k for k in frozen if not (moved and k == "data.path")]:
            shown = ["algorithm.name"] if "algorithm.name" in changed else changed[:3]  # another algorithm: the rest
            said = "; ".join(f"{k}: {changes[k][0]} -> {changes[k][1]}" for k in shown)  # of its section follows
            more = f" and {len(changed) - 3} more" if len(shown) == 3 < len(changed) else ""
            why = ("the algorithm's settings define the model and how it learns, so they stay as the run began"
                   + (f", but for {', '.join(sorted(resumable))}" if resumable else "")
                   if all(k.startswith("algorithm.") for k in changed) and "algorithm.name" not in changed
                   else "the model or its data would change")
            raise RoboilError(f"cannot resume '{self.run_dir}' with a changed {said}{more} ({why}); undo the change, "
                              "or train into a new --out directory")
        if self._saved_store is not None and self.config.data.path:  # before loading it all, or saying resumed
            store = EpisodeStore.open(self.config.data.path)
            if (now := (store.n_episodes, store.n_steps)) != self._saved_store:
                raise RoboilError(
                    f"store '{self.config.data.path}' has {now[0]} episodes ({now[1]} steps), the run being "
                    f"resumed trained on {self._saved_store[0]} ({self._saved_store[1]}): its statistics and "
                    "windows would change; resume with the store as it was, or train into a new --out directory")
        state = read_checkpoint_file(checkpoint / TRAINING_STATE_FILE,
                                     lambda p: torch.load(p, map_location="cpu", weights_only=True), fix, meta)
        self.start_step = int(state["step"])
        self._saved = state
        self._trim_metrics(self.start_step)
        self._started -= meta.get("train_seconds", 0.0)  # the run's time goes on from where it was
        # allowed changes (train, eval) are kept with the step they took effect at, in every later checkpoint
        self.resumes = meta.get("resumes", []) + [{"step": self.start_step, "changed": changes}]
        if self.ranks.main and self.start_step >= self.config.train.steps:
            print(f"roboil: '{self.run_dir}' has trained {self.start_step} steps already (train.steps="
                  f"{self.config.train.steps}): nothing to train; a larger train.steps trains on", file=sys.stderr)
        elif self.ranks.main:
            print(f"roboil: resumed from step {self.start_step} of {checkpoint}"
                  + "".join(f"; {key}: {old} -> {new}" for key, (old, new) in changes.items()), file=sys.stderr)

    def _resumable_keys(self) -> set[str]:
        """The algorithm's parameters marked :func:`roboil.resumable`, as ``algorithm.<name>`` keys."""
        return {f"algorithm.{f.name}" for f in dataclasses.fields(self.config.algorithm_params)
                if f.metadata.get(RESUMABLE)}

    def resume(self) -> dict | None:
        rank, size = self.ranks.rank, self.ranks.size
        if self._saved is None:
            if rank:  # the models are built alike everywhere; from here on each process draws its own numbers
                seed_everything(int(np.random.SeedSequence([self.config.train.seed, rank]).generate_state(1)[0]))
            return None
        saved = self._saved["random"]
        per_rank = saved if isinstance(saved, list) else [saved]  # a dict: saved by one process (older roboil)
        if len(per_rank) == size:
            restore_random_states(per_rank[rank])
        else:
            restore_random_states(per_rank[0])
            if rank:
                seed_everything(int(np.random.SeedSequence([self.config.train.seed, rank, self.start_step])
                                    .generate_state(1)[0]))
            if self.ranks.main and size > 1:
                print(f"roboil: the checkpoint was saved by {len(per_rank)} processes and this run has {size}: "
                      "processes 1 and up draw new random numbers (the same steps as an uninterrupted run, not "
                      "the same numbers)", file=sys.stderr)
        return self._saved["algorithm"]

    def _trim_metrics(self, step: int) -> None:
        """Drop metrics logged after the checkpoint: the resumed run logs those steps again."""
        path = self.run_dir / METRICS_FILE
        if not self.ranks.main or not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines(keepends=True) if _logged_step(line) <= step]
        write_text_atomic(path, "".join(kept))

    @cached_property
    def bar(self):  # made on the first log, so an error while setting up prints alone
        return progress_bar(self.config.train.steps, f"train {self.config.algorithm_name}", unit="step",
                            initial=self.start_step, enabled=self.progress)

    def autocast(self):
        if self.device.type == "cuda" and self.config.train.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def demonstrations(self) -> TrainingData:
        return self.load_demonstrations(actions=True)

    def load_demonstrations(self, actions: bool = True) -> TrainingData:
        if self._data is None or (actions and self._data.action_dim is None):
            self._data = TrainingData(self.config, actions)
        return self._data

    @property
    def observations(self) -> dict:
        if self.config.data.path:
            return dict(self.load_demonstrations(actions=False).store.attrs.get("observations", {}))
        return {kind: dict(params) for kind, params in registry().get("task", self.config.task).observations.items()}

    def make_envs(self, n: int, asynchronous: bool = False, render_mode: str | None = None) -> gym.vector.VectorEnv:
        """``n`` environments, stepped in this process or (``asynchronous``) in worker processes; finished
        ones are not reset automatically: reset them with ``reset(seed=..., options={"reset_mask": mask})``."""
        make = functools.partial(ObservedEnv, self.config.task, self.observations, render_mode=render_mode)
        manual = gym.vector.AutoresetMode.DISABLED
        if asynchronous:
            return gym.vector.AsyncVectorEnv([functools.partial(_worker_env, make)] * n, context="spawn",
                                             autoreset_mode=manual)
        return gym.vector.SyncVectorEnv([make] * n, autoreset_mode=manual)

    @cached_property
    def _env_spaces(self) -> tuple[dict[str, Feature], gym.Space]:
        env = ObservedEnv(self.config.task, self.observations)
        env.close()
        return dict(env.features), env.action_space

    def observation_features(self) -> dict[str, Feature]:
        """The arrays the environments of :meth:`make_envs` observe (what a policy acting in them reads)."""
        return dict(self._env_spaces[0])

    @property
    def action_space(self) -> gym.Space:
        return self._env_spaces[1]

    def build_policy(self, features: Mapping[str, Feature], action_dim: int, stats: Mapping) -> PolicyModel:
        self._built = (dict(features), action_dim, stats)
        return build_model(self.config, features, action_dim, stats, self.action_space).to(self.device)

    def log(self, step: int, metrics: Mapping[str, Any]) -> None:
        logged = self._crossed(step, self.config.train.log_every, "_logged")
        # else no device sync this step; over several processes, every one reaches this collective
        values = distributed.mean_over_ranks(metrics, self.ranks) if logged else None
        if not self.ranks.main:
            return
        if self._step_hooked:  # hooks read floats; a value not read (most steps, most loggers) never syncs
            registry().notify("on_train_step_end", step=step, metrics=values if logged else LazyFloats(metrics),
                              run_dir=self.run_dir, config=self.config)
        if logged:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / METRICS_FILE, "a") as f:
                f.write(json.dumps({"step": step, "time": round(time.time() - self._started, 3), **values}) + "\n")
            if "loss" in values:
                self.bar.set_postfix(loss=f"{values['loss']:.4f}", refresh=False)
        self.bar.update(step - self.bar.n)

    def should_checkpoint(self, step: int) -> bool:
        """True at every multiple of ``train.checkpoint_every`` (or the first step past one, for loops whose step
        counts environment steps in jumps), at the last step, and in an algorithm's own loop after a Ctrl-C: the
        checkpoint saved then ends the run (see :meth:`save_checkpoint`)."""
        if self.saves_on_interrupt and interrupted():
            return True
        return self._crossed(step, self.config.train.checkpoint_every, "_checkpointed")

    def stopped(self, step: int, saved: Path) -> None:
        """End the run after a Ctrl-C, with the checkpoint ``saved`` at ``step``: raises KeyboardInterrupt."""
        self.close()  # the bar's last line before this one
        if self.ranks.main:
            print(f"roboil: stopped at step {step}, saved as {saved}; the same command resumes from there",
                  file=sys.stderr)
        raise StoppedAndSaved

    def _crossed(self, step: int, every: int, last: str) -> bool:
        previous = getattr(self, last, self.start_step)
        if step // every > previous // every or (step >= self.config.train.steps > previous):
            setattr(self, last, step)
            return True
        return False

    @cached_property
    def _store_fingerprint(self) -> str:
        return self._data.store.fingerprint()  # once: it digests every episode's attrs, of the snapshot trained on

    def _plugin_versions(self) -> dict[str, str]:
        """The plugins the checkpoint needs (its algorithm's, its task's, its observation kinds') by version."""
        reg = registry()
        parts = [("algorithm", self.config.algorithm_name), ("task", self.config.task),
                 *(("observation", kind) for kind in self.observations)]
        versions = {p.name: p.version for p in reg.plugins}
        return {owner: versions[owner] for owner in sorted({reg.owner(kind, name) for kind, name in parts})}

    def save_checkpoint(self, step: int, model: PolicyModel, state: Mapping) -> Path:
        if self._built is None:
            raise RuntimeError("save_checkpoint needs a model made by context.build_policy")
        features, action_dim, stats = self._built
        meta = {"features": {k: f.to_dict() for k, f in features.items()}, "action_dim": action_dim,
                "task": self.config.task, "observations": self.observations,
                "action_space": describe_space(self.action_space),
                "action_transform": ActionTransform(self.config.data.action_relative_to).to_meta(),
                "train_seconds": round(time.time() - self._started, 3), "resumes": self.resumes,
                "processes": self.ranks.size, "plugins": self._plugin_versions()}
        if self._data is not None:
            meta.update(store=str(Path(self.config.data.path).resolve()), train_episodes=len(self._data.episodes),
                        store_episodes=self._data.store.n_episodes, store_steps=self._data.store.n_steps,
                        store_fingerprint=self._store_fingerprint)
        training_state = {"step": step, "algorithm": dict(state),
                          "random": distributed.gather(random_states(), self.ranks)}
        path = self.run_dir / CHECKPOINTS / f"step_{step:08d}"
        if self.ranks.main:
            if not self._state_checked:  # its structure does not change between saves; checking costs a serialization
                check_loadable(training_state["algorithm"])
                self._state_checked = True
            path = save_checkpoint(self.run_dir, step, model, stats, self.config, meta, training_state)
            registry().notify("on_checkpoint_saved", path=path, step=step, run_dir=self.run_dir, config=self.config)
        distributed.barrier(self.ranks)  # no process goes on (or ends) before the checkpoint is complete
        if self.saves_on_interrupt and interrupted():
            self.stopped(step, path)
        return path

    def close(self) -> None:
        if "bar" in self.__dict__:
            self.bar.close()


def _fingerprint_at(path) -> str | None:
    """The fingerprint of the store at ``path``; None where there is none to read (the resume then refuses the
    changed path)."""
    try:
        return EpisodeStore.open(path).fingerprint()
    except RoboilError:
        return None


def _logged_step(line: str) -> float:
    """The step of a line of ``metrics.jsonl``; infinite for a line torn by a kill or a full disk (dropped)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def flatten(config: Mapping, prefix: str = "") -> dict:
    """``{"train": {"lr": 1}}`` as ``{"train.lr": 1}``, lists and tuples alike (a JSON round trip)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.loads(json.dumps(value))
    return out


def check_loadable(state: Mapping) -> None:
    """Resuming reads the state with ``torch.load(weights_only=True)`` (no code runs): refuse, at save time and
    naming the key, what that cannot read back (numpy arrays and scalars, arbitrary objects)."""
    for key, value in state.items():
        buffer = io.BytesIO()
        torch.save(value, buffer)
        buffer.seek(0)
        try:
            torch.load(buffer, weights_only=True)
        except Exception:
            raise RoboilError(f"the training state's '{key}' ({type(value).__name__}) cannot be saved safely; keep "
                              "tensors, numbers, strings, lists and dicts of them (convert numpy with .tolist() or "
                              "torch.as_tensor)") from None


class LazyFloats(collections.abc.Mapping):
    """Metrics that become floats only when read: converting a CUDA tensor waits for the device, and a logger
    hook that acts every N steps (or is not enabled for this run) reads nothing on the other steps."""

    def __init__(self, metrics: Mapping[str, Any]):
        self._metrics = metrics

    def __getitem__(self, key: str) -> float:
        return float(self._metrics[key])

    def __iter__(self):
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)


def lr_factor(step: int, config: Config) -> float:
    warmup = config.train.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if config.train.lr_schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, config.train.steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def fit_offline(context: TrainContext) -> Path | None:
    """The default loop: windows of the store, the model's loss, AdamW over its parameter groups."""
    config, device = context.config, context.device
    data = context.demonstrations
    model = context.build_policy(data.features, data.action_dim, data.stats)
    ema = copy.deepcopy(model).requires_grad_(False) if config.train.ema_decay > 0 else None
    optimizer = torch.optim.AdamW(model.parameter_groups(), lr=config.train.lr,
                                  weight_decay=config.train.weight_decay, fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    sampler = data.sampler(model, config.train.seed)
    step = context.start_step
    state = context.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        use_configured_rates(optimizer, scheduler, model.parameter_groups(), config)
        if ema is not None:  # an average begun now (train.ema_decay turned on at resume) starts from the weights
            ema.load_state_dict(state.get("ema", state["model"]))
        sampler.set_state(state["sampler"])
    # worker processes pay off only for reading from disk: in RAM, a thread gathers faster than they would receive
    batches = load_batches(sampler, config.train.batch_size, device, context.ranks.batch_rows(config.train.batch_size),
                           workers=0 if data.in_ram else config.train.loader_workers)
    step_fn = LossOf(model)
    if config.train.compile:
        step_fn = torch.compile(step_fn)
    if context.ranks.distributed:  # averages the gradients over the processes during backward
        # static graph: the loss reads the same parameters every step, which need not be all of them (a model may
        # read an encoder's feature maps and not its head); DDP learns which from the first step
        step_fn = torch.nn.parallel.DistributedDataParallel(step_fn, device_ids=[device] if device.type == "cuda"
                                                            else None, static_graph=True)
    model.train()
    # Ctrl-C saves the step it came at, then stops; under torchrun (which passes it on to each process) every
    # process stops at the same step, the one after any of them got it
    deferred = interrupts_deferred(INTERRUPT_NOTICE if context.ranks.main else None)
    stop_vote = distributed.StopVote(context.ranks)

    def save(step: int, sampler_state) -> Path:
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "sampler": sampler_state}
        if ema is not None:
            state["ema"] = ema.state_dict()
        return context.save_checkpoint(step, ema or model, state)

    saved_step = step
    # the loader's thread or worker processes end with the loop, and the vote in flight is waited for
    with contextlib.closing(batches), contextlib.closing(stop_vote), deferred:
        while step < config.train.steps:
            try:
                batch, sampler_state = next(batches)
            except RoboilError as stopped:  # the loader's (a damaged frame, a worker killed): keep the steps trained
                if step > saved_step and not context.ranks.distributed:
                    try:
                        saved = save(step, sampler_state)
                    except Exception as failed:  # the reason training stopped is the line to keep
                        print(f"roboil: could not save step {step} ({one_line(failed)})", file=sys.stderr)
                    else:
                        context.close()
                        print(f"roboil: saved step {step} as {saved} before stopping", file=sys.stderr)
                raise stopped
            with context.autocast():
                loss, metrics = _loss_and_metrics(step_fn(batch), model)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.train.grad_clip > 0:
                metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            if ema is not None:
                update_ema(ema, model, config.train.ema_decay, step)
            context.log(step, {**metrics, "lr": scheduler.get_last_lr()[0]})
            stop = stop_vote(interrupted())
            if context.should_checkpoint(step) or stop:
                saved, saved_step = save(step, sampler_state), step
            if stop:
                context.stopped(step, saved)


def load_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """For an algorithm's own loop: a saved optimizer state, at the learning rates the optimizer was made with,
    the config's (torch's loading brings back the saved ones, and a resumed run may change train.lr)."""
    rates = [group["lr"] for group in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, lr in zip(optimizer.param_groups, rates):
        group["lr"] = lr


def use_configured_rates(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                         groups: list[dict], config: Config) -> None:
    """After loading an optimizer and its schedule: the config's learning rates and weight decay (a resumed run
    may change train.lr and train.weight_decay; loading brought back the saved ones), at the schedule's step."""
    for group, fresh in zip(optimizer.param_groups, groups):
        group["initial_lr"] = fresh.get("lr", config.train.lr)
        group["weight_decay"] = fresh.get("weight_decay", config.train.weight_decay)
        group["lr"] = group["initial_lr"] * lr_factor(scheduler.last_epoch, config)
    scheduler.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]


def _loss_and_metrics(returned, model: PolicyModel) -> tuple[torch.Tensor, dict]:
    """What ``compute_loss`` returned, if it is ``(loss, metrics dict)`` with one value in the loss; else a
    PluginError saying what came."""
    pair = isinstance(returned, (tuple, list)) and len(returned) == 2 and isinstance(returned[1], dict) \
        and isinstance(returned[0], torch.Tensor)
    if pair and returned[0].numel() == 1:
        return returned[0].reshape(()), returned[1]
    if isinstance(returned, torch.Tensor):
        got = f"a tensor of shape {tuple(returned.shape)} alone"
    elif pair:
        got = f"a loss of shape {tuple(returned[0].shape)} (reduce it to a scalar: a mean over the batch)"
    else:
        got = f"a {type(returned).__name__} of {len(returned)}" if isinstance(returned, (tuple, list)) else \
            type(returned).__name__
    raise PluginError(f"{type(model).__name__}.compute_loss returned {got}; it must return (loss, metrics): a "
                      "scalar tensor and a dict; fix the algorithm plugin")


class LossOf(torch.nn.Module):
    """A model's ``compute_loss`` as a module's forward, the call DDP (and torch.compile) wrap."""

    def __init__(self, model: PolicyModel):
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]):
        return self.model.compute_loss(batch)


def train(config: Config, out_dir: str | Path, progress: bool = True) -> Path:
    """Train (or resume) a run in ``out_dir`` with the algorithm's own loop or the offline one; returns the
    final checkpoint directory."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RoboilError(f"--out '{out_dir}' is a file; name a directory for the run")
    if (out_dir / "zarr.json").is_file():  # a run directory never holds one
        raise RoboilError(f"--out '{out_dir}' is a zarr store (episodes?), not a run directory; name a new directory "
                          "for the run")
    check_writable(out_dir)
    spec = registry().get("algorithm", config.algorithm_name)
    ranks = launched_ranks()
    if ranks.distributed and spec.train is not None:
        raise RoboilError(f"algorithm '{spec.name}' runs its own training loop, which trains in one process; "
                          "run it without torchrun")
    ranks.batch_rows(config.train.batch_size)  # a batch that does not split is refused before any process waits
    created = not out_dir.exists()
    try:
        # held by the process that writes the run's files
        with claim_directory(out_dir, RUN_LOCK, "training it") if ranks.main else contextlib.nullcontext():
            seed_everything(config.train.seed)
            context = TrainContext(config, out_dir, progress, ranks)
            try:
                if context.start_step >= config.train.steps:
                    return latest_checkpoint(out_dir)
                if spec.train is None:
                    fit_offline(context)
                else:  # a loop that asks should_checkpoint each step saves the step a Ctrl-C came at, then stops
                    context.saves_on_interrupt = True
                    with interrupts_deferred(INTERRUPT_NOTICE):  # its exceptions name the plugin, in one line
                        registry().call("algorithm", spec.name, "train", context)
            finally:
                context.close()
                distributed.stop()
    except BaseException as exc:
        if created and ranks.main and {p.name for p in out_dir.glob("*")} | {RUN_LOCK} == {RUN_LOCK}:
            shutil.rmtree(out_dir, ignore_errors=True)  # refused before anything was written: leave nothing
        elif isinstance(exc, KeyboardInterrupt) and ranks.main and not _said_stopped(exc):
            # a second Ctrl-C stopped it at once: what the run holds now (the step being saved may have made it)
            with contextlib.suppress(RoboilError, OSError):
                last = latest_checkpoint(out_dir)
                print(f"roboil: the run's last checkpoint is {last}; the same command resumes from there" if last
                      else "roboil: no checkpoint was saved; the same command starts the run over", file=sys.stderr)
        raise
    checkpoint = latest_checkpoint(out_dir)
    if checkpoint is None:
        raise RoboilError(f"algorithm '{spec.name}' finished without saving a checkpoint; its train() must call "
                          "context.save_checkpoint")
    return checkpoint


def _worker_env(make: Callable[[], gym.Env]) -> gym.Env:
    """An env in a worker process, which leaves a Ctrl-C or SIGTERM to the training (it saves its step first)."""
    leave_stops_to_the_main_process()
    return make()


class StoppedAndSaved(KeyboardInterrupt):
    """A Ctrl-C's stop, once the step it came at is saved and said (see :meth:`TrainContext.stopped`)."""


def _said_stopped(exc: BaseException | None) -> bool:
    """Whether ``exc``, or one it was raised while handling, is a stop already said."""
    while exc is not None:
        if isinstance(exc, StoppedAndSaved):
            return True
        exc = exc.__context__
    return False


@torch.no_grad()
def update_ema(ema: PolicyModel, model: PolicyModel, decay: float, step: int) -> None:
    """EMA with warm-up (decay grows from 0 toward ``decay``), so early averages forget the random init."""
    rate = min(decay, 1 - (1 + step) ** -0.75)
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - rate)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)
