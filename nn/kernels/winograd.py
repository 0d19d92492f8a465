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
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def winograd_input(x, tiles_h, tiles_w):
    """x (N, C, H, W) -> V (16, C, N*tiles_h*tiles_w): B^T d B of every 4x4 input patch.

    Patch (ty, tx) covers input rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2; entries outside
    the image are 0 (the 'same' padding and, for odd sizes, the missing last row/column).
    The row combinations B^T d are formed once per row of tiles, for the whole width.
    """
    n_batch, channels, height, width = x.shape
    tiles = tiles_h * tiles_w
    v = np.empty((16, channels, n_batch * tiles), dtype=x.dtype)
    padded_h, padded_w = 2 * tiles_h + 2, 2 * tiles_w + 2
    for c in prange(channels):
        padded = np.zeros((padded_h, padded_w), dtype=x.dtype)
        rows = np.empty((4, padded_w), dtype=x.dtype)
        for n in range(n_batch):
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
                base = n * tiles + ty * tiles_w
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
    return v


@njit(parallel=True, cache=True)
def winograd_output_pool(m, bias, slope, n_batch, height, width, tiles_h, tiles_w):
    """M (16, C, N*tiles) -> pooled (N, C, tiles_h, tiles_w) = leaky(max over the tile of
    A^T M A + bias), and argmax (same shape): the winner's place in its tile, 2a + b.

    Ties go to the first entry in row-major order, as in the pooling kernels.
    """
    channels = m.shape[1]
    tiles = tiles_h * tiles_w
    pooled = np.empty((n_batch, channels, tiles_h, tiles_w), dtype=m.dtype)
    argmax = np.empty((n_batch, channels, tiles_h, tiles_w), dtype=np.int32)
    count = n_batch * tiles
    for c in prange(channels):
        b = bias[c]
        y = np.empty((4, count), dtype=m.dtype)           # the tile's 2x2 outputs, row-major
        s = np.empty((8, count), dtype=m.dtype)           # A^T M: two rows of four
        for j in range(4):                                # straight loops over t: vectorised
            m0, m1, m2, m3 = m[j, c], m[4 + j, c], m[8 + j, c], m[12 + j, c]
            top, bottom = s[j], s[4 + j]
            for t in range(count):
                top[t] = m0[t] + m1[t] + m2[t]
                bottom[t] = m1[t] - m2[t] - m3[t]
        for r in range(2):
            s0, s1, s2, s3 = s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]
            left, right = y[2 * r], y[2 * r + 1]
            for t in range(count):
                left[t] = s0[t] + s1[t] + s2[t]
                right[t] = s1[t] - s2[t] - s3[t]
        out, where = pooled[:, c], argmax[:, c]
        for n in range(n_batch):
            for ty in range(tiles_h):
                row1 = 2 * ty + 1 < height
                for tx in range(tiles_w):
                    col1 = 2 * tx + 1 < width
                    t = n * tiles + ty * tiles_w + tx
                    best, k = y[0, t], 0
                    if col1 and y[1, t] > best:
                        best, k = y[1, t], 1
                    if row1:
                        if y[2, t] > best:
                            best, k = y[2, t], 2
                        if col1 and y[3, t] > best:
                            best, k = y[3, t], 3
                    best += b
                    out[n, ty, tx] = best if best > 0 else best * slope
                    where[n, ty, tx] = k
    return pooled, argmax


@njit(parallel=True, cache=True)
def winograd_pool_backward(dpooled, pooled, argmax, slope):
    """dpooled (N, C, tiles_h, tiles_w) -> (dM (16, C, N*tiles), dbias (C,)).

    The pooled gradient times leaky' goes to the tile's winner (a, b); dM = A dY A^T, i.e.
    dM[4i + j] = g * A[i, a] * A[j, b] with A[:, 0] = (1, 1, 1, 0), A[:, 1] = (0, 1, -1, -1).
    """
    n_batch, channels, tiles_h, tiles_w = dpooled.shape
    tiles = tiles_h * tiles_w
    dm = np.empty((16, channels, n_batch * tiles), dtype=dpooled.dtype)
    dbias = np.empty(channels, dtype=dpooled.dtype)
    count = n_batch * tiles
    for c in prange(channels):
        g_flat = dpooled[:, c].copy().reshape(-1)     # (N*tiles,) in the order of t
        out_flat = pooled[:, c].copy().reshape(-1)
        where_flat = argmax[:, c].copy().reshape(-1)
        rows = np.empty((4, count), dtype=dpooled.dtype)    # g * A[i, a] for each tile
        cols = np.empty((4, count), dtype=dpooled.dtype)    # A[j, b]
        total = 0.0
        for t in range(count):
            g = g_flat[t]
            if not out_flat[t] > 0:
                g = g * slope
            total += g
            a = where_flat[t] >> 1
            b = where_flat[t] & 1
            rows[0, t] = g - g * a
            rows[1, t] = g
            rows[2, t] = g - 2 * g * a
            rows[3, t] = -g * a
            cols[0, t] = 1 - b
            cols[1, t] = 1
            cols[2, t] = 1 - 2 * b
            cols[3, t] = -b
        for i in range(4):
            row = rows[i]
            for j in range(4):
                col, target = cols[j], dm[4 * i + j, c]
                for t in range(count):
                    target[t] = row[t] * col[t]
        dbias[c] = total
    return dm, dbias


@njit(parallel=True, cache=True)
def winograd_input_backward(dv, n_batch, height, width, tiles_h, tiles_w):
    """dV (16, C, N*tiles) -> dx (N, C, H, W): B dV B^T of every tile added onto its 4x4 patch."""
    channels = dv.shape[1]
    tiles = tiles_h * tiles_w
    dx = np.empty((n_batch, channels, height, width), dtype=dv.dtype)
    padded_h, padded_w = 2 * tiles_h + 2, 2 * tiles_w + 2
    for c in prange(channels):
        padded = np.empty((padded_h, padded_w), dtype=dv.dtype)
        r = np.empty((4, 4), dtype=dv.dtype)
        for n in range(n_batch):
            padded[:, :] = 0
            for ty in range(tiles_h):
                for tx in range(tiles_w):
                    t = n * tiles + ty * tiles_w + tx
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
    return dx


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
