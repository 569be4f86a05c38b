"""The roboil plugin contract. Each hook's docstring is its spec.

A plugin is a module or object with functions decorated by ``roboil.hookimpl`` whose names match the hooks
below; it is found through the ``roboil`` entry-point group (built-in plugins are registered the same way).
Registration hooks return lists of small frozen records from ``roboil.specs``; the core validates their
names. Lifecycle hooks are called by the trainer and the evaluator and return nothing; they receive the run
directory and the resolved :class:`roboil.config.Config`, so a logger knows where to write (an
implementation may accept only the arguments it needs).
"""

from __future__ import annotations

import pluggy

PROJECT = "roboil"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_algorithms():
    """Return a list of :class:`roboil.specs.AlgorithmSpec` this plugin provides.

    Called once when the plugin manager loads. Example::

        @roboil.hookimpl
        def register_algorithms():
            return [AlgorithmSpec(name="bc", config=BCConfig, build=build_bc, summary="plain BC")]
    """


@hookspec
def register_observations():
    """Return a list of :class:`roboil.specs.ObservationSpec` (observation kinds such as ``proprio``).

    Called once when the plugin manager loads. Example::

        @roboil.hookimpl
        def register_observations():
            return [ObservationSpec(name="depth", make_observer=..., layout=..., make_encoder=...)]
    """


@hookspec
def register_tasks():
    """Return a list of :class:`roboil.specs.TaskSpec` (an environment, a scripted expert, a success test).

    Called once when the plugin manager loads. Example::

        @roboil.hookimpl
        def register_tasks():
            return [TaskSpec(name="fetch-reach", make_env=make_reach_env, make_expert=ReachExpert)]
    """


@hookspec
def register_devices():
    """Return a list of :class:`roboil.specs.DeviceSpec` (teleoperation input devices for ``roboil record``).

    Called once when the plugin manager loads. Example::

        @roboil.hookimpl
        def register_devices():
            return [DeviceSpec(name="keyboard", make_device=KeyboardDevice)]
    """


@hookspec
def register_executors():
    """Return a list of :class:`roboil.specs.ExecutorSpec`: ways to turn action chunks into one action a step.

    Called once when the plugin manager loads; ``roboil eval --executor NAME`` and
    :func:`roboil.checkpoint.load_runner` pick one. Example::

        @roboil.hookimpl
        def register_executors():
            return [ExecutorSpec(name="first-only", config=NoParams, make=lambda params, model: FirstOnly())]
    """


@hookspec
def on_train_step_end(step, metrics, run_dir, config):
    """Called after every optimizer step with the 1-based ``step`` and a dict of float ``metrics``.

    ``run_dir`` is the run's ``pathlib.Path`` and ``config`` its resolved config. Converting the metrics to
    floats waits for the device, so the trainer only does it when some plugin implements this hook.
    Which metrics there are depends on the algorithm (not every one logs a ``loss``): read them with ``.get``.
    An implementation that raises is reported once and not called again; training goes on (the same holds for
    every lifecycle hook). Example (a logger plugin)::

        @roboil.hookimpl
        def on_train_step_end(step, metrics, run_dir):
            if step % 100 == 0:
                with open(run_dir / "my_log.txt", "a") as f:
                    f.write(f"{step} {metrics.get('loss')}\n")
    """


@hookspec
def on_checkpoint_saved(path, step, run_dir, config):
    """Called after a checkpoint directory ``path`` (a ``pathlib.Path``) was written at ``step``.

    Example::

        @roboil.hookimpl
        def on_checkpoint_saved(path, step):
            upload(path)
    """


@hookspec
def on_eval_episode_end(result, run_dir, config):
    """Called by the evaluator for every finished episode with a dict ``result``.

    The dict holds at least ``seed``, ``success`` (bool), ``return`` (float) and ``length`` (int), plus the
    task's episode metrics; ``run_dir`` is the evaluated run and ``config`` its training config. Example::

        @roboil.hookimpl
        def on_eval_episode_end(result, config):
            print(config.task, result["seed"], result["success"])
    """


@hookspec
def on_eval_end(report, run_dir, config):
    """Called by the evaluator once an evaluation is complete, with its ``report`` (what ``eval.json`` holds).

    ``report`` has ``success_rate``, ``success_ci95`` (low, high), ``mean_return``, ``mean_<metric>`` for each of
    the task's episode metrics, ``n_episodes``, ``seconds`` and ``episodes``: every episode's result sorted by seed
    (as :func:`on_eval_episode_end` got it; a filmed one also names its ``video`` mp4 and ``final_frame`` png in
    the report's ``videos`` directory). ``run_dir`` is what was evaluated (a run directory or one of its
    checkpoints) and ``config`` its training config. Called after ``eval.json`` is written, so a logger sees the
    numbers the user sees.
    Example::

        @roboil.hookimpl
        def on_eval_end(report, run_dir):
            with open(run_dir / "evals.txt", "a") as f:
                f.write(f"{report['n_episodes']} episodes: success {report['success_rate']:.2f}\n")
    """
