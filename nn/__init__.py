"""A small neural-network library in NumPy with hand-derived backprop and Numba kernels.

Importing :mod:`nn` first makes sure Numba's on-disk cache has somewhere to go: compiled kernels
are cached next to their source (``nn/kernels/__pycache__``), and when the package directory is
read-only (a system-wide install) they go to a per-user cache directory instead, so a second
process never pays the compile time again.
"""
import os
import sys
from pathlib import Path


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "cnn-vs-lstm-numpy" / "numba"


def _ensure_numba_cache_dir() -> None:
    """Point NUMBA_CACHE_DIR at a writable user directory if the package itself is read-only.

    Must run before numba is imported: numba reads its configuration once, at import.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or "numba" in sys.modules:
        return
    kernels = Path(__file__).resolve().parent / "kernels"
    pycache = kernels / "__pycache__"
    probe = pycache if pycache.is_dir() else kernels
    if os.access(probe, os.W_OK):
        return
    cache = _user_cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # numba then falls back to its own locator and, at worst, compiles in memory
    os.environ["NUMBA_CACHE_DIR"] = str(cache)


def _calm_blas_threads() -> None:
    """Stop OpenBLAS worker threads from busy-waiting between calls.

    OpenBLAS (NumPy's BLAS) keeps its threads spinning for a while after each product; our
    Numba kernels then compete with them for the same cores and a training step runs ~10x slower
    on 2 cores (measured: 484 vs 1,043 img/s for the CNN, 103 vs 7,760 for the LSTM).  The
    shortest timeout (2^4 cycles) lets them sleep at once.  Read when NumPy loads OpenBLAS, so this
    only helps if nn is imported before numpy - the scripts and tests make sure of that.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


_ensure_numba_cache_dir()
_calm_blas_threads()
