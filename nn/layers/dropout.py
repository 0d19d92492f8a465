"""Inverted dropout: scale at training time so inference is the identity.

Training:  mask = (u >= rate) / (1 - rate), u ~ U[0, 1);  y = x * mask;  dx = dy * mask
Inference: y = x.
"""
import numpy as np

from nn.layers.base import Layer


def dropout_mask(rng, shape, rate, dtype=np.float32):
    """Each entry 0 with probability ``rate``, else 1 / (1 - rate)."""
    keep = rng.random(shape, dtype=np.float32) >= rate
    return keep.astype(dtype) * dtype(1.0 / (1.0 - rate))


def dropout_forward(x, mask):
    return x * mask


def dropout_backward(dy, mask):
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
        self.cache = dropout_mask(self.rng, x.shape, self.rate, x.dtype.type)
        return dropout_forward(x, self.cache)

    def backward(self, dout):
        return dout if self.cache is None else dropout_backward(dout, self.cache)

    def config(self):
        return dict(rate=self.rate)
