"""Is every value of a batch finite: one pass over its rows, by one thread or split among all.

A prediction checks its images before the network reads them.  NumPy's ``np.isfinite(x).all()``
writes a boolean temporary and reads it again on one thread (20 us for the MLP's batch of 256
on 2 cores); these read the rows once, and the parallel one gives each thread an even run of
rows, as the MLP's block-by-block prediction does (nn.kernels.dense.dense_stack_forward; the
same rows when the batch is a multiple of 128 on 2 threads), so a thread's rows are in its own
cache when its product reads them.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always", error_model="numpy")
def _rows_finite(x, start, stop):
    """True if rows start:stop of x (N, D) hold no NaN and no infinity."""
    infinity = x.dtype.type(np.inf)
    bad = 0
    for n in range(start, stop):
        for d in range(x.shape[1]):
            # |v| < inf is False for +-inf and for NaN; an integer OR keeps the loop vectorised
            # (a float sum would be a chain of dependent additions).
            bad |= not (abs(x[n, d]) < infinity)
    return bad == 0


@njit(cache=True, error_model="numpy")
def all_finite(x):
    """x (N, D) float -> True if every value is finite, on the calling thread."""
    return _rows_finite(x, 0, x.shape[0])


@njit(cache=True, parallel=True, error_model="numpy")
def all_finite_blocks(x, blocks):
    """x (N, D) float -> True if every value is finite; ``blocks`` even runs of rows, one per
    thread, block b holding rows b N / blocks up to (b + 1) N / blocks."""
    n_batch = x.shape[0]
    finite = np.ones(blocks, np.bool_)
    for block in prange(blocks):
        finite[block] = _rows_finite(x, block * n_batch // blocks, (block + 1) * n_batch // blocks)
    return finite.all()
