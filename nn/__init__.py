"""A small neural-network library in NumPy with hand-derived backprop and Numba kernels.

Importing :mod:`nn` makes sure Numba's on-disk cache has somewhere to go: compiled kernels are
cached next to their source (``nn/kernels/__pycache__``), and when the package directory is
read-only (a system-wide install) they go to a per-user cache directory instead, so a second
process never pays the compile time again.  That is the only thing importing it does.

Threading is an explicit call: a program that trains or predicts makes, before anything imports
NumPy::

    import nn
    nn.configure_threads()          # or configure_threads(1) for one thread

It keeps BLAS and Numba's OpenMP threads from spinning against each other (2-10x on 2 cores,
see :mod:`nn.threads`); called after NumPy is loaded it still sets what it can and warns once,
with the fix.
"""
import os
import sys

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


def configure_threads(count=None):
    """Set up BLAS and OpenMP threading for training and inference; call it before NumPy loads.

    See :func:`nn.threads.configure_threads` (the two names are the same function).
    """
    from nn.threads import configure_threads as configure
    return configure(count)
