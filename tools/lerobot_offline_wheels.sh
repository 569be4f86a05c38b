#!/usr/bin/env bash
# Download the wheels that LeRobot's `lerobot-train` needs, beyond what the machine already has, to train
# Diffusion Policy and ACT from a local LeRobot dataset (`roboil export --to lerobot`, --dataset.root) on an
# offline x86-64 machine whose python3 is CPython 3.12 and already has torch 2.11, torchvision 0.26, numpy,
# pandas, pyarrow, huggingface-hub 1.x, safetensors, accelerate, einops, opencv-python-headless, pillow, requests,
# httpx, fsspec, aiohttp, xxhash, pyyaml, typing-inspect, cloudpickle, rich, tqdm and filelock (the 'cuda' image
# of the lent GPU machines): LeRobot 0.6.1 (the newest; it allows torch < 2.12 and needs Python >= 3.12), its
# dataset reader (datasets, dill, multiprocess), av (PyAV with its own FFmpeg, for the dataset's H.264 videos:
# that machine has neither FFmpeg nor torchcodec, so LeRobot picks its pyav backend), diffusers (Diffusion
# Policy's noise schedulers), draccus and mergedeep (its config parser), gymnasium and farama-notifications
# (imported by lerobot-train even without an environment) and termcolor. There, from the repo's root (draccus
# also installs top-level `tests` and `examples` packages, removed so that they shadow nothing):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/lrsite .lrwhl/*.whl &&
#   rm -rf /tmp/lrsite/tests /tmp/lrsite/examples &&
#   export PYTHONPATH=/tmp/lrsite PATH=/tmp/lrsite/bin:$PATH HF_HUB_OFFLINE=1
# then `lerobot-train --dataset.repo_id=roboil/export --dataset.root=DIR --policy.type=diffusion|act ...`
# or `python3 -m lerobot.scripts.lerobot_train ...` (--policy.pretrained_backbone_weights=null: nothing
# downloads; with no torchcodec there LeRobot's video backend is pyav, as --dataset.video_backend=pyav would set).
# av is 14.0.1, the smallest recent PyAV; LeRobot 0.6.1 asks for av 15, which gave the same losses in a check
# here but is 5.5 MiB bigger. The wheels are then rewritten with LZMA instead of deflate (same files, so the same
# install; pip reads any zip method Python's zipfile reads): 41 MiB become 33, av's FFmpeg libraries most of it.
# Left out as unused by this: wandb, rerun-sdk, pynput, pyserial, deepdiff, jsonlines, toml, torchcodec and the
# robot and simulator packages. Usage: tools/lerobot_offline_wheels.sh [DIR]  (DIR defaults to .lrwhl; start
# from an empty one)
set -euo pipefail
dir=${1:-.lrwhl}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$dir" \
    lerobot==0.6.1 av==14.0.1 datasets==4.8.5 dill==0.4.1 multiprocess==0.70.19 diffusers==0.39.0 \
    draccus==0.11.6 mergedeep==1.3.4 gymnasium==1.4.0 farama-notifications==0.0.6 termcolor==3.3.0
python3 - "$dir"/*.whl <<'PY'
import os, sys, zipfile
for wheel in sys.argv[1:]:
    with zipfile.ZipFile(wheel) as old, zipfile.ZipFile(wheel + ".tmp", "w", zipfile.ZIP_LZMA) as new:
        for info in old.infolist():
            new.writestr(info, old.read(info), zipfile.ZIP_LZMA)
    os.replace(wheel + ".tmp", wheel)
PY
du -cb "$dir"/*.whl | awk 'END { printf "%.1f MiB of wheels in %s\n", $1 / 1048576, dir }' dir="$dir"
