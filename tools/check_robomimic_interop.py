"""Open a robomimic file that `roboil export --to robomimic` wrote with robomimic's own SequenceDataset and check
that what it serves equals the file's arrays (and the shape metadata robomimic's training derives from it).

Run it with a Python that has robomimic installed (its own venv: robomimic pins its torch; roboil is not needed):

    roboil record --task pusht --episodes 2 --out /tmp/s obs.pixels.cameras=[top] obs.pixels.height=32 \
        obs.pixels.width=32
    roboil export --to robomimic /tmp/s /tmp/s.hdf5
    python3 -m venv /tmp/rm && /tmp/rm/bin/pip install robomimic
    /tmp/rm/bin/python tools/check_robomimic_interop.py /tmp/s.hdf5

Exits 0 when every check passes, 1 otherwise (each failing check printed).
"""

from __future__ import annotations

import argparse
import json
import sys

import h5py
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--seq-length", type=int, default=4)
    args = parser.parse_args()

    import robomimic
    import robomimic.utils.file_utils as FileUtils
    import robomimic.utils.obs_utils as ObsUtils
    from robomimic.utils.dataset import SequenceDataset

    with h5py.File(args.file, "r") as f:
        demos = sorted(f["data"], key=lambda n: int(n[5:]))
        obs = f[f"data/{demos[0]}/obs"]
        rgb = [k for k in obs if obs[k].dtype == np.uint8 and obs[k].ndim == 4]
        low_dim = [k for k in obs if k not in rgb]
        successful = [n.decode() for n in f["mask/successful"][()]] if "mask/successful" in f else None
    ObsUtils.initialize_obs_modality_mapping_from_dict({"low_dim": low_dim, "rgb": rgb})
    problems = []

    env_meta = FileUtils.get_env_metadata_from_dataset(args.file)
    shape_meta = FileUtils.get_shape_metadata_from_dataset(args.file, low_dim + rgb)  # keyword differs across versions
    print(f"robomimic {robomimic.__version__}: env_meta {json.dumps(env_meta)}")
    print(f"shape_meta: ac_dim {shape_meta['ac_dim']}, shapes {dict(shape_meta['all_shapes'])}, "
          f"use_images {shape_meta['use_images']}")

    dataset = SequenceDataset(hdf5_path=args.file, obs_keys=tuple(low_dim + rgb),
                              dataset_keys=("actions", "rewards", "dones"), seq_length=args.seq_length,
                              hdf5_cache_mode=None, hdf5_use_swmr=True, load_next_obs=True)
    with h5py.File(args.file, "r") as f:  # read first: robomimic opens the file in SWMR mode, h5py refuses a mix
        file = {d: {"steps": int(f[f"data/{d}"].attrs["num_samples"]), "actions": f[f"data/{d}/actions"][()],
                    **{key: f[f"data/{d}/obs/{key}"][()] for key in low_dim + rgb}} for d in demos}
    total = sum(d["steps"] for d in file.values())
    if len(dataset) != total:
        problems.append(f"SequenceDataset has {len(dataset)} sequences, the file {total} steps")
    index = 0
    for demo, g in file.items():
        steps = g["steps"]
        for t in (0, steps - 1):  # the first window and the last (padded past the end)
            item = dataset[index + t]
            rows = np.minimum(np.arange(t, t + args.seq_length), steps - 1)  # robomimic pads by repeating
            if not np.array_equal(item["actions"], g["actions"][rows]):
                problems.append(f"{demo} step {t}: actions differ")
            for key in low_dim:
                if not np.allclose(item["obs"][key], g[key][rows]):
                    problems.append(f"{demo} step {t}: obs/{key} differs")
            for key in rgb:
                # robomimic 0.3 serves the stored uint8 HWC frames and its algorithms process them for the network
                # (float CHW in [0, 1]); older versions serve them processed
                got, raw = item["obs"][key], g[key][rows]
                if got.shape == raw.shape:
                    ok = np.array_equal(got, raw)
                    got = ObsUtils.process_obs(got, obs_key=key)
                else:
                    ok = True
                want = raw.transpose(0, 3, 1, 2) / 255.0
                if not ok or got.shape != want.shape or not np.allclose(got, want):
                    problems.append(f"{demo} step {t}: obs/{key} differs ({item['obs'][key].shape})")
                if list(got.shape[1:]) != list(shape_meta["all_shapes"][key]):
                    problems.append(f"obs/{key}: processed {got.shape[1:]}, shape_meta {shape_meta['all_shapes'][key]}")
        index += steps
    print(f"SequenceDataset: {len(dataset)} sequences over {len(demos)} demos, obs {low_dim + rgb}")

    if successful is not None:
        subset = SequenceDataset(hdf5_path=args.file, obs_keys=tuple(low_dim + rgb), dataset_keys=("actions",),
                                 seq_length=1, filter_by_attribute="successful", load_next_obs=False)
        print(f"filter_by_attribute='successful': {subset.n_demos} demos")
        if subset.n_demos != len(successful):
            problems.append(f"filter 'successful' gives {subset.n_demos} demos, the mask lists {len(successful)}")

    for problem in problems:
        print(f"problem: {problem}")
    print("OK" if not problems else f"FAILED ({len(problems)} problems)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
