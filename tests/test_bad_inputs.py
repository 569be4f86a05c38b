"""Bad command-line input ends in one line naming the problem and the fix, exit code 2, and leaves nothing
behind (no traceback, no half-made store)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import main_fails_in_one_line, run_cli
from roboil.errors import check_writable


@pytest.mark.parametrize("args, message", [
    (["obs=5"], "'obs=...' names no parameter; write obs.KIND.PARAM=value"),
    (["obs.pixels.height=abc"], "config key 'obs.pixels.height' must be int, got 'abc'"),
    (["obs.pixels.height=-5"], "obs.pixels.height must be between 1 and 4096 pixels, got -5"),
    (["--seed", "-5"], "--seed must be >= 0, got -5"),
    (["--action-noise", "nan"], "--action-noise must be between 0 and 1 (the noise's standard deviation as a "
                                "fraction of each action's half-range, e.g. 0.1), got nan"),
    (["--action-noise", "50"], "--action-noise must be between 0 and 1"),
    (["--device", "wiimote"], "unknown device 'wiimote'; valid: "),
])
def test_record(tmp_path, args, message):
    result = run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", tmp_path / "s.zarr", *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.parametrize("args, message", [
    (["--torch-device", "nope"], "--torch-device=nope is not a torch device; use auto, cpu or cuda"),
    (["--torch-device", "meta"], "--torch-device=meta: roboil runs on cpu or cuda, not meta; use auto, cpu or cuda"),
    (["--seed", "-5"], "--seed must be >= 0, got -5"),
    (["--seed", str(2**64)], f"--seed {2**64}: 1 episodes are seeded up to {2**64}, above 2**64 - 1, the largest seed "
                             "torch takes; use a smaller --seed"),
    (["--episodes", "3", "--seed", str(2**64 - 2)], f"--seed {2**64 - 2}: 3 episodes are seeded up to {2**64}, above"),
    (["--max-steps", "0"], "--max-steps must be at least 1, got 0"),
    (["--out", "README.md"], "--out 'README.md' is a file; name a directory for the report"),
    (["--executor", "median"], "unknown executor 'median'; valid: ensemble, queue"),
    (["--executor", "queue", "executor.name=ensemble"], "--executor queue and executor.name=ensemble name two "
                                                        "executors; give one"),
    (["executor=queue"], "executor=queue names no parameter; write --executor queue, or executor.PARAM=value"),
    (["executor.coefficient=0.1"], "config key 'executor.coefficient' is for executor 'ensemble', not 'queue'; set "
                                   "executor.name=ensemble or drop the key"),
])
def test_eval(tiny_reach_run, args, message):
    result = run_cli("eval", tiny_reach_run, "--episodes", 1, *args)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1, \
        result.stderr


def test_torch_device_auto_is_resolved_for_the_runner_too(tiny_reach_run, tmp_path):
    result = run_cli("eval", tiny_reach_run, "--episodes", 1, "--torch-device", "auto", "--out", tmp_path)
    assert result.returncode == 0, result.stderr


def test_ctrl_c_inside_an_import_is_raised_once_the_import_is_over(tmp_path):
    """Raised inside an import, a KeyboardInterrupt can abort the process: torch's C++ start-up calls back into
    Python, pybind11 turns the exception into std::terminate, and `roboil eval` died by SIGABRT with a C++ trace
    when Ctrl-C came 0.5 s in (CI). Here the interrupt lands in the middle of a module's import."""
    (tmp_path / "slow_to_import.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(0.3)\nCOMPLETE = True\n")
    script = (
        "import sys, time\n"
        "from roboil.errors import catch_interrupts\n"
        "catch_interrupts(raise_them=True)\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    import slow_to_import\n"
        "    time.sleep(10)\n"
        "except KeyboardInterrupt:\n"
        "    complete = getattr(sys.modules.get('slow_to_import'), 'COMPLETE', False)\n"
        "    print('import', 'complete' if complete else 'cut short', round(time.monotonic() - start, 1))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(tmp_path)})
    words = result.stdout.split()
    assert result.returncode == 0 and words[:2] == ["import", "complete"] and float(words[2]) < 2, result


def test_a_ctrl_c_that_came_during_an_import_waits_until_children_have_started():
    """A Ctrl-C that came during an import is raised by a timer once the import is over (SIGALRM); in the block
    that starts children, the start's own lazy imports made it land between spawning an env worker and handing it
    its work (the worker printed an EOFError traceback: a CI run of the eval Ctrl-C test below)."""
    from roboil.errors import _raise_outside_imports, sigint_kept_from_children

    steps = []
    previous = signal.signal(signal.SIGALRM, _raise_outside_imports)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sigint_kept_from_children():
                signal.setitimer(signal.ITIMER_REAL, 0.005)  # the timer catch_interrupts sets, firing inside
                for _ in range(50):  # the old code raised in here
                    time.sleep(0.001)
                steps.append("children started")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert steps == ["children started"]


def test_a_ctrl_c_taken_by_another_thread_waits_until_children_have_started():
    """SIGINT is blocked in the starting thread, but another thread can take it, and Python runs the handler in
    the main thread at once: an eval cut between spawning an env worker and handing it its work left the worker
    printing an EOFError traceback (a CI run of the test below)."""
    import threading

    from roboil.errors import sigint_kept_from_children

    other = threading.Thread(target=time.sleep, args=(2,))  # started before the block: SIGINT not blocked there
    other.start()
    steps = []
    # Python's own handler: an in-process `roboil` run earlier in this session left roboil's, which only sets the
    # flag that later runs would read as a Ctrl-C of their own
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sigint_kept_from_children():
                signal.pthread_kill(other.ident, signal.SIGINT)
                for _ in range(50):  # the old code raised in here, at once
                    time.sleep(0.001)
                steps.append("children started")
    finally:
        signal.signal(signal.SIGINT, previous)
    other.join()
    assert steps == ["children started"]


# while the env workers start, and while they step; SIGTERM to the group as `timeout` and schedulers send it (the
# workers died of it: "environment worker 0 died (exit code -15)")
@pytest.mark.parametrize("delay, signum", [(0.5, signal.SIGINT), (3.0, signal.SIGINT), (3.0, signal.SIGTERM)])
def test_ctrl_c_ends_eval_in_one_line_with_exit_130(tiny_reach_run, tmp_path, delay, signum):
    process = subprocess.Popen([sys.executable, "-m", "roboil.cli", "eval", str(tiny_reach_run), "--episodes", "200",
                                "--envs", "2", "--out", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "MUJOCO_GL": "egl"}, start_new_session=True)
    time.sleep(delay)
    os.killpg(process.pid, signum)  # as a terminal's Ctrl-C: the whole process group
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("eval ")]  # the bar
    said = ["roboil: terminated (SIGTERM): stopping as on Ctrl-C"] if signum == signal.SIGTERM else []
    assert process.returncode == 130 and lines == [*said, "roboil: interrupted"], stderr


def test_frames_larger_than_the_scenes_framebuffer_are_one_line(tmp_path):
    """mujoco's ValueError came as a plugin failure, its newlines escaped, then a half-made renderer's
    AttributeError traceback."""
    result = run_cli("record", "--task", "pusht", "--episodes", 1, "--out", tmp_path / "s.zarr",
                     "obs.pixels.height=4000")
    assert result.returncode == 2 and result.stderr == (
        "roboil: error: obs.pixels.height and width: 4000x96 frames do not fit the scene's offscreen framebuffer "
        "(640x640); use at most that, or raise offheight and offwidth in the scene's <visual><global .../></visual>\n")
    assert not (tmp_path / "s.zarr").exists()


def test_cameras_on_a_task_without_a_mujoco_scene_are_one_line(tmp_path):
    """cartpole is drawn by pygame: an AttributeError from the pixels plugin, exit 1."""
    result = run_cli("record", "--task", "cartpole", "--episodes", 1, "--out", tmp_path / "s.zarr",
                     "obs.pixels.cameras=[top]")
    assert result.returncode == 2 and result.stderr == (
        "roboil: error: the task's environment (CartPoleEnv) has no MuJoCo scene to film with cameras; record it "
        "without obs.pixels.cameras\n")


def test_a_renderer_cut_short_by_ctrl_c_leaves_no_traceback_behind():
    """Ctrl-C while mujoco.Renderer was being made: its finalizer then printed an AttributeError traceback."""
    script = """
import gc, mujoco, mujoco.renderer
from roboil.sim import make_renderer
def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
mujoco.renderer._structs.MjvScene = interrupted  # the first thing Renderer.__init__ makes
try:
    make_renderer(mujoco.MjModel.from_xml_string("<mujoco/>"), 8, 8, "test")
except KeyboardInterrupt:
    print("interrupted")
gc.collect()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout == "interrupted\n" and result.stderr == "", result.stderr


def eval_process(run, out, *options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "roboil.cli", "eval", str(run), "--envs", "1", "--out", str(out),
                             *map(str, options)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl", "OMP_NUM_THREADS": "1"}, start_new_session=True)


def wait_for(condition, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline and process.poll() is None, f"no {what}: {process.stderr.read()}"
        time.sleep(0.05)


def test_a_second_eval_into_a_directory_being_written_is_refused(tiny_reach_run, tmp_path):
    """Two evaluations into one directory each removed the other's videos as stale: the report named videos that
    were gone, and both exited 0."""
    import socket

    first = eval_process(tiny_reach_run, tmp_path / "out", "--episodes", 200)
    try:
        lock = tmp_path / "out" / ".eval.lock"
        wait_for(lambda: lock.is_file() and lock.stat().st_size, first, "lock taken")
        second = run_cli("eval", tiny_reach_run, "--episodes", 1, "--out", tmp_path / "out")
        holder = f"pid {first.pid} on {socket.gethostname()} since "
        assert second.returncode == 2 and second.stderr.startswith(
            f"roboil: error: '{tmp_path / 'out'}' is in use by another process evaluating into it ({holder}")
        assert second.stderr.endswith("); wait for it to end or stop it, or pass another --out\n"), second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    third = run_cli("eval", tiny_reach_run, "--episodes", 1, "--out", tmp_path / "out")
    assert third.returncode == 0 and f"the last process evaluating into it ({holder}" in third.stderr  # lock freed


def test_an_interrupted_eval_leaves_the_previous_reports_videos_as_they_were(tiny_reach_run, tmp_path):
    """Videos were written under their final names as episodes ended: Ctrl-C left the previous report playing
    another evaluation's videos."""
    out = tmp_path / "out"
    run_cli("eval", tiny_reach_run, "--episodes", 2, "--video", "--max-steps", 10, "--out", out, check=True)
    before = {path.name: path.read_bytes() for path in (out / "videos").iterdir()}
    report = (out / "eval.json").read_text()
    assert {"seed_100000.mp4", "seed_100001.mp4"} <= set(before)
    # the same seeds, played shorter: other videos under the same names
    second = eval_process(tiny_reach_run, out, "--episodes", 2000, "--video", "--max-steps", 5)
    try:
        wait_for(lambda: any(path.stat().st_mtime > (out / "eval.json").stat().st_mtime
                             for path in out.glob("videos*/**/seed_100000.png")), second, "first video written")
        os.killpg(second.pid, signal.SIGINT)
        assert second.wait(timeout=60) == 130
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
    assert {path.name: path.read_bytes() for path in (out / "videos").iterdir()} == before
    assert (out / "eval.json").read_text() == report
    run_cli("eval", tiny_reach_run, "--episodes", 1, "--video", "--max-steps", 5, "--out", out, check=True)  # next
    assert sorted(path.name for path in (out / "videos").iterdir()) == ["seed_100000.mp4", "seed_100000.png"]
    assert not (out / "videos.partial").exists()


@pytest.mark.parametrize("in_the_way", ["eval.json", "report.html", "videos"])
def test_a_report_path_taken_by_something_else_is_one_line_before_any_episode(tiny_reach_run, tmp_path, in_the_way):
    """A directory named eval.json failed only after every episode had played; a file named videos, in an env
    worker, as a traceback."""
    path = tmp_path / "out" / in_the_way
    if in_the_way == "videos":
        path.parent.mkdir()
        path.write_text("mine")
    else:
        path.mkdir(parents=True)
    result = run_cli("eval", tiny_reach_run, "--episodes", 1, "--video", "--out", tmp_path / "out")
    kind = "directory" if in_the_way == "videos" else "file"
    assert result.returncode == 2 and result.stderr == (
        f"roboil: error: '{path}' is in the way of the report's {in_the_way}, which is a {kind}; move it away or pass "
        "another --out\n"), result.stderr


@pytest.mark.parametrize("command", [
    lambda store, run, out: ["train", "configs/fetch_reach/gcbc.yaml", f"data.path={store}", "--out", out],
    lambda store, run, out: ["eval", run, "--episodes", 1, "--out", out],
    lambda store, run, out: ["replay", store, "--episode", 0, "--video", out / "x.mp4"],
    lambda store, run, out: ["store", "view", store, "--out", out],
    lambda store, run, out: ["store", "drop-actions", store, "--out", out],
    lambda store, run, out: ["export", "--to", "robomimic", store, out / "x.hdf5"],
    lambda store, run, out: ["record", "--task", "fetch-reach", "--episodes", 1, "--out", out],
    lambda store, run, out: ["plugin", "new", "zz", "--out", out],
])
def test_an_output_inside_a_file_is_one_line_before_any_work(tiny_reach_store, tiny_reach_run, tmp_path, command):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    result = run_cli(*command(tiny_reach_store, tiny_reach_run, a_file / "out"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"'{a_file}' is a file" in result.stderr and "pass another output path" in result.stderr
    assert a_file.read_text() == "not a directory"


@pytest.mark.parametrize("command", [
    lambda store, run, out: ["record", "--task", "fetch-reach", "--episodes", 1, "--out", out],
    lambda store, run, out: ["store", "copy", store, "--out", out],
    lambda store, run, out: ["train", "configs/fetch_reach/gcbc.yaml", f"data.path={store}", "--out", out],
    lambda store, run, out: ["eval", run, "--episodes", 1, "--out", out],
    lambda store, run, out: ["export", "--to", "zarr2", store, out],
])
def test_an_output_inside_an_episode_store_is_refused_before_it_breaks_the_store(tiny_reach_store, tiny_reach_run,
                                                                                 tmp_path, command):
    import shutil

    store = tmp_path / "reach.zarr"
    shutil.copytree(tiny_reach_store, store)
    result = run_cli(*command(store, tiny_reach_run, store / "data" / "inner"))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"roboil: error: '{store / 'data' / 'inner'}' is inside the episode store '{store}', which it would break; "
        "pass an output path outside it"), result.stderr
    assert run_cli("store", "check", store).returncode == 0 and not (store / "data" / "inner").exists()
    check_writable(store / "data" / ".." / ".." / "beside.zarr")  # a path through the store to outside it is fine


def test_the_command_line_helps_a_lost_user():
    bare = run_cli()
    assert bare.returncode == 2 and "usage: roboil" in bare.stdout and "record" in bare.stdout
    assert run_cli("--version").stdout.strip().startswith("roboil ")
    typo = run_cli("trian")
    assert typo.returncode == 2 and len(typo.stderr.strip().splitlines()) == 1
    assert "did you mean 'train'?" in typo.stderr and "roboil: roboil" not in typo.stderr
    assert "did you mean 'check'?" in run_cli("store", "chek", "x").stderr
    missing = run_cli("train")
    assert "required: config, --out (see roboil train --help)" in missing.stderr, missing.stderr


def test_a_deferred_ctrl_c_is_flagged_a_second_one_raises_and_the_flag_does_not_outlive_it(monkeypatch):
    from roboil import errors

    monkeypatch.setattr(errors, "_interrupted", False)  # whatever an earlier in-process command left
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with errors.interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert errors.interrupted()  # flagged, for the loop to stop where it keeps its work
            os.kill(os.getpid(), signal.SIGINT)  # a loop stuck before that point: a second one stops it at once
            time.sleep(1)
            pytest.fail("the second Ctrl-C did not raise")
    assert not errors.interrupted()  # carried on by the exception, not left to stop a later run
    assert signal.getsignal(signal.SIGINT) is before


WORKERS_TAKE_NO_CTRL_C = """
import os, signal, sys, time
import numpy as np, torch
sys.path.insert(0, "tests")
from test_loader import image_store, sampler
from roboil.errors import interrupted, interrupts_deferred
from roboil.loader import batches
from roboil.rows import RowReader

if __name__ == "__main__":
    store = image_store(sys.argv[1])
    arrays = {"image": RowReader(store.array("image"), store.path / "data" / "image"), **store.load(["state", "action"])}
    with interrupts_deferred():
        made = batches(sampler(arrays, store), 6, torch.device("cpu"), workers=1)
        next(made)
        os.killpg(0, signal.SIGINT)  # as a terminal's Ctrl-C: the workers are in the group too
        time.sleep(1)
        for _ in range(20):  # more batches than were prefetched: the workers still work
            next(made)
        print("flagged" if interrupted() else "not flagged")
        made.close()
"""


def test_a_ctrl_c_while_training_reads_from_disk_leaves_the_workers_to_the_training_loop(tmp_path):
    """The training loop saves its step on Ctrl-C; worker processes that took the signal themselves would die and
    end the run in a traceback instead ('DataLoader worker exited unexpectedly')."""
    script = tmp_path / "workers.py"
    script.write_text(WORKERS_TAKE_NO_CTRL_C)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "s.zarr")], capture_output=True, text=True,
                          timeout=120, start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.strip() == "flagged", done.stderr[-2000:]


def test_a_batch_too_large_for_memory_is_refused_before_it_is_gathered(tiny_reach_store, tmp_path, capsys):
    main_fails_in_one_line(capsys, ["train", "configs/fetch_reach/gcbc.yaml", f"data.path={tiny_reach_store}",
                                    "train.batch_size=1000000000000", "--out", str(tmp_path / "run")],
                           "train.batch_size: a batch of 1000000000000 windows takes", "use a smaller train.batch_size")


def test_running_out_of_memory_is_one_line(tiny_reach_store, tmp_path, capsys, monkeypatch):
    """The CPU allocator's error and CUDA's (torch.cuda.OutOfMemoryError) name the settings that use memory."""
    import torch

    def exhausted(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr("roboil.train.LossOf.forward", exhausted)
    main_fails_in_one_line(capsys, ["train", "configs/fetch_reach/gcbc.yaml", f"data.path={tiny_reach_store}",
                                    "--out", str(tmp_path / "run")],
                           "out of memory (CUDA out of memory. Tried to allocate 20.00 GiB); use a smaller "
                           "train.batch_size")


@pytest.mark.parametrize("args, message", [
    (["store"], "store: the following arguments are required: {info,check,copy,drop-actions,recode,view} (see "
                "roboil store --help)"),
    (["store", "copy", "{store}", "--out", "{tmp}/c", "--episodes", "2"],
     "unrecognized arguments: --episodes 2 (see roboil store copy --help)"),
    (["record", "--task", "fetch-reach", "--labeler", "foo", "--episodes", "1", "--out", "{tmp}/s"],
     "unknown labeler 'foo'; valid: "),
    (["eval", "{tmp}/nonexistent"], "no run directory '{tmp}/nonexistent'; pass the --out directory of 'roboil train'"),
    (["export", "--to", "zarr2", "{store}", "{tmp}/e", "--fps", "3"], "--fps is for --to lerobot, not --to zarr2"),
    (["export", "--to", "lerobot", "{store}", "{tmp}/e", "--fps", "-3"],
     "--fps must be a positive number of frames per second, got -3.0"),
    (["store", "recode", "{store}", "--out", "{tmp}/r", "--codec", "jpeg", "--quality", "500"],
     "--quality must be an integer from 1 to 100, got 500"),
])
def test_messages_name_what_the_user_typed(tiny_reach_store, tmp_path, args, message):
    def fill(text: str) -> str:
        return text.replace("{store}", str(tiny_reach_store)).replace("{tmp}", str(tmp_path))

    result = run_cli(*map(fill, args))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"roboil: error: {fill(message)}" in result.stderr, result.stderr
    assert not [p for p in tmp_path.iterdir()]  # nothing made


def test_a_checkpoint_whose_plugin_changed_names_the_plugins_it_was_trained_with(tiny_reach_run, tmp_path, capsys):
    """A plugin renamed a config field after the run was trained: the message read as a typo of the user's."""
    import shutil

    import yaml

    run = tmp_path / "run"
    shutil.copytree(tiny_reach_run, run)
    checkpoint = next((run / "checkpoints").glob("step_*"))
    assert json.loads((checkpoint / "meta.json").read_text())["plugins"] == {"fetch": "0.1.0", "gcbc": "0.1.0",
                                                                             "proprio": "0.1.0"}
    saved = yaml.safe_load((checkpoint / "config.yaml").read_text())
    saved["algorithm"]["layers"] = saved["algorithm"].pop("hidden_dims")  # as the plugin's older version named it
    (checkpoint / "config.yaml").write_text(yaml.safe_dump(saved))
    main_fails_in_one_line(capsys, ["eval", str(run), "--episodes", "1"],
                           f"checkpoint '{checkpoint}' was trained with a config the installed plugins do not take "
                           "(unknown config key 'algorithm.layers'",
                           "install the plugins it was trained with (fetch 0.1.0, gcbc 0.1.0, proprio 0.1.0), or "
                           "train again")


def test_a_checkpoint_whose_observation_plugin_is_gone_names_the_plugins_it_was_trained_with(tiny_reach_run):
    result = run_cli("eval", tiny_reach_run, "--episodes", 1, env={"ROBOIL_DISABLE_PLUGINS": "proprio"})
    assert result.returncode == 2 and result.stderr.startswith("roboil: error: checkpoint '") and (
        "reads observations of kind 'proprio', which no installed plugin provides; install the plugins it was "
        "trained with (fetch 0.1.0, gcbc 0.1.0, proprio 0.1.0), or train again\n") in result.stderr, result.stderr
