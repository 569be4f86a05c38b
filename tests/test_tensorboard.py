"""The tensorboard logger plugin: enabled by ``loggers: [tensorboard]``, it writes the training metrics, the
evaluation numbers (through the on_eval_end hook) and the filmed episodes into RUN/tensorboard; the event files
are read back here the way TensorBoard reads them."""

import io
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from roboil.config import load_config
from roboil.errors import RoboilError

GCBC = "configs/fetch_reach/gcbc.yaml"
TINY = ["train.batch_size=8", "algorithm.hidden_dims=[8]"]


@pytest.fixture(scope="module")
def tensorboard():
    return pytest.importorskip("tensorboard")


def read_events(logdir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def metrics_lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def scalars(accumulator, tag):
    return [(event.step, event.value) for event in accumulator.Scalars(tag)]


@pytest.fixture(scope="module")
def logged_run(tensorboard, tiny_reach_store, tmp_path_factory):
    """3 steps with loggers=[tensorboard], metrics logged every 2 steps (steps 2 and 3), checkpoints at 2 and 3."""
    from roboil.train import train

    config = load_config(GCBC, [f"data.path={tiny_reach_store}", "train.steps=3", "train.log_every=2",
                                "train.checkpoint_every=2", "loggers=[tensorboard]", *TINY])
    run = tmp_path_factory.mktemp("tb") / "run"
    train(config, run, progress=False)
    return run


def test_training_metrics_are_scalars_at_the_steps_and_values_of_metrics_jsonl(logged_run):
    logged = metrics_lines(logged_run)
    assert [line["step"] for line in logged] == [2, 3]
    names = set(logged[0]) - {"step", "time"}
    assert {"loss", "lr"} <= names
    accumulator = read_events(logged_run / "tensorboard")
    assert {f"train/{name}" for name in names} == set(accumulator.Tags()["scalars"])
    for name in names:
        expected = [(line["step"], line[name]) for line in logged]
        got = scalars(accumulator, f"train/{name}")
        assert [step for step, _ in got] == [step for step, _ in expected], name
        assert [value for _, value in got] == pytest.approx([value for _, value in expected], rel=1e-6), name


def test_evaluation_writes_its_numbers_and_its_videos(logged_run):
    from PIL import Image

    from roboil.evaluate import evaluate

    report = evaluate(logged_run, episodes=2, envs=1, video=True, max_steps=6, progress=False)
    accumulator = read_events(logged_run / "tensorboard")
    tags = accumulator.Tags()
    # the on_eval_end hook: the report's numbers, at the step of the checkpoint evaluated (the last: 3)
    assert scalars(accumulator, "eval/success_rate") == [(3, pytest.approx(report["success_rate"]))]
    assert scalars(accumulator, "eval/mean_return") == [(3, pytest.approx(report["mean_return"], rel=1e-6))]
    # both episodes are filmed (eval.video_episodes is 4): an animated GIF each, and the table naming the mp4s
    assert sorted(tags["images"]) == ["eval/video/seed_100000", "eval/video/seed_100001"]
    for tag in tags["images"]:
        (event,) = accumulator.Images(tag)
        assert event.step == 3
        gif = Image.open(io.BytesIO(event.encoded_image_string))
        assert gif.format == "GIF" and gif.n_frames > 1 and max(gif.size) <= 256
    (text,) = accumulator.Tensors("eval/videos/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert text.step == 3
    for episode in report["episodes"]:
        assert f"| {episode['seed']} | {'success' if episode['success'] else 'failure'} |" in table
        assert f"eval/videos/seed_{episode['seed']}.mp4" in table


def test_without_loggers_nothing_is_written(tensorboard, tiny_reach_run, tmp_path):
    from roboil.evaluate import evaluate

    run = shutil.copytree(tiny_reach_run, tmp_path / "run")  # trained with the plugin loaded, not enabled
    evaluate(run, episodes=1, envs=1, video=True, max_steps=3, progress=False)
    assert (run / "eval" / "eval.json").is_file() and not list(run.rglob("events.out.tfevents.*"))


def test_resume_of_a_run_older_than_loggers_enables_it_and_replaces_later_events(logged_run, tiny_reach_store,
                                                                                tmp_path):
    from roboil.train import train

    run = shutil.copytree(logged_run, tmp_path / "run")
    # back to the checkpoint at step 2, whose config.yaml predates the loggers key: step 3's events are orphans now
    checkpoints = run / "checkpoints"
    shutil.rmtree(checkpoints / "step_00000003")
    (checkpoints / "last").write_text("step_00000002")
    # older checkpoints keep their weights only: give step 2 the state of a run that stopped there
    stopped = train(load_config(GCBC, [f"data.path={tiny_reach_store}", "train.steps=2", *TINY]), tmp_path / "stopped",
                    progress=False)
    shutil.copy(stopped / "training_state.pt", checkpoints / "step_00000002")
    from roboil.checkpoint import file_checksum  # the file meta.json vouches for is this one now

    meta_path = checkpoints / "step_00000002" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["checksums"]["training_state.pt"] = file_checksum(checkpoints / "step_00000002" / "training_state.pt")
    meta_path.write_text(json.dumps(meta))
    saved = checkpoints / "step_00000002" / "config.yaml"
    old = yaml.safe_load(saved.read_text())
    del old["loggers"]
    saved.write_text(yaml.safe_dump(old, sort_keys=False))
    config = load_config(GCBC, [f"data.path={old['data']['path']}", "train.steps=4", "train.log_every=1",
                                "train.checkpoint_every=2", "loggers=[tensorboard]", *TINY])
    train(config, run, progress=False)
    meta = json.loads((checkpoints / "step_00000004" / "meta.json").read_text())
    assert meta["resumes"][-1]["step"] == 2
    assert meta["resumes"][-1]["changed"]["loggers"] == [None, ["tensorboard"]]
    logged = metrics_lines(run)
    assert [line["step"] for line in logged] == [2, 3, 4]
    # one value per step: the first session's step 3 is purged, as metrics.jsonl was trimmed
    got = scalars(read_events(run / "tensorboard"), "train/loss")
    assert [step for step, _ in got] == [2, 3, 4]
    assert [value for _, value in got] == pytest.approx([line["loss"] for line in logged], rel=1e-6)


def test_an_unknown_logger_is_one_line(monkeypatch, tiny_reach_store):
    with pytest.raises(RoboilError, match=r"^unknown logger 'tensorbord' in config key 'loggers'; valid: .*"
                                          r"\btensorboard\b"):
        load_config(GCBC, [f"data.path={tiny_reach_store}", "loggers=[tensorbord]"])
    with pytest.raises(RoboilError, match="config key 'loggers' must be a list"):
        load_config(GCBC, [f"data.path={tiny_reach_store}", "loggers=tensorboard"])
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # not installed, as far as the check can tell
    assert load_config(GCBC, [f"data.path={tiny_reach_store}"]).loggers == []  # not asked for: no error


def test_missing_tensorboard_stops_training_at_the_start_in_one_line(tiny_reach_store, tmp_path):
    code = ("import sys\n"
            "sys.modules['tensorboard'] = None  # as if not installed\n"
            "from roboil.cli import entry\n"
            f"sys.argv = ['roboil', 'train', {GCBC!r}, 'data.path={tiny_reach_store}', 'loggers=[tensorboard]', "
            f"'--out', {str(tmp_path / 'run')!r}]\n"
            "entry()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "roboil: error: logger 'tensorboard' needs the tensorboard package, which is not installed; "
        "pip install 'roboil[tensorboard]' (or remove 'tensorboard' from loggers)"]
    assert not (tmp_path / "run").exists()
