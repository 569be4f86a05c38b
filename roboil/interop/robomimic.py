"""robomimic's HDF5 datasets, both ways: ``roboil export --to robomimic`` and ``roboil import --from robomimic``.

robomimic's layout, as its ``dataset_states_to_obs.py`` writes it and its ``SequenceDataset`` reads it::

    data/                       attrs: total (steps in all), env_args (JSON: env_name, type, env_kwargs)
      demo_<i>/                 attrs: num_samples (steps)
        actions        (T, A)
        rewards        (T,)
        dones          (T,)
        states         (T, S)   simulator states, optional
        obs/<key>      (T, ...) images as uint8 (T, H, W, 3), vectors as (T, D)
        next_obs/<key> (T, ...) the obs one step later
    mask/<filter key>           demo names as bytes, e.g. mask/successful

robomimic takes every member of ``data/`` for a demo (it sorts them by the number after ``demo_``), so our
extras live in attributes only: ``data.attrs["roboil"]`` (JSON: the store's features, chunk layouts and
attrs) and ``demo.attrs["roboil"]`` (JSON: the episode's attrs). Import restores them, so a store survives a
round trip whole: arrays byte for byte, episode boundaries, store and episode attrs, chunking and codecs (the
episode checksums are recomputed from the same bytes, so they come out equal). A camera kept with a lossy codec
is the exception: the file holds its decoded frames, which import encodes again, within the codec's error.

What export writes and how:

- ``obs/<key>`` for every array but the action, with its dtype and shape (images stay (T, H, W, 3) uint8; a
  scalar per step becomes (T, 1)), gzip-compressed in chunks of the store's own time chunk;
  ``next_obs/<key>`` is ``obs`` shifted by one step, the last step repeated (we do not have the observation
  after the last action; robomimic's own tool simulates it).
- ``actions`` flattened to (T, A) (robomimic reads ``actions.shape[1]``); a Discrete task's index is (T, 1).
- ``rewards``: zeros. Our stores keep no rewards; robomimic reads them only for its offline-RL algorithms.
- ``dones``: 1 at an episode's last step when it ``terminated`` (ended in a terminal state), else 0. robomimic's
  own tool marks every last step (``done_mode`` 1 or 2), but a take cut by its time limit or by a person did
  not reach a terminal state, and robomimic's offline-RL algorithms stop bootstrapping at done=1.
- no ``states``: a store keeps its episode's start state (in the episode attrs), not one per step.
- ``env_args``: ``env_name`` is our task, ``type`` is :data:`ENV_TYPE`, a number robomimic's ``EnvType`` does
  not use, so robomimic never builds one of its own environments for our task.
- ``mask/successful``: the demos whose ``success`` attr is true (written when any episode has one).

Import of a file robomimic wrote (no ``roboil`` attrs): observations become ``pixels`` features when they
are uint8 (T, H, W, 3) and ``proprio`` float32 otherwise (as our proprio observer stores them), the action
float32; chunking follows each observation plugin's ``layout``. Rewards, per-step dones and simulator states
have no place in a store and are left out (the summary says so).
"""

from __future__ import annotations

import dataclasses

import json
import os
import re
from pathlib import Path

import numpy as np

from ..errors import RoboilError, check_writable, one_line
from ..keys import ACTION
from ..specs import ArrayLayout, Feature
from ..store import EpisodeStore, array_layout, empty_directory
from . import temp_sibling

ROBOIL_ATTR = "roboil"  # the attribute of data/ and of each demo that holds our JSON
EXPORT_FORMAT = 1  # of data.attrs["roboil"]
# robomimic's EnvType: 1 robosuite, 2 gym, 3 iGibson MOMART; env_utils raises for any other, rather than making
# one of its own environments for a task it does not know.
ENV_TYPE = 100
SUCCESS_MASK = "successful"
GZIP_LEVEL = 4
_DEMO = re.compile(r"demo_(\d+)")


def _h5py():
    try:
        import h5py
    except ImportError:
        raise RoboilError("robomimic files need h5py, which is not installed; pip install 'roboil[robomimic]'")
    return h5py


# ---- export ------------------------------------------------------------------------------------------------


def export_robomimic(source, out, next_obs: bool = True) -> dict:
    """Write the store ``source``'s committed episodes to a new robomimic HDF5 file ``out`` (written to a hidden
    temp file and renamed into place complete). Returns a summary with a one-line ``line``."""
    h5py = _h5py()
    out = Path(out)
    store = EpisodeStore.open(source, require_healthy=True)
    if ACTION not in store.features:
        raise RoboilError(f"store '{source}' holds observations only (no '{ACTION}' array); a robomimic file keeps "
                          "an action for every step: export a store recorded with actions")
    if not store.n_episodes:
        raise RoboilError(f"store '{source}' has no episodes to export; record some first")
    if out.exists():
        raise RoboilError(f"'{out}' already exists; choose a new file name (export does not overwrite)")
    check_writable(out)
    obs_keys = [k for k in store.features if k != ACTION]
    layouts = {k: array_layout(store.array(k)) for k in store.features}
    episodes = store.episode_attrs()
    meta = {
        "format": EXPORT_FORMAT,
        "features": {k: f.to_dict() for k, f in store.features.items()},
        "layouts": {k: dataclasses.asdict(lay) for k, lay in layouts.items()},
        "attrs": store.attrs,
        "rewards": "zeros: roboil stores keep no rewards",
        "dones": "1 at the last step of episodes that terminated, else 0",
    }
    env_args = {"env_name": store.attrs.get("task"), "type": ENV_TYPE,
                "env_kwargs": {"roboil": "a roboil task; make it with roboil, not robomimic"}}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(out)
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for index, attrs in enumerate(episodes):
                rows = store.episode(index, verify=True)  # damage refused, not passed on as a healthy file
                _write_demo(data.create_group(f"demo_{index}"), rows, attrs, obs_keys, layouts, next_obs)
            data.attrs["total"] = store.n_steps
            data.attrs["env_args"] = json.dumps(env_args)
            data.attrs[ROBOIL_ATTR] = json.dumps(meta)
            if any(a.get("success") is not None for a in episodes):
                names = [f"demo_{i}" for i, a in enumerate(episodes) if a.get("success")]
                f.create_dataset(f"mask/{SUCCESS_MASK}", data=np.array(names, dtype="S"))
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    successes = sum(bool(a.get("success")) for a in episodes)
    return {"file": str(out), "demos": store.n_episodes, "steps": store.n_steps, "observations": obs_keys,
            "successful": successes,
            "line": f"{out}: {store.n_episodes} demos, {store.n_steps} steps, observations {', '.join(obs_keys)} "
                    f"({successes} in mask/{SUCCESS_MASK}; rewards are 0: the store keeps none)"}


def _write_demo(group, rows: dict[str, np.ndarray], attrs: dict, obs_keys: list[str],
                layouts: dict[str, ArrayLayout], next_obs: bool) -> None:
    steps = len(rows[ACTION])
    group.attrs["num_samples"] = steps
    group.attrs[ROBOIL_ATTR] = json.dumps(attrs)
    group.create_dataset("actions", data=rows[ACTION].reshape(steps, -1))
    group.create_dataset("rewards", data=np.zeros(steps, np.float64))  # our stores keep no rewards
    dones = np.zeros(steps, np.int64)
    dones[-1] = bool(attrs.get("terminated"))  # a terminal state, not a time limit or a person's stop
    group.create_dataset("dones", data=dones)
    for key in obs_keys:
        x = rows[key].reshape(steps, 1) if rows[key].ndim == 1 else rows[key]
        options = {"chunks": (min(layouts[key].time_chunk, steps), *x.shape[1:]), "compression": "gzip",
                   "compression_opts": GZIP_LEVEL}
        group.create_dataset(f"obs/{key}", data=x, **options)
        if next_obs:
            group.create_dataset(f"next_obs/{key}", data=np.concatenate([x[1:], x[-1:]]), **options)


# ---- import ------------------------------------------------------------------------------------------------


def import_robomimic(path, out, obs_keys: list[str] | None = None) -> dict:
    """A new store ``out`` from the robomimic file ``path`` (``obs_keys``: only these observations). A file
    that roboil exported gets its features, layouts and attrs back; any other is read as robomimic writes it.
    Every demo is checked before the store is made; a failure while copying removes the partial store."""
    h5py = _h5py()
    path, out = Path(path), Path(out)
    if not path.exists():
        raise RoboilError(f"no robomimic file at '{path}'; check the path")
    if path.is_dir():
        raise RoboilError(f"'{path}' is a directory; give a robomimic .hdf5 file")
    if out.exists() and not empty_directory(out):
        raise RoboilError(f"'{out}' already exists; choose a new store path (import does not append)")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise RoboilError(f"'{path}' is not a readable HDF5 file ({one_line(e)}); give a robomimic .hdf5 dataset")
    with f:
        plan = _Plan(f, path, obs_keys)
        check_writable(out)
        store = EpisodeStore.create(out, plan.features, plan.layouts, plan.store_attrs)
        try:
            for name in plan.demos:
                store.add_episode(plan.rows(name), plan.episode_attrs(name))
        except BaseException:
            store.discard()
            raise
        store.close()
    kept = ", ".join(plan.obs_keys)
    left = f"; not kept: {', '.join(plan.left_out)}" if plan.left_out else ""
    how = "roboil attrs restored" if plan.meta else f"task '{plan.store_attrs['task']}'"
    return {"store": str(out), "episodes": store.n_episodes, "steps": store.n_steps, "observations": plan.obs_keys,
            "restored": bool(plan.meta), "left_out": plan.left_out,
            "line": f"{out}: {store.n_episodes} episodes, {store.n_steps} steps from '{path}', observations {kept} "
                    f"({how}){left}"}


def _json_attr(node, name: str, where: str):
    """The JSON in attribute ``name`` of ``node`` (None when absent), or a RoboilError naming it."""
    raw = node.attrs.get(name)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except (ValueError, UnicodeDecodeError) as e:
        raise RoboilError(f"{where} attribute '{name}' is not valid JSON ({one_line(e)})")


class _Plan:
    """What an import will make, from the file's structure and attributes; refuses an ill-formed file in one line
    naming its first problem, before anything is written."""

    def __init__(self, f, path: Path, obs_keys: list[str] | None):
        import h5py

        self.path = path
        data = f.get("data")
        if not isinstance(data, h5py.Group):
            raise RoboilError(f"'{path}' has no 'data' group; a robomimic file keeps its demonstrations as "
                              "data/demo_N")
        numbered = []
        for name, node in data.items():
            match = _DEMO.fullmatch(name)
            if not match or not isinstance(node, h5py.Group):
                raise RoboilError(f"'{path}': data/{name} is not a demo_N group; robomimic files hold only demos "
                                  "under data/")
            numbered.append((int(match.group(1)), name))
        if not numbered:
            raise RoboilError(f"'{path}' holds no demos under data/; nothing to import")
        self.demos = [name for _, name in sorted(numbered)]
        self.data = data
        self.meta = self._meta(data)
        env_args = _json_attr(data, "env_args", f"'{path}': data")
        if env_args is not None and not isinstance(env_args, dict):
            raise RoboilError(f"'{path}': data attribute 'env_args' is not a JSON object")
        self.env_args = env_args or {}

        first = self._demo(self.demos[0])
        available = list(first["obs"])
        if self.meta:  # every array the store had: one a demo lacks is refused below, not silently dropped
            available = [k for k in self.meta["features"] if k != ACTION]
        if obs_keys is not None:
            if unknown := [k for k in obs_keys if k not in available]:
                raise RoboilError(f"'{path}' has no observation '{unknown[0]}'; its observations: "
                                  f"{', '.join(available)}")
            available = list(dict.fromkeys(obs_keys))
        if not self.meta and ACTION in available:
            raise RoboilError(f"'{path}' has an observation named '{ACTION}', the name of the store's action array; "
                              "leave it out with --obs-keys")
        if not available:
            raise RoboilError(f"'{path}': data/{self.demos[0]}/obs holds no observations; nothing to import")
        self.obs_keys = available
        self.features, self.layouts = self._features(first)
        for name in self.demos:
            self._check_demo(name)
        self.success = None
        mask = f.get(f"mask/{SUCCESS_MASK}")
        if mask is not None:
            if not isinstance(mask, h5py.Dataset):
                raise RoboilError(f"'{path}': mask/{SUCCESS_MASK} is not a dataset of demo names")
            try:
                self.success = {n.decode() if isinstance(n, bytes) else str(n) for n in np.asarray(mask[()]).ravel()}
            except (TypeError, ValueError, UnicodeDecodeError, OSError) as e:
                raise RoboilError(f"'{path}': mask/{SUCCESS_MASK} is not a list of demo names ({one_line(e)})")
        self.store_attrs = self.meta["attrs"] if self.meta else self._foreign_attrs()
        self.left_out = self._left_out(first)

    def _meta(self, data) -> dict | None:
        meta = _json_attr(data, ROBOIL_ATTR, f"'{self.path}': data")
        if meta is None:
            return None
        try:
            if meta["format"] != EXPORT_FORMAT:
                raise RoboilError(f"'{self.path}' was exported by a roboil with robomimic export format "
                                  f"{meta['format']}; this roboil reads {EXPORT_FORMAT}: use a matching version")
            features = {k: Feature.from_dict(d) for k, d in meta["features"].items()}
            layouts = {k: ArrayLayout(**meta["layouts"][k]) for k in features}
            if ACTION not in features or not isinstance(meta["attrs"], dict):
                raise KeyError(ACTION if ACTION not in features else "attrs")
        except (KeyError, TypeError, AttributeError) as e:
            raise RoboilError(f"'{self.path}': data attribute '{ROBOIL_ATTR}' is ill-formed (no {e}); remove the "
                              "attribute to import the file as robomimic wrote it")
        return {**meta, "features": features, "layouts": layouts}

    def _demo(self, name: str):
        import h5py

        demo = self.data[name]
        if not isinstance(demo.get("actions"), h5py.Dataset):
            raise RoboilError(f"'{self.path}': data/{name} has no 'actions' dataset")
        if not isinstance(demo.get("obs"), h5py.Group):
            raise RoboilError(f"'{self.path}': data/{name} has no 'obs' group")
        return demo

    def _features(self, first) -> tuple[dict[str, Feature], dict[str, ArrayLayout]]:
        if self.meta:
            keys = [*self.obs_keys, ACTION]
            return ({k: self.meta["features"][k] for k in keys}, {k: self.meta["layouts"][k] for k in keys})
        import h5py

        from ..plugins import registry
        from ..record import ACTION_LAYOUT

        features, layouts, reg = {}, {}, registry()
        for key in self.obs_keys:
            ds = first["obs"][key]
            if not isinstance(ds, h5py.Dataset):
                raise RoboilError(f"'{self.path}': data/{self.demos[0]}/obs/{key} is not a dataset; leave it out "
                                  "with --obs-keys")
            if ds.dtype.kind not in "biuf":
                raise RoboilError(f"'{self.path}': data/{self.demos[0]}/obs/{key} holds {ds.dtype}, not numbers; "
                                  "leave it out with --obs-keys")
            if ds.dtype == np.uint8 and ds.ndim == 4 and ds.shape[-1] == 3:
                features[key] = Feature("pixels", tuple(ds.shape[1:]), "uint8")
            else:
                features[key] = Feature("proprio", tuple(ds.shape[1:]) or (1,), "float32")
            kind = features[key].kind
            layouts[key] = reg.call("observation", kind, "layout", features[key], reg.get("observation", kind).params())
        actions = first["actions"]
        if actions.dtype.kind not in "biuf" or actions.ndim > 2:
            raise RoboilError(f"'{self.path}': data/{self.demos[0]}/actions is {actions.dtype} {actions.shape}; "
                              "robomimic actions are numbers (T, A)")
        features[ACTION] = Feature(ACTION, tuple(actions.shape[1:]) or (1,), "float32")
        layouts[ACTION] = ACTION_LAYOUT
        return features, layouts

    def _check_demo(self, name: str) -> None:
        """Every chosen array present, one length T >= 1 (and num_samples, when given, equal to it), shapes that
        fit the features."""
        import h5py

        demo = self._demo(name)
        steps = demo["actions"].shape[0] if demo["actions"].ndim else 0
        if steps < 1:
            raise RoboilError(f"'{self.path}': data/{name} has no steps; remove it or import with h5py yourself")
        if (n := demo.attrs.get("num_samples")) is not None and int(n) != steps:
            raise RoboilError(f"'{self.path}': data/{name} says num_samples={int(n)} but its actions hold {steps} "
                              "steps")
        for key in [*self.obs_keys, ACTION]:
            ds = demo["actions"] if key == ACTION else demo["obs"].get(key)
            where = f"data/{name}/{'actions' if key == ACTION else 'obs/' + key}"
            if not isinstance(ds, h5py.Dataset):
                raise RoboilError(f"'{self.path}': {where} is missing; every demo must hold the same observations "
                                  "(or choose some with --obs-keys)")
            want = self.features[key].shape
            if ds.ndim < 1 or ds.shape[0] != steps or int(np.prod(ds.shape[1:])) != int(np.prod(want)):
                raise RoboilError(f"'{self.path}': {where} is {ds.shape}, expected ({steps}, "
                                  f"{', '.join(map(str, want))}) like the first demo's")

    def _foreign_attrs(self) -> dict:
        from ..plugins import registry

        env_name = self.env_args.get("env_name")
        attrs = {"task": env_name, "fps": None, "source": "robomimic", "imported_from": str(self.path),
                 "robomimic_env_args": self.env_args}
        if env_name is None:
            attrs["note"] = "the file names no task (no env_name in data attribute env_args)"
        elif env_name not in registry().names("task"):
            attrs["note"] = (f"task '{env_name}' is robomimic's env_name, not a registered roboil task: training "
                             "and evaluation here need one")
        return attrs

    def _left_out(self, first) -> list[str]:
        left = [f"obs/{k}" for k in first["obs"] if k not in self.obs_keys]
        if self.meta:
            return left  # rewards and dones were written by our export from the attrs restored
        # the file's own next_obs is redundant but for its last step, the observation after the last action
        return left + [k for k in first if k not in ("actions", "obs")]

    def rows(self, name: str) -> dict[str, np.ndarray]:
        demo = self.data[name]
        steps = demo["actions"].shape[0]
        arrays = {key: demo["obs"][key][()] for key in self.obs_keys}
        arrays[ACTION] = demo["actions"][()]
        return {key: np.asarray(x).reshape(steps, *self.features[key].shape).astype(self.features[key].dtype,
                                                                                    copy=False)
                for key, x in arrays.items()}

    def episode_attrs(self, name: str) -> dict:
        demo = self.data[name]
        if self.meta and (ours := _json_attr(demo, ROBOIL_ATTR, f"'{self.path}': data/{name}")) is not None:
            if not isinstance(ours, dict):
                raise RoboilError(f"'{self.path}': data/{name} attribute '{ROBOIL_ATTR}' is not a JSON object")
            return ours
        steps = demo["actions"].shape[0]
        # without a mask success is unknown: left out, as in stores recorded before it was kept (training's
        # data.only_success keeps such episodes)
        attrs = {**({} if self.success is None else {"success": name in self.success}), "seed": None,
                 "source": "robomimic", "length": steps, "demo": name}
        dones = demo.get("dones")
        if dones is not None and dones.shape == (steps,):
            # robomimic's own files mark the last step done (done_mode 1 or 2): their demos end at the goal
            attrs["terminated"] = bool(dones[steps - 1])
        return attrs
