"""Is every value finite: the check a prediction makes on its images before a network reads them.

    all_finite(images)        # False if any pixel is NaN or infinite

One compiled pass (nn.kernels.finite), split among Numba's threads for a large batch.
"""
import numba
import numpy as np

from nn.kernels import finite as kernels

# Values from which the threads share the check; below, waking them costs more than it saves.
PARALLEL_FROM = 1 << 16


def all_finite(array):
    """True if ``array`` (N, ...) holds no NaN and no infinity.  Compiled for C-contiguous
    float32/float64 arrays; NumPy's ``isfinite`` for anything else."""
    if (array.dtype not in (np.float32, np.float64) or array.ndim == 0 or array.size == 0
            or not array.flags.c_contiguous):
        return bool(np.isfinite(array).all())
    rows = array.reshape(len(array), -1)
    threads = numba.get_num_threads()
    if threads > 1 and array.size >= PARALLEL_FROM and len(array) >= threads:
        return bool(kernels.all_finite_blocks(rows, threads))
    return bool(kernels.all_finite(rows))
