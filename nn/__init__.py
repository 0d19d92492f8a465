"""A small neural-network library in NumPy with hand-derived backprop and Numba kernels.

Importing :mod:`nn` does two things, both before NumPy or Numba could read them:

- it makes sure Numba's on-disk cache has somewhere to go: compiled kernels are cached next to
  their source (``nn/kernels/__pycache__``), and when the package directory is read-only (a
  system-wide install) they go to a per-user cache directory instead, so a second process never
  pays the compile time again;
- it sets the few environment variables OpenBLAS and OpenMP read when they load (a short spin
  timeout, passive waiting, the CPU's own BLAS kernels: :func:`nn.threads.prepare_native_libraries`);
  they matter for speed on a busy machine (2-10x on 2 cores), never for results.

The thread count is set at run time, at any point, NumPy imported or not::

    import nn
    nn.set_threads(1)               # BLAS and Numba's kernels on one thread from now on
    with nn.set_threads(2):         # or for a block
        ...
"""
import os
import sys

from nn.threads import configure_threads, prepare_native_libraries, set_threads, thread_counts

__all__ = ["configure_threads", "set_threads", "thread_counts"]

# os.path, not pathlib: on Python 3.11 pathlib imports urllib, and `import nn` stays this light.


def _user_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnn-vs-lstm-numpy", "numba")


def _ensure_numba_cache_dir() -> None:
    """Point NUMBA_CACHE_DIR at a writable user directory if the package itself is read-only.

    Must run before numba is imported: numba reads its configuration once, at import.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or "numba" in sys.modules:
        return
    kernels = os.path.join(os.path.dirname(os.path.realpath(__file__)), "kernels")
    pycache = os.path.join(kernels, "__pycache__")
    probe = pycache if os.path.isdir(pycache) else kernels
    if os.access(probe, os.W_OK):
        return
    cache = _user_cache_dir()
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError:
        return  # numba then falls back to its own locator and, at worst, compiles in memory
    os.environ["NUMBA_CACHE_DIR"] = cache


_ensure_numba_cache_dir()
prepare_native_libraries()
