"""Numba kernels: plain functions on plain arrays, no classes, no state.

Each kernel has a slow, obvious NumPy twin in :mod:`nn.kernels.reference` that the tests compare
it with.  Types are inferred at the first call, so the same kernels run in float32 for training
and in float64 for gradient checks (Numba compiles, and caches on disk, one version per dtype).
A cached kernel is used only while every source file of this package is as it was when the
kernel was compiled (:mod:`nn.kernels.caching`).
"""
from nn.kernels.caching import install as _install_cache_check

_install_cache_check()   # before any kernel is decorated: their cache entries then carry it
