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

from nn.kernels import blas
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
# Images per Winograd slice (see ConvActivationPool._forward_winograd), at least one.  Small slices
# keep a slice's V and M in the core's own cache, but every slice starts each parallel kernel
# anew, which costs more than the cache saves when two threads share a small slice.  Block
# forward + backward (ms by images per slice; AMD EPYC VM, 2026-12-06, interleaved):
#   1 thread:  conv2 (49 tiles an image), batch 64: 64: 20.3, 10: 15.9, 5: 14.8, 4: 15.2, 2: 16.2;
#              conv3 (16 tiles), batch 256: 16: 74, 4: 66, 2: 71, 1: 83;
#   2 threads: conv2, batch 256: 64: 48.8, 32: 43.5, 16: 40.7, 5: 51.4;
#              conv3, batch 256: 196: 41.6, 32: 40.5, 16: 42.2, 4: 60.0.
# Whole training steps on 2 threads agree at batch 256 (~800-tile slices 1.07 - 1.57x slices of
# 64 images) but not at batch 64, where one slice stays ahead (0.76 - 1.11x; docs/performance.md).
# So: one thread, at most 4 images and about 256 tiles; more threads, a batch of up to 64 images
# in one slice, a larger one in slices of about 800 tiles.
WINOGRAD_CHUNK_IMAGES = 4        # one thread
WINOGRAD_CHUNK_TILES = 256       # one thread
WINOGRAD_ONE_SLICE_BATCH = 64    # more threads
WINOGRAD_CHUNK_TILES_THREADS = 800


def winograd_chunk(tiles_per_image, threads, n_batch):
    """Images per Winograd slice of a batch of ``n_batch`` maps of ``tiles_per_image`` tiles
    on ``threads`` threads."""
    if threads == 1:
        return max(1, min(WINOGRAD_CHUNK_IMAGES, WINOGRAD_CHUNK_TILES // tiles_per_image))
    if n_batch <= WINOGRAD_ONE_SLICE_BATCH:
        return n_batch
    return max(1, WINOGRAD_CHUNK_TILES_THREADS // tiles_per_image)


_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
winograd_filter_grad = winograd.winograd_filter_grad  # dU -> dw = G^T dU G, the adjoint of:


def winograd_filter(w):
    """w (C_out, C_in, 3, 3) -> U (16, C_out, C_in), U[4i + j] = (G w G^T)[i, j]."""
    g = _G.astype(w.dtype)
    u = np.tensordot(np.tensordot(g, w, axes=([1], [2])), g, axes=([3], [1]))  # (4, Co, Ci, 4)
    return np.ascontiguousarray(u.transpose(0, 3, 1, 2)).reshape(16, w.shape[0], w.shape[1])


def stacked_product(a, b, a_transposed=False, b_transposed=False):
    """op(a[s]) @ op(b[s]) for each of a stack of products (Winograd's 16), like np.matmul.

    Each product runs whole on one thread, the threads sharing out the stack, instead of
    np.matmul's splitting of every product between threads.  2 threads, batch 64, medians of
    60, two runs (ms, np.matmul -> this): conv2 forward 1.34 - 1.50 -> 1.22 - 1.28, dU
    1.89 - 2.04 -> 1.55 - 1.61, dV 1.35 - 1.46 -> 1.40 - 1.51 (no gain); conv3 forward
    1.68 - 1.75 -> 1.27 - 1.42, dU 1.83 - 1.92 -> 1.54 - 1.55, dV 1.57 -> 1.31 - 1.39.  Same
    products, same single-thread BLAS kernels per element, so the same results.
    """
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    rows = a.shape[2] if a_transposed else a.shape[1]
    columns = b.shape[1] if b_transposed else b.shape[2]
    out = np.empty((a.shape[0], rows, columns), dtype=np.result_type(a, b))
    with blas_threads(1):
        blas.stacked_gemm(a, b, out, a_transposed, b_transposed)
    return out


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
        x = np.ones((1, 1, 3, 3), dtype)
        v = winograd.winograd_input(x, 2, 2)
        pooled, argmax = winograd.winograd_output_pool(v, np.zeros(1, dtype), slope, 1, 3, 3, 2, 2)
        dm, _ = winograd.winograd_pool_backward(pooled, pooled, argmax, slope)
        winograd.winograd_input_backward(dm, 1, 3, 3, 2, 2)
        winograd.winograd_filter_grad(np.ones((16, 1, 1), dtype))
        for a_transposed, b_transposed in ((False, False), (False, True), (True, False)):
            stacked_product(np.ones((16, 1, 1), dtype), np.ones((16, 1, 1), dtype),
                            a_transposed, b_transposed)

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
        return self.forward(x, training=False)

    def forward(self, x, training=False):
        if self.uses_winograd(x.shape):
            return self._forward_winograd(x)
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

    def _forward_winograd(self, x):
        """Winograd in slices of a few images (:func:`winograd_chunk`), so the (16, C, tiles)
        arrays of one slice stay in cache while the transforms and products pass over them (at
        batch 64, conv2's M is 12.8 MB in one slice)."""
        conv = self.conv
        w, b = conv.params["weight"], conv.params["bias"]
        n_batch, _, height, width = x.shape
        tiles_h, tiles_w = (height + 1) // 2, (width + 1) // 2
        x = np.ascontiguousarray(x)
        u = np.ascontiguousarray(winograd_filter(w.astype(x.dtype, copy=False)))        # (16, Co, Ci)
        bias = b.astype(x.dtype)
        slope = x.dtype.type(self.activation.slope)
        vs, pooled, argmax = [], [], []
        chunk = winograd_chunk(tiles_h * tiles_w, numba.get_num_threads(), n_batch)      # images
        chunk = -(-n_batch // -(-n_batch // chunk))      # the same number of slices, evened out
        for start in range(0, n_batch, chunk):
            part = x[start:start + chunk]
            v = winograd.winograd_input(part, tiles_h, tiles_w)                 # (16, Ci, T)
            m = stacked_product(u, v)                                           # (16, Co, T)
            p, a = winograd.winograd_output_pool(m, bias, slope, len(part), height, width,
                                                 tiles_h, tiles_w)
            vs.append(v)
            pooled.append(p)
            argmax.append(a)
        pooled = pooled[0] if len(pooled) == 1 else np.concatenate(pooled)
        self.cache = ("winograd", vs, u, x.shape, pooled, argmax)
        return pooled

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
        _, vs, u, x_shape, pooled, argmax = self.cache
        n_batch, _, height, width = x_shape
        slope = dpooled.dtype.type(self.activation.slope)
        dpooled = np.ascontiguousarray(dpooled)
        du, db, dx, start = 0, 0, [], 0
        for v, a in zip(vs, argmax):                 # the slices of the forward pass
            part = slice(start, start + len(a))
            start += len(a)
            dm, db_part = winograd.winograd_pool_backward(dpooled[part], pooled[part], a, slope)
            du = du + stacked_product(dm, v, b_transposed=True)                 # (16, Co, Ci)
            db = db + db_part
            if need_input_grad:
                dv = stacked_product(u, dm, a_transposed=True)                  # (16, Ci, T)
                dx.append(winograd.winograd_input_backward(dv, len(a), height, width,
                                                           *pooled.shape[2:]))
        conv.grads["weight"] = winograd_filter_grad(du)
        conv.grads["bias"] = db
        if not need_input_grad:
            return None
        return dx[0] if len(dx) == 1 else np.concatenate(dx)

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
