"""LSTM kernels: the gate math of one timestep, and whole sequences built on it.

Gate order along the 4H axis is PyTorch's: input, forget, cell (g), output.

One timestep (lstm_step_forward, _fast, lstm_step_backward): the elementwise gate math, in one
pass over (N, 4H) instead of a dozen NumPy temporaries; serial, a step is too small to be worth
waking threads for.  A whole sequence (lstm_sequence_forward, lstm_sequence_backward): every
step of blocks of batch rows, in parallel over the blocks, with the matrix products done by
BLAS from inside the kernel (nn.kernels.blas; a hand-written product in Numba took 2x BLAS's
time for the 64x64 @ 64x256 step product).  Prediction's last state alone
(lstm_sequence_predict): the same for blocks of 32 rows, with the batch on the last axis.

Nonlinearities: the float64 path (gradient checks) calls the C library's exp and tanh, exact to
the last bit; float32 uses a rational approximation of tanh that vectorises (scalar libm calls
were ~90 % of an LSTM step; nn.kernels.recurrent), with sigmoid(z) = (1 + tanh(z / 2)) / 2.
"""
import math

import numpy as np
from numba import njit, prange

from nn.kernels import blas
from nn.kernels.recurrent import (FMA, ONE, _add_rows_into, _row_block, _sigmoid,
                                  _take_output_gradient, _tanh_fast)

# ----------------------------------------------------------------------------- one batch row

# error_model="numpy" on the float32 path: no Python ZeroDivisionError test on p / q (q >= 4.9e-3
# anyway), which would otherwise keep the loops scalar.
@njit(cache=True, inline="always")
def _gate_scales(hidden, like):
    """(a, 1 - a), each (4H,) of ``like``'s type: a = 1/2 for the sigmoid gates (i, f, o) and 1
    for g, the constants of :func:`_gate_row_fast`."""
    scale = np.empty(4 * hidden, like.dtype)
    shift = np.empty(4 * hidden, like.dtype)
    for k in range(4 * hidden):
        is_g = 2 * hidden <= k < 3 * hidden
        scale[k] = 1 if is_g else 0.5
        shift[k] = 0 if is_g else 0.5
    return scale, shift


@njit(cache=True, inline="always", error_model="numpy", fastmath=FMA)
def _gate_row_fast(row, addend, scale, shift, c_prev, c, tanh_c, h):
    """Gate math of one batch row, float32: a = row + addend (4H,), and row holds the
    activations on exit.  The sequence kernel's row is x_t W_ih^T + h_{t-1} W_hh^T and its
    addend the bias; the one-step kernels' addend is h_{t-1} W_hh^T (the row holding the rest).
    Adding here saves a pass.

    All four gates go through one loop, as  s * tanh(s * z) + (1 - s)  with s = 1/2 for the
    sigmoid gates (i, f, o) and s = 1 for g: one long SIMD loop ran ~4x faster than four short
    ones (measured: 8 us vs 33 us for a 64 x 256 step).  s and 1 - s are read from ``scale``
    and ``shift`` (:func:`_gate_scales`) rather than chosen from k in the loop, which cost
    ~11 of its 36 instructions per 16 elements: 0.17 - 0.19 ns per element against 0.27 - 0.30,
    the same bits (AMD EPYC Zen 5, 2026-12-06).
    """
    hidden = c_prev.shape[0]
    for k in range(4 * hidden):
        a = scale[k]
        row[k] = a * _tanh_fast(a * (row[k] + addend[k])) + shift[k]
    for k in range(hidden):
        c_new = row[hidden + k] * c_prev[k] + row[k] * row[2 * hidden + k]
        t = _tanh_fast(c_new)
        c[k] = c_new
        tanh_c[k] = t
        h[k] = row[3 * hidden + k] * t


@njit(cache=True, inline="always")
def _gate_row_exact(row, addend, c_prev, c, tanh_c, h):
    """Gate math of one batch row with libm's exp and tanh (any dtype); a = row + addend."""
    hidden = c_prev.shape[0]
    for k in range(hidden):
        i = _sigmoid(row[k] + addend[k])
        f = _sigmoid(row[hidden + k] + addend[hidden + k])
        g = math.tanh(row[2 * hidden + k] + addend[2 * hidden + k])
        o = _sigmoid(row[3 * hidden + k] + addend[3 * hidden + k])
        row[k] = i
        row[hidden + k] = f
        row[2 * hidden + k] = g
        row[3 * hidden + k] = o
        c[k] = f * c_prev[k] + i * g
        tanh_c[k] = math.tanh(c[k])
        h[k] = o * tanh_c[k]


@njit(cache=True, inline="always")
def _gate_row_backward(dh, dc, row, c_prev, tanh_c, drow):
    """Backward gate math of one batch row (see :func:`lstm_step_backward`).

    The gates are taken as four contiguous slices so the loop vectorises (4.5 us instead of
    10.7 us for a 64 x 256 step with indexed offsets).
    """
    hidden = dh.shape[0]
    i, f, g, o = row[:hidden], row[hidden:2 * hidden], row[2 * hidden:3 * hidden], row[3 * hidden:]
    di, df = drow[:hidden], drow[hidden:2 * hidden]
    dg, do = drow[2 * hidden:3 * hidden], drow[3 * hidden:]
    for k in range(hidden):   # ONE: float32 stays float32 (float64 stays float64)
        t = tanh_c[k]
        dc_t = dc[k] + dh[k] * o[k] * (ONE - t * t)
        di[k] = dc_t * g[k] * i[k] * (ONE - i[k])
        df[k] = dc_t * c_prev[k] * f[k] * (ONE - f[k])
        dg[k] = dc_t * i[k] * (ONE - g[k] * g[k])
        do[k] = dh[k] * t * o[k] * (ONE - o[k])
        dc[k] = dc_t * f[k]


# ----------------------------------------------------------------------------- one timestep

@njit(cache=True)
def lstm_step_forward(gates, recurrent, c_prev, c, tanh_c, h):
    """One timestep.  ``gates`` (N, 4H) holds x_t W_ih^T + b on entry and the activations on
    exit; ``recurrent`` (N, 4H) is h_{t-1} W_hh^T.

    a = gates + recurrent
    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
    c = f * c_prev + i * g,   h = o * tanh(c)          (c, tanh_c, h: (N, H), written in place)
    """
    for n in range(c_prev.shape[0]):
        _gate_row_exact(gates[n], recurrent[n], c_prev[n], c[n], tanh_c[n], h[n])


@njit(cache=True, error_model="numpy", fastmath=FMA)
def lstm_step_forward_fast(gates, recurrent, c_prev, c, tanh_c, h):
    """As :func:`lstm_step_forward`, float32, with sigmoid(z) = (1 + tanh(z / 2)) / 2."""
    scale, shift = _gate_scales(c_prev.shape[1], gates)
    for n in range(c_prev.shape[0]):
        _gate_row_fast(gates[n], recurrent[n], scale, shift, c_prev[n], c[n], tanh_c[n], h[n])


@njit(cache=True)
def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dgates):
    """Backward through one timestep's gate math.

    On entry dh (N, H) is the total dL/dh_t and dc (N, H) the part of dL/dc_t that flows through
    c_{t+1}; on exit dc holds the part of dL/dc_{t-1} that flows through c_t, and dgates (N, 4H)
    the gradient w.r.t. the gate pre-activations:

        dc_t  += dh * o * (1 - tanh(c)^2)
        da_i = dc_t * g * i(1-i)      da_f = dc_t * c_prev * f(1-f)
        da_g = dc_t * i * (1-g^2)     da_o = dh * tanh(c) * o(1-o)
        dc_{t-1} = dc_t * f
    """
    for n in range(dh.shape[0]):
        _gate_row_backward(dh[n], dc[n], gates[n], c_prev[n], tanh_c[n], dgates[n])


# ----------------------------------------------------------------------------- a whole sequence

@njit(cache=True, parallel=True, error_model="numpy", fastmath=FMA)
def lstm_sequence_forward(x, w_ih_t, b, w_hh_t, gates, hs, cs, tanh_cs, rows_per_block, fast):
    """Every timestep of the LSTM, for blocks of batch rows in parallel.

    x (N, T, D) batch-major input; w_ih_t (D, 4H), b (4H,), w_hh_t (H, 4H).  Fills gates
    (T, N, 4H) with the activations [i | f | g | o], hs and cs (T + 1, N, H) for t = 1..T (hs[0],
    cs[0] hold the initial state) and tanh_cs (T, N, H).  Per block of rows and step:

        gates[t] = x_t w_ih^T,   gates[t] += h_{t-1} w_hh^T        (BLAS: nn.kernels.blas)
        then the gate math of lstm_step_forward(_fast) on a_t = gates[t] + b

    The second product adds into the first's output and the bias is added in the gate math's
    own loop: no scratch array and no pass of its own.  x_t's rows are read in place, a block
    of rows T * D apart (BLAS takes the stride), so the input is never transposed.  Measured
    (AMD EPYC Zen 5, 1 thread, 2026-12-06, means of 0.4 s in turns), the kernel alone at batch
    256: 2.02 - 2.40 ms against 2.14 - 2.60 with a scratch for h_{t-1} w_hh^T + b; batch 64
    0.52 - 0.56 against 0.56 - 0.60 (two measurements, 22:15 and 00:14 UTC).

    For prediction alone, gates and tanh_cs may have length 1 and hs, cs length 2: the steps
    then take turns in them (index t mod length), and h_T ends in hs[T % 2]: less memory
    written, 11 - 16 % faster (0.70 - 0.83 -> 0.60 - 0.72 ms, batch 64, 2 threads, 5 runs).
    Prediction runs so on the rows lstm_sequence_predict leaves (one image, a batch's tail).

    The rows of a batch never mix, so each block runs all T steps on its own: one parallel
    launch per sequence instead of a hand-off per step, and the products of a step run on
    the same thread as the rest of it.  The blocks depend on N alone (not on the thread count),
    so results are the same for any number of threads.  ``fast``: float32 tanh approximation
    (as lstm_step_forward_fast) instead of libm (as lstm_step_forward).
    """
    n_batch, steps = x.shape[0], x.shape[1]
    kept, slots = gates.shape[0], hs.shape[0]     # T and T + 1, or 1 and 2 (see above)
    scale, shift = _gate_scales(hs.shape[2], gates)
    blocks = (n_batch + rows_per_block - 1) // rows_per_block
    for block in prange(blocks):
        start, stop = _row_block(block, rows_per_block, n_batch)
        rows = slice(start, stop)
        for t in range(steps):
            g, now, after = t % kept, t % slots, (t + 1) % slots
            blas.gemm(x[rows, t], w_ih_t, gates[g, rows])                         # x_t w_ih^T
            blas.gemm_general(hs[now, rows], w_hh_t, gates[g, rows], False, False, True)
            for n in range(start, stop):                                 # a_t = gates[t] + b
                if fast:
                    _gate_row_fast(gates[g, n], b, scale, shift, cs[now, n], cs[after, n],
                                   tanh_cs[g, n], hs[after, n])
                else:
                    _gate_row_exact(gates[g, n], b, cs[now, n], cs[after, n], tanh_cs[g, n],
                                    hs[after, n])


# The width of lstm_sequence_predict's blocks: see there.
FEATURE_MAJOR_ROWS = 32


@njit(cache=True, parallel=True, error_model="numpy", fastmath=FMA)
def lstm_sequence_predict(x, w_ih, b, w_hh, h_last, fast):
    """h_T (N, H) into h_last, for prediction, N a multiple of FEATURE_MAJOR_ROWS: the same bits
    as :func:`lstm_sequence_forward`'s h_T.  x (N, T, D), w_ih (4H, D), b (4H,), w_hh (4H, H).

    Each block of FEATURE_MAJOR_ROWS rows runs with the batch on the last axis
    (:func:`_feature_major_rows`): the step's products are w_ih x_t^T and w_hh h_{t-1}^T, which
    SciPy's OpenBLAS runs faster than x_t w_ih^T and h_{t-1} w_hh^T, and every array a block
    writes is its own, where the batch-major kernel's speed varied from process to process
    with the placement of the shared hs, cs and gates.  Narrower blocks (the tail of a batch,
    one image) are faster batch-major and go to lstm_sequence_forward.  Measured (AMD EPYC
    Zen 5, 1 thread, 2026-12-07, microseconds per block of 32 rows, means of 0.4 s in turns,
    four processes):

        batch 256: batch-major 242 - 277, feature-major 237 - 245
        batch 64:  batch-major 251 - 287, feature-major 239 - 247
    """
    scale, shift = _gate_scales(w_hh.shape[1], x)
    for block in prange(x.shape[0] // FEATURE_MAJOR_ROWS):
        _feature_major_rows(x, w_ih, b, w_hh, h_last, block * FEATURE_MAJOR_ROWS, scale, shift,
                            fast)


@njit(cache=True, inline="always", error_model="numpy", fastmath=FMA)
def _feature_major_rows(x, w_ih, b, w_hh, h_last, start, scale, shift, fast):
    """Every step of the W = FEATURE_MAJOR_ROWS batch rows from ``start`` with the batch on the
    last axis, h_T into h_last (N, H).  With a^T, h^T, c^T of shape (4H, W), (H, W), (H, W):

        a_t^T = w_ih x_t^T + w_hh h_{t-1}^T          (no product at t = 1: h_0 = 0)
        then the gate math of :func:`_gate_row_fast` / ``_exact``, column by column

    The block's x_t^T for every t is copied once (D x W each, ~6 % of the time)."""
    steps, features, hidden = x.shape[1], x.shape[2], w_hh.shape[1]
    width = FEATURE_MAJOR_ROWS
    x_columns = np.empty((steps, features, width), x.dtype)                 # x_t^T for every t
    for t in range(steps):
        for n in range(width):
            for d in range(features):
                x_columns[t, d, n] = x[start + n, t, d]
    gates = np.empty((4 * hidden, width), x.dtype)
    h = np.zeros((2, hidden, width), x.dtype)                               # h^T, c^T: two slots
    c = np.zeros((2, hidden, width), x.dtype)
    for t in range(steps):
        now, after = t % 2, (t + 1) % 2
        blas.gemm(w_ih, x_columns[t], gates)                                     # w_ih x_t^T
        if t > 0:
            blas.gemm_general(w_hh, h[now], gates, False, False, True)     # += w_hh h_{t-1}^T
        for k in range(4 * hidden):                                # rows of i, f, g, o
            row, bias = gates[k], b[k]
            if fast:                                          # s tanh(s (a + b)) + (1 - s)
                s, shift_k = scale[k], shift[k]
                for n in range(width):
                    row[n] = s * _tanh_fast(s * (row[n] + bias)) + shift_k
            elif 2 * hidden <= k < 3 * hidden:
                for n in range(width):
                    row[n] = math.tanh(row[n] + bias)                         # g = tanh(a_g)
            else:
                for n in range(width):
                    row[n] = _sigmoid(row[n] + bias)                          # i, f, o
        for k in range(hidden):
            i, f, g, o = gates[k], gates[hidden + k], gates[2 * hidden + k], gates[3 * hidden + k]
            c_prev, c_new, h_new = c[now, k], c[after, k], h[after, k]
            for n in range(width):
                c_t = f[n] * c_prev[n] + i[n] * g[n]                       # c = f c_prev + i g
                c_new[n] = c_t
                h_new[n] = o[n] * (_tanh_fast(c_t) if fast else math.tanh(c_t))  # h = o tanh(c)
    for n in range(width):
        for k in range(hidden):
            h_last[start + n, k] = h[steps % 2, k, n]


@njit(cache=True, parallel=True)
def lstm_sequence_backward(dhs, dh, dc, x, hs, cs, tanh_cs, gates, w_ih, w_hh, dgates, dx,
                           hidden_grads, dw_ih_blocks, dw_hh_blocks, db_blocks, rows_per_block):
    """Backpropagation through every timestep, for blocks of batch rows in parallel.

    dhs (T, N, H): dL/dh_t from the output at every step, or shape (0, N, H) when only h_T has
    one (then it is already in dh).  dh, dc (N, H): dL/dh_T and dL/dc_T on entry (dc zero),
    scratch after.  x, hs, cs, tanh_cs, gates: the forward pass's (time-major x (T, N, D)).
    dgates (T, N, 4H) receives da_t; dx (T, N, D) receives dL/dx_t, or has shape (0, N, D)
    when not wanted; hidden_grads (T, N, H) likewise receives the total dL/dh_t of every step.
    Each block b adds its share of the parameter gradients into dw_ih_blocks[b] (4H, D),
    dw_hh_blocks[b] (4H, H) and db_blocks[b] (4H,), zero on entry; the caller sums over b, in
    block order, so the result does not depend on the thread count.  Per block, t = T..1:

        dh += dhs[t]                                  (if given)
        da_t, dc <- lstm_step_backward(dh, dc, ...)
        dw_ih += da_t^T x_t,  dw_hh += da_t^T h_{t-1},  db += sum_n da_t,  dx_t = da_t w_ih
        dh = da_t w_hh                                (dL/dh_{t-1} through the recurrence)
    """
    steps, n_batch = gates.shape[0], gates.shape[1]
    blocks = (n_batch + rows_per_block - 1) // rows_per_block
    for block in prange(blocks):
        start, stop = _row_block(block, rows_per_block, n_batch)
        rows = slice(start, stop)
        for t in range(steps - 1, -1, -1):
            _take_output_gradient(dh, dhs, hidden_grads, t, start, stop)
            lstm_step_backward(dh[rows], dc[rows], gates[t, rows], cs[t, rows], tanh_cs[t, rows],
                               dgates[t, rows])
            blas.gemm_at_add(dgates[t, rows], x[t, rows], dw_ih_blocks[block])
            blas.gemm_at_add(dgates[t, rows], hs[t, rows], dw_hh_blocks[block])
            _add_rows_into(db_blocks[block], dgates[t], start, stop)
            if dx.shape[0] > 0:
                blas.gemm(dgates[t, rows], w_ih, dx[t, rows])                 # dx_t = da_t w_ih
            blas.gemm(dgates[t, rows], w_hh, dh[rows])                     # dh_{t-1} = da_t w_hh
