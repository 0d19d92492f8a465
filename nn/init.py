"""Weight initialisers, the same as Keras' defaults that the original models relied on.

All draw from an explicit ``np.random.Generator`` so that one seed fixes a whole model.  Every
array a layer's constructor creates comes from here (:func:`zeros`, :func:`ones` and
:func:`constant_blocks` for biases and statistics), so that :func:`shapes_only` can build a
network without allocating or drawing anything: loading a weights file uses it to learn the
architecture's parameter shapes before reading a byte of the arrays.
"""
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

_SHAPES_ONLY = ContextVar("shapes_only", default=False)


@contextmanager
def shapes_only():
    """Within this block every initialiser returns a read-only placeholder of the right shape
    and dtype that occupies no memory (a broadcast view of one zero), and draws nothing.

    A network built inside it has its architecture, config, ``state()`` shapes and dtypes, but
    no weights: :meth:`nn.layers.Sequential.load_state` replaces the placeholders with arrays.
    """
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def is_placeholder(array):
    """True for an array made by an initialiser inside :func:`shapes_only`."""
    return (isinstance(array, np.ndarray) and not array.flags.writeable
            and all(stride == 0 for stride in array.strides))


def _placeholder(shape, dtype):
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def glorot_uniform(rng, shape, fan_in, fan_out, dtype=np.float32):
    """U(-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio, 2010)."""
    if _SHAPES_ONLY.get():
        return _placeholder(shape, dtype)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(rng, rows, cols, gain=1.0, dtype=np.float32):
    """A (rows, cols) matrix with orthonormal columns (rows >= cols) or rows (rows < cols).

    QR of a Gaussian matrix, with the signs of R's diagonal folded into Q so the result is
    uniformly distributed over orthogonal matrices (Saxe et al., 2014; Keras' Orthogonal).
    """
    if _SHAPES_ONLY.get():
        return _placeholder((rows, cols), dtype)
    tall = rows >= cols
    gaussian = rng.standard_normal((rows, cols) if tall else (cols, rows))
    q, r = np.linalg.qr(gaussian)
    q *= np.sign(np.diag(r))
    return (gain * (q if tall else q.T)).astype(dtype)


def zeros(shape, dtype=np.float32):
    """np.zeros(shape), e.g. a bias or a running mean."""
    return _placeholder(shape, dtype) if _SHAPES_ONLY.get() else np.zeros(shape, dtype=dtype)


def ones(shape, dtype=np.float32):
    """np.ones(shape), e.g. a BatchNorm scale or running variance."""
    return _placeholder(shape, dtype) if _SHAPES_ONLY.get() else np.ones(shape, dtype=dtype)


def constant_blocks(values, block, dtype=np.float32):
    """(len(values) * block,): ``block`` copies of values[0], then of values[1], ...

    E.g. the LSTM bias [0, 1, 0, 0] blocks of H: forget-gate bias 1, the others 0.
    """
    if _SHAPES_ONLY.get():
        return _placeholder((len(values) * block,), dtype)
    return np.repeat(np.asarray(values, dtype=dtype), block)
