"""Where writing fails (a read-only --out, a full disk) and where what was written is damaged (checkpoint files),
every command ends in one line and exit 2, and nothing recorded or trained before is lost. Also: Ctrl-C at a
command's start, SIGKILL of eval, and output piped into a reader that leaves.

Full and read-only file systems are real: small tmpfs mounts (root with CAP_SYS_ADMIN, as in CI's container);
elsewhere those tests skip and say why.
"""

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roboil.record import record
from roboil.store import EpisodeStore
from conftest import run_cli

REACH = "configs/fetch_reach/gcbc.yaml"


def one_line(result, message: str | None) -> None:
    """The command failed with ``message`` alone (None: it succeeded, saying nothing but its bars)."""
    lines = [line for line in result.stderr.splitlines()  # not the progress bars, nor record's appending notice
             if line.strip() and not line.startswith(("record ", "train ", "eval ")) and "more after them" not in line]
    if message is None:
        assert result.returncode == 0 and lines == [], result.stderr
    else:
        assert result.returncode == 2 and lines == [f"roboil: error: {message}"], result.stderr


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(read_only=False)`` gives a fresh 4 MiB tmpfs directory, unmounted after the test."""
    mounted = []

    def mount(read_only: bool = False) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=4m{',ro' if read_only else ''}", "tmpfs",
                                 str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


def fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s file system (writes, so tmpfs really runs out)."""
    filler = directory / "filler"
    block = b"\0" * (64 << 10)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


READ_ONLY = "'{out}' is on a read-only file system; pass an output path you can write to"
FULL = ("no space left on the device holding '{out}'; free some space or pass another output path (everything "
        "saved before this write is intact)")


def test_read_only_out_is_one_line_for_record_train_and_eval(tmpfs, tiny_reach_store, tiny_reach_run):
    mount = tmpfs(read_only=True)
    out = mount / "s.zarr"
    one_line(run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", out), READ_ONLY.format(out=out))
    out = mount / "run"
    one_line(run_cli("train", REACH, f"data.path={tiny_reach_store}", "train.steps=2", "--out", out), READ_ONLY.format(out=out))
    out = mount / "eval"
    one_line(run_cli("eval", tiny_reach_run, "--episodes", 1, "--out", out), READ_ONLY.format(out=out))


def test_read_only_positional_output_is_one_line_without_naming_an_option(tmpfs, tiny_reach_store):
    """export's OUT and import's STORE are positional: the message names the path, not an --out option."""
    mount = tmpfs(read_only=True)
    out = mount / "reach.hdf5"
    one_line(run_cli("export", "--to", "robomimic", tiny_reach_store, out), READ_ONLY.format(out=out))


def test_store_remounted_read_only_refuses_appending_in_one_line(tmpfs):
    mount = tmpfs()
    record("fetch-reach", 1, mount / "s.zarr", progress=False)
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    out = mount / "s.zarr"
    one_line(run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", out), READ_ONLY.format(out=out))
    assert EpisodeStore.open(out).n_episodes == 1


def test_disk_full_while_recording_keeps_every_committed_episode(tmpfs):
    out = tmpfs() / "s.zarr"
    record("fetch-reach", 2, out, progress=False)
    filler = fill(out.parent)
    one_line(run_cli("record", "--task", "fetch-reach", "--episodes", 3, "--out", out), FULL.format(out=out))
    store = EpisodeStore.open(out)
    assert store.n_episodes == 2 and store.check(deep=True) == []
    filler.unlink()  # with space again the same store takes the next episode: nothing was left locked or half-made
    run_cli("record", "--task", "fetch-reach", "--episodes", 1, "--out", out, check=True)
    assert EpisodeStore.open(out).n_episodes == 3


def test_disk_full_while_checkpointing_keeps_the_previous_checkpoint(tmpfs, tiny_reach_store):
    out = tmpfs() / "run"
    args = [REACH, f"data.path={tiny_reach_store}", "train.checkpoint_every=2", "algorithm.hidden_dims=[64]", "--out", out]
    run_cli("train", *args, "train.steps=2", check=True)
    filler = fill(out.parent)
    one_line(run_cli("train", *args, "train.steps=4"), FULL.format(out=out))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last", "step_00000002"]  # no partial one
    filler.unlink()
    result = run_cli("train", *args, "train.steps=4", check=True)
    assert "resumed from step 2" in result.stderr and (out / "checkpoints" / "step_00000004").is_dir()


def test_disk_full_during_eval_is_one_line_and_leaves_no_partial_video(tmpfs, tiny_reach_run):
    out = tmpfs() / "eval"
    fill(out.parent)
    one_line(run_cli("eval", tiny_reach_run, "--episodes", 2, "--video", "--out", out), FULL.format(out=out))
    assert not [p for p in out.rglob("*") if p.is_file() and p.name != ".eval.lock"]


def test_config_that_is_not_utf8_is_one_line(tmp_path):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("task: fetch-reach  # café\n".encode("latin-1"))
    one_line(run_cli("train", config, "--out", tmp_path / "run"),
             f"config file '{config}' is not UTF-8 text (byte 0xe9 at offset 24); save it as UTF-8")


def overwrite_middle(path: Path) -> None:
    """400 bytes inside the weights, the size kept: the file still loads, into NaN and other numbers."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 400] = b"\xff" * 400
    path.write_bytes(bytes(data))


CHANGED = "is damaged (its bytes changed since it was saved: its crc32c differs from meta.json's)"


@pytest.mark.parametrize("name, damage, problem", [
    ("model.safetensors", lambda p: p.write_bytes(p.read_bytes()[:100]), CHANGED),
    ("model.safetensors", overwrite_middle, CHANGED),
    ("stats.safetensors", lambda p: p.write_bytes(p.read_bytes()[:-7]), CHANGED),
    ("meta.json", lambda p: p.write_text("{\"features\": "), "is damaged (JSONDecodeError)"),
    ("meta.json", lambda p: p.write_text("{}"), "is damaged (KeyError)"),
    ("meta.json", lambda p: p.unlink(), "is missing"),
    ("config.yaml", lambda p: p.write_bytes(b"\xff\xfe task"), "is damaged (UnicodeDecodeError)"),
    ("config.yaml", lambda p: p.write_text("task: [unclosed"), "is damaged (ParserError)"),
])
def test_damaged_checkpoint_file_is_one_line_in_eval(tiny_reach_run, tmp_path, name, damage, problem):
    copy = shutil.copytree(tiny_reach_run, tmp_path / "run")
    checkpoint = copy / "checkpoints" / (copy / "checkpoints" / "last").read_text()
    damage(checkpoint / name)
    one_line(run_cli("eval", copy, "--episodes", 1),
             f"checkpoint file '{checkpoint / name}' {problem}; restore it, or pass another checkpoint")


def test_eval_names_the_checkpoint_it_cannot_use_and_the_one_it_can(tiny_reach_store, tmp_path):
    """The newest checkpoint without its weights, a run before its first checkpoint and RUN/checkpoints were all
    "holds no checkpoint; pass the --out directory of 'roboil train'"."""
    run = tmp_path / "run"
    run_cli("train", REACH, f"data.path={tiny_reach_store}", "train.steps=4", "train.checkpoint_every=2",
            "algorithm.hidden_dims=[8]", "--out", run, check=True)
    one_line(run_cli("eval", run / "checkpoints", "--episodes", 1, "--out", tmp_path / "e"), None)  # as the run
    (run / "checkpoints" / "step_00000004" / "model.safetensors").unlink()
    one_line(run_cli("eval", run, "--episodes", 1),
             f"checkpoint file '{run / 'checkpoints' / 'step_00000004' / 'model.safetensors'}' is missing; restore "
             f"it, or pass an earlier one ({run / 'checkpoints' / 'step_00000002'})")
    shutil.rmtree(run / "checkpoints")
    one_line(run_cli("eval", run, "--episodes", 1),
             f"run '{run}' has no checkpoint: its training stopped before saving one; train it again")
    from roboil.errors import try_lock

    held = try_lock(run / ".lock")  # as a training of it would
    try:
        one_line(run_cli("eval", run, "--episodes", 1),
                 f"run '{run}' has no checkpoint yet: it is training, and saves one every train.checkpoint_every steps "
                 "and at its end; wait for one")
    finally:
        os.close(held)


def test_weights_that_do_not_fit_the_config_are_one_line_in_eval(tiny_reach_run, tmp_path):
    copy = shutil.copytree(tiny_reach_run, tmp_path / "run")
    checkpoint = copy / "checkpoints" / (copy / "checkpoints" / "last").read_text()
    config = checkpoint / "config.yaml"
    config.write_text(config.read_text().replace("- 8", "- 16"))  # a wider layer than the saved weights
    one_line(run_cli("eval", copy, "--episodes", 1),
             f"the weights in '{checkpoint / 'model.safetensors'}' do not fit the model its config builds (saved by "
             "another version of the algorithm's plugin?); train the run again")


def test_a_checkpoint_config_edited_to_another_task_is_one_line_in_eval(tiny_reach_run, tmp_path):
    """fetch-push's observations are wider than fetch-reach's: a traceback from inside the model."""
    copy = shutil.copytree(tiny_reach_run, tmp_path / "run")
    config = copy / "checkpoints" / (copy / "checkpoints" / "last").read_text() / "config.yaml"
    config.write_text(config.read_text().replace("task: fetch-reach", "task: fetch-push"))
    one_line(run_cli("eval", copy, "--episodes", 1),
             "the environment gives 'observation' as (25,), the policy was trained on (10,); run it in the task "
             "with the observation settings it was trained with")


def test_weights_that_are_not_numbers_are_one_line_in_eval(tiny_reach_run, tmp_path):
    """A training that diverged saves NaN weights: eval reported success 0.000 and exited 0."""
    import json

    from safetensors.torch import load_file, save_file

    from roboil.checkpoint import file_checksum

    copy = shutil.copytree(tiny_reach_run, tmp_path / "run")
    checkpoint = copy / "checkpoints" / (copy / "checkpoints" / "last").read_text()
    weights = load_file(checkpoint / "model.safetensors")
    save_file({k: v * float("nan") if v.is_floating_point() else v for k, v in weights.items()},
              checkpoint / "model.safetensors")
    meta = json.loads((checkpoint / "meta.json").read_text())
    meta["checksums"]["model.safetensors"] = file_checksum(checkpoint / "model.safetensors")  # saved so
    (checkpoint / "meta.json").write_text(json.dumps(meta))
    one_line(run_cli("eval", copy, "--episodes", 1),
             "the policy's actions are not finite numbers (NaN or inf): its weights hold some (training diverged: "
             "see its loss in metrics.jsonl), or an observation does")


def launch(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "roboil.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


# From 0.15 s: earlier, the interpreter itself is still starting (its own traceback, before any roboil code runs).
@pytest.mark.parametrize("delay", [0.15, 0.4, 0.8, 1.5])
def test_ctrl_c_at_the_start_of_record_is_one_line_and_exit_130(tmp_path, delay):
    process = launch("record", "--task", "fetch-reach", "--episodes", 20, "--out", tmp_path / "s.zarr")
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("record ")]
    saved = EpisodeStore.open(tmp_path / "s.zarr").n_episodes if (tmp_path / "s.zarr").exists() else 0
    said = [f"roboil: stopped with {saved} episode(s) saved this time, {saved} in '{tmp_path / 's.zarr'}'; "
            f"--episodes {20 - saved} with the same --out records the rest"] if saved else []
    assert process.returncode == 130 and lines == [*said, "roboil: interrupted"], stderr
    if (tmp_path / "s.zarr").exists():
        assert EpisodeStore.open(tmp_path / "s.zarr").check(deep=True) == []


def test_a_recording_stopped_part_way_says_what_it_kept_and_how_to_go_on(tmp_path):
    """It said only "roboil: interrupted", though the episodes saved are kept and appending goes on exactly."""
    store = tmp_path / "s.zarr"
    process = launch("record", "--task", "fetch-reach", "--episodes", 500, "--out", store)
    deadline = time.monotonic() + 120
    while not (store.exists() and EpisodeStore.open(store).n_episodes >= 2):
        assert time.monotonic() < deadline and process.poll() is None, "no episode saved"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    saved = EpisodeStore.open(store).n_episodes
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("record ")]
    assert process.returncode == 130 and lines == [
        f"roboil: stopped with {saved} episode(s) saved this time, {saved} in '{store}'; --episodes {500 - saved} "
        "with the same --out records the rest", "roboil: interrupted"], stderr


def _first_child(pid: int, timeout: float) -> int | None:
    """The pid of a process that ``pid`` started, once one runs (polling /proc), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # it ended while we looked
                continue
            if int(fields[1]) == pid:
                return int(stat.parent.name)
        time.sleep(0.002)
    return None


# As gymnasium-robotics does when its import loads pyGLFW (which probes its library in a child interpreter),
# only slower, so that Ctrl-C lands while the helper runs.
SLOW_IMPORT_HELPER = """
import subprocess, sys
class SlowHelper:
    def find_spec(self, name, path, target=None):
        if name == "gymnasium_robotics":
            sys.meta_path.remove(self)
            subprocess.run([sys.executable, "-c", "import time; time.sleep(2)"])
sys.meta_path.insert(0, SlowHelper())
"""


def test_ctrl_c_while_a_library_helper_process_runs_is_one_line(tmp_path, monkeypatch):
    """Ctrl-C reaches the whole process group: a helper a library starts as the task's env is made printed its own
    KeyboardInterrupt traceback after our line (CI, with pyGLFW's probe)."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_IMPORT_HELPER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    process = launch("record", "--task", "fetch-reach", "--episodes", 20, "--out", tmp_path / "s.zarr")
    assert _first_child(process.pid, timeout=60) is not None, "the helper never started"
    time.sleep(0.5)  # its interpreter is up, sleeping
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("record ")]
    assert process.returncode == 130 and lines == ["roboil: interrupted"], stderr


def test_sigkill_of_eval_leaves_no_worker_and_no_traceback(tiny_reach_run, tmp_path):
    process = launch("eval", tiny_reach_run, "--episodes", 500, "--envs", 2, "--out", tmp_path)
    time.sleep(4)  # the env workers are stepping
    os.kill(process.pid, signal.SIGKILL)  # the main process only: its workers see their pipes close
    _, stderr = process.communicate(timeout=60)  # returns once every worker has exited (they share stderr)
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("eval ")]
    assert process.returncode == -signal.SIGKILL and lines == [], stderr


def test_output_piped_into_a_reader_that_left_is_not_an_error(tiny_reach_store):
    result = subprocess.run(f"{sys.executable} -m roboil.cli store info {tiny_reach_store} | true", shell=True,
                            capture_output=True, text=True)
    assert result.stderr == "", result.stderr
