"""Setting the number of CPU threads, for BLAS and for Numba's parallel loops.

BLAS libraries read their thread count from the environment when NumPy is first imported, so
command-line tools call :func:`threads_from_argv` and :func:`limit_threads` before importing
NumPy.  Results do not depend on the thread count in practice (BLAS splits the output, not the
sums, and our kernels never share an output element between threads), but the guarantee that
holds everywhere is: same seed, same flags, same --threads -> identical weights.
"""
import os
import sys
import warnings
from contextlib import contextmanager

_BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def threads_from_argv(argv):
    """The value of ``--threads N`` or ``--threads=N`` in ``argv``, or None (no validation)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
        else:
            continue
        return int(value) if value.isdigit() and int(value) > 0 else None
    return None


def limit_threads(count):
    """Use ``count`` threads for BLAS (if NumPy is not imported yet) and for Numba."""
    if count is None:
        return
    if "numpy" not in sys.modules:
        for name in _BLAS_VARIABLES:
            os.environ[name] = str(count)
    if "numba" in sys.modules:
        import numba
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    else:
        os.environ["NUMBA_NUM_THREADS"] = str(count)


@contextmanager
def one_numba_thread():
    """Run Numba's parallel kernels on the calling thread alone inside the block.

    A single image gains nothing from more threads, and waking idle workers costs more than the
    work (milliseconds on a busy machine).  The setting is per calling thread and is restored.
    """
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


_blas_controllers = None   # threadpoolctl's controllers of the loaded BLAS libraries, once found


def _blas_libraries():
    """threadpoolctl's controllers of every BLAS loaded: NumPy's, and SciPy's, which our Numba
    kernels call (nn.kernels.blas).  Both are loaded first, so the list is complete; found once,
    since looking them up walks every shared library of the process."""
    global _blas_controllers
    if _blas_controllers is None:
        import numpy  # noqa: F401  (loads NumPy's BLAS)
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's, the one the kernels call)
        from threadpoolctl import ThreadpoolController
        try:
            libraries = ThreadpoolController().lib_controllers
        except Exception:   # noqa: BLE001 - a library it cannot inspect: leave the counts alone
            libraries = []
        _blas_controllers = [library for library in libraries if library.user_api == "blas"]
    return _blas_controllers


def blas_thread_count():
    """The most threads any loaded BLAS uses now, or None if no BLAS reports it."""
    counts = [library.get_num_threads() for library in _blas_libraries()]
    counts = [count for count in counts if count is not None]
    return max(counts) if counts else None


@contextmanager
def blas_threads(count):
    """Run matrix products (NumPy's and our kernels', through SciPy's BLAS) on at most ``count``
    threads inside the block.

    For loops of many tiny products (a recurrent layer's 28 steps of (64, 64) @ (64, 256)):
    splitting each between two threads costs more in hand-offs than it saves, and it keeps the
    BLAS workers spinning against the Numba kernels in between.  Measured on 2 cores, the LSTM's
    forward pass at batch 64: 2.9 ms with both BLAS threads, 1.8 ms with one.  The setting is
    process-wide, so use it from the main thread; it is restored on exit.
    """
    changed = []
    for library in _blas_libraries():
        previous = library.get_num_threads()
        if previous is not None and previous > count:
            library.set_num_threads(count)
            changed.append((library, previous))
    try:
        yield
    finally:
        for library, previous in changed:
            library.set_num_threads(previous)


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


_warned = False


def configure_threads(count=None):
    """Thread settings for BLAS and Numba: the explicit set-up every program makes first.

    Sets the OpenBLAS spin timeout and passive OpenMP waiting (both read when the libraries
    load), drops a forced OPENBLAS_CORETYPE that lacks the CPU's AVX-512, and with ``count``
    limits BLAS and Numba to that many threads.  If NumPy is already imported the BLAS part can
    no longer take effect: a warning (once per process) says so and how to fix it.
    """
    global _warned
    if "numpy" in sys.modules and not _warned:
        _warned = True
        warnings.warn("nn.configure_threads() was called after NumPy was imported, so the BLAS thread "
                      "settings cannot take effect (training may run several times slower); call it "
                      "first, before importing numpy or anything that imports it", RuntimeWarning,
                      stacklevel=2)
    _calm_blas_threads()
    _use_the_cpus_blas_kernels()
    limit_threads(count)
