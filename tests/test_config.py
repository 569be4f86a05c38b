"""Config loading: overrides, typed validation, and one-line errors with exit code 2."""

from pathlib import Path

import pytest

from roboil.config import load_config, parse_overrides
from roboil.envs import ObservedEnv
from roboil.errors import RoboilError
from roboil.plugins import registry
from conftest import run_cli

CONFIG = "configs/fetch_reach/gcbc.yaml"
SHIPPED_CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*/*.yaml"))


def test_yaml_and_overrides_become_typed_objects():
    config = load_config(CONFIG, ["train.steps=12", "train.lr=1e-4", "algorithm.hidden_dims=[8,8]",
                                  "data.path=somewhere.zarr"])
    assert config.train.steps == 12 and config.train.lr == pytest.approx(1e-4)
    assert config.algorithm["hidden_dims"] == (8, 8)
    assert config.algorithm["relabel_prob"] == 0.5  # defaults are filled in from the plugin's dataclass
    assert config.data.path == "somewhere.zarr"


def test_int_is_accepted_for_float_but_not_the_reverse():
    assert load_config(CONFIG, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(RoboilError, match="config key 'train.steps' must be int, got 1.5"):
        load_config(CONFIG, ["train.steps=1.5"])


@pytest.mark.parametrize("override, message", [
    ("train.stepz=3", "unknown config key 'train.stepz'; valid keys in train: .*steps"),
    ("algorithm.name=nope", "unknown algorithm 'nope'; valid: .*gcbc"),
    ("algorithm.relabel=0.3", "unknown config key 'algorithm.relabel'; valid keys in algorithm: .*relabel_prob"),
    ("algorithm.name=diffusion", "config key 'algorithm.goal_conditioned' is for algorithm 'gcbc', not 'diffusion'; "
                                 "set algorithm.name=gcbc or drop the key"),
    ("algorithm.relabel_prob=2.0", "algorithm.relabel_prob must be in \\[0, 1\\]"),
    ("task=fetch-fly", "unknown task 'fetch-fly'; valid: .*fetch-pick-and-place"),
    ("train.batch_size=big", "config key 'train.batch_size' must be int, got 'big'"),
    ("train.lr_schedule=linear", "train.lr_schedule 'linear' is invalid; valid: cosine, constant"),
    ("encoders.lidar={}", "unknown observation 'lidar'"),
    ("encoders.pixels.crop=0.5",
     "unknown config key 'encoders.pixels.crop'; valid keys in encoders.pixels: crop_ratio"),
    ("encoders.pixels.crop_ratio=2", "encoders.pixels.crop_ratio must be in \\(0, 1\\]"),
    ("train.lr=-1", "config key 'train.lr' must be a finite number > 0.0, got -1"),
    ("train.lr=.nan", "config key 'train.lr' must be a finite number > 0.0, got nan"),
    ("train.weight_decay=-1", "config key 'train.weight_decay' must be a finite number >= 0.0"),
    ("train.warmup_steps=-3", "train.warmup_steps must be >= 0, got -3"),
    ("train.ema_decay=2", "config key 'train.ema_decay' must be a finite number >= 0.0 and < 1.0, got 2"),
    ("algorithm.hidden_dims=[-4]", "algorithm.hidden_dims must list positive layer widths, got \\[-4\\]"),
    ("algorithm.dropout=2", "algorithm.dropout must be in \\[0, 1\\), got 2"),
    ("eval.executor.name=median", "unknown executor 'median'; valid: ensemble, queue"),
    ("eval.executor.coefficient=1", "config key 'eval.executor.coefficient' is for executor 'ensemble', not "
                                    "'queue'; set eval.executor.name=ensemble or drop the key"),
    ("eval.executor.coef=1", "unknown config key 'eval.executor.coef'; valid keys in eval.executor: n_action_steps"),
    ("eval.max_steps=0", "eval.max_steps must be at least 1"),
])
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(RoboilError, match=message):
        load_config(CONFIG, [override])


def test_algorithm_section_is_validated_once_into_its_dataclass():
    config = load_config(CONFIG, ["algorithm.hidden_dims=[8]"])
    assert type(config.algorithm_params).__name__ == "GCBCConfig" and config.algorithm_params.hidden_dims == (8,)
    assert config.eval.executor == {"name": "queue", "n_action_steps": None}


def test_unusable_torch_device_is_a_one_line_error(tmp_path):
    from roboil.checkpoint import pick_device

    with pytest.raises(RoboilError, match="train.device=nope is not a torch device; use auto, cpu or cuda"):
        pick_device("nope", "train.device")


def test_malformed_override_and_missing_file():
    with pytest.raises(RoboilError, match="not of the form key=value"):
        parse_overrides(["train.steps"])
    with pytest.raises(RoboilError, match="config file 'nope.yaml' does not exist"):
        load_config("nope.yaml")


def test_cli_prints_one_line_without_traceback_and_exits_2(tmp_path):
    result = run_cli("train", CONFIG, "train.stepz=3", "--out", tmp_path / "run")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["roboil: error: unknown config key 'train.stepz'; valid keys in train: amp, batch_size, "
                     "checkpoint_every, compile, device, ema_decay, grad_clip, loader_workers, log_every, lr, lr_schedule, seed, "
                     "steps, warmup_steps, weight_decay"]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_gcbc_without_the_achieved_goal_to_relabel_with_is_one_line(tiny_reach_store, tmp_path):
    """The goal-only data.obs_keys the ACT and Diffusion configs use: a KeyError traceback once training began."""
    args = [CONFIG, f"data.path={tiny_reach_store}", "data.obs_keys=[observation,desired_goal]", "train.steps=2",
            "algorithm.hidden_dims=[8]"]
    result = run_cli("train", *args, "--out", tmp_path / "run")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == (
        "roboil: error: gcbc relabels goals with states reached later ('achieved_goal'), which data.obs_keys leaves "
        "out; add achieved_goal to data.obs_keys, or set algorithm.relabel_prob=0"), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run").exists()
    run_cli("train", *args, "algorithm.relabel_prob=0", "--out", tmp_path / "run", check=True)


def test_cli_errors_for_missing_store_and_bad_arguments(tmp_path):
    result = run_cli("train", CONFIG, f"data.path={tmp_path / 'missing.zarr'}", "--out", tmp_path / "run")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "missing.zarr" in result.stderr
    result = run_cli("record", "--task", "fetch-reach", "--episodes", "two", "--out", tmp_path / "s.zarr")
    assert result.returncode == 2 and "invalid int value: 'two'" in result.stderr
    result = run_cli("eval", tmp_path)
    assert result.returncode == 2 and "holds no checkpoint" in result.stderr


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_shipped_configs_validate_and_name_recorded_observations(path):
    config = load_config(path)
    spec = registry().get("task", config.task)
    env = ObservedEnv(config.task, spec.observations)  # the observations `roboil record` stores by default
    try:
        assert set(config.data.obs_keys or ()) <= set(env.features), f"{path}: obs_keys not among {sorted(env.features)}"
    finally:
        env.close()


def test_mapping_values_are_typed_like_any_other():
    from dataclasses import dataclass, field

    from roboil.config import from_dict

    @dataclass
    class GroupRates:
        rates: dict[str, float] = field(default_factory=dict)

    assert from_dict(GroupRates, {"rates": {"backbone": "1e-5", "head": 1}}).rates == {"backbone": 1e-5, "head": 1.0}
    with pytest.raises(RoboilError, match="config key 'rates.head' must be float, got 'abc'"):
        from_dict(GroupRates, {"rates": {"head": "abc"}})



def test_a_parameter_class_refusing_a_value_is_one_line():
    """A plugin's parameter dataclass validates in __post_init__ as it likes: the user sees one line."""
    from dataclasses import dataclass

    from roboil.config import from_dict

    @dataclass
    class Raising:
        hidden: int = 64

        def __post_init__(self):
            if self.hidden > 100:
                raise ValueError("hidden too large; use <= 100")

    @dataclass
    class Asserting:
        hidden: int = 64

        def __post_init__(self):
            assert self.hidden <= 100, "hidden must be <= 100"

    for cls, reason in ((Raising, "hidden too large; use <= 100"), (Asserting, "hidden must be <= 100")):
        assert from_dict(cls, {"hidden": 100}).hidden == 100
        with pytest.raises(RoboilError) as refused:
            from_dict(cls, {"hidden": 512}, "algorithm")
        assert str(refused.value) == f"config section 'algorithm' is invalid: {reason}"
