"""Moving episode stores to and from other tools' dataset formats.

- :mod:`roboil.interop.robomimic`: robomimic's HDF5 files (``roboil export --to robomimic``,
  ``roboil import --from robomimic``); needs h5py (``pip install 'roboil[robomimic]'``).
- :mod:`roboil.interop.lerobot`: LeRobot's v3.0 datasets (parquet and mp4; ``roboil export --to lerobot``,
  ``roboil import --from lerobot``); needs pyarrow (``pip install 'roboil[lerobot]'``).
- :mod:`roboil.interop.zarr2`: a zarr-format-2 copy that diffusion_policy's ``ReplayBuffer`` reads
  (``roboil export --to zarr2``).
"""

import os
import secrets
from pathlib import Path


def temp_sibling(out: Path) -> Path:
    """Where an export is written before it is renamed to ``out``: hidden, next to it (the same filesystem, so
    the rename is atomic), unique per process and call."""
    return out.parent / f".{out.name}.writing-{os.getpid()}-{secrets.token_hex(4)}"
