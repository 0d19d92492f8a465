"""Elman (tanh) RNN kernels: one timestep's nonlinearity and its derivative, and whole sequences.

One timestep (rnn_step_forward, _fast, rnn_step_backward): add the two parts and apply tanh in
one pass over (N, H), and the derivative backwards; serial, an (N, H) step is too small to be
worth waking threads for.  A whole sequence (rnn_sequence_forward, rnn_sequence_backward): every
step of blocks of batch rows, in parallel over the blocks, with the two products of a step done
by BLAS from inside the kernel (nn.kernels.blas), as the LSTM's (nn.kernels.lstm), with the
helpers the three share (nn.kernels.recurrent).

Nonlinearities: float64 (gradient checks) calls the C library's tanh; the float32 fast path the
vectorising rational tanh of nn.kernels.recurrent (error ~3e-7).
"""
import math

from numba import njit, prange

from nn.kernels import blas
from nn.kernels.recurrent import (FMA, _add_bias_rows, _add_rows_into, _row_block,
                                  _take_output_gradient, _tanh_fast)


@njit(cache=True)
def rnn_step_forward(pre, recurrent, h):
    """One timestep: h = tanh(pre + recurrent), written into ``h``.

    pre (N, H): x_t W_ih^T + b;  recurrent (N, H): h_{t-1} W_hh^T;  h (N, H): h_t (output).
    """
    for n in range(h.shape[0]):
        for k in range(h.shape[1]):
            h[n, k] = math.tanh(pre[n, k] + recurrent[n, k])


@njit(cache=True, error_model="numpy", fastmath=FMA)
def rnn_step_forward_fast(pre, recurrent, h):
    """As :func:`rnn_step_forward`, float32, with the rational tanh of nn.kernels.recurrent."""
    for n in range(h.shape[0]):
        for k in range(h.shape[1]):
            h[n, k] = _tanh_fast(pre[n, k] + recurrent[n, k])


@njit(cache=True)
def rnn_step_backward(dh, h, da):
    """Backward through h = tanh(a):  da = dh * (1 - h^2)   (all (N, H); ``da`` is the output).

    dh is the total dL/dh_t (from the output and from step t+1); h is the cached h_t.
    """
    for n in range(h.shape[0]):
        for k in range(h.shape[1]):
            da[n, k] = dh[n, k] * (1 - h[n, k] * h[n, k])


# ----------------------------------------------------------------------------- a whole sequence

@njit(cache=True, parallel=True, error_model="numpy", fastmath=FMA)
def rnn_sequence_forward(x, w_ih_t, b, w_hh_t, hs, pre, recurrent, rows_per_block, fast):
    """Every timestep of the RNN, for blocks of batch rows in parallel.

    x (T, N, D) time-major input; w_ih_t (D, H), b (H,), w_hh_t (H, H).  Fills hs (T + 1, N, H)
    for t = 1..T (hs[0] holds h_0); pre and recurrent (N, H) are scratch.  Per block of rows
    and step:

        pre = x_t w_ih^T + b,   recurrent = h_{t-1} w_hh^T          (BLAS: nn.kernels.blas.gemm)
        h_t = tanh(pre + recurrent)                                  (rnn_step_forward(_fast))

    For prediction alone, hs may have length 2: the steps then take turns in it, and h_T ends
    in hs[T % 2].  Each block runs all T steps on its own; the blocks depend on N alone, so
    results are the same for any number of threads.  ``fast``: float32 tanh approximation
    (rnn_step_forward_fast) instead of libm (rnn_step_forward).
    """
    steps, n_batch = x.shape[0], x.shape[1]
    slots = hs.shape[0]                           # T + 1, or 2 (see above)
    blocks = (n_batch + rows_per_block - 1) // rows_per_block
    for block in prange(blocks):
        start, stop = _row_block(block, rows_per_block, n_batch)
        rows = slice(start, stop)
        for t in range(steps):
            now, after = t % slots, (t + 1) % slots
            blas.gemm(x[t, rows], w_ih_t, pre[rows])                       # x_t w_ih^T
            _add_bias_rows(pre, b, start, stop)
            blas.gemm(hs[now, rows], w_hh_t, recurrent[rows])              # h_{t-1} w_hh^T
            if fast:
                rnn_step_forward_fast(pre[rows], recurrent[rows], hs[after, rows])
            else:
                rnn_step_forward(pre[rows], recurrent[rows], hs[after, rows])


@njit(cache=True, parallel=True)
def rnn_sequence_backward(dhs, dh, x, hs, w_ih, w_hh, da, dx, hidden_grads, dw_ih_blocks,
                          dw_hh_blocks, db_blocks, rows_per_block):
    """Backpropagation through every timestep, for blocks of batch rows in parallel.

    dhs (T, N, H): dL/dh_t from the output at every step, or shape (0, N, H) when only h_T has
    one (then it is already in dh).  dh (N, H): dL/dh_T on entry, scratch after.  x, hs: the
    forward pass's (time-major x (T, N, D)); da (N, H) is scratch.  dx (T, N, D) receives
    dL/dx_t, or has shape (0, N, D) when not wanted; hidden_grads (T, N, H) likewise receives
    the total dL/dh_t of every step.  Each block b adds its share of the parameter gradients
    into dw_ih_blocks[b] (H, D), dw_hh_blocks[b] (H, H) and db_blocks[b] (H,), zero on entry;
    the caller sums over b, in block order, so the result does not depend on the thread count.
    Per block, t = T..1:

        dh += dhs[t]                                   (if given)
        da_t = dh * (1 - h_t^2)                        (rnn_step_backward)
        dw_ih += da_t^T x_t,  dw_hh += da_t^T h_{t-1},  db += sum_n da_t,  dx_t = da_t w_ih
        dh = da_t w_hh                                 (dL/dh_{t-1} through the recurrence)
    """
    steps, n_batch = hs.shape[0] - 1, hs.shape[1]
    blocks = (n_batch + rows_per_block - 1) // rows_per_block
    for block in prange(blocks):
        start, stop = _row_block(block, rows_per_block, n_batch)
        rows = slice(start, stop)
        for t in range(steps - 1, -1, -1):
            _take_output_gradient(dh, dhs, hidden_grads, t, start, stop)
            rnn_step_backward(dh[rows], hs[t + 1, rows], da[rows])
            blas.gemm_at_add(da[rows], x[t, rows], dw_ih_blocks[block])
            blas.gemm_at_add(da[rows], hs[t, rows], dw_hh_blocks[block])
            _add_rows_into(db_blocks[block], da, start, stop)
            if dx.shape[0] > 0:
                blas.gemm(da[rows], w_ih, dx[t, rows])                     # dx_t = da_t w_ih
            blas.gemm(da[rows], w_hh, dh[rows])                            # dh_{t-1} = da_t w_hh
