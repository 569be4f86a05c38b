"""roboil: a plugin-based robot imitation-learning framework.

A plugin imports only this module: ``roboil.hookimpl`` to mark hook implementations and the records from
``roboil.specs`` to return from them.
"""

from .errors import RoboilError
from .hookspecs import hookimpl, hookspec
from .policy import BuildContext, Normalizer, PolicyModel, PolicyRunner
from .specs import (AlgorithmSpec, ArrayLayout, DeviceSpec, Feature, GoalKeys, ObservationSpec, TaskSpec)

__version__ = "0.1.0"

__all__ = [
    "AlgorithmSpec", "ArrayLayout", "BuildContext", "DeviceSpec", "Feature", "GoalKeys", "Normalizer",
    "ObservationSpec", "PolicyModel", "PolicyRunner", "RoboilError", "TaskSpec", "hookimpl", "hookspec",
]
