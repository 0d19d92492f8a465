"""Batch normalisation in training mode, forward and backward each in one compiled call.

The maths is nn.layers.batchnorm's (biased batch variance, r = 1 / sqrt(var + eps)); NumPy
needed ~25 passes and temporaries for a (64, 64) batch (51 us of forward + backward, one
thread), these two kernels a few passes over the rows, every sum over the batch in row order.
"""
import math

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def batchnorm_train_forward(x, gamma, beta, eps):
    """x (N, F), gamma, beta (F,), eps -> (y (N, F), x_hat (N, F), mean (F,), var (F,),
    inv_std (F,)):  mean = sum_n x / N,  var = sum_n (x - mean)^2 / N,
    inv_std = 1 / sqrt(var + eps),  x_hat = (x - mean) inv_std,  y = gamma x_hat + beta."""
    n_batch, features = x.shape
    count = x.dtype.type(n_batch)
    mean = np.zeros(features, dtype=x.dtype)
    var = np.zeros(features, dtype=x.dtype)
    for n in range(n_batch):
        for k in range(features):
            mean[k] += x[n, k]
    for k in range(features):
        mean[k] /= count
    for n in range(n_batch):
        for k in range(features):
            centred = x[n, k] - mean[k]
            var[k] += centred * centred
    inv_std = np.empty(features, dtype=x.dtype)
    one = x.dtype.type(1)
    for k in range(features):
        var[k] /= count
        inv_std[k] = one / math.sqrt(var[k] + eps)
    x_hat = np.empty_like(x)
    y = np.empty_like(x)
    for n in range(n_batch):
        for k in range(features):
            normalised = (x[n, k] - mean[k]) * inv_std[k]
            x_hat[n, k] = normalised
            y[n, k] = gamma[k] * normalised + beta[k]
    return y, x_hat, mean, var, inv_std


@njit(cache=True, error_model="numpy")
def batchnorm_train_backward(dy, x_hat, inv_std, gamma):
    """dy, x_hat (N, F), inv_std, gamma (F,) -> (dx (N, F), dgamma (F,), dbeta (F,)):
    dx_hat = dy gamma,  dx = inv_std / N (N dx_hat - sum_n dx_hat - x_hat sum_n dx_hat x_hat),
    dgamma = sum_n dy x_hat,  dbeta = sum_n dy."""
    n_batch, features = dy.shape
    count = dy.dtype.type(n_batch)
    sum_dx_hat = np.zeros(features, dtype=dy.dtype)
    sum_dx_hat_x_hat = np.zeros(features, dtype=dy.dtype)
    dgamma = np.zeros(features, dtype=dy.dtype)
    dbeta = np.zeros(features, dtype=dy.dtype)
    for n in range(n_batch):
        for k in range(features):
            d = dy[n, k]
            dx_hat = d * gamma[k]
            sum_dx_hat[k] += dx_hat
            sum_dx_hat_x_hat[k] += dx_hat * x_hat[n, k]
            dgamma[k] += d * x_hat[n, k]
            dbeta[k] += d
    dx = np.empty_like(dy)
    for n in range(n_batch):
        for k in range(features):
            dx[n, k] = (inv_std[k] / count) * (count * (dy[n, k] * gamma[k]) - sum_dx_hat[k]
                                               - x_hat[n, k] * sum_dx_hat_x_hat[k])
    return dx, dgamma, dbeta
