"""Convolution kernels: im2col / col2im and the layout shuffles around one big matrix product.

A convolution is turned into a single GEMM (run by BLAS, outside these kernels):

    col[c*kh*kw + i*kw + j, n*P + p] = x_padded[n, c, oh*s + i, ow*s + j]     p = oh*W_out + ow
    y2d = w.reshape(C_out, C_in*kh*kw) @ col                                   (C_out, N*P)

Numba does the parts BLAS cannot: gathering the patches (with the zero padding done on the fly,
never materialising a padded copy), scattering gradients back, and moving between the GEMM's
(C_out, N*P) layout and NCHW.  Every loop runs in parallel over the batch, so no two threads
ever write the same element and results do not depend on the thread count.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _valid_range(pad, tap, stride, size, out_size):
    """Output indices o in [lo, hi) whose tap o*stride - pad + tap falls inside [0, size)."""
    lo = max(0, (pad - tap + stride - 1) // stride)
    hi = min(out_size, (size - 1 + pad - tap) // stride + 1)
    return lo, hi


@njit(parallel=True, cache=True)
def im2col(x, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w):
    """Gather every receptive field of ``x`` into the columns of a matrix.

    x: (N, C, H, W) -> col: (C*kernel_h*kernel_w, N*out_h*out_w); out-of-image taps are 0.
    The in-image range of each tap is worked out once per row, so the inner loop is a plain
    copy (a slice copy for stride 1) with no bounds tests; the padding stays as np.zeros left it.
    """
    n_batch, channels, height, width = x.shape
    positions = out_h * out_w
    col = np.zeros((channels * kernel_h * kernel_w, n_batch * positions), dtype=x.dtype)
    for n in prange(n_batch):
        base = n * positions
        for c in range(channels):
            plane = x[n, c]
            for i in range(kernel_h):
                oh_lo, oh_hi = _valid_range(pad_top, i, stride, height, out_h)
                for j in range(kernel_w):
                    row = col[(c * kernel_h + i) * kernel_w + j]
                    ow_lo, ow_hi = _valid_range(pad_left, j, stride, width, out_w)
                    shift = j - pad_left
                    for oh in range(oh_lo, oh_hi):
                        source = plane[oh * stride - pad_top + i]
                        start = base + oh * out_w
                        if stride == 1:
                            row[start + ow_lo:start + ow_hi] = source[ow_lo + shift:ow_hi + shift]
                        else:
                            for ow in range(ow_lo, ow_hi):
                                row[start + ow] = source[ow * stride + shift]
    return col


@njit(parallel=True, cache=True)
def col2im(dcol, n_batch, channels, height, width, kernel_h, kernel_w, stride, pad_top, pad_left,
           out_h, out_w):
    """Adjoint of :func:`im2col`: add each column entry back to the input pixel it came from.

    dcol: (C*kernel_h*kernel_w, N*out_h*out_w) -> dx: (N, C, H, W)
    Each (image, channel) plane is accumulated in a zeroed buffer the size of the *padded*
    input, where every tap lands in range and the inner loop needs no bounds test; the padding
    is then cropped off.  (Measured 1.5-2.5x faster than adding row slices into the unpadded
    plane, whose many 7- or 14-long slices were mostly overhead.)
    """
    positions = out_h * out_w
    padded_h = (out_h - 1) * stride + kernel_h
    padded_w = (out_w - 1) * stride + kernel_w
    dx = np.empty((n_batch, channels, height, width), dtype=dcol.dtype)
    for n in prange(n_batch):
        padded = np.empty((padded_h, padded_w), dtype=dcol.dtype)
        base = n * positions
        for c in range(channels):
            padded[:, :] = 0
            for i in range(kernel_h):
                for j in range(kernel_w):
                    row = dcol[(c * kernel_h + i) * kernel_w + j, base:base + positions]
                    for oh in range(out_h):
                        target = padded[oh * stride + i]
                        source = oh * out_w
                        for ow in range(out_w):
                            target[ow * stride + j] += row[source + ow]
            for h in range(height):
                hp = h + pad_top   # row in the padded plane; 'valid' may leave the last rows
                for w in range(width):  # and columns untouched by any window: gradient 0
                    wp = w + pad_left
                    dx[n, c, h, w] = padded[hp, wp] if hp < padded_h and wp < padded_w else 0
    return dx


@njit(parallel=True, cache=True)
def gemm_to_nchw(y2d, bias, n_batch):
    """(C_out, N*P) GEMM output plus bias -> (N, C_out, P), i.e. NCHW with H*W flattened."""
    out_channels, total = y2d.shape
    positions = total // n_batch
    y = np.empty((n_batch, out_channels, positions), dtype=y2d.dtype)
    for n in prange(n_batch):
        for c in range(out_channels):
            b = bias[c]
            for p in range(positions):
                y[n, c, p] = y2d[c, n * positions + p] + b
    return y


@njit(parallel=True, cache=True)
def nchw_to_gemm(dy):
    """(N, C_out, P) -> (C_out, N*P): the upstream gradient in the GEMM's layout."""
    n_batch, out_channels, positions = dy.shape
    dy2d = np.empty((out_channels, n_batch * positions), dtype=dy.dtype)
    for n in prange(n_batch):
        for c in range(out_channels):
            for p in range(positions):
                dy2d[c, n * positions + p] = dy[n, c, p]
    return dy2d
