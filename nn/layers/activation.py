"""Elementwise activations.

LeakyReLU:  y = x if x > 0 else a x        dx = dy if x > 0 else a dy
ReLU is LeakyReLU with a = 0.
"""
from typing import NamedTuple

import numpy as np

from nn.layers.base import Layer


class LeakyReLUCache(NamedTuple):
    """What leaky_relu_backward needs from the forward pass."""
    positive: np.ndarray    # (x.shape) bool, x > 0


def leaky_relu_forward(x, slope):
    """x (N, ...) -> (y (N, ...), LeakyReLUCache):  y = x where x > 0, else slope x."""
    positive = x > 0
    return np.where(positive, x, x * x.dtype.type(slope)), LeakyReLUCache(positive)


def leaky_relu_backward(dy, positive, slope):
    """dy (N, ...) -> dx (N, ...) = dy where x > 0, else slope dy (the left slope at x = 0);
    ``positive`` (N, ...) is x > 0."""
    return np.where(positive, dy, dy * dy.dtype.type(slope))


class LeakyReLU(Layer):
    def __init__(self, slope=0.1):
        super().__init__()
        self.slope = slope

    def forward(self, x, training=False):
        y, self.cache = leaky_relu_forward(x, self.slope)
        return y

    def backward(self, dout):
        return leaky_relu_backward(dout, self.cache.positive, self.slope)

    def flops(self, input_shape):
        return int(np.prod(input_shape))

    def config(self):
        return dict(slope=self.slope)


class ReLU(LeakyReLU):
    def __init__(self):
        super().__init__(slope=0.0)

    def config(self):
        return {}
