"""Max pooling; the gradient flows only to each window's maximum.

Forward:  y[n, c, oh, ow] = max over the window of x[n, c, h, w]; argmax remembers where.
Backward: dx[n, c, argmax[n, c, oh, ow]] += dy[n, c, oh, ow], every other dx is 0.
'same' padding gives H_out = ceil(H / stride) (7x7 -> 4x4 with a 2x2 window), as in Keras.
"""
from typing import NamedTuple

import numpy as np

from nn.kernels import pool as kernels
from nn.layers.base import Layer
from nn.layers.conv import conv_geometry


class PoolCache(NamedTuple):
    """What maxpool2d_backward needs from the forward pass."""
    argmax: np.ndarray  # (N, C, H_out, W_out) int32, each window's maximum as h * W + w
    height: int         # H of the input
    width: int          # W of the input


def pool_geometry(height, width, pool_size, stride, padding):
    """(out_h, out_w, pad_top, pad_left): a pooling window has the geometry of a conv kernel,
    'valid' flooring, H_out = floor((H - k) / s) + 1, and 'same' ceiling, H_out = ceil(H / s)
    (TensorFlow's padding rule, :func:`nn.layers.conv.conv_geometry`)."""
    return conv_geometry(height, width, pool_size, pool_size, stride, padding)


def maxpool2d_forward(x, pool_size=2, stride=None, padding="same"):
    """Max pooling: x (N, C, H, W) -> (y (N, C, H_out, W_out), PoolCache).

    y[n, c, i, j] = max over the window (i s - pad_top + [0, k), j s - pad_left + [0, k)) of x,
    the window clipped to the image (-inf padding); the first maximum wins ties and a NaN in
    the window wins over numbers, as in PyTorch.
    """
    stride = stride or pool_size
    height, width = x.shape[2:]
    out_h, out_w, pad_top, pad_left = pool_geometry(height, width, pool_size, stride, padding)
    y, argmax = kernels.maxpool_forward(x, pool_size, pool_size, stride, stride, pad_top,
                                        pad_left, out_h, out_w)
    return y, PoolCache(argmax, height, width)


def maxpool2d_backward(dy, cache):
    """dy (N, C, H_out, W_out) -> dx (N, C, H, W): dx[n, c, argmax] += dy[n, c, i, j], 0 elsewhere."""
    argmax, height, width = cache
    return kernels.maxpool_backward(dy, argmax, height, width)


class MaxPool2D(Layer):
    """Max pooling over pool_size x pool_size windows (stride defaults to pool_size)."""

    def __init__(self, pool_size=2, stride=None, padding="same"):
        super().__init__()
        self.pool_size, self.stride, self.padding = pool_size, stride or pool_size, padding
        pool_geometry(pool_size, pool_size, pool_size, self.stride, padding)  # validate

    def forward(self, x, training=False):
        y, self.cache = maxpool2d_forward(x, self.pool_size, self.stride, self.padding)
        return y

    def backward(self, dout):
        return maxpool2d_backward(dout, self.cache)

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        out_h, out_w, _, _ = pool_geometry(height, width, self.pool_size, self.stride, self.padding)
        return (channels, out_h, out_w)

    def flops(self, input_shape):
        return int(np.prod(self.output_shape(input_shape))) * (self.pool_size ** 2 - 1)  # comparisons

    @classmethod
    def warm_up(cls, dtype):
        x = np.ones((1, 1, 3, 3), dtype=dtype)
        pooled, argmax = kernels.maxpool_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
        kernels.maxpool_backward(pooled, argmax, 3, 3)

    def config(self):
        return dict(pool_size=self.pool_size, stride=self.stride, padding=self.padding)
