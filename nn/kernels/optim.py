"""Optimizer update kernels: one pass over each parameter instead of a dozen NumPy temporaries.

Elementwise and independent per entry.  Large arrays are updated in parallel; small ones
serially, because waking worker threads costs more than it saves there (measured: five tiny
parallel launches per step cost the LSTM ~2 ms of a 4 ms training step).
"""
import math

from numba import njit, prange

PARALLEL_MIN_SIZE = 1 << 16  # entries; below this the serial kernel is faster


@njit(cache=True, inline="always", error_model="numpy")
def _adam_entry(i, p, g, m, v, beta1, beta2, step_size, sqrt_bias_correction2, eps):
    gi = g[i]
    mi = beta1 * m[i] + (1 - beta1) * gi          # m = b1 m + (1 - b1) g
    vi = beta2 * v[i] + (1 - beta2) * gi * gi     # v = b2 v + (1 - b2) g^2
    m[i] = mi
    v[i] = vi
    p[i] -= step_size * mi / (math.sqrt(vi) / sqrt_bias_correction2 + eps)


# error_model="numpy": without a Python ZeroDivisionError test the loops vectorise (eps > 0
# keeps the denominator positive anyway).
@njit(cache=True, error_model="numpy")
def adam_update(p, g, m, v, beta1, beta2, step_size, sqrt_bias_correction2, eps):
    """In place on flat (1-D) arrays, for every entry (PyTorch's formulation):

    m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
    p = p - step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps),   step_size = lr / (1 - b1^t)
    """
    for i in range(p.shape[0]):
        _adam_entry(i, p, g, m, v, beta1, beta2, step_size, sqrt_bias_correction2, eps)


@njit(parallel=True, cache=True, error_model="numpy")
def adam_update_parallel(p, g, m, v, beta1, beta2, step_size, sqrt_bias_correction2, eps):
    """:func:`adam_update` with the entries split between threads."""
    for i in prange(p.shape[0]):
        _adam_entry(i, p, g, m, v, beta1, beta2, step_size, sqrt_bias_correction2, eps)
