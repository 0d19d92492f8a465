"""Max-pooling kernels: the forward pass records where each maximum came from.

Windows that hang over the edge ('same' padding, e.g. 7x7 -> 4x4 with a 2x2 window) are clipped
to the image, which is what padding with -inf means: a pad value can never be the maximum.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def maxpool_forward(x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """x: (N, C, H, W) -> y: (N, C, out_h, out_w), argmax: same shape, flat index h*W + w."""
    n_batch, channels, height, width = x.shape
    y = np.empty((n_batch, channels, out_h, out_w), dtype=x.dtype)
    argmax = np.empty((n_batch, channels, out_h, out_w), dtype=np.int32)
    for n in prange(n_batch):
        for c in range(channels):
            for oh in range(out_h):
                h0 = max(oh * stride_h - pad_top, 0)
                h1 = min(oh * stride_h - pad_top + pool_h, height)
                for ow in range(out_w):
                    w0 = max(ow * stride_w - pad_left, 0)
                    w1 = min(ow * stride_w - pad_left + pool_w, width)
                    best = x[n, c, h0, w0]
                    best_index = h0 * width + w0
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            value = x[n, c, h, w]
                            if value > best:  # strict: the first maximum wins ties, as in PyTorch
                                best = value
                                best_index = h * width + w
                    y[n, c, oh, ow] = best
                    argmax[n, c, oh, ow] = best_index
    return y, argmax


@njit(parallel=True, cache=True)
def maxpool_backward(dy, argmax, height, width):
    """Route each output gradient to its window's maximum: dx[argmax] += dy."""
    n_batch, channels, out_h, out_w = dy.shape
    dx = np.zeros((n_batch, channels, height * width), dtype=dy.dtype)
    for n in prange(n_batch):
        for c in range(channels):
            for oh in range(out_h):
                for ow in range(out_w):
                    dx[n, c, argmax[n, c, oh, ow]] += dy[n, c, oh, ow]
    return dx.reshape(n_batch, channels, height, width)
