"""What the recurrent kernels (nn.kernels.lstm, .gru, .rnn) share: the float32 tanh, the
sigmoid, the FMA setting, the blocks of batch rows, and the small loops every sequence kernel
runs around its products.

All are inlined into the kernels that call them (inline="always"), so sharing them costs
nothing at run time.  The functions' names start with an underscore: they are parts of those
kernels, never compiled or called on their own (nor warmed up, nor given twins of their own;
tests/test_sequence_kernels.py checks them through a kernel against nn.kernels.reference).
"""
import math

import numpy as np
from numba import njit

# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 7.905311 (beyond it float32 tanh rounds to +-1).
# Coefficients of Eigen's float32 tanh (Eigen/src/Core/MathFunctionsImpl.h, generic_fast_tanh_float);
# measured here: max abs error 3.4e-7 against float64 tanh over [-12, 12].
# float32 constants: Python floats would promote the whole computation to float64.
TANH_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (np.float32(v) for v in (4.89352455891786e-03, 6.37261928875436e-04,
                                              1.48572235717979e-05, 5.12229709037114e-08))
_A9, _A11, _A13 = (np.float32(v) for v in (-8.60467152213735e-11, 2.00018790482477e-13,
                                           -2.76076847742355e-16))
_B0, _B2, _B4, _B6 = (np.float32(v) for v in (4.89352518554385e-03, 2.26843463243900e-03,
                                              1.18534705686654e-04, 1.19825839466702e-06))
HALF = np.float32(0.5)
ONE = np.float32(1.0)   # 1 - x with an integer 1 makes a float32 x float64 in Numba
# Let LLVM fuse a * b + c into one FMA instruction (one rounding instead of two; nothing else
# of fastmath, so no reassociation and results stay the same for every thread count).  Halved
# the forward gate kernel: 19.3 - 21.7 -> 10.9 - 11.8 us per (64, 256) step (1 thread, 2 runs).
# The backward kernel gained nothing (5.1 vs 5.3 us) and stays bit-identical to its twin.
FMA = {"contract"}


@njit(cache=True, inline="always")
def _sigmoid(z):
    # Split on the sign so exp never overflows.
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, inline="always", error_model="numpy", fastmath=FMA)
def _tanh_fast(x):
    """float32 tanh as a branch-free rational function (vectorisable, ~3 ulp)."""
    x = x if x < TANH_CLAMP else TANH_CLAMP
    x = x if x > -TANH_CLAMP else -TANH_CLAMP
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


@njit(cache=True, inline="always")
def _row_block(block, rows_per_block, n_batch):
    """Rows [start, stop) of block ``block`` of a batch of ``n_batch`` cut into blocks of
    ``rows_per_block`` (the last one may be shorter)."""
    start = block * rows_per_block
    return start, min(start + rows_per_block, n_batch)


@njit(cache=True, inline="always")
def _add_bias_rows(a, b, start, stop):
    """a[n] += b for the rows n in [start, stop): explicit loops, as "+=" on slices allocates."""
    for n in range(start, stop):
        for k in range(b.shape[0]):
            a[n, k] += b[k]


@njit(cache=True, inline="always")
def _take_output_gradient(dh, dhs, hidden_grads, t, start, stop):
    """Rows [start, stop) at step t of a backward pass: dh += dhs[t] when every step has an
    output gradient (dhs of length T; length 0: only h_T has one, already in dh), then
    hidden_grads[t] = dh, the total dL/dh_t, when it is wanted (length T, else 0)."""
    for n in range(start, stop):
        for k in range(dh.shape[1]):
            if dhs.shape[0] > 0:
                dh[n, k] += dhs[t, n, k]
            if hidden_grads.shape[0] > 0:
                hidden_grads[t, n, k] = dh[n, k]


@njit(cache=True, inline="always")
def _add_rows_into(total, a, start, stop):
    """total (K,) += sum of the rows a[n], n in [start, stop), added in row order (a bias
    gradient's share of one block)."""
    for n in range(start, stop):
        for k in range(total.shape[0]):
            total[k] += a[n, k]
