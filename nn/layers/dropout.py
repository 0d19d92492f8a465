"""Inverted dropout: scale at training time so inference is the identity.

Training:  mask = keep / (1 - rate);  y = x * mask;  dx = dy * mask
Inference: y = x.

``keep`` comes from a counter-based generator run inside a Numba kernel
(:mod:`nn.kernels.dropout`): each forward pass draws one 64-bit key from the layer's
``np.random.Generator``, and entry i is kept when 24 bits of a hash of (key, i) reach
round(rate * 2^24).  The same generator state therefore gives the same masks (a seeded run is
reproducible, and restoring the generator's state resumes it bit for bit), while the mask
itself costs one vectorised pass instead of one NumPy draw per entry.  (Before this, masks were
``rng.random(shape) >= rate``: the random stream - hence the masks of a seeded run - changed.)
"""
from typing import NamedTuple

import numpy as np

from nn.kernels import dropout as kernels
from nn.layers.base import Layer

_BITS = 24


def _draw(rng, x, rate):
    """(y, mask) for ``x`` with a key drawn from ``rng``."""
    key = rng.integers(0, 2 ** 64, dtype=np.uint64)
    threshold = int(round(rate * (1 << _BITS)))
    scale = x.dtype.type(1.0 / (1.0 - rate))
    return kernels.dropout_forward(np.ascontiguousarray(x), np.uint64(key), threshold, scale)


class DropoutCache(NamedTuple):
    """What dropout_backward needs from the forward pass (training only)."""
    mask: np.ndarray        # (x.shape) 0 or 1 / (1 - rate)


def dropout_mask(rng, shape, rate, dtype=np.float32):
    """Each entry 0 with probability ``rate``, else 1 / (1 - rate)."""
    return _draw(rng, np.ones(shape, dtype=dtype), rate)[1]


def dropout_forward(x, mask):
    """y (N, ...) = x * mask, all three of the same shape."""
    return x * mask


def dropout_backward(dy, mask):
    """dx (N, ...) = dy * mask: y is linear in x, with the forward pass's mask."""
    return dy * mask


class Dropout(Layer):
    """Drops each activation with probability ``rate`` during training.

    Each training forward pass draws one key from ``rng`` (a seeded ``np.random.Generator``
    gives reproducible runs) and derives the whole mask from it; ``backward`` reuses the mask
    of the last forward pass.  ``rng_state()`` / ``set_rng_state()`` save and restore the
    generator's state (a dict of plain integers) for a bit-identical resume.
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
        y, mask = _draw(self.rng, x, self.rate)
        self.cache = DropoutCache(mask)
        return y

    def backward(self, dout):
        return dout if self.cache is None else dropout_backward(dout, self.cache.mask)

    def rng_state(self):
        """The state of the generator the masks come from (JSON-serialisable)."""
        return self.rng.bit_generator.state

    def set_rng_state(self, state):
        self.rng.bit_generator.state = state

    @classmethod
    def warm_up(cls, dtype):
        # after a dense layer (N, F) and after a conv block (N, C, H, W): one signature each
        for shape in ((2, 3), (1, 1, 2, 3)):
            _draw(np.random.default_rng(0), np.ones(shape, dtype=dtype), 0.5)

    def config(self):
        return dict(rate=self.rate)
