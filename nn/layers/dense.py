"""Fully connected layer and the Flatten that usually precedes it.

Dense, x (N, D_in), w (D_out, D_in) as in PyTorch, b (D_out,):
    forward   y  = x w^T + b                  (N, D_out)
    backward  dx = dy w                       (N, D_in)
              dw = dy^T x                     (D_out, D_in)
              db = sum_n dy                   (D_out,)
"""
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, zeros
from nn.layers.base import Layer


class DenseCache(NamedTuple):
    """What dense_backward needs from the forward pass."""
    x: np.ndarray       # (N, D_in) the input


def dense_forward(x, w, b):
    """y = x w^T + b:  x (N, D_in), w (D_out, D_in), b (D_out,) -> (y (N, D_out), DenseCache)."""
    return x @ w.T + b, DenseCache(x)


def dense_backward(dy, x, w):
    """dy (N, D_out), x (N, D_in), w (D_out, D_in) -> (dx (N, D_in), dw (D_out, D_in), db (D_out,)):
    dx = dy w,  dw = dy^T x,  db = sum_n dy."""
    return dy @ w, dy.T @ x, dy.sum(axis=0)


class Dense(Layer):
    """y = x w^T + b with a Glorot-uniform w and zero b."""

    uses_rng = True

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = in_features, out_features
        self.params["weight"] = glorot_uniform(rng, (out_features, in_features), in_features,
                                               out_features, dtype)
        self.params["bias"] = zeros(out_features, dtype)

    def forward(self, x, training=False):
        y, self.cache = dense_forward(x, self.params["weight"], self.params["bias"])
        return y

    def backward(self, dout):
        dx, self.grads["weight"], self.grads["bias"] = dense_backward(dout, self.cache.x,
                                                                      self.params["weight"])
        return dx

    def flops(self, input_shape):
        return self.out_features * (2 * self.in_features + 1)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features)


class FlattenCache(NamedTuple):
    x_shape: tuple      # (N, d1, d2, ...) the input's shape, to unflatten the gradient


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), in C order (channel-major for NCHW, as PyTorch)."""

    def forward(self, x, training=False):
        self.cache = FlattenCache(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.cache.x_shape)

    def output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)
