"""Max-pooling kernels: the forward pass records where each maximum came from.

Windows that hang over the edge ('same' padding, e.g. 7x7 -> 4x4 with a 2x2 window) are clipped
to the image, which is what padding with -inf means: a pad value can never be the maximum.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _beats(value, best):
    """True if ``value`` takes over as its window's maximum: strictly greater (the first maximum
    wins ties), or NaN (a NaN anywhere in the window is the result, at the last NaN's index),
    both as in PyTorch.  A bare '>' would drop every NaN but a window's first.

    The kernels scan with a bare '>' and a running sum, and rescan with this comparison only
    when the sum is NaN (a NaN in the window, or inf - inf): checking every value for NaN in
    the scan itself made the 2x2 fused kernel 5x slower (measured: 0.9 -> 4.5 ms for conv1).
    """
    return value > best or value != value


@njit(cache=True, inline="always")
def _window_max(plane, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """(maximum, flat index h*W + w) of output (oh, ow)'s window on ``plane`` (H, W), the window
    clipped to the plane.  Ties and NaN as PyTorch (:func:`_beats`)."""
    height, width = plane.shape
    h0 = max(oh * stride_h - pad_top, 0)
    h1 = min(oh * stride_h - pad_top + pool_h, height)
    w0 = max(ow * stride_w - pad_left, 0)
    w1 = min(ow * stride_w - pad_left + pool_w, width)
    best = plane[h0, w0]
    best_index = h0 * width + w0
    total = best - best
    for h in range(h0, h1):
        for w in range(w0, w1):
            total += plane[h, w]
            if plane[h, w] > best:
                best = plane[h, w]
                best_index = h * width + w
    if total != total:                      # a NaN somewhere (or inf - inf): see _beats
        for h in range(h0, h1):
            for w in range(w0, w1):
                if _beats(plane[h, w], best):
                    best = plane[h, w]
                    best_index = h * width + w
    return best, best_index


@njit(parallel=True, cache=True)
def maxpool_forward(x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    """x: (N, C, H, W) -> y: (N, C, out_h, out_w), argmax: same shape, flat index h*W + w."""
    n_batch, channels, height, width = x.shape
    y = np.empty((n_batch, channels, out_h, out_w), dtype=x.dtype)
    argmax = np.empty((n_batch, channels, out_h, out_w), dtype=np.int32)
    for n in prange(n_batch):
        for c in range(channels):
            plane = x[n, c]
            for oh in range(out_h):
                for ow in range(out_w):
                    best, best_index = _window_max(plane, oh, ow, pool_h, pool_w, stride_h,
                                                  stride_w, pad_top, pad_left)
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
