"""The elementwise passes around a dense layer's matrix products, each fused into one pass.

The products themselves are NumPy's (BLAS); these kernels do what lies between them:

forward   y (N, O) = leaky(yt^T + b),  yt (O, N) = w x^T       (bias_leaky_transposed)
          or y = leaky(y + b) in place, y = x w^T                (bias_leaky_in_place)
          leaky(v) = v if v > 0 else slope v;  slope 1 is the identity (a Dense alone)
backward  dz (N, O) = dy where y > 0 else slope dy,   db (O,) = sum_n dz

Why the product comes in transposed: NumPy's BLAS computes w x^T (w (O, I) as stored) faster
than x w^T, most of all for small batches - one thread, (N, 784) inputs, 256 outputs: N = 16
83 vs 157 us, N = 64 276 vs 334 us; N = 256 the same (loaded 2-core AMD EPYC, minimum of 300).
The transposition back to (N, O) shares its pass with the bias and the activation, but it does
not vectorise: for large batches, where the two products take the same time, and for a few
outputs (a classifier's 10), the layer takes x w^T and the in-place pass instead
(nn.layers.dense.dense_leaky_forward).  For slope >= 0, y > 0 exactly where v > 0, so
backward needs y alone.
"""
import numpy as np
from numba import njit

_ROWS = 16   # batch rows per tile of the transposing pass: yt's columns read 16 at a time


@njit(cache=True, error_model="numpy")
def bias_leaky_transposed(yt, b, slope):
    """yt (O, N), b (O,), slope -> y (N, O) = leaky(yt^T + b).  One pass, in tiles of _ROWS
    batch rows so that both the reads of yt and the writes of y stay within a few cache lines."""
    outputs, n_batch = yt.shape
    y = np.empty((n_batch, outputs), dtype=yt.dtype)
    for start in range(0, n_batch, _ROWS):
        stop = min(start + _ROWS, n_batch)
        for k in range(outputs):
            bias = b[k]
            for n in range(start, stop):
                v = yt[k, n] + bias
                y[n, k] = v if v > 0 else slope * v
    return y


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
