"""Slow, obvious NumPy versions of every Numba kernel, for the tests to compare against.

Written for clarity only: explicit padding, explicit loops over the kernel window, no tricks.
"""
import numpy as np


def im2col(x, kernel_h, kernel_w, stride, pad_top, pad_left, out_h, out_w):
    n_batch, channels, height, width = x.shape
    pad_bottom = max((out_h - 1) * stride + kernel_h - height - pad_top, 0)
    pad_right = max((out_w - 1) * stride + kernel_w - width - pad_left, 0)
    padded = np.pad(x, ((0, 0), (0, 0), (pad_top, pad_bottom), (pad_left, pad_right)))
    col = np.empty((channels, kernel_h, kernel_w, n_batch, out_h, out_w), dtype=x.dtype)
    for i in range(kernel_h):
        for j in range(kernel_w):
            window = padded[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
            col[:, i, j] = window.transpose(1, 0, 2, 3)
    return col.reshape(channels * kernel_h * kernel_w, n_batch * out_h * out_w)


def col2im(dcol, n_batch, channels, height, width, kernel_h, kernel_w, stride, pad_top, pad_left,
           out_h, out_w):
    pad_bottom = max((out_h - 1) * stride + kernel_h - height - pad_top, 0)
    pad_right = max((out_w - 1) * stride + kernel_w - width - pad_left, 0)
    padded = np.zeros((n_batch, channels, height + pad_top + pad_bottom,
                       width + pad_left + pad_right), dtype=dcol.dtype)
    dcol = dcol.reshape(channels, kernel_h, kernel_w, n_batch, out_h, out_w)
    for i in range(kernel_h):
        for j in range(kernel_w):
            padded[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride] += \
                dcol[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, pad_top:pad_top + height, pad_left:pad_left + width].copy()


def gemm_to_nchw(y2d, bias, n_batch):
    out_channels = y2d.shape[0]
    return y2d.reshape(out_channels, n_batch, -1).transpose(1, 0, 2) + bias[None, :, None]


def nchw_to_gemm(dy):
    n_batch, out_channels, positions = dy.shape
    return dy.transpose(1, 0, 2).reshape(out_channels, n_batch * positions)


def maxpool_forward(x, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, out_h, out_w):
    n_batch, channels, height, width = x.shape
    y = np.empty((n_batch, channels, out_h, out_w), dtype=x.dtype)
    argmax = np.empty((n_batch, channels, out_h, out_w), dtype=np.int32)
    for oh in range(out_h):
        h0, h1 = max(oh * stride_h - pad_top, 0), min(oh * stride_h - pad_top + pool_h, height)
        for ow in range(out_w):
            w0, w1 = max(ow * stride_w - pad_left, 0), min(ow * stride_w - pad_left + pool_w, width)
            window = x[:, :, h0:h1, w0:w1].reshape(n_batch, channels, -1)
            k = window.argmax(axis=2)                   # the first maximum (or the first NaN)
            is_nan = np.isnan(window)
            last_nan = window.shape[2] - 1 - is_nan[:, :, ::-1].argmax(axis=2)
            k = np.where(is_nan.any(axis=2), last_nan, k)   # PyTorch: the last NaN
            y[:, :, oh, ow] = window.max(axis=2)
            argmax[:, :, oh, ow] = (h0 + k // (w1 - w0)) * width + w0 + k % (w1 - w0)
    return y, argmax


def maxpool_backward(dy, argmax, height, width):
    n_batch, channels = dy.shape[:2]
    dx = np.zeros((n_batch, channels, height * width), dtype=dy.dtype)
    for n in range(n_batch):
        for c in range(channels):
            np.add.at(dx[n, c], argmax[n, c].ravel(), dy[n, c].ravel())
    return dx.reshape(n_batch, channels, height, width)


def bias_leaky_maxpool_forward(y2d, bias, slope, n_batch, height, width, pool, stride,
                               pad_top, pad_left, out_h, out_w):
    """Reorder the GEMM output to NCHW, max-pool, then add the bias and apply LeakyReLU to the
    pooled maximum (the kernel's order: bias after the maximum, so ties resolve the same)."""
    channels = y2d.shape[0]
    y = y2d.reshape(channels, n_batch, height, width).transpose(1, 0, 2, 3)
    pooled, argmax = maxpool_forward(y, pool, pool, stride, stride, pad_top, pad_left, out_h, out_w)
    pooled = pooled + bias[None, :, None, None]
    return np.where(pooled > 0, pooled, pooled * slope), argmax


def bias_leaky_maxpool2x2_forward(y2d, bias, slope, n_batch, height, width):
    return bias_leaky_maxpool_forward(y2d, bias, slope, n_batch, height, width, 2, 2, 0, 0,
                                      height // 2, width // 2)


def bias_leaky_maxpool_backward(dpooled, pooled, argmax, slope, height, width):
    """dy (N, C, H, W) = maxpool backward of dpooled * leaky'(pooled), in GEMM layout."""
    n_batch, channels = dpooled.shape[:2]
    dy = maxpool_backward(np.where(pooled > 0, dpooled, dpooled * slope), argmax, height, width)
    dy2d = dy.transpose(1, 0, 2, 3).reshape(channels, n_batch * height * width)
    return dy2d, dy.sum(axis=(0, 2, 3))


def affine_warp(images, inverse_maps):
    """out[n, r, c] = bilinear sample of images[n] at A_n (r, c, 1), zero outside the image:
    the four neighbours weighted by (1 - dy or dy) (1 - dx or dx)."""
    n_images, height, width = images.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.zeros_like(images)
    for n in range(n_images):
        a = inverse_maps[n]
        y = a[0, 0] * rows + a[0, 1] * cols + a[0, 2]
        x = a[1, 0] * rows + a[1, 1] * cols + a[1, 2]
        y0, x0 = np.floor(y), np.floor(x)
        dy, dx = y - y0, x - x0
        value = np.zeros((height, width))
        for oy, wy in ((0, 1.0 - dy), (1, dy)):
            for ox, wx in ((0, 1.0 - dx), (1, dx)):
                yy, xx = (y0 + oy).astype(np.int64), (x0 + ox).astype(np.int64)
                inside = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
                sample = images[n][np.clip(yy, 0, height - 1), np.clip(xx, 0, width - 1)]
                value += np.where(inside, wy * wx * sample, 0.0)
        out[n] = value
    return out


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def lstm_step_forward(gates, recurrent, c_prev, c, tanh_c, h):
    hidden = c_prev.shape[1]
    a = gates + recurrent
    a_i, a_f, a_g, a_o = (a[:, k * hidden:(k + 1) * hidden] for k in range(4))
    i, f, g, o = _sigmoid(a_i), _sigmoid(a_f), np.tanh(a_g), _sigmoid(a_o)
    gates[:] = np.concatenate([i, f, g, o], axis=1)
    c[:] = f * c_prev + i * g
    tanh_c[:] = np.tanh(c)
    h[:] = o * tanh_c


def lstm_step_backward(dh, dc, gates, c_prev, tanh_c, dgates):
    hidden = dh.shape[1]
    i, f, g, o = (gates[:, k * hidden:(k + 1) * hidden] for k in range(4))
    dc_t = dc + dh * o * (1 - tanh_c ** 2)
    dgates[:] = np.concatenate([dc_t * g * i * (1 - i), dc_t * c_prev * f * (1 - f),
                                dc_t * i * (1 - g ** 2), dh * tanh_c * o * (1 - o)], axis=1)
    dc[:] = dc_t * f


def lstm_sequence_forward(x, w_ih_t, b, w_hh_t, gates, hs, cs, tanh_cs, rows_per_block, fast):
    kept, slots = gates.shape[0], hs.shape[0]
    for t in range(x.shape[1]):
        g, now, after = t % kept, t % slots, (t + 1) % slots
        gates[g] = x[:, t] @ w_ih_t
        gates[g] += hs[now] @ w_hh_t
        lstm_step_forward(gates[g], b, cs[now], cs[after], tanh_cs[g], hs[after])


def lstm_sequence_predict(x, w_ih, b, w_hh, h_last, fast):
    # the batch on the last axis, as the kernel has it: a^T = w_ih x_t^T + w_hh h^T + b
    hidden = w_hh.shape[1]
    h = np.zeros((hidden, x.shape[0]), x.dtype)
    c = np.zeros_like(h)
    for t in range(x.shape[1]):
        a = w_ih @ x[:, t].T + w_hh @ h + b[:, None]                                # (4H, N)
        i, f, o = _sigmoid(a[:hidden]), _sigmoid(a[hidden:2 * hidden]), _sigmoid(a[3 * hidden:])
        c = f * c + i * np.tanh(a[2 * hidden:3 * hidden])
        h = o * np.tanh(c)
    h_last[:] = h.T


def lstm_sequence_backward(dhs, dh, dc, x, hs, cs, tanh_cs, gates, w_ih, w_hh, dgates, dx,
                           hidden_grads, dw_ih_blocks, dw_hh_blocks, db_blocks, rows_per_block):
    # one "block": the whole batch (the kernel's blocks sum to the same gradients)
    for t in range(gates.shape[0] - 1, -1, -1):
        if len(dhs):
            dh += dhs[t]
        if len(hidden_grads):
            hidden_grads[t] = dh
        lstm_step_backward(dh, dc, gates[t], cs[t], tanh_cs[t], dgates[t])
        dw_ih_blocks[0] += dgates[t].T @ x[t]
        dw_hh_blocks[0] += dgates[t].T @ hs[t]
        db_blocks[0] += dgates[t].sum(axis=0)
        if len(dx):
            dx[t] = dgates[t] @ w_ih
        dh[:] = dgates[t] @ w_hh


def gemm(a, b, c):
    c[:] = a @ b


def gemm_at_add(a, b, c):
    c += a.T @ b


def gemm_general(a, b, c, a_transposed, b_transposed, accumulate):
    product = (a.T if a_transposed else a) @ (b.T if b_transposed else b)
    if accumulate:
        c += product
    else:
        c[:] = product


def adam_update(param, grad, m, v, beta1, beta2, step_size, sqrt_bias_correction2, eps):
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    param -= step_size * m / (np.sqrt(v) / sqrt_bias_correction2 + eps)


def rnn_step_forward(pre, recurrent, h):
    h[:] = np.tanh(pre + recurrent)


def rnn_step_backward(dh, h, da):
    da[:] = dh * (1 - h ** 2)


def gru_step_forward(gates, recurrent, b_hh, h_prev, hn, h):
    hidden = h_prev.shape[1]
    gx_r, gx_z, gx_n = (gates[:, k * hidden:(k + 1) * hidden] for k in range(3))
    gh = recurrent + b_hh
    gh_r, gh_z, gh_n = (gh[:, k * hidden:(k + 1) * hidden] for k in range(3))
    r, z = _sigmoid(gx_r + gh_r), _sigmoid(gx_z + gh_z)
    n = np.tanh(gx_n + r * gh_n)
    gates[:] = np.concatenate([r, z, n], axis=1)
    hn[:] = gh_n
    h[:] = (1 - z) * n + z * h_prev


def gru_step_backward(dh, gates, h_prev, hn, dgx, dgh):
    hidden = dh.shape[1]
    r, z, n = (gates[:, k * hidden:(k + 1) * hidden] for k in range(3))
    da_n = dh * (1 - z) * (1 - n ** 2)
    da_z = dh * (h_prev - n) * z * (1 - z)
    da_r = da_n * hn * r * (1 - r)
    dgx[:] = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh[:] = np.concatenate([da_r, da_z, da_n * r], axis=1)
    dh[:] = dh * z


def dropout_forward(x, key, threshold, scale):
    """The counter-based dropout mask, written with NumPy's wrapping uint64 arithmetic."""
    index = np.arange(x.size, dtype=np.uint64)
    z = np.uint64(key) + (index + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    bits = (z >> np.uint64(40)).astype(np.int64).reshape(x.shape)
    mask = np.where(bits >= threshold, scale, 0).astype(x.dtype)
    return x * mask, mask


def bias_leaky_in_place(y, b, slope):
    v = y + b
    y[...] = np.where(v > 0, v, slope * v)


def dense_stack_forward(x, weights_t, biases, slopes, outputs, blocks):
    """Layer after layer over the whole batch (``blocks`` changes nothing)."""
    h = x
    for w_t, b, slope, out in zip(weights_t, biases, slopes, outputs):
        v = h @ w_t + b
        out[...] = np.where(v > 0, v, slope * v)
        h = out


def all_finite(x):
    """True if no value of x is NaN or infinite (nn.kernels.finite, either kernel)."""
    return bool(np.isfinite(x).all())


def leaky_bias_backward(dy, y, slope):
    """(dz = dy where y > 0 else slope dy, db = sum_n dz)."""
    dz = np.where(y > 0, dy, slope * dy).astype(dy.dtype)
    return dz, dz.sum(axis=0)


def softmax_cross_entropy(logits, labels):
    """(mean of -log softmax(logits)[n, labels[n]], softmax(logits), labels all in range)."""
    ok = bool(np.all((labels >= 0) & (labels < logits.shape[1])))
    if not ok:
        return 0.0, np.empty_like(logits), False
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    norm = np.exp(shifted).sum(axis=1)
    loss = np.mean(np.log(norm) - shifted[np.arange(len(labels)), labels])
    return loss, (np.exp(shifted) / norm[:, None]).astype(logits.dtype), True


def softmax_rows(logits):
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return (np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)).astype(logits.dtype)


def softmax_cross_entropy_backward(probabilities, labels):
    onehot = np.zeros_like(probabilities)
    onehot[np.arange(len(labels)), labels] = 1
    return (probabilities - onehot) / probabilities.dtype.type(len(labels))


def batchnorm_train_forward(x, gamma, beta, eps):
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, x_hat, mean, var, inv_std


def batchnorm_train_backward(dy, x_hat, inv_std, gamma):
    n = dy.shape[0]
    dx_hat = dy * gamma
    dx = (inv_std / n) * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def _patches(x, tiles_h, tiles_w):
    """(N, C, tiles_h, tiles_w, 4, 4) input patches, zero-padded by 1 (and more at the end)."""
    n_batch, channels, height, width = x.shape
    padded = np.zeros((n_batch, channels, 2 * tiles_h + 2, 2 * tiles_w + 2), dtype=x.dtype)
    padded[:, :, 1:height + 1, 1:width + 1] = x
    out = np.empty((n_batch, channels, tiles_h, tiles_w, 4, 4), dtype=x.dtype)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            out[:, :, ty, tx] = padded[:, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]
    return out


def winograd_input(x, tiles_h, tiles_w):
    bt = WINOGRAD_BT.astype(x.dtype)
    v = bt @ _patches(x, tiles_h, tiles_w) @ bt.T            # (N, C, th, tw, 4, 4)
    channels = x.shape[1]
    return v.transpose(4, 5, 1, 0, 2, 3).reshape(16, channels, -1)


def winograd_output_pool(m, bias, slope, n_batch, height, width, tiles_h, tiles_w):
    channels = m.shape[1]
    at = WINOGRAD_AT.astype(m.dtype)
    tiles = m.reshape(4, 4, channels, n_batch, tiles_h, tiles_w).transpose(3, 2, 4, 5, 0, 1)
    y = at @ tiles @ at.T                                    # (N, C, th, tw, 2, 2)
    valid = np.ones((tiles_h, tiles_w, 2, 2), dtype=bool)
    valid[:, :, 1, :] &= (2 * np.arange(tiles_h) + 1 < height)[:, None, None]
    valid[:, :, :, 1] &= (2 * np.arange(tiles_w) + 1 < width)[None, :, None]
    y = np.where(valid, y, -np.inf).reshape(n_batch, channels, tiles_h, tiles_w, 4)
    argmax = y.argmax(axis=-1).astype(np.int32)
    best = y.max(axis=-1) + bias[None, :, None, None]
    return np.where(best > 0, best, best * slope).astype(m.dtype), argmax


def winograd_pool_backward(dpooled, pooled, argmax, slope):
    n_batch, channels, tiles_h, tiles_w = dpooled.shape
    g = np.where(pooled > 0, dpooled, dpooled * slope)
    dy = np.zeros((n_batch, channels, tiles_h, tiles_w, 4), dtype=dpooled.dtype)
    np.put_along_axis(dy, argmax[..., None].astype(np.int64), g[..., None], axis=-1)
    at = WINOGRAD_AT.astype(dpooled.dtype)
    dm = at.T @ dy.reshape(n_batch, channels, tiles_h, tiles_w, 2, 2) @ at   # (..., 4, 4)
    dbias = g.sum(axis=(0, 2, 3))
    return dm.transpose(4, 5, 1, 0, 2, 3).reshape(16, channels, -1), dbias


def winograd_input_backward(dv, n_batch, height, width, tiles_h, tiles_w):
    channels = dv.shape[1]
    bt = WINOGRAD_BT.astype(dv.dtype)
    d = dv.reshape(4, 4, channels, n_batch, tiles_h, tiles_w).transpose(3, 2, 4, 5, 0, 1)
    d = bt.T @ d @ bt                                        # (N, C, th, tw, 4, 4)
    padded = np.zeros((n_batch, channels, 2 * tiles_h + 2, 2 * tiles_w + 2), dtype=dv.dtype)
    for ty in range(tiles_h):
        for tx in range(tiles_w):
            padded[:, :, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4] += d[:, :, ty, tx]
    return padded[:, :, 1:height + 1, 1:width + 1].copy()


def winograd_forward(x, u, bias, slope, slice_images, keep_input):
    """The whole batch at once (slices change only the order of work, not the results)."""
    tiles_h, tiles_w = (x.shape[2] + 1) // 2, (x.shape[3] + 1) // 2
    v = winograd_input(x, tiles_h, tiles_w)
    pooled, argmax = winograd_output_pool(np.matmul(u, v), bias, slope, x.shape[0], x.shape[2],
                                          x.shape[3], tiles_h, tiles_w)
    return (v if keep_input else v[:, :, :0]), pooled, argmax


def winograd_backward(dpooled, pooled, argmax, v, u, slope, height, width, slice_images, groups,
                      need_input_grad):
    """(dU = dM V^T summed over the batch, dbias, dx or an empty (0, C_in, H, W))."""
    n_batch, _, tiles_h, tiles_w = dpooled.shape
    dm, dbias = winograd_pool_backward(dpooled, pooled, argmax, slope)
    du = np.matmul(dm, v.transpose(0, 2, 1))
    if not need_input_grad:
        return du, dbias, np.empty((0, u.shape[2], height, width), dtype=dpooled.dtype)
    dv = np.matmul(u.transpose(0, 2, 1), dm)
    return du, dbias, winograd_input_backward(dv, n_batch, height, width, tiles_h, tiles_w)


def conv3x3_single_channel_leaky_maxpool2x2(x, w, bias, slope):
    n_batch, _, height, width = x.shape
    padded = np.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))
    y = np.zeros((n_batch, w.shape[0], height, width), dtype=x.dtype)
    for i in range(3):
        for j in range(3):
            y += w[None, :, 0, i, j, None, None] * padded[:, None, i:i + height, j:j + width]
    windows = y.reshape(n_batch, -1, height // 2, 2, width // 2, 2).transpose(0, 1, 2, 4, 3, 5)
    windows = windows.reshape(n_batch, -1, height // 2, width // 2, 4)
    k = windows.argmax(axis=-1)
    best = windows.max(axis=-1) + bias[None, :, None, None]
    rows = 2 * np.arange(height // 2)[:, None] + k // 2
    cols = 2 * np.arange(width // 2)[None, :] + k % 2
    return np.where(best > 0, best, best * slope).astype(x.dtype), (rows * width + cols).astype(np.int32)


def conv3x3_single_channel_leaky_maxpool_backward(dpooled, pooled, argmax, slope, x):
    n_batch, channels, out_h, out_w = dpooled.shape
    height, width = x.shape[2:]
    g = np.where(pooled > 0, dpooled, dpooled * slope)
    dy = np.zeros((n_batch, channels, height * width), dtype=dpooled.dtype)
    for n in range(n_batch):
        for c in range(channels):
            np.add.at(dy[n, c], argmax[n, c].ravel(), g[n, c].ravel())
    dy = dy.reshape(n_batch, channels, height, width)
    padded = np.pad(x[:, 0], ((0, 0), (1, 1), (1, 1)))
    dw = np.empty((channels, 1, 3, 3), dtype=dpooled.dtype)
    for i in range(3):
        for j in range(3):
            dw[:, 0, i, j] = np.einsum("nchw,nhw->c", dy, padded[:, i:i + height, j:j + width])
    return dw, g.sum(axis=(0, 2, 3))


WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def winograd_filter(w):
    g = WINOGRAD_G.astype(w.dtype)
    u = g @ w @ g.T                                          # (Co, Ci, 4, 4)
    return np.ascontiguousarray(u.transpose(2, 3, 0, 1)).reshape(16, w.shape[0], w.shape[1])


def winograd_filter_grad(du):
    g = WINOGRAD_G.astype(du.dtype)
    d = du.reshape(4, 4, du.shape[1], du.shape[2]).transpose(2, 3, 0, 1)   # (Co, Ci, 4, 4)
    return g.T @ d @ g


# ============================================================================ CTC (nn.kernels.ctc)
# The alpha/beta recursions written from their definition: each state lists the states it may
# come from (or go to), and the log-probabilities are summed with np.logaddexp.

def _ctc_predecessors(labels, s):
    """States a path can be in at frame t - 1 to be in state s at frame t."""
    allowed = [s]
    if s >= 1:
        allowed.append(s - 1)
    if s >= 2 and s % 2 == 1 and labels[s] != labels[s - 2]:
        allowed.append(s - 2)
    return allowed


def ctc_log_alpha(log_probs, extended, input_lengths, extended_lengths):
    n_batch, steps, _ = log_probs.shape
    log_alpha = np.full((n_batch, steps, extended.shape[1]), -np.inf, dtype=log_probs.dtype)
    for n in range(n_batch):
        frames, states, labels = int(input_lengths[n]), int(extended_lengths[n]), extended[n]
        for t in range(frames):
            for s in range(states):
                if t == 0:
                    reach = 0.0 if s < 2 else -np.inf      # start on the first blank or label
                else:
                    reach = -np.inf
                    for previous in _ctc_predecessors(labels, s):
                        reach = np.logaddexp(reach, log_alpha[n, t - 1, previous])
                log_alpha[n, t, s] = reach + log_probs[n, t, labels[s]]
    return log_alpha


def ctc_log_beta(log_probs, extended, input_lengths, extended_lengths):
    n_batch, steps, _ = log_probs.shape
    log_beta = np.full((n_batch, steps, extended.shape[1]), -np.inf, dtype=log_probs.dtype)
    for n in range(n_batch):
        frames, states, labels = int(input_lengths[n]), int(extended_lengths[n]), extended[n]
        for t in range(frames - 1, -1, -1):
            for s in range(states):
                if t == frames - 1:
                    log_beta[n, t, s] = 0.0 if s >= states - 2 else -np.inf   # end on the last two
                    continue
                total = -np.inf
                for following in range(s, min(s + 3, states)):
                    if s in _ctc_predecessors(labels, following):
                        total = np.logaddexp(total, log_beta[n, t + 1, following]
                                             + log_probs[n, t + 1, labels[following]])
                log_beta[n, t, s] = total
    return log_beta


def ctc_logits_gradient(log_probs, extended, input_lengths, extended_lengths, log_alpha, log_beta,
                        log_likelihood, scale):
    dlogits = np.zeros_like(log_probs)
    for n in range(log_probs.shape[0]):
        if scale[n] == 0 or log_likelihood[n] == -np.inf:
            continue
        frames, states, labels = int(input_lengths[n]), int(extended_lengths[n]), extended[n]
        posterior = np.exp(log_alpha[n, :frames, :states] + log_beta[n, :frames, :states]
                           - log_likelihood[n])                          # (T_n, S_n')
        per_class = np.zeros((frames, log_probs.shape[2]), dtype=log_probs.dtype)
        for s in range(states):
            per_class[:, labels[s]] += posterior[:, s]
        dlogits[n, :frames] = scale[n] * (np.exp(log_probs[n, :frames]) - per_class)
    return dlogits


def rnn_sequence_forward(x, w_ih_t, b, w_hh_t, hs, pre, recurrent, rows_per_block, fast):
    slots = hs.shape[0]
    for t in range(x.shape[0]):
        now, after = t % slots, (t + 1) % slots
        pre[:] = x[t] @ w_ih_t + b
        recurrent[:] = hs[now] @ w_hh_t
        rnn_step_forward(pre, recurrent, hs[after])


def rnn_sequence_backward(dhs, dh, x, hs, w_ih, w_hh, da, dx, hidden_grads, dw_ih_blocks,
                          dw_hh_blocks, db_blocks, rows_per_block):
    # one "block": the whole batch (the kernel's blocks sum to the same gradients)
    for t in range(hs.shape[0] - 2, -1, -1):
        if len(dhs):
            dh += dhs[t]
        if len(hidden_grads):
            hidden_grads[t] = dh
        rnn_step_backward(dh, hs[t + 1], da)
        dw_ih_blocks[0] += da.T @ x[t]
        dw_hh_blocks[0] += da.T @ hs[t]
        db_blocks[0] += da.sum(axis=0)
        if len(dx):
            dx[t] = da @ w_ih
        dh[:] = da @ w_hh


def gru_sequence_forward(x, w_ih_t, b_ih, w_hh_t, b_hh, gates, hn, hs, recurrent,
                         rows_per_block, fast):
    kept, slots = gates.shape[0], hs.shape[0]
    for t in range(x.shape[0]):
        g, now, after = t % kept, t % slots, (t + 1) % slots
        gates[g] = x[t] @ w_ih_t + b_ih
        recurrent[:] = hs[now] @ w_hh_t
        gru_step_forward(gates[g], recurrent, b_hh, hs[now], hn[g], hs[after])


def gru_sequence_backward(dhs, dh, x, hs, gates, hn, w_ih, w_hh, dgx, dgh, through_w_hh, dx,
                          hidden_grads, dw_ih_blocks, dw_hh_blocks, db_ih_blocks, db_hh_blocks,
                          rows_per_block):
    # one "block": the whole batch (the kernel's blocks sum to the same gradients)
    for t in range(gates.shape[0] - 1, -1, -1):
        if len(dhs):
            dh += dhs[t]
        if len(hidden_grads):
            hidden_grads[t] = dh
        gru_step_backward(dh, gates[t], hs[t], hn[t], dgx, dgh)           # dh <- dh * z
        dw_ih_blocks[0] += dgx.T @ x[t]
        dw_hh_blocks[0] += dgh.T @ hs[t]
        db_ih_blocks[0] += dgx.sum(axis=0)
        db_hh_blocks[0] += dgh.sum(axis=0)
        if len(dx):
            dx[t] = dgx @ w_ih
        dh += dgh @ w_hh


# The float32 fast steps approximate tanh (and sigmoid through it); their twins are the exact
# steps, compared at float32 tolerance (tests/test_sequence_kernels.py).
rnn_step_forward_fast = rnn_step_forward
gru_step_forward_fast = gru_step_forward


# What the recurrent kernels share (nn.kernels.recurrent); tanh_fast's twin is the exact tanh.
sigmoid = _sigmoid
tanh_fast = np.tanh


def row_block(block, rows_per_block, n_batch):
    start = block * rows_per_block
    return start, min(start + rows_per_block, n_batch)


def add_bias_rows(a, b, start, stop):
    a[start:stop] += b


def take_output_gradient(dh, dhs, hidden_grads, t, start, stop):
    if len(dhs):
        dh[start:stop] += dhs[t, start:stop]
    if len(hidden_grads):
        hidden_grads[t, start:stop] = dh[start:stop]


def add_rows_into(total, a, start, stop):
    for n in range(start, stop):
        total += a[n]
