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
    """Keep OpenBLAS worker threads from busy-waiting for long between calls.

    OpenBLAS (NumPy's BLAS) keeps its threads spinning after each product; our Numba kernels
    then compete with them for the same cores.  With the default spin a training step on 2
    cores ran ~10x slower (measured: 484 vs 1,043 img/s for the CNN, 103 vs 7,760 for the LSTM).
    A timeout of 2^18 cycles (~0.1 ms) lets them sleep before a following Numba kernel is far
    along, yet keeps them awake across the LSTM's back-to-back small per-timestep products.
    Measured on 2 cores, several processes each (img/s, CNN / LSTM): 2^16: 3,370-3,520 /
    26,700-42,600 (some LSTM processes stuck in a slow mode); 2^17: 2,600-3,400 / 41,900-43,500;
    2^18: 2,930-3,140 / 43,600-44,900; 2^20: 2,550-3,050 / 42,100-43,700.
    Read when NumPy loads OpenBLAS, so this only helps if nn is imported before numpy - the
    scripts and tests make sure of that.
    """
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")
    # Numba's parallel kernels run on OpenMP threads, which by default also spin after each
    # kernel, against the BLAS threads of the product that follows.  Passive waiting measured
    # 2,318 -> 3,061 img/s for the CNN on 2 cores.  Read when OpenMP starts (first parallel call).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# OpenBLAS core types without AVX-512, which some environments force on every machine.
_NO_AVX512_CORETYPES = {"haswell", "zen", "sandybridge", "nehalem", "prescott", "core2"}


def _use_the_cpus_blas_kernels() -> None:
    """Let OpenBLAS pick its kernels for this CPU when OPENBLAS_CORETYPE forces a lesser one.

    Some environments set OPENBLAS_CORETYPE=Haswell everywhere.  On a CPU with AVX-512 that
    halves float32 matrix-multiply speed (measured here: 114 vs 241 GFLOP/s on one core), and
    so nearly halves training speed; PyTorch's own kernels ignore the variable.  When the CPU
    reports AVX-512 (F, DQ, BW, VL) and the forced core type lacks it, the variable is dropped
    so OpenBLAS detects the CPU itself.  Set NN_KEEP_OPENBLAS_CORETYPE=1 to keep it.
    """
    forced = os.environ.get("OPENBLAS_CORETYPE", "").lower()
    if ("numpy" in sys.modules or forced not in _NO_AVX512_CORETYPES
            or os.environ.get("NN_KEEP_OPENBLAS_CORETYPE")):
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo
                          if line.startswith("flags")), [])
    except OSError:
        return
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= set(flags):
        os.environ["NN_DROPPED_OPENBLAS_CORETYPE"] = os.environ.pop("OPENBLAS_CORETYPE")


_ensure_numba_cache_dir()
_calm_blas_threads()
_use_the_cpus_blas_kernels()
