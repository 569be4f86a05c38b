"""Task ``pusht``: push a T-shaped block onto a fixed target pose with a round pusher (our MuJoCo scene in
``assets/pusht``). Success when the block covers at least 95% of the target area; the final coverage is
reported too. The scripted expert is multimodal: it goes around the block on a side it picks at random."""

from __future__ import annotations

import roboil
from roboil import TaskSpec

from .env import PushTEnv
from .expert import PushTExpert


MAX_EPISODE_STEPS = 300  # 30 s at 10 Hz, as diffusion_policy's PushT


@roboil.hookimpl
def register_tasks():
    return [TaskSpec(
        name="pusht",
        make_env=PushTEnv,
        make_expert=PushTExpert,
        observations={"proprio": {}, "pixels": {"cameras": ["top"], "height": 96, "width": 96}},
        episode_metrics=("coverage",),
        max_episode_steps=MAX_EPISODE_STEPS,
        fps=10.0,
        summary="MuJoCo PushT: T block to a target pose (coverage >= 0.95), multimodal scripted expert",
    )]
