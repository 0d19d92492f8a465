"""GRU cell kernels: the gate nonlinearities and their derivatives for one timestep.

Gate order along the 3H axis is PyTorch's: reset (r), update (z), new (n), and so is the
placement of the reset gate, which multiplies W_hn h + b_hn (not h):

    r = sigmoid(a_r),  a_r = x W_ir^T + b_ir + h W_hr^T + b_hr
    z = sigmoid(a_z),  a_z = x W_iz^T + b_iz + h W_hz^T + b_hz
    n = tanh(a_n),     a_n = x W_in^T + b_in + r * (h W_hn^T + b_hn)
    h' = (1 - z) * n + z * h

One timestep (gru_step_forward, _fast, gru_step_backward): the elementwise gate math in one pass
per batch row; serial, a step is too small to be worth waking threads for.  A whole sequence
(gru_sequence_forward, gru_sequence_backward): every step of blocks of batch rows, in parallel
over the blocks, with the two products of a step done by BLAS from inside the kernel
(nn.kernels.blas), as the LSTM's (nn.kernels.lstm); the tanh approximation, the row blocks and
the loops around the products are shared with it (nn.kernels.recurrent).

Nonlinearities: float64 (gradient checks) calls the C library's exp and tanh; the float32 fast
path uses the vectorising rational tanh of nn.kernels.recurrent, with
sigmoid(a) = (1 + tanh(a / 2)) / 2.
"""
import math

from numba import njit, prange

from nn.kernels import blas
from nn.kernels.recurrent import (FMA, HALF, ONE, _add_bias_rows, _add_rows_into, _row_block,
                                  _sigmoid, _take_output_gradient, _tanh_fast)


@njit(cache=True)
def gru_step_forward(gates, recurrent, b_hh, h_prev, hn, h):
    """One timestep.

    gates (N, 3H): x_t W_ih^T + b_ih on entry, the activations [r | z | n] on exit;
    recurrent (N, 3H): h_{t-1} W_hh^T (without b_hh);  b_hh (3H,);  h_prev (N, H): h_{t-1};
    hn (N, H), output: h_{t-1} W_hn^T + b_hn, kept for the backward pass;
    h (N, H), output: h_t = (1 - z) * n + z * h_{t-1}.
    """
    hidden = h_prev.shape[1]
    for row in range(h_prev.shape[0]):
        for k in range(hidden):
            r = _sigmoid(gates[row, k] + recurrent[row, k] + b_hh[k])
            z = _sigmoid(gates[row, hidden + k] + recurrent[row, hidden + k] + b_hh[hidden + k])
            hn_k = recurrent[row, 2 * hidden + k] + b_hh[2 * hidden + k]
            n = math.tanh(gates[row, 2 * hidden + k] + r * hn_k)
            gates[row, k] = r
            gates[row, hidden + k] = z
            gates[row, 2 * hidden + k] = n
            hn[row, k] = hn_k
            h[row, k] = (1 - z) * n + z * h_prev[row, k]


@njit(cache=True, error_model="numpy", fastmath=FMA)
def gru_step_forward_fast(gates, recurrent, b_hh, h_prev, hn, h):
    """As :func:`gru_step_forward`, float32, with sigmoid(a) = (1 + tanh(a / 2)) / 2 and the
    rational tanh of nn.kernels.recurrent (error ~3e-7).

    r and z go through one loop over 2H, n and h_t through a second over H: long unit-stride
    loops that vectorise (as the LSTM's gate row).
    """
    hidden = h_prev.shape[1]
    for row in range(h_prev.shape[0]):
        a, rec = gates[row], recurrent[row]
        for k in range(2 * hidden):              # r, z = sigmoid(gx + gh)
            a[k] = HALF * _tanh_fast(HALF * (a[k] + rec[k] + b_hh[k])) + HALF
        # contiguous slices: the loop then vectorises (indexed offsets kept it scalar)
        r, z, n = a[:hidden], a[hidden:2 * hidden], a[2 * hidden:]
        hn_row, h_row, h_prev_row = hn[row], h[row], h_prev[row]
        rec_n, b_hn = rec[2 * hidden:], b_hh[2 * hidden:]
        for k in range(hidden):
            hn_k = rec_n[k] + b_hn[k]                                  # h w_hn^T + b_hn
            n_k = _tanh_fast(n[k] + r[k] * hn_k)                       # n = tanh(gx_n + r gh_n)
            n[k] = n_k
            hn_row[k] = hn_k
            h_row[k] = (ONE - z[k]) * n_k + z[k] * h_prev_row[k]


@njit(cache=True)
def gru_step_backward(dh, gates, h_prev, hn, dgx, dgh):
    """Backward through one timestep's gate math.

    On entry dh (N, H) is the total dL/dh_t; on exit it holds dh * z, the part of dL/dh_{t-1}
    that flows straight through h_t = ... + z * h_{t-1} (the caller adds dgh W_hh).  Outputs,
    (N, 3H) each, the gradients of the x-side and h-side pre-activations:

        da_n = dh * (1 - z) * (1 - n^2)
        da_z = dh * (h_prev - n) * z (1 - z)
        da_r = da_n * hn * r (1 - r)
        dgx = [da_r | da_z | da_n]            (x W_ih^T + b_ih enters a_r, a_z, a_n directly)
        dgh = [da_r | da_z | da_n * r]        (h W_hh^T + b_hh: its n-part is multiplied by r)
    """
    hidden = h_prev.shape[1]
    for row in range(h_prev.shape[0]):
        # contiguous slices so the loop vectorises (11.5 us with indexed offsets for 32 x 64);
        # ONE: float32 stays float32 (an integer 1 made the float32 path compute in float64)
        r, z, n = gates[row, :hidden], gates[row, hidden:2 * hidden], gates[row, 2 * hidden:]
        dx_r, dx_z, dx_n = dgx[row, :hidden], dgx[row, hidden:2 * hidden], dgx[row, 2 * hidden:]
        dh_r, dh_z, dh_n = dgh[row, :hidden], dgh[row, hidden:2 * hidden], dgh[row, 2 * hidden:]
        d_row, h_prev_row, hn_row = dh[row], h_prev[row], hn[row]
        for k in range(hidden):
            d = d_row[k]
            da_n = d * (ONE - z[k]) * (ONE - n[k] * n[k])
            da_z = d * (h_prev_row[k] - n[k]) * z[k] * (ONE - z[k])
            da_r = da_n * hn_row[k] * r[k] * (ONE - r[k])
            dx_r[k] = da_r
            dx_z[k] = da_z
            dx_n[k] = da_n
            dh_r[k] = da_r
            dh_z[k] = da_z
            dh_n[k] = da_n * r[k]
            d_row[k] = d * z[k]


# ----------------------------------------------------------------------------- a whole sequence

@njit(cache=True, parallel=True, error_model="numpy", fastmath=FMA)
def gru_sequence_forward(x, w_ih_t, b_ih, w_hh_t, b_hh, gates, hn, hs, recurrent,
                         rows_per_block, fast):
    """Every timestep of the GRU, for blocks of batch rows in parallel.

    x (T, N, D) time-major input; w_ih_t (D, 3H), b_ih (3H,), w_hh_t (H, 3H), b_hh (3H,).
    Fills gates (T, N, 3H) with the activations [r | z | n], hn (T, N, H) with h_{t-1} w_hn^T +
    b_hn, and hs (T + 1, N, H) for t = 1..T (hs[0] holds h_0); recurrent (N, 3H) is scratch.
    Per block of rows and step:

        gates[t] = x_t w_ih^T + b_ih,   recurrent = h_{t-1} w_hh^T     (BLAS: nn.kernels.blas.gemm)
        then the gate math of gru_step_forward(_fast), which adds b_hh

    For prediction alone, gates and hn may have length 1 and hs length 2: the steps then take
    turns in them (index t mod length), and h_T ends in hs[T % 2].

    Each block runs all T steps on its own (the rows of a batch never mix); the blocks depend
    on N alone, so results are the same for any number of threads.  ``fast``: float32 tanh
    approximation (gru_step_forward_fast) instead of libm (gru_step_forward).
    """
    steps, n_batch = x.shape[0], x.shape[1]
    kept, slots = gates.shape[0], hs.shape[0]     # T and T + 1, or 1 and 2 (see above)
    blocks = (n_batch + rows_per_block - 1) // rows_per_block
    for block in prange(blocks):
        start, stop = _row_block(block, rows_per_block, n_batch)
        rows = slice(start, stop)
        for t in range(steps):
            g, now, after = t % kept, t % slots, (t + 1) % slots
            blas.gemm(x[t, rows], w_ih_t, gates[g, rows])                  # x_t w_ih^T
            _add_bias_rows(gates[g], b_ih, start, stop)
            blas.gemm(hs[now, rows], w_hh_t, recurrent[rows])              # h_{t-1} w_hh^T
            if fast:
                gru_step_forward_fast(gates[g, rows], recurrent[rows], b_hh, hs[now, rows],
                                      hn[g, rows], hs[after, rows])
            else:
                gru_step_forward(gates[g, rows], recurrent[rows], b_hh, hs[now, rows],
                                 hn[g, rows], hs[after, rows])


@njit(cache=True, parallel=True)
def gru_sequence_backward(dhs, dh, x, hs, gates, hn, w_ih, w_hh, dgx, dgh, through_w_hh, dx,
                          hidden_grads, dw_ih_blocks, dw_hh_blocks, db_ih_blocks, db_hh_blocks,
                          rows_per_block):
    """Backpropagation through every timestep, for blocks of batch rows in parallel.

    dhs (T, N, H): dL/dh_t from the output at every step, or shape (0, N, H) when only h_T has
    one (then it is already in dh).  dh (N, H): dL/dh_T on entry, scratch after.  x, hs, gates,
    hn: the forward pass's (time-major x (T, N, D)).  dgx, dgh (N, 3H) and through_w_hh (N, H)
    are scratch.  dx (T, N, D) receives dL/dx_t, or has shape (0, N, D) when not wanted;
    hidden_grads (T, N, H) likewise receives the total dL/dh_t of every step.  Each block b adds
    its share of the parameter gradients into dw_ih_blocks[b] (3H, D), dw_hh_blocks[b] (3H, H),
    db_ih_blocks[b] and db_hh_blocks[b] (3H,), zero on entry; the caller sums over b, in block
    order, so the result does not depend on the thread count.  Per block, t = T..1:

        dh += dhs[t]                                   (if given)
        dgx_t, dgh_t, dh <- gru_step_backward(dh, ...)  (dh becomes dh_t * z)
        dw_ih += dgx_t^T x_t,  dw_hh += dgh_t^T h_{t-1}
        db_ih += sum_n dgx_t,  db_hh += sum_n dgh_t
        dx_t = dgx_t w_ih
        dh += dgh_t w_hh                                (dL/dh_{t-1} = dh_t z + dgh_t w_hh)
    """
    steps, n_batch = gates.shape[0], gates.shape[1]
    hidden = dh.shape[1]
    blocks = (n_batch + rows_per_block - 1) // rows_per_block
    for block in prange(blocks):
        start, stop = _row_block(block, rows_per_block, n_batch)
        rows = slice(start, stop)
        for t in range(steps - 1, -1, -1):
            _take_output_gradient(dh, dhs, hidden_grads, t, start, stop)
            gru_step_backward(dh[rows], gates[t, rows], hs[t, rows], hn[t, rows], dgx[rows],
                              dgh[rows])
            blas.gemm_at_add(dgx[rows], x[t, rows], dw_ih_blocks[block])
            blas.gemm_at_add(dgh[rows], hs[t, rows], dw_hh_blocks[block])
            _add_rows_into(db_ih_blocks[block], dgx, start, stop)
            _add_rows_into(db_hh_blocks[block], dgh, start, stop)
            if dx.shape[0] > 0:
                blas.gemm(dgx[rows], w_ih, dx[t, rows])                    # dx_t = dgx_t w_ih
            blas.gemm(dgh[rows], w_hh, through_w_hh[rows])                 # dgh_t w_hh
            for n in range(start, stop):
                for k in range(hidden):
                    dh[n, k] += through_w_hh[n, k]
