"""Weight initialisers, the same as Keras' defaults that the original models relied on.

All draw from an explicit ``np.random.Generator`` so that one seed fixes a whole model.
"""
import numpy as np


def glorot_uniform(rng, shape, fan_in, fan_out, dtype=np.float32):
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio, 2010)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(rng, rows, cols, gain=1.0, dtype=np.float32):
    """A (rows, cols) matrix with orthonormal columns (rows >= cols) or rows (rows < cols).

    QR of a Gaussian matrix, with the signs of R's diagonal folded into Q so the result is
    uniformly distributed over orthogonal matrices (Saxe et al., 2014; Keras' Orthogonal).
    """
    tall = rows >= cols
    gaussian = rng.standard_normal((rows, cols) if tall else (cols, rows))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))
    return (gain * (q if tall else q.T)).astype(dtype)
