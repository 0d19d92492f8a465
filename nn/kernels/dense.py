"""The elementwise passes around a dense layer's matrix products, each fused into one pass.

The products themselves are NumPy's (BLAS); these kernels do what lies between them:

forward   y (N, O) = leaky(y + b) in place, y = x w^T             (bias_leaky_in_place)
          leaky(v) = v if v > 0 else slope v;  slope 1 is the identity (a Dense alone)
backward  dz (N, O) = dy where y > 0 else slope dy,   db (O,) = sum_n dz

prediction  y = leaky(x w^T + b) for a large batch, each thread multiplying its own block of
          rows with one-thread BLAS (dense_rows_forward)

The product is fastest with w stored column-major (nn.layers.dense; it replaced an earlier
transposed product w x^T and a transposing pass).  For slope >= 0, y > 0 exactly where v > 0,
so backward needs y alone.
"""
import numpy as np
from numba import njit, prange

from nn.kernels import blas


@njit(cache=True, error_model="numpy")
def bias_leaky_in_place(y, b, slope):
    """y (N, O) = leaky(y + b) in place, b (O,)."""
    n_batch, outputs = y.shape
    for n in range(n_batch):
        for k in range(outputs):
            v = y[n, k] + b[k]
            y[n, k] = v if v > 0 else slope * v


@njit(cache=True, error_model="numpy")
def leaky_bias_backward(dy, y, slope):
    """dy, y (N, O), slope -> (dz (N, O) = dy where y > 0 else slope dy, db (O,) = sum_n dz).

    db adds the rows in order, as NumPy's dy.sum(axis=0) does."""
    n_batch, outputs = dy.shape
    dz = np.empty_like(dy)
    db = np.zeros(outputs, dtype=dy.dtype)
    for n in range(n_batch):
        for k in range(outputs):
            d = dy[n, k] if y[n, k] > 0 else slope * dy[n, k]
            dz[n, k] = d
            db[k] += d
    return dz, db


@njit(cache=True, inline="always", error_model="numpy")
def _bias_leaky_rows(y, b, slope, start, stop):
    """Rows start:stop of y (N, O) = leaky(y + b), as bias_leaky_in_place."""
    for n in range(start, stop):
        for k in range(y.shape[1]):
            v = y[n, k] + b[k]
            y[n, k] = v if v > 0 else slope * v


@njit(cache=True, parallel=True, error_model="numpy")
def dense_rows_forward(x, w_t, b, slope, y, blocks):
    """y (N, O) = leaky(x w^T + b) with the batch cut into ``blocks`` runs of rows, one per
    thread, each thread multiplying its own rows: x (N, D), w_t = w^T (D, O) row-major, b (O,).

    Each product is one-thread BLAS (the caller holds BLAS to one thread), so the threads share
    nothing and never wait for each other.  A row's result does not depend on its block (BLAS
    does not split the sums), so any ``blocks`` gives the same bits.
    """
    n_batch = x.shape[0]
    for block in prange(blocks):
        start, stop = block * n_batch // blocks, (block + 1) * n_batch // blocks
        if start < stop:
            blas.gemm(x[start:stop], w_t, y[start:stop])                      # x w^T
            _bias_leaky_rows(y, b, slope, start, stop)
