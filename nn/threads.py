"""Setting the number of CPU threads, for BLAS and for Numba's parallel loops, at run time.

    import numpy as np          # any order: nothing here has to come before NumPy
    import nn
    nn.set_threads(1)           # from now on: BLAS and Numba's parallel kernels on one thread
    with nn.set_threads(2):     # or for a block only, restored on leaving it
        ...

:func:`set_threads` limits every BLAS and OpenMP pool loaded in the process through threadpoolctl
(OpenBLAS, MKL, OpenMP: ``threadpool_limits``, which acts after import) and Numba's parallel
kernels through ``numba.set_num_threads``.  Numba starts its pool once, with
``NUMBA_NUM_THREADS`` workers (by default one per core), and can afterwards use fewer, never
more: so nothing here shrinks the pool, and a request above it gets the pool's size (a
``--threads`` above the core count gains nothing anyway).  Numba's setting is per calling
thread: call it from the thread that runs the model (the main thread, in every program here).

Two settings cannot be made at run time because the libraries read them once, when they load:
OpenBLAS's spin timeout and its CPU core type.  ``import nn`` sets them in the environment
(:func:`prepare_native_libraries`) when NumPy is not loaded yet; if NumPy came first, the trainer
holds NumPy's BLAS to one thread while it trains (:func:`numpy_blas_calmed`), which measured as
fast as the timeout, and the thread count is never lost.  Results do not depend on the thread count in
practice (BLAS splits the output, not the sums, and our kernels never share an output element
between threads), but the guarantee that holds everywhere is: same seed, same flags, same
--threads -> identical weights.
"""
import numbers
import os
import sys
from contextlib import contextmanager


class ThreadLimit:
    """The thread count set by :func:`set_threads`; a context manager that restores the previous
    counts on exit (or call :meth:`restore`).

    Attributes
    ----------
    count : int or None
        The threads Numba's parallel kernels now use (the request, at most Numba's pool);
        None when nothing was changed.
    """

    def __init__(self, count):
        self.count = None
        self._previous_numba = None
        self._blas_limits = None
        if count is None:
            return
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise ValueError(f"the thread count must be a positive integer, not {count!r}")
        import numba
        from threadpoolctl import threadpool_limits

        _load_numbas_blas()
        self._previous_numba = numba.get_num_threads()
        # Numba first: starting its pool loads its OpenMP library, which threadpoolctl then sees.
        count = int(count)
        self.count = min(count, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(self.count)
        try:
            self._blas_limits = threadpool_limits(limits=count)
        except OSError:
            # threadpoolctl finds the libraries through the process memory map on Linux; without it
            # (a sandbox) the BLAS keeps its count, as blas_threads() does, and Numba's is set.
            self._blas_limits = None

    def restore(self):
        """Back to the counts in effect before this limit was set."""
        if self._blas_limits is not None:
            self._blas_limits.restore_original_limits()
            self._blas_limits = None
        if self._previous_numba is not None:
            import numba
            numba.set_num_threads(self._previous_numba)
            self._previous_numba = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.restore()


def _load_numbas_blas():
    """Load the BLAS Numba's compiled ``np.dot`` calls (SciPy's, a copy apart from NumPy's), so
    that a limit set now covers it: threadpoolctl limits the pools loaded when it is called, and
    Numba would otherwise load this one at the first such kernel, with a thread per core."""
    from nn.scipy_blas import load_cython_blas
    try:
        load_cython_blas()
    except ImportError:
        pass


def set_threads(count):
    """Use at most ``count`` threads for BLAS (and any OpenMP pool) and for Numba's kernels.

    Takes effect at once, whenever it is called (NumPy and Numba may be loaded already).  The
    setting lasts until changed; used as ``with set_threads(n):`` it is restored after the
    block.  ``count=None`` changes nothing (a command run without ``--threads``).  Returns a
    :class:`ThreadLimit`.
    """
    return ThreadLimit(count)


def thread_counts():
    """{'numba': threads Numba's kernels use, 'blas': threads of each BLAS pool} as now set.

    What ``--threads`` is checked against: ``{'numba': 1, 'blas': [1]}`` after ``set_threads(1)``.
    """
    import numba
    from threadpoolctl import threadpool_info

    try:
        pools = threadpool_info()
    except OSError:           # no process memory map to find them by (see ThreadLimit)
        pools = []
    return {"numba": numba.get_num_threads(),
            "blas": [pool["num_threads"] for pool in pools if pool["user_api"] == "blas"]}


def threads_from_argv(argv):
    """The value of ``--threads N`` or ``--threads=N`` in ``argv``, or None (no validation).

    Kept for the commands that still read it before parsing their flags (the trainer, the
    comparison); the others parse ``--threads`` with their flags and call :func:`set_threads`.
    """
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
    """Use ``count`` threads for BLAS and Numba from now on (None: change nothing).

    The older name of :func:`set_threads`, kept for the commands not yet moved to it.
    """
    set_threads(count)


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
        from threadpoolctl import ThreadpoolController

        from nn.scipy_blas import load_cython_blas
        load_cython_blas()   # loads SciPy's BLAS, the one the kernels call
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
    with _pools_limited(_blas_libraries(), count):
        yield


@contextmanager
def _pools_limited(libraries, count):
    """At most ``count`` threads in each of ``libraries`` (threadpoolctl controllers) inside the
    block; each pool's previous count is restored on exit."""
    changed = []
    for library in libraries:
        previous = library.get_num_threads()
        if previous is not None and previous > count:
            library.set_num_threads(count)
            changed.append((library, previous))
    try:
        yield
    finally:
        for library, previous in changed:
            library.set_num_threads(previous)


_numpy_blas_spins = False   # NumPy's OpenBLAS was loaded before `import nn`, with the default spin


@contextmanager
def numpy_blas_calmed():
    """Keep NumPy's own BLAS to one thread inside the block if it was loaded before ``import nn``.

    A notebook imports NumPy first; its OpenBLAS then has the default spin timeout (read once, at
    load: :func:`_calm_blas_threads` came too late), and its threads spin against our Numba
    kernels between products.  Measured on 2 cores, 2026-12-06: the CNN trained from Python after
    ``import numpy`` at 1,190-1,340 img/s against 1,720-2,290 from the command line, and at
    1,980-2,340 with NumPy's pool held to one thread, which this does (SciPy's BLAS, the one the
    kernels call, loads after us and keeps its threads).  Nothing changes when ``nn`` came first
    or when OPENBLAS_THREAD_TIMEOUT was set; the count is restored on exit.
    """
    numpys = []
    if _numpy_blas_spins:
        import numpy
        numpy_dir = os.path.dirname(numpy.__file__)   # .../numpy, and the wheel's .../numpy.libs
        numpys = [library for library in _blas_libraries() if library.filepath.startswith(numpy_dir)]
    with _pools_limited(numpys, 1):
        yield


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
    Read when NumPy loads OpenBLAS, so this only helps if nn is imported before numpy (``import
    nn`` does it; see :func:`prepare_native_libraries`).
    """
    global _numpy_blas_spins
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")
    elif "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        _numpy_blas_spins = True   # loaded before us, with the default spin: see numpy_blas_calmed
    _calm_openmp_threads()


# GNU OpenMP's spin before a worker sleeps, in pause-loop iterations: measured here (AMD EPYC,
# 2026-12-06) ~0.1 - 0.15 ms, about OpenBLAS's timeout above.
OPENMP_SPIN_COUNT = "5000"


def _calm_openmp_threads() -> None:
    """Let Numba's OpenMP workers spin about as long as OpenBLAS's, then sleep.

    By default GNU OpenMP spins 300,000 pause loops (milliseconds) after each parallel kernel,
    against the BLAS threads of the product that follows: the CNN trained at 2,318 img/s on
    2 cores, 3,061 with no spin at all (OMP_WAIT_POLICY=PASSIVE, this project's setting until
    2026-12-06).  But a sleeping worker takes ~50 us to wake on this VM, and a training step
    starts dozens of parallel kernels: an empty ``prange(2)`` kernel cost 47 - 61 us passive
    and 1.6 us with the workers spinning.  A spin of 5,000 (~0.1 ms, as long as OpenBLAS's)
    keeps them awake from one kernel to the next across the short products between, yet asleep
    before a long product is far along.  Measured on 2 cores, batch 64, three processes each
    (img/s, passive -> 5,000): CNN 3,074-3,286 -> 3,357-3,405, LSTM 29,900-34,700 ->
    35,800-37,600, MLP 69,600-75,400 -> 84,600-86,300, GRU 32,900-42,000 -> 44,400-44,700,
    RNN 91,600-96,300 -> 111,000-115,000 (10,000 and 15,000 each had an MLP process at
    38,000-64,000).  LLVM's and Intel's OpenMP (Numba's on some platforms) read KMP_BLOCKTIME
    instead, in milliseconds: 0 keeps them passive, as before.  Read when OpenMP starts (the
    first parallel kernel); a user's own OMP_WAIT_POLICY, GOMP_SPINCOUNT or KMP_BLOCKTIME wins.
    """
    if "OMP_WAIT_POLICY" in os.environ:
        return
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)
    os.environ.setdefault("KMP_BLOCKTIME", "0")


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


def prepare_native_libraries() -> None:
    """The settings OpenBLAS and OpenMP read once, when they load: run by ``import nn``.

    Sets the OpenBLAS and OpenMP spin times and drops a forced
    OPENBLAS_CORETYPE that lacks the CPU's AVX-512 (see the two functions above).  Only
    environment variables change, each only where it can still take effect; the thread *count*
    is not one of them (:func:`set_threads`, at run time).
    """
    _calm_blas_threads()
    _use_the_cpus_blas_kernels()


def configure_threads(count=None):
    """The older set-up call: :func:`prepare_native_libraries`, then :func:`set_threads` ``(count)``.

    Kept, with the same meaning, for the programs that still call it first; it no longer has to
    come before NumPy is imported (the count is set at run time either way).
    """
    prepare_native_libraries()
    set_threads(count)
