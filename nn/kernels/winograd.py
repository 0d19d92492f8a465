"""Winograd F(2x2, 3x3) for a 3x3 'same' convolution (stride 1) followed by a 2x2 max-pool.

Each 2x2 block of the convolution's output (a "tile") is computed from the 4x4 input patch
around it (padding 1 on every side) as

    Y = A^T [ (G w G^T) . (B^T d B) ] A          16 products per channel pair instead of 36

with the matrices of Lavin & Gray (2016):

    B^T = [[1, 0,-1, 0], [0, 1, 1, 0], [0,-1, 1, 0], [0, 1, 0,-1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2,-1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1,-1,-1]]

Summed over input channels, the element-wise products become 16 matrix products, one per
position k = 4i + j of the 4x4 transformed tile:  M[k] = U[k] @ V[k], with U (16, C_out, C_in)
the transformed filters and V (16, C_in, T) the transformed input patches, T = N * tiles.

A 2x2 pool with stride 2 and no padding covers exactly one output tile, so the output
transform also adds the bias, pools and applies LeakyReLU (as the fused block does: leaky is
monotonic, so the max of the activations is the activation of the max) and writes only the
pooled map.  An odd-sized map (7x7) gets a last row/column of tiles whose second row/column
lies outside the map; those entries are left out of the max, as 'same' pooling does.

Backward, the gradient of the same algebra: the pool's gradient goes to the winning entry of
each tile, dM[k] = (A dY A^T)[k], then dU[k] = dM[k] @ V[k]^T (-> dw = G^T dU G) and
dV[k] = U[k]^T @ dM[k] (-> dx: B dV B^T added back onto the overlapping 4x4 patches).
Only adds and subtracts happen inside these kernels (the 1/2 of G is applied to the small
filter array in NumPy), so float32 stays float32 throughout.

How the work is cut (:func:`winograd_forward`, :func:`winograd_backward`): in slices of a few
images, each slice run whole by one thread - input transform, its 16 products (one BLAS
thread each) and output transform - so a slice's V and M (conv2, 4 images: 1.2 MB) stay in
that core's cache between the steps, instead of a whole batch's (conv2 at batch 64: V 6.4 MB,
M 12.8 MB) going out to memory and back at every step.  Backward runs the slices in a fixed
number of groups, each summing its slices' dU into its own partial, and the partials are
added in group order: the same bits whichever thread runs which group.  The transforms of one
slice are the inline helpers below; ``nn.kernels.reference`` has each as a whole-batch NumPy
twin (``winograd_input``, ``winograd_output_pool``, ``winograd_pool_backward``,
``winograd_input_backward``).
"""
import numpy as np
from numba import njit, prange

from nn.kernels import blas


# ----------------------------------------------------------------------------- one slice's steps
@njit(cache=True, inline="always")
def _input_transform(x, n0, n1, tiles_h, tiles_w, v, first, padded, rows):
    """V of images n0 .. n1-1: v[:, c, first + (n - n0) * tiles + ty * tiles_w + tx] = B^T d B
    of patch (ty, tx), which covers input rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2.

    ``padded`` (2 tiles_h + 2, 2 tiles_w + 2) is zero on its border (the 'same' padding and,
    for odd sizes, the missing last row/column); ``rows`` (4, 2 tiles_w + 2) is scratch.  The
    row combinations B^T d are formed once per row of tiles, for the whole width.
    """
    channels, height, width = x.shape[1], x.shape[2], x.shape[3]
    tiles, padded_w = tiles_h * tiles_w, 2 * tiles_w + 2
    for c in range(channels):
        for n in range(n0, n1):
            padded[1:height + 1, 1:width + 1] = x[n, c]
            for ty in range(tiles_h):
                p0, p1 = padded[2 * ty], padded[2 * ty + 1]
                p2, p3 = padded[2 * ty + 2], padded[2 * ty + 3]
                r0, r1, r2, r3 = rows[0], rows[1], rows[2], rows[3]
                for w in range(padded_w):                   # B^T patch, all columns at once
                    r0[w] = p0[w] - p2[w]
                    r1[w] = p1[w] + p2[w]
                    r2[w] = p2[w] - p1[w]
                    r3[w] = p1[w] - p3[w]
                base = first + (n - n0) * tiles + ty * tiles_w
                for i in range(4):                          # (B^T patch) B, tile by tile
                    r = rows[i]
                    out0, out1 = v[4 * i, c], v[4 * i + 1, c]
                    out2, out3 = v[4 * i + 2, c], v[4 * i + 3, c]
                    for tx in range(tiles_w):
                        d0, d1, d2, d3 = r[2 * tx], r[2 * tx + 1], r[2 * tx + 2], r[2 * tx + 3]
                        out0[base + tx] = d0 - d2
                        out1[base + tx] = d1 + d2
                        out2[base + tx] = d2 - d1
                        out3[base + tx] = d1 - d3


@njit(cache=True, inline="always")
def _output_pool(m, bias, slope, n0, n1, height, width, pooled, argmax, y, s):
    """Images n0 .. n1-1 from their M (16, C, (n1 - n0) * tiles): pooled[n, c] = leaky(max over
    each tile of A^T M A + bias) and argmax[n, c] = the winner's place in its tile, 2a + b (ties
    to the first entry in row-major order, as in the pooling kernels).  ``y`` (4, .) and ``s``
    (8, .) are scratch of at least the slice's tiles."""
    channels, tiles_h, tiles_w = m.shape[1], pooled.shape[2], pooled.shape[3]
    tiles = tiles_h * tiles_w
    count = (n1 - n0) * tiles
    for c in range(channels):
        b = bias[c]
        for j in range(4):                                # A^T M: two rows of four
            m0, m1, m2, m3 = m[j, c], m[4 + j, c], m[8 + j, c], m[12 + j, c]
            top, bottom = s[j], s[4 + j]
            for t in range(count):                        # straight loops over t: vectorised
                top[t] = m0[t] + m1[t] + m2[t]
                bottom[t] = m1[t] - m2[t] - m3[t]
        for r in range(2):                                # (A^T M) A: the tile's 2x2 outputs
            s0, s1, s2, s3 = s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]
            left, right = y[2 * r], y[2 * r + 1]
            for t in range(count):
                left[t] = s0[t] + s1[t] + s2[t]
                right[t] = s1[t] - s2[t] - s3[t]
        for n in range(n0, n1):
            out, where = pooled[n, c], argmax[n, c]
            for ty in range(tiles_h):
                row1 = 2 * ty + 1 < height
                for tx in range(tiles_w):
                    col1 = 2 * tx + 1 < width
                    t = (n - n0) * tiles + ty * tiles_w + tx
                    best, k = y[0, t], 0
                    if col1 and y[1, t] > best:
                        best, k = y[1, t], 1
                    if row1:
                        if y[2, t] > best:
                            best, k = y[2, t], 2
                        if col1 and y[3, t] > best:
                            best, k = y[3, t], 3
                    best += b
                    out[ty, tx] = best if best > 0 else best * slope
                    where[ty, tx] = k


@njit(cache=True, inline="always")
def _pool_backward(dpooled, pooled, argmax, slope, n0, n1, dm, dbias, rows, cols):
    """dM of images n0 .. n1-1 into dm (16, C, >= (n1 - n0) * tiles); adds their bias gradient
    to ``dbias``.  The pooled gradient times leaky' goes to the tile's winner (a, b), so
    dM = A dY A^T is dM[4i + j] = g * A[i, a] * A[j, b], with A[:, 0] = (1, 1, 1, 0) and
    A[:, 1] = (0, 1, -1, -1).  ``rows`` and ``cols`` (4, .) are scratch."""
    channels, tiles_h, tiles_w = dpooled.shape[1], dpooled.shape[2], dpooled.shape[3]
    tiles = tiles_h * tiles_w
    count = (n1 - n0) * tiles
    for c in range(channels):
        total = 0.0
        for n in range(n0, n1):
            g_map, out_map, where_map = dpooled[n, c], pooled[n, c], argmax[n, c]
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    t = (n - n0) * tiles + ty * tiles_w + tx
                    g = g_map[ty, tx]
                    if not out_map[ty, tx] > 0:
                        g = g * slope
                    total += g
                    a = where_map[ty, tx] >> 1
                    b = where_map[ty, tx] & 1
                    rows[0, t] = g - g * a                  # g * A[i, a]
                    rows[1, t] = g
                    rows[2, t] = g - 2 * g * a
                    rows[3, t] = -g * a
                    cols[0, t] = 1 - b                      # A[j, b]
                    cols[1, t] = 1
                    cols[2, t] = 1 - 2 * b
                    cols[3, t] = -b
        for i in range(4):
            row = rows[i]
            for j in range(4):
                col, target = cols[j], dm[4 * i + j, c]
                for t in range(count):
                    target[t] = row[t] * col[t]
        dbias[c] += total


@njit(cache=True, inline="always")
def _input_backward(dv, n0, n1, dx, padded, r):
    """dx[n0:n1] from their dV (16, C, (n1 - n0) * tiles): B dV B^T of every tile added onto its
    4x4 patch.  ``padded`` (2 tiles_h + 2, 2 tiles_w + 2) and ``r`` (4, 4) are scratch."""
    channels, height, width = dx.shape[1], dx.shape[2], dx.shape[3]
    tiles_h, tiles_w = (height + 1) // 2, (width + 1) // 2
    tiles = tiles_h * tiles_w
    for c in range(channels):
        for n in range(n0, n1):
            padded[:, :] = 0
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    t = (n - n0) * tiles + ty * tiles_w + tx
                    for j in range(4):                      # r <- B dV (row combinations)
                        v0, v1 = dv[j, c, t], dv[4 + j, c, t]
                        v2, v3 = dv[8 + j, c, t], dv[12 + j, c, t]
                        r[0, j] = v0
                        r[1, j] = v1 - v2 + v3
                        r[2, j] = v1 + v2 - v0
                        r[3, j] = -v3
                    for i in range(4):                      # patch += r B^T (columns)
                        target = padded[2 * ty + i]
                        x0 = 2 * tx
                        target[x0] += r[i, 0]
                        target[x0 + 1] += r[i, 1] - r[i, 2] + r[i, 3]
                        target[x0 + 2] += r[i, 1] + r[i, 2] - r[i, 0]
                        target[x0 + 3] -= r[i, 3]
            for h in range(height):
                for w in range(width):
                    dx[n, c, h, w] = padded[h + 1, w + 1]


# ----------------------------------------------------------------------------- the block's kernels
@njit(parallel=True, cache=True)
def winograd_forward(x, u, bias, slope, slice_images, keep_input):
    """x (N, C_in, H, W), U (16, C_out, C_in) -> (V, pooled, argmax), slice by slice.

    pooled = leaky(max over each tile of A^T M A + bias) and argmax = the winner's place in its
    tile (2a + b), both (N, C_out, tiles_h, tiles_w);
    V (16, C_in, N * tiles) is kept for the backward pass when ``keep_input`` (training), else
    each slice's V is scratch and V comes back empty (16, C_in, 0).
    """
    n_batch, in_channels, height, width = x.shape
    out_channels = u.shape[1]
    tiles_h, tiles_w = (height + 1) // 2, (width + 1) // 2
    tiles = tiles_h * tiles_w
    v = np.empty((16, in_channels, n_batch * tiles if keep_input else 0), dtype=x.dtype)
    pooled = np.empty((n_batch, out_channels, tiles_h, tiles_w), dtype=x.dtype)
    argmax = np.empty((n_batch, out_channels, tiles_h, tiles_w), dtype=np.int32)
    slices = (n_batch + slice_images - 1) // slice_images
    for s in prange(slices):
        n0 = s * slice_images
        n1 = min(n_batch, n0 + slice_images)
        count = (n1 - n0) * tiles
        padded = np.zeros((2 * tiles_h + 2, 2 * tiles_w + 2), dtype=x.dtype)
        rows = np.empty((4, 2 * tiles_w + 2), dtype=x.dtype)
        if keep_input:
            v_slice, first = v, n0 * tiles
        else:
            v_slice, first = np.empty((16, in_channels, count), dtype=x.dtype), 0
        _input_transform(x, n0, n1, tiles_h, tiles_w, v_slice, first, padded, rows)
        m = np.empty((16, out_channels, count), dtype=x.dtype)
        for k in range(16):                                 # M[k] = U[k] V[k]
            blas.gemm_general(u[k], v_slice[k, :, first:first + count], m[k], False, False, False)
        y = np.empty((4, count), dtype=x.dtype)
        scratch = np.empty((8, count), dtype=x.dtype)
        _output_pool(m, bias, slope, n0, n1, height, width, pooled, argmax, y, scratch)
    return v, pooled, argmax


@njit(parallel=True, cache=True)
def winograd_backward(dpooled, pooled, argmax, v, u, slope, height, width, slice_images,
                      groups, need_input_grad):
    """dpooled (N, C_out, tiles_h, tiles_w) -> (dU (16, C_out, C_in), dbias (C_out,), dx).

    dx (N, C_in, H, W), or (0, C_in, H, W) when not ``need_input_grad``.  The slices (as in
    :func:`winograd_forward`) run in ``groups`` groups of consecutive slices; each group sums
    dU[k] += dM[k] V[k]^T over its slices, and the groups' sums are added in order.
    """
    n_batch, out_channels, tiles_h, tiles_w = dpooled.shape
    in_channels = u.shape[2]
    dtype = dpooled.dtype
    tiles = tiles_h * tiles_w
    slices = (n_batch + slice_images - 1) // slice_images
    groups = max(1, min(groups, slices))
    du_groups = np.zeros((groups, 16, out_channels, in_channels), dtype=dtype)
    dbias_groups = np.zeros((groups, out_channels), dtype=np.float64)
    dx = np.empty((n_batch if need_input_grad else 0, in_channels, height, width), dtype=dtype)
    capacity = slice_images * tiles
    for g in prange(groups):
        dm = np.empty((16, out_channels, capacity), dtype=dtype)
        dv = np.empty((16, in_channels, capacity), dtype=dtype)
        rows = np.empty((4, capacity), dtype=dtype)
        cols = np.empty((4, capacity), dtype=dtype)
        padded = np.empty((2 * tiles_h + 2, 2 * tiles_w + 2), dtype=dtype)
        r = np.empty((4, 4), dtype=dtype)
        for s in range(g * slices // groups, (g + 1) * slices // groups):
            n0 = s * slice_images
            n1 = min(n_batch, n0 + slice_images)
            count, first = (n1 - n0) * tiles, n0 * tiles
            _pool_backward(dpooled, pooled, argmax, slope, n0, n1, dm, dbias_groups[g], rows, cols)
            for k in range(16):                             # dU[k] += dM[k] V[k]^T
                blas.gemm_general(dm[k, :, :count], v[k, :, first:first + count], du_groups[g, k],
                                  False, True, True)
            if need_input_grad:
                for k in range(16):                         # dV[k] = U[k]^T dM[k]
                    blas.gemm_general(u[k], dm[k, :, :count], dv[k, :, :count], True, False, False)
                _input_backward(dv, n0, n1, dx, padded, r)
    du = du_groups[0].copy()
    dbias = dbias_groups[0].copy()
    for g in range(1, groups):
        du += du_groups[g]
        dbias += dbias_groups[g]
    return du, dbias.astype(dtype), dx


@njit(parallel=True, cache=True, error_model="numpy")
def winograd_filter_grad(du):
    """dU (16, C_out, C_in) -> dw (C_out, C_in, 3, 3) = G^T dU G, the adjoint of U = G w G^T
    (nn.layers.fused.winograd_filter).  As two NumPy tensordots it took 0.38 ms for conv3, as this
    loop 0.06 - 0.1 ms (the forward transform, written the same way, was no faster than NumPy's
    and stays there)."""
    out_channels, in_channels = du.shape[1], du.shape[2]
    dw = np.empty((out_channels, in_channels, 3, 3), dtype=du.dtype)
    half = du.dtype.type(0.5)
    for o in prange(out_channels):
        t = np.empty((4, 3), dtype=du.dtype)
        for c in range(in_channels):
            for i in range(4):                         # t = dU G  (4 x 3)
                d0, d1 = du[4 * i, o, c], du[4 * i + 1, o, c]
                d2, d3 = du[4 * i + 2, o, c], du[4 * i + 3, o, c]
                t[i, 0] = d0 + half * (d1 + d2)
                t[i, 1] = half * (d1 - d2)
                t[i, 2] = half * (d1 + d2) + d3
            for j in range(3):                         # dw = G^T t  (3 x 3)
                dw[o, c, 0, j] = t[0, j] + half * (t[1, j] + t[2, j])
                dw[o, c, 1, j] = half * (t[1, j] - t[2, j])
                dw[o, c, 2, j] = half * (t[1, j] + t[2, j]) + t[3, j]
    return dw
