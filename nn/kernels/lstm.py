"""LSTM cell kernels: the gate nonlinearities and their derivatives for one timestep.

The matrix products (x_t W_ih^T for all t at once, h_{t-1} W_hh^T per step) stay in BLAS; these
kernels do the elementwise gate math that follows, in one pass over (N, 4H) instead of a dozen
NumPy temporaries.  Gate order along the 4H axis is PyTorch's: input, forget, cell (g), output.
"""
import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _sigmoid(z):
    # Split on the sign so exp never overflows.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(parallel=True, cache=True)
def lstm_step_forward(gates, c_prev, c, tanh_c, h):
    """One timestep.  ``gates`` (N, 4H) holds pre-activations on entry and activations on exit.

    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
    c = f * c_prev + i * g,   h = o * tanh(c)          (c, tanh_c, h: (N, H), written in place)
    """
    n_batch, hidden = c_prev.shape
    for n in prange(n_batch):
        for k in range(hidden):
            i = _sigmoid(gates[n, k])
            f = _sigmoid(gates[n, hidden + k])
            g = math.tanh(gates[n, 2 * hidden + k])
            o = _sigmoid(gates[n, 3 * hidden + k])
            gates[n, k] = i
            gates[n, hidden + k] = f
            gates[n, 2 * hidden + k] = g
            gates[n, 3 * hidden + k] = o
            c_new = f * c_prev[n, k] + i * g
            t = math.tanh(c_new)
            c[n, k] = c_new
            tanh_c[n, k] = t
            h[n, k] = o * t


@njit(parallel=True, cache=True)
def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dgates):
    """Backward through one timestep's gate math.

    On entry dh, dc (N, H) are dL/dh_t and dL/dc_t from later timesteps and the output; on exit
    dc holds dL/dc_{t-1} and dgates (N, 4H) the gradient w.r.t. the gate pre-activations:

        dc_t  += dh * o * (1 - tanh(c)^2)
        da_i = dc_t * g * i(1-i)      da_f = dc_t * c_prev * f(1-f)
        da_g = dc_t * i * (1-g^2)     da_o = dh * tanh(c) * o(1-o)
        dc_{t-1} = dc_t * f
    """
    n_batch, hidden = dh.shape
    for n in prange(n_batch):
        for k in range(hidden):
            i = gates[n, k]
            f = gates[n, hidden + k]
            g = gates[n, 2 * hidden + k]
            o = gates[n, 3 * hidden + k]
            t = tanh_c[n, k]
            dh_nk = dh[n, k]
            dc_t = dc[n, k] + dh_nk * o * (1 - t * t)
            dgates[n, k] = dc_t * g * i * (1 - i)
            dgates[n, hidden + k] = dc_t * c_prev[n, k] * f * (1 - f)
            dgates[n, 2 * hidden + k] = dc_t * i * (1 - g * g)
            dgates[n, 3 * hidden + k] = dh_nk * t * o * (1 - o)
            dc[n, k] = dc_t * f
