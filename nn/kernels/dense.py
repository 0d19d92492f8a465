"""The elementwise passes around a dense layer's matrix products, each fused into one pass.

The products themselves are NumPy's (BLAS); these kernels do what lies between them:

forward   y (N, O) = leaky(y + b) in place, y = x w^T             (bias_leaky_in_place)
          leaky(v) = v if v > 0 else slope v;  slope 1 is the identity (a Dense alone)
backward  dz (N, O) = dy where y > 0 else slope dy,   db (O,) = sum_n dz

prediction  a large batch through a stack of dense layers (an MLP), each thread taking its own
          block of rows through every layer with one-thread BLAS (dense_stack_forward)

The product is fastest with w stored column-major (nn.layers.dense; it replaced an earlier
transposed product w x^T and a transposing pass).  For slope >= 0, y > 0 exactly where v > 0,
so backward needs y alone.
"""
import numpy as np
from numba import njit, prange

from nn.kernels import blas


@njit(cache=True, inline="always", error_model="numpy")
def _bias_leaky_rows(y, b, slope, start, stop):
    """Rows start:stop of y (N, O) = leaky(y + b) in place, b (O,)."""
    for n in range(start, stop):
        for k in range(y.shape[1]):
            v = y[n, k] + b[k]
            y[n, k] = v if v > 0 else slope * v


@njit(cache=True, error_model="numpy")
def bias_leaky_in_place(y, b, slope):
    """y (N, O) = leaky(y + b) in place, b (O,)."""
    _bias_leaky_rows(y, b, slope, 0, y.shape[0])


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


# Blocks of a batch start at multiples of this many rows: BLAS's kernels take rows in groups of
# a fixed size (at most 64) and the leftover rows at the end with other code, so a row in a
# block starting at such a multiple is computed exactly as in one product over the whole batch.
BLOCK_ALIGNMENT = 64


@njit(cache=True, inline="always")
def _block_start(block, blocks, n_batch):
    """Where block ``block`` of ``blocks`` starts: an even share, rounded down to a multiple of
    BLOCK_ALIGNMENT (some blocks are empty when the batch is small); block ``blocks`` = N."""
    if block >= blocks:
        return n_batch
    return (block * n_batch // blocks) // BLOCK_ALIGNMENT * BLOCK_ALIGNMENT


@njit(cache=True, parallel=True, error_model="numpy")
def dense_stack_forward(x, weights_t, biases, slopes, outputs, blocks):
    """Prediction through L dense layers, each thread taking its own block of rows through all:

        h_0 = leaky_0(x w_0^T + b_0),   h_l = leaky_l(h_{l-1} w_l^T + b_l),   l = 1 .. L-1

    x (N, D_0); tuples of L: weights_t[l] = w_l^T (D_l, D_{l+1}) row-major, biases[l]
    (D_{l+1},), outputs[l] (N, D_{l+1}) that receives h_l; slopes (L,) (1: no activation).  The
    batch is cut into ``blocks`` runs of rows, one per thread, and every product is one-thread
    BLAS on a block (the caller holds BLAS to one thread): the threads share nothing and never
    wait for each other, from the first layer to the last.  BLAS does not split the sums, and
    the blocks start at multiples of BLOCK_ALIGNMENT rows, so any ``blocks`` gives the bits of
    one product over the whole batch.  Numba
    compiles one version per depth L (cached on disk like every kernel).
    """
    n_batch = x.shape[0]
    for block in prange(blocks):
        start, stop = _block_start(block, blocks, n_batch), _block_start(block + 1, blocks, n_batch)
        if start == stop:
            continue
        h_in = x
        for layer in range(len(weights_t)):
            h = outputs[layer]
            blas.gemm(h_in[start:stop], weights_t[layer], h[start:stop])      # h_{l-1} w_l^T
            _bias_leaky_rows(h, biases[layer], slopes[layer], start, stop)
            h_in = h
