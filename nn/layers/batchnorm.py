"""Batch normalisation over features, x (N, F).

Training (batch statistics, biased variance):
    mu = mean_n x,  var = mean_n (x - mu)^2,  r = 1 / sqrt(var + eps)
    x_hat = (x - mu) r,   y = gamma x_hat + beta
    dgamma = sum_n dy x_hat,   dbeta = sum_n dy
    dx = r / N * (N dx_hat - sum_n dx_hat - x_hat sum_n (dx_hat x_hat)),   dx_hat = dy gamma
Inference uses the running statistics instead, so y is an affine map of x.

Running statistics follow PyTorch: running = (1 - momentum) running + momentum batch, with the
unbiased batch variance, momentum 0.1 and eps 1e-5.  Keras writes the same average as m running +
(1 - m) batch, so its default m = 0.99 is PyTorch's 0.01; it also uses eps 1e-3 and the biased
variance.  The differences matter only when comparing.
"""
from typing import NamedTuple

import numpy as np

from nn import init
from nn.kernels import batchnorm as kernels
from nn.layers.base import Layer


class BatchNormCache(NamedTuple):
    """What batchnorm_backward needs from the forward pass ("mean, rstd" in llm.c's words)."""
    x_hat: np.ndarray       # (N, F) the normalised input
    inv_std: np.ndarray     # (F,) 1 / sqrt(var + eps)
    gamma: np.ndarray       # (F,) the scale used
    training: bool = True   # batch statistics (True) or the running ones (False, y affine in x)


def batchnorm_forward(x, gamma, beta, eps):
    """Training-mode forward over the batch axis.

    x (N, F), gamma and beta (F,) -> (y (N, F), BatchNormCache, mean (F,), biased var (F,)):
        x_hat = (x - mean) / sqrt(var + eps),   y = gamma x_hat + beta
    """
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, BatchNormCache(x_hat, inv_std, gamma), mean, var


def batchnorm_backward(dy, cache):
    """dy (N, F) -> (dx (N, F), dgamma (F,), dbeta (F,)) through the batch statistics:
        dx = inv_std / N (N dx_hat - sum_n dx_hat - x_hat sum_n dx_hat x_hat),  dx_hat = dy gamma
    """
    x_hat, inv_std, gamma = cache.x_hat, cache.inv_std, cache.gamma
    n = dy.shape[0]
    dx_hat = dy * gamma
    dx = (inv_std / n) * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


def _compiled(*arrays):
    """Whether the training kernels (nn.kernels.batchnorm) take these arrays: one float type,
    C-contiguous (else the NumPy functions above, same maths)."""
    dtype = arrays[0].dtype
    return (dtype in (np.float32, np.float64) and arrays[0].ndim == 2
            and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays))


class BatchNorm(Layer):
    def __init__(self, num_features, momentum=0.1, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.num_features, self.momentum, self.eps = num_features, momentum, eps
        self.params["gamma"] = init.ones(num_features, dtype)
        self.params["beta"] = init.zeros(num_features, dtype)
        self.buffers["running_mean"] = init.zeros(num_features, dtype)
        self.buffers["running_var"] = init.ones(num_features, dtype)

    def forward(self, x, training=False):
        gamma, beta = self.params["gamma"], self.params["beta"]
        if training:
            if x.shape[0] < 2:  # var = 0, x_hat = 0: the output would not depend on the input
                raise ValueError(f"BatchNorm needs more than one sample per batch in training "
                                 f"(got input of shape {x.shape}), as PyTorch; use a larger "
                                 "batch, or drop a last batch of one")
            if _compiled(x, gamma, beta):
                y, x_hat, mean, var, inv_std = kernels.batchnorm_train_forward(
                    x, gamma, beta, x.dtype.type(self.eps))
                cache = BatchNormCache(x_hat, inv_std, gamma)
            else:
                y, cache, mean, var = batchnorm_forward(x, gamma, beta, self.eps)
            n = x.shape[0]
            unbiased = var * (n / max(n - 1, 1))
            m = self.momentum
            self.buffers["running_mean"] = ((1 - m) * self.buffers["running_mean"] + m * mean).astype(x.dtype)
            self.buffers["running_var"] = ((1 - m) * self.buffers["running_var"] + m * unbiased).astype(x.dtype)
            self.cache = cache
            return y
        inv_std = 1.0 / np.sqrt(self.buffers["running_var"] + self.eps)
        x_hat = (x - self.buffers["running_mean"]) * inv_std
        self.cache = BatchNormCache(x_hat, inv_std, gamma, training=False)
        return gamma * x_hat + beta

    def backward(self, dout):
        cache = self.cache
        if cache.training and _compiled(dout, cache.x_hat, cache.inv_std, cache.gamma):
            dx, dgamma, dbeta = kernels.batchnorm_train_backward(dout, cache.x_hat, cache.inv_std,
                                                                 cache.gamma)
        elif cache.training:
            dx, dgamma, dbeta = batchnorm_backward(dout, cache)
        else:  # fixed statistics: y is affine in x
            x_hat, inv_std, gamma = cache.x_hat, cache.inv_std, cache.gamma
            dx, dgamma, dbeta = dout * gamma * inv_std, (dout * x_hat).sum(axis=0), dout.sum(axis=0)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx

    def flops(self, input_shape):
        return 2 * int(np.prod(input_shape))                              # scale and shift

    @classmethod
    def warm_up(cls, dtype):
        layer = cls(2, dtype=dtype)
        layer.backward(layer.forward(np.arange(4, dtype=dtype).reshape(2, 2), training=True))

    def config(self):
        return dict(num_features=self.num_features, momentum=self.momentum, eps=self.eps)
