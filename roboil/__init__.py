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
    **{name: "roboil.specs" for name in (
        "AlgorithmSpec", "ArrayLayout", "DeviceContext", "DeviceSpec", "EndEffectorCommand", "ExecutorSpec",
        "Feature", "GoalKeys", "NoParams", "ObservationSpec", "TaskSpec", "TeleopSpec", "resumable", "CONTROLS", "START", "SAVE",
        "DISCARD", "RETRY", "DELETE_LAST", "QUIT", "TAKE_OVER", "HAND_BACK")},
    **{name: "roboil.sim" for name in ("mujoco_state", "set_mujoco_state", "env_scene", "env_state",
                                       "restore_env_state", "CameraRendering")},
    "RoboilError": "roboil.errors", "hookimpl": "roboil.hookspecs", "hookspec": "roboil.hookspecs",
    "BuildContext": "roboil.policy", "Normalizer": "roboil.policy", "PolicyModel": "roboil.policy",
    "PolicyRunner": "roboil.policy", "padded_mean": "roboil.policy", "TrainContext": "roboil.train",
    "load_optimizer": "roboil.train", "load_runner": "roboil.checkpoint",
    "load_policy": "roboil.checkpoint",
    # the names of a training batch's arrays
    **{name: "roboil.keys" for name in ("ACTION", "ACTION_IS_PAD", "FUTURE_PREFIX", "NEXT_PREFIX", "NEXT_IS_PAD")},
    "ChunkExecutor": "roboil.executors", "ActionTransform": "roboil.actions",
    **{name: "roboil.teleop" for name in (
        "teleop_spec", "operator_heading", "operator_to_world", "axis_deadzone", "ArmSelection", "RecordedTicks",
        "RawInput", "open_device_file", "MappedDevice")},
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'roboil' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})  # the lazy names too, for help() and completion


__all__ = list(_LAZY)
