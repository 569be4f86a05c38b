"""TensorBoard logging for a run, enabled by its training config: ``loggers: [tensorboard]`` (or the override
``loggers=[tensorboard]``). Runs without it are left alone. Event files go to ``RUN/tensorboard``; look at them
with ``tensorboard --logdir runs``.

- ``train/<metric>``: every metric of the training loop (loss, lr, ...) at the steps ``metrics.jsonl`` records
  (every ``train.log_every`` steps and the last). A resumed run replaces what was logged after its checkpoint.
- ``eval/success_rate``, ``eval/mean_return`` and ``eval/mean_<metric>`` (the task's episode metrics) for every
  ``roboil eval`` of the run, at the evaluated checkpoint's step.
- ``eval/video/seed_<seed>``: each filmed episode as an animated GIF (TensorBoard's Images tab plays it; at most
  256 px and 15 frames a second), and ``eval/videos``: a text table of the filmed episodes with their outcome and
  the path of the full mp4.

Needs the tensorboard package (``pip install 'roboil[tensorboard]'``); torch and tensorboard are imported on the
first event, never when the plugins load.
"""

from __future__ import annotations

import roboil

NAME = "tensorboard"


def _enabled(config) -> bool:
    return NAME in (getattr(config, "loggers", None) or ())


@roboil.hookimpl
def on_train_step_end(step, metrics, run_dir, config):
    if _enabled(config):
        from . import events

        events.log_train_step(step, metrics, run_dir, config)


@roboil.hookimpl
def on_checkpoint_saved(run_dir, config):
    if _enabled(config):
        from . import events

        events.flush_train(run_dir)


@roboil.hookimpl
def on_eval_end(report, run_dir, config):
    if _enabled(config):
        from . import events

        events.log_eval(report, run_dir)
