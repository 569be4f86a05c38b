#!/usr/bin/env bash
# Issue 18's GPU work in one call of the device tool, sized for a session's 15 minutes of device time (the machine's
# start included); a session picks one of two jobs.
#
# bench: training samples/s of Diffusion Policy and ACT from pixels at the papers' sizes against LeRobot's on the
# same episodes (tools/bench_training.py), roboil with torch.compile against without, chunk inference latency
# (tools/bench_inference.py) and channels-last weights (tools/bench_channels_last.py). Each part has its own time
# limit, the most wanted run first, so one that hangs leaves the others their time (the limits are guesses until a
# session on the device has read its log.txt); the figures are printed last.
#
# converge: Diffusion Policy from pixels (configs/pusht/diffusion_pixels.yaml) trained on 200 PushT episodes for
# as long as the call allows, then evaluated over 50 episodes with videos: eval.json, report.html and the run's
# metrics.jsonl come back in $OUT. The learning rate is constant (a cosine schedule needs the step count, which
# the GPU's speed decides) and the EMA shorter than the paper's 0.9999 (a few thousand steps, not 60,000); at the
# deadline `timeout -s INT` stops training as Ctrl-C does, saving the step it is at.
#
#   tools/gpu_session.sh prepare   here, once (about 8 minutes): roboil's wheels without Fetch's (not used there)
#                                  in .whl, LeRobot's in .lrwhl, LeRobot exports of the episodes the device records
#                                  again from the same seeds (it has no ffmpeg binary to export them), and the
#                                  200 PushT episodes converge trains on
#   then the device tool, one of
#       run(command="bash tools/gpu_session.sh device bench", timeout_s=595, carry=[".whl", ".lrwhl",
#           "runs/gpu/lerobot/diffusion/lerobot_dataset", "runs/gpu/lerobot/act/lerobot_dataset"])
#       run(command="bash tools/gpu_session.sh device converge", timeout_s=595, carry=[".whl",
#           "runs/gpu/pusht200.zarr"])
#
# `tools/gpu_session.sh dry-run bench|converge` goes through the same steps on this machine's CPU at toy sizes
# (bench with LeRobot when LEROBOT_PYTHON names a Python that has it), to find a broken step before it costs
# device time.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-device}
job=${2:-bench}
runs=runs/gpu
out=${OUT:-$runs/out}
lerobot_python=${LEROBOT_PYTHON:-}

if [ "$mode" = prepare ]; then
    set -e
    rm -rf .whl .lrwhl
    tools/offline_wheels.sh .whl
    rm .whl/gymnasium_robotics-*.whl .whl/pettingzoo-*.whl
    tools/lerobot_offline_wheels.sh .lrwhl
    grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >>.git/info/exclude
    grep -qx '/.lrwhl/' .git/info/exclude || echo /.lrwhl/ >>.git/info/exclude
    for algorithm in diffusion act; do  # the stores the benchmark records, and their exports
        rm -rf "$runs/lerobot/$algorithm"
        OMP_NUM_THREADS=1 .venv/bin/python tools/bench_training.py "$algorithm" --device cpu --steps 2 --warmup 0 \
            --batch 1 --roboil-only --out "$runs/lerobot" >/dev/null
        .venv/bin/roboil export --to lerobot "$runs/lerobot/$algorithm"/*.zarr \
            "$runs/lerobot/$algorithm/lerobot_dataset"
    done
    [ -d "$runs/pusht200.zarr" ] || OMP_NUM_THREADS=1 MUJOCO_GL=egl .venv/bin/roboil record --task pusht \
        --episodes 200 --seed 0 --out "$runs/pusht200.zarr"
    du -sh .whl .lrwhl "$runs"/lerobot/*/lerobot_dataset "$runs/pusht200.zarr"
    exit 0
fi

if [ "$job" != bench ] && [ "$job" != converge ]; then
    echo "usage: tools/gpu_session.sh [prepare|device|dry-run] [bench|converge]" >&2
    exit 2
fi
if [ "$job" = converge ] && [ ! -d "$runs/pusht200.zarr" ]; then
    echo "no $runs/pusht200.zarr: run tools/gpu_session.sh prepare here and carry it" >&2
    exit 2
fi
if [ "$mode" = device ]; then
    python=python3
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site .whl/*.whl -e . || exit 1
    [ "$job" = bench ] && python3 -m pip install -q --no-index --no-deps --target /tmp/lrsite .lrwhl/*.whl \
        && rm -rf /tmp/lrsite/tests /tmp/lrsite/examples && lerobot_python=$(command -v python3)
    export PYTHONPATH=/tmp/site:$PWD:$PWD/plugins PATH=/tmp/site/bin:$PATH
    export ROBOIL_DISABLE_PLUGINS=fetch  # its gymnasium-robotics wheel (26 MB) stays here
    device=cuda slower=1
    diffusion=(--steps 60 --warmup 20) act=(--steps 40 --warmup 15)
    converge_seconds=560 eval_seconds=150 eval_episodes=50 eval_envs=14 converge=()
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
elif [ "$mode" = dry-run ]; then
    python=.venv/bin/python
    export OMP_NUM_THREADS=1
    device=cpu slower=4  # compiling on 2 cores takes minutes
    diffusion=(--steps 3 --warmup 1 --batch 2 "algorithm.down_dims=[32,64,128]")
    act=(--steps 3 --warmup 1 --batch 1)
    converge_seconds=150 eval_seconds=60 eval_episodes=2 eval_envs=2
    converge=("algorithm.down_dims=[32,64,128]" train.batch_size=8 train.log_every=20)
else
    echo "usage: tools/gpu_session.sh [prepare|device|dry-run] [bench|converge]" >&2
    exit 2
fi
export MUJOCO_GL=egl PYTHONUNBUFFERED=1
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
$python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() \
else 'cpu')"

if [ "$job" = converge ]; then  # training gets what the set-up left, less the evaluation's share
    run=$runs/converge train_seconds=$((converge_seconds - eval_seconds - SECONDS))
    [ "$train_seconds" -ge 30 ] || { echo "the set-up took ${SECONDS} s: no time left to train"; exit 1; }
    rm -rf "$run"
    echo "== train for ${train_seconds} s"
    # --foreground: the INT goes to training alone (a second one, to its process group, would stop it unsaved)
    timeout --foreground -s INT -k 60 "$train_seconds" $python -m roboil.cli train configs/pusht/diffusion_pixels.yaml \
        data.path="$runs/pusht200.zarr" train.steps=1000000 train.lr_schedule=constant train.ema_decay=0.999 \
        train.checkpoint_every=2000 train.log_every=200 "${converge[@]}" --out "$run"
    cp "$run/metrics.jsonl" "$out/"
    echo "== eval"
    timeout $((converge_seconds - SECONDS)) $python -m roboil.cli eval "$run" --episodes "$eval_episodes" \
        --envs "$eval_envs" --torch-device "$device" --video --out "$out/eval"
    exit
fi
lerobot=(--roboil-only)
[ -n "$lerobot_python" ] && lerobot=(--lerobot-python "$lerobot_python" --lerobot-path "${LEROBOT_PATH:-/tmp/lrsite}")

budget=$((550 * slower))  # seconds for the parts below, the most wanted first; each also has its own limit
part() {  # seconds, name, command...: runs it with the smaller of its limit and what is left of the budget
    local left=$((budget - SECONDS)) name=$2
    local limit=$(($1 * slower < left ? $1 * slower : left))
    shift 2
    if [ "$limit" -lt 15 ]; then echo "SKIPPED (no time left): $name"; return; fi
    echo "== $name (at most ${limit} s)"
    # a compilation cut short leaves a truncated library in the cache that fails whatever loads it next
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) timeout "$limit" bash -c '"$@"' part "$@" || echo "FAILED or timed out: $name"
}
training() {  # out name, algorithm, bench_training arguments: its results.json goes to $out
    local name=$1 algorithm=$2
    $python tools/bench_training.py "${@:2}" --device "$device" --out "$runs/$name" \
        && cp "$runs/$name/$algorithm/results.json" "$out/training_${name}_$algorithm.json"
}
inference() {  # algorithm
    $python tools/bench_inference.py "$runs/lerobot/$1/roboil_run" --repeats 20 --device "$device" --compile \
        | tee "$out/inference_$1.txt"
}
export -f training inference
export python device runs out
part 130 "diffusion: roboil and LeRobot" training lerobot diffusion "${diffusion[@]}" "${lerobot[@]}"
part 130 "act: roboil and LeRobot" training lerobot act "${act[@]}" "${lerobot[@]}"
part 90 "diffusion: chunk latency, eager and compiled" inference diffusion
part 100 "diffusion: roboil with torch.compile" training compiled diffusion "${diffusion[@]}" --roboil-only \
    --store "$runs/lerobot/diffusion/pusht.zarr" train.compile=true
part 60 "act: chunk latency, eager and compiled" inference act
part 20 "channels-last weights" $python tools/bench_channels_last.py --device "$device" --rounds 2
part 100 "act: roboil with torch.compile" training compiled act "${act[@]}" --roboil-only \
    --store "$runs/lerobot/act/aloha-transfer-cube.zarr" train.compile=true
echo; echo "== results =="
$python - "$out" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("training_*.json")):
    result = json.loads(path.read_text())
    rates = ", ".join(f"{name} {rate:.2f}" for name, rate in result["samples_per_second"].items())
    print(f"{path.stem}: samples/s {rates} (batch {result['batch']}, {result['device']})")
EOF
cat "$out"/inference_*.txt 2>/dev/null
