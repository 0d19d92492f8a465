"""Inverted dropout: scale at training time so inference is the identity.

Training:  mask = (u >= rate) / (1 - rate), u ~ U[0, 1);  y = x * mask;  dx = dy * mask
Inference: y = x.
"""
from typing import NamedTuple

import numpy as np

from nn.layers.base import Layer


class DropoutCache(NamedTuple):
    """What dropout_backward needs from the forward pass (training only)."""
    mask: np.ndarray        # (x.shape) 0 or 1 / (1 - rate)


def dropout_mask(rng, shape, rate, dtype=np.float32):
    """mask (shape): each entry 0 with probability ``rate``, else 1 / (1 - rate), so that
    E[mask] = 1 and inference needs no scaling.  u ~ U[0, 1) drawn as float32 from ``rng``."""
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * dtype(1.0 / (1.0 - rate))


def dropout_forward(x, mask):
    """y (N, ...) = x * mask, all three of the same shape."""
    return x * mask


def dropout_backward(dy, mask):
    """dx (N, ...) = dy * mask: y is linear in x, with the forward pass's mask."""
    return dy * mask


class Dropout(Layer):
    """Drops each activation with probability ``rate`` during training.

    The mask is drawn from ``rng`` (a seeded ``np.random.Generator`` gives reproducible runs);
    ``backward`` reuses the mask of the last forward pass.
    """

    uses_rng = True

    def __init__(self, rate, rng=None):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), not {rate}")
        self.rate = rate
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            self.cache = None
            return x
        self.cache = DropoutCache(dropout_mask(self.rng, x.shape, self.rate, x.dtype.type))
        return dropout_forward(x, self.cache.mask)

    def backward(self, dout):
        return dout if self.cache is None else dropout_backward(dout, self.cache.mask)

    def config(self):
        return dict(rate=self.rate)
