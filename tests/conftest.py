import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

os.environ.setdefault("MUJOCO_GL", "egl")
if "PYTEST_XDIST_WORKER" in os.environ:  # `make test` runs two workers: the CLIs they start take a core each
    os.environ["OMP_NUM_THREADS"] = "1"
FIXTURES = Path(__file__).parent / "fixtures"


def run_cli(*args, env=None, check=False, cwd=None):
    """Run ``roboil`` in a fresh interpreter, as a user would, and return the CompletedProcess."""
    result = subprocess.run([sys.executable, "-m", "roboil.cli", *map(str, args)], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, timeout=600, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"roboil {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def ctrl_c(process: subprocess.Popen) -> None:
    """What a terminal does on Ctrl-C: SIGINT to the whole process group."""
    os.killpg(process.pid, signal.SIGINT)


def interrupt_training(command: list[str], run: Path, after_steps: int = 20, interrupt=ctrl_c) -> tuple[int, str]:
    """Start ``command`` (a training into ``run`` logging every step) in its own process group, ``interrupt`` it
    once ``after_steps`` steps are logged, and return (exit code, stderr)."""
    import time

    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        metrics, deadline = run / "metrics.jsonl", time.monotonic() + 120
        while not (metrics.is_file() and metrics.read_text().count("\n") >= after_steps):
            assert time.monotonic() < deadline and process.poll() is None, f"no {after_steps} steps logged in {run}"
            time.sleep(0.1)
        interrupt(process)
        _, stderr = process.communicate(timeout=120)
        return process.returncode, stderr
    finally:
        if process.poll() is None:  # a failed test leaves no training running
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def install_fixture_plugin(name: str, tmp_path_factory) -> Path:
    """A fixture plugin really installed (pip, entry points and all) into a directory for PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / name
    shutil.copytree(FIXTURES / name, source)  # the build leaves files next to the sources
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(source)], check=True)
    return target


def main_fails_in_one_line(capsys, argv, *words) -> str:
    """``roboil.cli.main(argv)`` in-process exits 2 with one ``roboil: error:`` line holding ``words``."""
    from roboil.cli import main

    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("roboil: error: "), err
    for word in words:
        assert word in err, err
    return err


def store_layouts(store) -> dict:
    """Each array's chunking, sharding and codec, to compare a store with its copy through another format."""
    from roboil.store import array_layout

    return {key: array_layout(store.array(key)) for key in store.features}


def plugin_pythonpath(site: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="session")
def tiny_reach_store(tmp_path_factory):
    """Two scripted fetch-reach episodes."""
    from roboil.record import record

    path = tmp_path_factory.mktemp("tiny") / "reach.zarr"
    record("fetch-reach", 2, path, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_reach_run(tiny_reach_store):
    """A GCBC run trained for 2 steps on ``tiny_reach_store``: a checkpoint to evaluate, not a policy."""
    from roboil.config import load_config
    from roboil.train import train

    config = load_config("configs/fetch_reach/gcbc.yaml", [f"data.path={tiny_reach_store}", "train.steps=2",
                                                           "algorithm.hidden_dims=[8]"])
    return train(config, tiny_reach_store.parent / "run", progress=False).parents[1]


@pytest.fixture(scope="session")
def hello_plugin_path(tmp_path_factory):
    return install_fixture_plugin("hello_plugin", tmp_path_factory)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """In-process tests run tiny models: OpenMP fan-out costs more than it gains (5x slower on a busy 2-core
    machine). CLI subprocesses keep torch's default, but for one thread under two xdist workers (above)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
