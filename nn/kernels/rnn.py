"""Elman (tanh) RNN step kernels: the nonlinearity and its derivative for one timestep.

As for the LSTM, the matrix products (x_t W_ih^T + b for all t at once, h_{t-1} W_hh^T per step)
stay in BLAS; these kernels add the two parts and apply tanh in one pass over (N, H), and run
the derivative backwards.  Types are inferred, so the same kernels run in float32 (training) and
float64 (gradient checks); both call the C library's tanh.  Serial: an (N, H) step is too small
to be worth waking threads for.
"""
import math

from numba import njit


@njit(cache=True)
def rnn_step_forward(pre, recurrent, h):
    """One timestep: h = tanh(pre + recurrent), written into ``h``.

    pre (N, H): x_t W_ih^T + b;  recurrent (N, H): h_{t-1} W_hh^T;  h (N, H): h_t (output).
    """
    for n in range(h.shape[0]):
        for k in range(h.shape[1]):
            h[n, k] = math.tanh(pre[n, k] + recurrent[n, k])


@njit(cache=True)
def rnn_step_backward(dh, h, da):
    """Backward through h = tanh(a):  da = dh * (1 - h^2)   (all (N, H); ``da`` is the output).

    dh is the total dL/dh_t (from the output and from step t+1); h is the cached h_t.
    """
    for n in range(h.shape[0]):
        for k in range(h.shape[1]):
            da[n, k] = dh[n, k] * (1 - h[n, k] * h[n, k])
