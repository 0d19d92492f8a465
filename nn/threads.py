"""Setting the number of CPU threads, for BLAS and for Numba's parallel loops.

BLAS libraries read their thread count from the environment when NumPy is first imported, so
command-line tools call :func:`threads_from_argv` and :func:`limit_threads` before importing
NumPy.  Results do not depend on the thread count in practice (BLAS splits the output, not the
sums, and our kernels never share an output element between threads), but the guarantee that
holds everywhere is: same seed, same flags, same --threads -> identical weights.
"""
import os
import sys
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
