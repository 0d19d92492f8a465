"""LSTM cell kernels: the gate nonlinearities and their derivatives for one timestep.

The matrix products (x_t W_ih^T for all t at once, h_{t-1} W_hh^T per step) stay in BLAS; these
kernels do the elementwise gate math that follows, in one pass over (N, 4H) instead of a dozen
NumPy temporaries.  Gate order along the 4H axis is PyTorch's: input, forget, cell (g), output.

Two forward kernels: ``lstm_step_forward`` calls the C library's exp and tanh (exact to the last
bit, any dtype: the float64 gradient checks use it), and ``lstm_step_forward_fast`` for float32
uses a rational approximation of tanh that the compiler can vectorise - the scalar libm calls
were ~90 % of an LSTM training step.  Both are serial: a (64, 256) step is too small to be worth
waking threads for.
"""
import math

import numpy as np
from numba import njit

# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 7.905311 (beyond it float32 tanh rounds to +-1).
# Coefficients of Eigen's float32 tanh (Eigen/src/Core/MathFunctionsImpl.h, generic_fast_tanh_float);
# measured here: max abs error 3.4e-7 against float64 tanh over [-12, 12].
# float32 constants: Python floats would promote the whole computation to float64.
_TANH_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04,
                                              1.48572235717979e-05, 5.12229709037114e-08))
_A9, _A11, _A13 = (np.float32(v) for v in (-8.60467152213735e-11, 2.00018790482477e-13,
                                           -2.76076847742355e-16))
_B0, _B2, _B4, _B6 = (np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03,
                                              1.18534705686654e-04, 1.19825839466702e-06))
_HALF = np.float32(0.5)


@njit(cache=True, inline="always")
def _sigmoid(z):
    # Split on the sign so exp never overflows.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, inline="always", error_model="numpy")
def _tanh_fast(x):
    """float32 tanh as a branch-free rational function (vectorisable, ~3 ulp)."""
    x = x if x < _TANH_CLAMP else _TANH_CLAMP
    x = x if x > -_TANH_CLAMP else -_TANH_CLAMP
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


# error_model="numpy": no Python ZeroDivisionError check on p / q (q >= 4.9e-3 anyway), which
# would otherwise keep the loops scalar.
@njit(cache=True, error_model="numpy")
def lstm_step_forward_fast(gates, c_prev, c, tanh_c, h):
    """As :func:`lstm_step_forward`, float32, with sigmoid(z) = (1 + tanh(z / 2)) / 2.

    Written as simple loops over contiguous rows so that LLVM turns them into SIMD code.
    """
    n_batch, hidden = c_prev.shape
    for n in range(n_batch):
        row = gates[n]
        for k in range(hidden):                      # input gate
            row[k] = _HALF + _HALF * _tanh_fast(_HALF * row[k])
        for k in range(hidden, 2 * hidden):          # forget gate
            row[k] = _HALF + _HALF * _tanh_fast(_HALF * row[k])
        for k in range(2 * hidden, 3 * hidden):      # cell candidate
            row[k] = _tanh_fast(row[k])
        for k in range(3 * hidden, 4 * hidden):      # output gate
            row[k] = _HALF + _HALF * _tanh_fast(_HALF * row[k])
        c_prev_row, c_row, tanh_row, h_row = c_prev[n], c[n], tanh_c[n], h[n]
        for k in range(hidden):
            c_new = row[hidden + k] * c_prev_row[k] + row[k] * row[2 * hidden + k]
            c_row[k] = c_new
        for k in range(hidden):
            tanh_row[k] = _tanh_fast(c_row[k])
        for k in range(hidden):
            h_row[k] = row[3 * hidden + k] * tanh_row[k]


@njit(cache=True)
def lstm_step_forward(gates, c_prev, c, tanh_c, h):
    """One timestep.  ``gates`` (N, 4H) holds pre-activations on entry and activations on exit.

    i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g), o = sigmoid(a_o)
    c = f * c_prev + i * g,   h = o * tanh(c)          (c, tanh_c, h: (N, H), written in place)
    """
    n_batch, hidden = c_prev.shape
    for n in range(n_batch):
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
    n_batch, hidden = dh.shape
    for n in range(n_batch):
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
