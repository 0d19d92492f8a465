"""Conv2D -> LeakyReLU/ReLU -> MaxPool2D executed as one step (an optimisation, not a new layer).

:class:`~nn.layers.Sequential` spots this pattern and runs it through :class:`ConvActivationPool`,
which uses the three layers' own parameters and writes the convolution's gradients, so models,
weights files and layer-by-layer inspection are unchanged.  The result equals running the three
layers one after another (tested); what it saves is two full-size intermediate maps and their
passes over memory:

forward   col = im2col(x);  y2d = w2d @ col;  pooled = leaky(maxpool(y2d + b))     (one kernel)
backward  dy2d = scatter of dpooled * leaky' to each window's arg-max, in GEMM layout
          dw2d = dy2d @ col^T,  db = sum dy2d,  dx = col2im(w2d^T @ dy2d)
"""
from typing import NamedTuple

import numpy as np

from nn.kernels import conv as conv_kernels
from nn.kernels import fused as kernels
from nn.layers.activation import LeakyReLU
from nn.layers.conv import Conv2D, conv_geometry, weight_gradient
from nn.layers.pool import MaxPool2D, pool_geometry


def can_fuse(layers):
    """True if ``layers`` (three of them) is a Conv2D, a LeakyReLU/ReLU (slope a >= 0) and a
    MaxPool2D: then max(leaky(y + b)) = leaky(max(y) + b) (see the module docstring)."""
    conv, activation, pool = layers
    return (isinstance(conv, Conv2D) and isinstance(activation, LeakyReLU)
            and activation.slope >= 0 and isinstance(pool, MaxPool2D))


class FusedCache(NamedTuple):
    """What ConvActivationPool.backward needs from the forward pass."""
    col: np.ndarray     # (K, N*P) the input's im2col, K = C_in*k*k, P = H_conv*W_conv
    x_shape: tuple      # (N, C_in, H, W)
    pad_top: int        # the convolution's leading padding
    pad_left: int
    out_h: int          # H_conv, W_conv: the convolution's output size (before pooling)
    out_w: int
    pooled: np.ndarray  # (N, C_out, H_out, W_out) the block's output
    argmax: np.ndarray  # (N, C_out, H_out, W_out) int32, index h*W_conv + w of each maximum


class ConvActivationPool:
    """Conv2D -> LeakyReLU -> MaxPool2D run as one step; the three layers keep their parameters."""

    @staticmethod
    def warm_up(dtype):
        col, slope = np.ones((9, 9), dtype), dtype(0.1)
        pooled, argmax = kernels.bias_leaky_maxpool_forward(col[:1], np.zeros(1, dtype), slope, 1, 3, 3,
                                                            2, 2, 0, 0, 2, 2)
        kernels.bias_leaky_maxpool_backward(pooled, pooled, argmax, slope, 3, 3)
        kernels.bias_leaky_maxpool2x2_forward(np.ones((1, 4), dtype), np.zeros(1, dtype), slope, 1, 2, 2)

    def __init__(self, conv: Conv2D, activation: LeakyReLU, pool: MaxPool2D):
        self.conv, self.activation, self.pool = conv, activation, pool
        self.cache = None

    def forward(self, x, training=False):
        conv, pool = self.conv, self.pool
        w, b = conv.params["weight"], conv.params["bias"]
        n_batch, _, height, width = x.shape
        k = conv.kernel_size
        out_h, out_w, pad_top, pad_left = conv_geometry(height, width, k, k, conv.stride, conv.padding)
        col = conv_kernels.im2col(x, k, k, conv.stride, pad_top, pad_left, out_h, out_w)  # (K, N*P)
        y2d = w.reshape(w.shape[0], -1) @ col                                              # (C_out, N*P)
        pool_h, pool_w, pool_top, pool_left = pool_geometry(out_h, out_w, pool.pool_size,
                                                            pool.stride, pool.padding)
        slope = y2d.dtype.type(self.activation.slope)
        bias = b.astype(y2d.dtype)
        if pool.pool_size == pool.stride == 2 and out_h % 2 == 0 and out_w % 2 == 0:
            pooled, argmax = kernels.bias_leaky_maxpool2x2_forward(y2d, bias, slope, n_batch,
                                                                   out_h, out_w)
        else:
            pooled, argmax = kernels.bias_leaky_maxpool_forward(
                y2d, bias, slope, n_batch, out_h, out_w, pool.pool_size, pool.stride,
                pool_top, pool_left, pool_h, pool_w)
        self.cache = FusedCache(col, x.shape, pad_top, pad_left, out_h, out_w, pooled, argmax)
        return pooled

    def backward(self, dpooled):
        conv = self.conv
        col, x_shape, pad_top, pad_left, out_h, out_w, pooled, argmax = self.cache
        w = conv.params["weight"]
        slope = dpooled.dtype.type(self.activation.slope)
        dy2d, db = kernels.bias_leaky_maxpool_backward(dpooled, pooled, argmax, slope, out_h, out_w)
        w2d = w.reshape(w.shape[0], -1)
        conv.grads["weight"] = weight_gradient(dy2d, col).reshape(w.shape)
        conv.grads["bias"] = db
        if not conv.need_input_grad:
            return None
        n_batch, in_channels, height, width = x_shape
        k = conv.kernel_size
        return conv_kernels.col2im(w2d.T @ dy2d, n_batch, in_channels, height, width, k, k,
                                   conv.stride, pad_top, pad_left, out_h, out_w)
