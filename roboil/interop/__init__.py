"""Moving episode stores to and from other tools' dataset formats.

- :mod:`roboil.interop.robomimic`: robomimic's HDF5 files (``roboil export --to robomimic``,
  ``roboil import --from robomimic``); needs h5py (``pip install 'roboil[robomimic]'``).
- :mod:`roboil.interop.zarr2`: a zarr-format-2 copy that diffusion_policy's ``ReplayBuffer`` reads
  (``roboil export --to zarr2``).
"""
