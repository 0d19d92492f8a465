"""2-D convolution as im2col followed by one matrix product.

Shapes: x (N, C_in, H, W), w (C_out, C_in, k_h, k_w), b (C_out,), y (N, C_out, H_out, W_out);
K = C_in*k_h*k_w and P = H_out*W_out.

Forward:   col = im2col(x)                        (K, N*P)
           y   = w2d @ col + b                    w2d = w.reshape(C_out, K)
Backward:  dy2d = dy in (C_out, N*P) layout
           dw2d = dy2d @ col^T                    (C_out, K)
           db   = sum of dy over n, h, w          (C_out,)
           dcol = w2d^T @ dy2d                    (K, N*P)
           dx   = col2im(dcol)                    (N, C_in, H, W): the adjoint of the gather
"""
import math
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, zeros
from nn.kernels import conv as kernels
from nn.layers.base import Layer


class ConvCache(NamedTuple):
    """What conv2d_backward needs from the forward pass."""
    col: np.ndarray     # (K, N*P) the input's im2col (padding included), K = C_in*k_h*k_w
    w: np.ndarray       # (C_out, C_in, k_h, k_w) the kernel
    x_shape: tuple      # (N, C_in, H, W)
    stride: int
    pad_top: int        # leading padding, rows
    pad_left: int       # leading padding, columns
    out_h: int          # H_out
    out_w: int          # W_out


def conv_geometry(height, width, kernel_h, kernel_w, stride, padding):
    """Output size and leading padding for 'valid' or 'same' padding.

    'valid': H_out = floor((H - k) / s) + 1, no padding.
    'same' (TensorFlow's rule, also for stride > 1): H_out = ceil(H / s),
    total padding max((H_out - 1) s + k - H, 0), of which floor(total / 2) goes on top/left.
    """
    if padding == "valid":
        out_h = (height - kernel_h) // stride + 1
        out_w = (width - kernel_w) // stride + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"input {height}x{width} is smaller than the {kernel_h}x{kernel_w} kernel")
        return out_h, out_w, 0, 0
    if padding == "same":
        out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
        pad_h = max((out_h - 1) * stride + kernel_h - height, 0)
        pad_w = max((out_w - 1) * stride + kernel_w - width, 0)
        return out_h, out_w, pad_h // 2, pad_w // 2
    raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")


def weight_gradient(dy2d, col):
    """dw2d = dy2d @ col^T, (C_out, N*P) x (K, N*P) -> (C_out, K).

    The product has a long inner dimension (N*P) and a small output, which BLAS splits between
    threads better with the larger of C_out and K as the output's rows: for conv2 and conv3
    computing (col @ dy2d^T)^T was 1.3x faster on 2 threads (measured), for conv1 (K = 9) not.
    """
    if col.shape[0] > dy2d.shape[0]:
        return (col @ dy2d.T).T
    return dy2d @ col.T


def conv2d_forward(x, w, b, stride=1, padding="same"):
    """2-D cross-correlation plus bias, as im2col and one matrix product.

    Parameters
    ----------
    x : (N, C_in, H, W)
    w : (C_out, C_in, k_h, k_w)
    b : (C_out,)
    stride : int
    padding : {'same', 'valid'}  (see :func:`conv_geometry`)

    Returns
    -------
    y : (N, C_out, H_out, W_out)
        y[n, o, i, j] = b[o] + sum_{c, u, v} w[o, c, u, v] x_pad[n, c, i s + u, j s + v]
    cache : ConvCache
    """
    n_batch, _, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = w.shape
    out_h, out_w, pad_top, pad_left = conv_geometry(height, width, kernel_h, kernel_w, stride, padding)
    col = kernels.im2col(x, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w)  # (K, N*P)
    w2d = w.reshape(out_channels, -1)                                                     # (C_out, K)
    y2d = w2d @ col                                                                       # (C_out, N*P)
    y = kernels.gemm_to_nchw(y2d, b, n_batch).reshape(n_batch, out_channels, out_h, out_w)
    return y, ConvCache(col, w, x.shape, stride, pad_top, pad_left, out_h, out_w)


def conv2d_backward(dy, cache, need_input_grad=True):
    """Gradients of the forward call that produced ``cache``.

    dy (N, C_out, H_out, W_out) -> (dx (N, C_in, H, W) or None, dw (C_out, C_in, k_h, k_w),
    db (C_out,)), with dy2d = dy as (C_out, N*P):
        dw = dy2d col^T,   db = sum_{n,i,j} dy,   dx = col2im(w2d^T dy2d)
    ``need_input_grad=False`` skips dx (a first layer's input is the image).
    """
    col, w, x_shape, stride, pad_top, pad_left, out_h, out_w = cache
    n_batch, in_channels, height, width = x_shape
    out_channels, _, kernel_h, kernel_w = w.shape
    dy2d = kernels.nchw_to_gemm(np.ascontiguousarray(dy).reshape(n_batch, out_channels, -1))
    dw = weight_gradient(dy2d, col).reshape(w.shape)   # dL/dw = dy2d col^T
    db = dy2d.sum(axis=1)                  # dL/db = sum over batch and positions
    dx = None
    if need_input_grad:
        dcol = w.reshape(out_channels, -1).T @ dy2d  # (K, N*P)
        dx = kernels.col2im(dcol, n_batch, in_channels, height, width, kernel_h, kernel_w,
                            stride, pad_top, pad_left, out_h, out_w)
    return dx, dw, db


class Conv2D(Layer):
    """2-D convolution with bias; Glorot-uniform kernel and zero bias (Keras' defaults).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
        Square k x k kernels.
    stride : int
    padding : {'same', 'valid'}
        'same' keeps H_out = ceil(H / stride), padding as TensorFlow does.
    need_input_grad : bool
        False for a first layer, whose input gradient nobody uses: backward then skips the
        col2im that computes it and returns None.  ``backward(dout, need_input_grad=True)``
        computes it for one call (a saliency map).
    """

    uses_rng = True

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding="same",
                 need_input_grad=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.need_input_grad = need_input_grad
        conv_geometry(kernel_size, kernel_size, kernel_size, kernel_size, stride, padding)  # validate
        receptive = kernel_size * kernel_size
        self.params["weight"] = glorot_uniform(
            rng, (out_channels, in_channels, kernel_size, kernel_size),
            fan_in=in_channels * receptive, fan_out=out_channels * receptive, dtype=dtype)
        self.params["bias"] = zeros(out_channels, dtype)

    def forward(self, x, training=False):
        y, self.cache = conv2d_forward(x, self.params["weight"], self.params["bias"],
                                       self.stride, self.padding)
        return y

    def backward(self, dout, need_input_grad=None):
        """dout (N, C_out, H_out, W_out) -> dx (N, C_in, H, W), or None when the input gradient
        is skipped (``need_input_grad``: for this call; None: the layer's own setting)."""
        if need_input_grad is None:
            need_input_grad = self.need_input_grad
        dx, self.grads["weight"], self.grads["bias"] = conv2d_backward(
            dout, self.cache, need_input_grad)
        return dx

    def output_shape(self, input_shape):
        _, height, width = input_shape
        out_h, out_w, _, _ = conv_geometry(height, width, self.kernel_size, self.kernel_size,
                                           self.stride, self.padding)
        return (self.out_channels, out_h, out_w)

    def flops(self, input_shape):
        in_channels = input_shape[0]
        outputs = int(np.prod(self.output_shape(input_shape)))
        return outputs * (2 * in_channels * self.kernel_size ** 2 + 1)   # products + bias

    @classmethod
    def warm_up(cls, dtype):
        x = np.ones((1, 1, 3, 3), dtype=dtype)
        col = kernels.im2col(x, 3, 3, 1, 1, 1, 3, 3)
        kernels.col2im(col, 1, 1, 3, 3, 3, 3, 1, 1, 1, 3, 3)
        y = kernels.gemm_to_nchw(col[:1], np.zeros(1, dtype), 1)
        kernels.nchw_to_gemm(y)

    def config(self):
        return dict(in_channels=self.in_channels, out_channels=self.out_channels,
                    kernel_size=self.kernel_size, stride=self.stride, padding=self.padding,
                    need_input_grad=self.need_input_grad)
