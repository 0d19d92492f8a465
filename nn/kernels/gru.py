"""GRU cell kernels: the gate nonlinearities and their derivatives for one timestep.

Gate order along the 3H axis is PyTorch's: reset (r), update (z), new (n), and so is the
placement of the reset gate, which multiplies W_hn h + b_hn (not h):

    r = sigmoid(a_r),  a_r = x W_ir^T + b_ir + h W_hr^T + b_hr
    z = sigmoid(a_z),  a_z = x W_iz^T + b_iz + h W_hz^T + b_hz
    n = tanh(a_n),     a_n = x W_in^T + b_in + r * (h W_hn^T + b_hn)
    h' = (1 - z) * n + z * h

The matrix products stay in BLAS (x W_ih^T + b_ih for all t at once, h W_hh^T per step); these
kernels do the elementwise gate math in one pass per batch row.  Types are inferred, so the same
kernels run in float32 and float64; both call the C library's exp and tanh.  Serial, like the
LSTM's: one step is too small to be worth waking threads for.
"""
import math

from numba import njit


@njit(cache=True, inline="always")
def _sigmoid(z):
    # Split on the sign so exp never overflows.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


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
        for k in range(hidden):
            r = gates[row, k]
            z = gates[row, hidden + k]
            n = gates[row, 2 * hidden + k]
            d = dh[row, k]
            da_n = d * (1 - z) * (1 - n * n)
            da_z = d * (h_prev[row, k] - n) * z * (1 - z)
            da_r = da_n * hn[row, k] * r * (1 - r)
            dgx[row, k] = da_r
            dgx[row, hidden + k] = da_z
            dgx[row, 2 * hidden + k] = da_n
            dgh[row, k] = da_r
            dgh[row, hidden + k] = da_z
            dgh[row, 2 * hidden + k] = da_n * r
            dh[row, k] = d * z
