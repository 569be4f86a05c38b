"""roboil: a plugin-based robot imitation-learning framework.

A plugin imports only this module: ``roboil.hookimpl`` to mark hook implementations, the records from
``roboil.specs`` to return from them, and the model-side names below. ``import roboil`` does not import
torch: the torch-backed names load on first use, so the store, the CLI's help and task plugins stay fast.
"""

from importlib import import_module

__version__ = "0.1.0"

# name -> module that defines it, imported when first asked for (PEP 562): `import roboil` costs nothing, so the
# CLI can take Ctrl-C from its first instruction and plugins load only what they use
_LAZY = {
    **{name: "roboil.specs" for name in ("DISCARD", "AlgorithmSpec", "ArrayLayout", "DeviceSpec", "ExecutorSpec",
                                         "Feature", "GoalKeys", "NoParams", "ObservationSpec", "TaskSpec")},
    "RoboilError": "roboil.errors", "hookimpl": "roboil.hookspecs", "hookspec": "roboil.hookspecs",
    "BuildContext": "roboil.policy", "Normalizer": "roboil.policy", "PolicyModel": "roboil.policy",
    "PolicyRunner": "roboil.policy", "TrainContext": "roboil.train", "load_runner": "roboil.checkpoint",
    "ChunkExecutor": "roboil.executors", "ActionTransform": "roboil.actions",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'roboil' has no attribute '{name}'")


__all__ = list(_LAZY)
