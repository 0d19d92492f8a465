"""Central-difference gradient checking in float64 (a helper for the tests, not a test file).

For a function y = f(a_1, ..., a_k) and a fixed random upstream gradient dy (same shape as y),
the scalar we differentiate is

    L(a_1, ..., a_k) = sum(f(a_1, ..., a_k) * dy)

so dL/da_j is exactly what a backward pass returns when handed dy.  Each entry of each array is
nudged by +-eps in place and

    dL/da_j[i] ~ (L(a_j[i] + eps) - L(a_j[i] - eps)) / (2 eps)          (error O(eps^2))

The analytic and numerical gradients a and n of one array are compared by

    rel = max|a - n| / max(max|a|, max|n|, tiny)

which is scale-free per array and does not blow up on entries that happen to be near zero.
"""
import math

import numpy as np

EPS = 1e-6
TOLERANCE = 1e-6
TINY = 1e-30


def relative_error(analytic, numerical):
    """max|a - n| / max(max|a|, max|n|, tiny); 0.0 for two empty arrays."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numerical = np.asarray(numerical, dtype=np.float64)
    if analytic.shape != numerical.shape:
        raise AssertionError(f"gradient shape {analytic.shape} != expected {numerical.shape}")
    if analytic.size == 0:
        return 0.0
    scale = max(np.abs(analytic).max(), np.abs(numerical).max(), TINY)
    return float(np.abs(analytic - numerical).max() / scale)


def weighted_sum(y, dy):
    """sum(y * dy) in float64, summed exactly (math.fsum) so rounding does not swamp 2 eps."""
    return math.fsum((np.asarray(y, dtype=np.float64) * dy).ravel())


def numerical_gradients(f, arrays, dy, eps=EPS):
    """Central-difference dL/da for every array in ``arrays``, L = sum(f(*arrays) * dy).

    The arrays are perturbed in place (and restored), so ``f`` may also read them through other
    references, e.g. a layer whose ``params`` dict holds the very same arrays.
    """
    grads = []
    for array in arrays:
        if array.dtype != np.float64:
            raise TypeError(f"gradient checks run in float64, got {array.dtype}")
        grad = np.empty_like(array)
        # order "A": memory order, so a column-major array (a Dense weight) gives a view too
        flat, grad_flat = array.reshape(-1, order="A"), grad.reshape(-1, order="A")
        if not np.shares_memory(flat, array):
            raise ValueError("arrays must be contiguous so they can be perturbed in place")
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            plus = weighted_sum(f(*arrays), dy)
            flat[i] = original - eps
            minus = weighted_sum(f(*arrays), dy)
            flat[i] = original
            grad_flat[i] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def check_gradients(f, arrays, analytic, dy, names=None, eps=EPS, tol=TOLERANCE):
    """Assert every analytic gradient matches central differences within ``tol``.

    Parameters
    ----------
    f : callable
        f(*arrays) -> output array (or scalar).
    arrays : list of float64 ndarray
        The inputs and parameters to differentiate with respect to (perturbed in place).
    analytic : list of ndarray
        The backward pass's gradients, one per array, computed for upstream gradient ``dy``.
    dy : ndarray or float
        The upstream gradient, the shape of f's output.
    names : list of str, optional
        Labels for the failure message.

    Returns the list of relative errors (for the caller's curiosity).
    """
    names = names or [f"array {i}" for i in range(len(arrays))]
    if not (len(arrays) == len(analytic) == len(names)):
        raise ValueError("arrays, analytic gradients and names must have the same length")
    dy = np.asarray(dy, dtype=np.float64)
    numerical = numerical_gradients(f, arrays, dy, eps)
    errors = []
    for name, a, n in zip(names, analytic, numerical):
        assert a is not None, f"{name}: backward returned no gradient"
        assert np.all(np.isfinite(a)), f"{name}: analytic gradient is not finite"
        error = relative_error(a, n)
        assert error < tol, (f"{name}: relative error {error:.3e} >= {tol:.0e} "
                             f"(max |analytic| {np.abs(a).max():.3e}, max |numerical| {np.abs(n).max():.3e})")
        errors.append(error)
    return errors
