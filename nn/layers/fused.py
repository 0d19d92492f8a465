"""Conv2D -> LeakyReLU/ReLU -> MaxPool2D executed as one step (an optimisation, not a new layer).

:class:`~nn.layers.Sequential` spots this pattern and runs it through :class:`ConvActivationPool`,
which uses the three layers' own parameters and writes the convolution's gradients, so models,
weights files and layer-by-layer inspection are unchanged.  The result equals running the three
layers one after another (tested); what it saves is two full-size intermediate maps and their
passes over memory:

forward   col = im2col(x);  y2d = w2d @ col;  pooled = leaky(maxpool(y2d + b))     (one kernel)
backward  dy2d = scatter of dpooled * leaky' to each window's arg-max, in GEMM layout
          dw2d = dy2d @ col^T,  db = sum dy2d,  dx = col2im(w2d^T @ dy2d)

Two special cases run their own kernels (docs/performance.md, issue 10):
- 3x3 'same' convolutions with >= WINOGRAD_MIN_CHANNELS inputs followed by a 2x2/2 pool use
  Winograd F(2x2, 3x3) (nn.kernels.winograd): each pool window is one Winograd output tile;
- a first block with one input channel (3x3 'same', 2x2/2 pool, even size) is computed
  directly (no im2col or GEMM), and its weight gradient is summed from each window's winner.
"""
from typing import NamedTuple

import numba
import numpy as np

from nn.kernels import conv as conv_kernels
from nn.kernels import fused as kernels
from nn.kernels import winograd
from nn.layers.activation import LeakyReLU
from nn.layers.conv import Conv2D, conv_geometry, weight_gradient
from nn.layers.pool import MaxPool2D, pool_geometry
from nn.threads import blas_threads


# Winograd F(2x2, 3x3) pays for itself only with enough channels to make its 16 products large
# (see docs/performance.md); below that the im2col path is used.
WINOGRAD_MIN_CHANNELS = 16
# ... and with enough output tiles (images x pooled positions): for a few images its transforms
# cost more than they save.  Forward only, 1 thread, one image: conv2 0.22 vs 0.15 ms (im2col),
# conv3 0.50 vs 0.17 ms; the two break even at about 200 (conv2, 4 images of 49 tiles) and 256
# tiles (conv3, 16 images of 16) - measured 2026-11-28, 2-core Xeon VM, quiet.
WINOGRAD_MIN_TILES = 256
# Images per Winograd slice: one thread runs a slice whole (nn.kernels.winograd), so its V and
# M stay in that core's cache.  Block forward / backward at batch 64, ms by images per slice
# (AMD EPYC VM, 2026-12-06, medians of 30, 2 threads):
#   conv2 (32 -> 64, 49 tiles an image): forward 1: 2.87-2.95, 2: 2.80-2.86, 4: 2.73-2.77,
#         8: 2.74-2.85, 16: 3.15-3.26; backward 1: 4.14, 2: 3.97, 4: 3.84, 8: 3.87;
#   conv3 (64 -> 128, 16 tiles): forward 1: 3.61-5.50, 2: 2.55-2.61, 4: 2.46-2.49, 8: 2.79-2.96,
#         16: 2.87-3.20; backward 1: 5.10, 2: 4.81, 4: 4.81, 8: 5.70;
# against 3.4-4.0 (forward) and 6.0-9.1 (backward) for the whole batch at once with every
# step split across the threads.  One thread: 4 images 5.0-5.5 / 7.9-9.0 ms, as good as any.
# (Rerun at 12:55 on a slower moment of the machine, 4 images, 2 threads: conv2 2.91-3.28 /
# 5.25-5.35, conv3 2.92-3.50 / 6.27-6.70 ms.)
WINOGRAD_SLICE_IMAGES = 4
# The backward pass sums dU over at least this many groups of slices, added in group order, so
# one and two threads give the same bits (more threads: one group each).
WINOGRAD_MIN_GROUPS = 2


def winograd_groups(threads):
    """Groups of slices the backward pass sums dU over, on ``threads`` threads."""
    return max(WINOGRAD_MIN_GROUPS, threads)


_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
winograd_filter_grad = winograd.winograd_filter_grad  # dU -> dw = G^T dU G, the adjoint of:


def winograd_filter(w):
    """w (C_out, C_in, 3, 3) -> U (16, C_out, C_in), U[4i + j] = (G w G^T)[i, j]."""
    g = _G.astype(w.dtype)
    u = np.tensordot(np.tensordot(g, w, axes=([1], [2])), g, axes=([3], [1]))  # (4, Co, Ci, 4)
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2)).reshape(16, w.shape[0], w.shape[1])


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
        pooled, argmax = kernels.conv3x3_single_channel_leaky_maxpool2x2(
            np.ones((1, 1, 2, 2), dtype), np.ones((1, 1, 3, 3), dtype), np.zeros(1, dtype), slope)
        kernels.conv3x3_single_channel_leaky_maxpool_backward(pooled, pooled, argmax, slope,
                                                              np.ones((1, 1, 2, 2), dtype))
        x, u = np.ones((1, 1, 3, 3), dtype), np.ones((16, 1, 1), dtype)
        with blas_threads(1):
            for keep_input in (False, True):
                v, pooled, argmax = winograd.winograd_forward(x, u, np.zeros(1, dtype), slope, 1,
                                                              keep_input)
            du, _, _ = winograd.winograd_backward(pooled, pooled, argmax, v, u, slope, 3, 3, 1, 1,
                                                  True)
        winograd.winograd_filter_grad(du)

    def __init__(self, conv: Conv2D, activation: LeakyReLU, pool: MaxPool2D):
        self.conv, self.activation, self.pool = conv, activation, pool
        self.cache = None

    def uses_winograd(self, x_shape):
        """3x3 'same' stride-1 conv with >= WINOGRAD_MIN_CHANNELS inputs, then a 2x2/2 pool
        whose windows are the Winograd output tiles (no pool padding at the top/left)."""
        conv, pool = self.conv, self.pool
        if not (conv.kernel_size == 3 and conv.stride == 1 and conv.padding == "same"
                and pool.pool_size == pool.stride == 2 and x_shape[1] >= WINOGRAD_MIN_CHANNELS):
            return False
        height, width = x_shape[2:]
        out_h, out_w, top, left = pool_geometry(height, width, 2, 2, pool.padding)
        return ((top, left) == (0, 0) and (out_h, out_w) == ((height + 1) // 2, (width + 1) // 2)
                and x_shape[0] * out_h * out_w >= WINOGRAD_MIN_TILES)

    def uses_direct(self, x_shape):
        """One input channel, 3x3 'same' stride 1, then a 2x2/2 pool on an even-sized map."""
        conv, pool = self.conv, self.pool
        return (x_shape[1] == 1 and conv.kernel_size == 3 and conv.stride == 1
                and conv.padding == "same" and pool.pool_size == pool.stride == 2
                and x_shape[2] % 2 == 0 and x_shape[3] % 2 == 0)

    @property
    def need_input_grad(self):
        """The convolution's setting: False for a first block (see Conv2D)."""
        return self.conv.need_input_grad

    def infer(self, x):
        """Prediction only: the Winograd path keeps no V and leaves the forward cache alone."""
        if self.uses_winograd(x.shape):
            return self._forward_winograd(x, keep_input=False)[2]
        return self.forward(x, training=False)

    def forward(self, x, training=False):
        if self.uses_winograd(x.shape):
            v, u, pooled, argmax = self._forward_winograd(x, keep_input=True)
            self.cache = ("winograd", v, u, x.shape, pooled, argmax)
            return pooled
        if self.uses_direct(x.shape):
            return self._forward_direct(x)
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

    def _forward_winograd(self, x, keep_input):
        """Winograd in slices of WINOGRAD_SLICE_IMAGES images, each run whole by one thread
        (nn.kernels.winograd): (V, U, pooled, argmax); V is empty unless ``keep_input``."""
        conv = self.conv
        w, b = conv.params["weight"], conv.params["bias"]
        x = np.ascontiguousarray(x)
        u = np.ascontiguousarray(winograd_filter(w.astype(x.dtype, copy=False)))        # (16, Co, Ci)
        slope = x.dtype.type(self.activation.slope)
        with blas_threads(1):                  # the threads run slices, each product on one
            v, pooled, argmax = winograd.winograd_forward(x, u, b.astype(x.dtype), slope,
                                                          WINOGRAD_SLICE_IMAGES, keep_input)
        return v, u, pooled, argmax

    def _forward_direct(self, x):
        conv = self.conv
        w, b = conv.params["weight"], conv.params["bias"]
        x = np.ascontiguousarray(x)
        slope = x.dtype.type(self.activation.slope)
        pooled, argmax = kernels.conv3x3_single_channel_leaky_maxpool2x2(
            x, w.astype(x.dtype), b.astype(x.dtype), slope)
        # the backward pass builds the (9, N*H*W) patches it needs for dw from x (cheap: K = 9)
        height, width = x.shape[2:]
        self.cache = (None, x, 1, 1, height, width, pooled, argmax)
        return pooled

    def _backward_winograd(self, dpooled, need_input_grad):
        conv = self.conv
        _, v, u, x_shape, pooled, argmax = self.cache
        height, width = x_shape[2:]
        slope = dpooled.dtype.type(self.activation.slope)
        with blas_threads(1):
            du, db, dx = winograd.winograd_backward(
                np.ascontiguousarray(dpooled), pooled, argmax, v, u, slope, height, width,
                WINOGRAD_SLICE_IMAGES, winograd_groups(numba.get_num_threads()), need_input_grad)
        conv.grads["weight"] = winograd_filter_grad(du)
        conv.grads["bias"] = db
        return dx if need_input_grad else None

    def backward(self, dpooled, need_input_grad=None):
        """dpooled (N, C_out, H_out, W_out) -> dx (N, C_in, H, W), or None when the input
        gradient is skipped (``need_input_grad``: for this call; None: the conv's setting)."""
        if need_input_grad is None:
            need_input_grad = self.conv.need_input_grad
        if isinstance(self.cache[0], str):   # ("winograd", ...)
            return self._backward_winograd(dpooled, need_input_grad)
        conv = self.conv
        col, x_shape, pad_top, pad_left, out_h, out_w, pooled, argmax = self.cache
        if col is None:                                   # the direct first-block forward
            x = x_shape
            x_shape = x.shape
            if not need_input_grad:                       # (the first layer: only dw and db)
                slope = dpooled.dtype.type(self.activation.slope)
                conv.grads["weight"], conv.grads["bias"] = \
                    kernels.conv3x3_single_channel_leaky_maxpool_backward(
                        np.ascontiguousarray(dpooled), pooled, argmax, slope, x)
                return None
            col = conv_kernels.im2col(x, 3, 3, 1, 1, 1, out_h, out_w)
        w = conv.params["weight"]
        slope = dpooled.dtype.type(self.activation.slope)
        dy2d, db = kernels.bias_leaky_maxpool_backward(dpooled, pooled, argmax, slope, out_h, out_w)
        w2d = w.reshape(w.shape[0], -1)
        conv.grads["weight"] = weight_gradient(dy2d, col).reshape(w.shape)
        conv.grads["bias"] = db
        if not need_input_grad:
            return None
        n_batch, in_channels, height, width = x_shape
        k = conv.kernel_size
        return conv_kernels.col2im(w2d.T @ dy2d, n_batch, in_channels, height, width, k, k,
                                   conv.stride, pad_top, pad_left, out_h, out_w)
