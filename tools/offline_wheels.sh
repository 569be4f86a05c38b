#!/usr/bin/env bash
# Download the wheels roboil needs on an offline x86-64 machine whose python3 is CPython 3.12 and already has
# torch, numpy, pluggy, safetensors, pyyaml, tqdm, opencv-python-headless, pillow, imageio, setuptools and wheel:
# the wheels travel there with the repo (64 MiB in all) for `roboil record / train / eval` on pusht, aloha and
# fetch (MUJOCO_GL=egl) and tools/bench_*.py. There, from the repo's root (roboil editable: pusht reads
# assets/ beside it; its .pth is not read from PYTHONPATH, hence the repo and plugins/ on it):
#   python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.whl -e . &&
#   export PYTHONPATH=/tmp/site:$PWD:$PWD/plugins PATH=/tmp/site/bin:$PATH
# Left out for size: pygame (classic-control frames, gamepad), imagecodecs and av (the jpeg/avif/h264 layouts of
# tools/bench_loading.py), and imageio-ffmpeg's 68 MB ffmpeg: its pure-Python wheel is built instead, so
# `eval --video` needs an ffmpeg with libx264 on PATH or in IMAGEIO_FFMPEG_EXE. Also left out, as unused by
# roboil: gym-aloha's dm-control (roboil reads only its assets), mujoco's absl-py and etils, gymnasium-robotics'
# jinja2. Usage: tools/offline_wheels.sh [DIR]  (DIR defaults to .whl; start from an empty one)
set -euo pipefail
dir=${1:-.whl}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$dir" \
    zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 \
    mujoco==3.3.7 pyopengl==3.1.10 glfw==2.11.0 \
    gymnasium==1.4.0 farama-notifications==0.0.6 cloudpickle==3.1.3 \
    gymnasium-robotics==1.4.2 pettingzoo==1.27.0 gym-aloha==0.1.5 shapely==2.2.0
python3 -m pip wheel -q --no-deps --no-binary=imageio-ffmpeg -w "$dir" imageio-ffmpeg==0.8.1
du -cb "$dir"/*.whl | awk 'END { printf "%.1f MiB of wheels in %s\n", $1 / 1048576, dir }' dir="$dir"
