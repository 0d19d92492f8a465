"""Fully connected layer and the Flatten that usually precedes it.

Dense, x (N, D_in), w (D_out, D_in) as in PyTorch, b (D_out,):
    forward   y  = x w^T + b                  (N, D_out)
    backward  dx = dy w                       (N, D_in)
              dw = dy^T x                     (D_out, D_in)
              db = sum_n dy                   (D_out,)

The layer runs this through :func:`dense_leaky_forward` / :func:`dense_leaky_backward` with
slope 1 (the identity); :class:`~nn.layers.Sequential` runs a Dense followed by a LeakyReLU or
ReLU as one :class:`DenseActivation` step, the activation fused into the same passes.
"""
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, zeros
from nn.kernels import dense as kernels
from nn.layers.activation import LeakyReLU
from nn.layers.base import Layer


class DenseCache(NamedTuple):
    """What dense_backward needs from the forward pass."""
    x: np.ndarray       # (N, D_in) the input


def dense_forward(x, w, b):
    """y = x w^T + b:  x (N, D_in), w (D_out, D_in), b (D_out,) -> (y (N, D_out), DenseCache)."""
    return x @ w.T + b, DenseCache(x)


def dense_backward(dy, x, w, need_input_grad=True):
    """dy (N, D_out), x (N, D_in), w (D_out, D_in) -> (dx (N, D_in), dw (D_out, D_in), db (D_out,)):
    dx = dy w,  dw = dy^T x,  db = sum_n dy.  dx is None with ``need_input_grad=False``."""
    return (dy @ w if need_input_grad else None), dy.T @ x, dy.sum(axis=0)


class DenseLeakyCache(NamedTuple):
    """What dense_leaky_backward needs from the forward pass."""
    x: np.ndarray       # (N, D_in) the input
    y: np.ndarray       # (N, D_out) the output, leaky(x w^T + b)


# Batches up to this size, into at least TRANSPOSED_MIN_OUTPUTS outputs, take the product as
# w x^T (see nn.kernels.dense).  One thread, minimum of 300 (us), x w^T + in-place pass vs
# w x^T + transposing pass: 784 -> 256 at batch 256 ~1,060 vs ~1,100; 128 -> 10 at batch 64 4.6
# vs 5.7 (loaded 2-core AMD EPYC).
TRANSPOSED_MAX_BATCH = 64
TRANSPOSED_MIN_OUTPUTS = 32


def dense_leaky_forward(x, w, b, slope):
    """y = leaky(x w^T + b), leaky(v) = v if v > 0 else slope v (slope >= 0; 1: no activation):
    x (N, D_in), w (D_out, D_in), b (D_out,) -> (y (N, D_out), DenseLeakyCache).

    Small batches take the product as w x^T (faster in BLAS: nn.kernels.dense), then the bias,
    the activation and the transposition back in one pass; others x w^T and one pass in place."""
    dtype = np.result_type(x.dtype, w.dtype)
    bias, slope = b.astype(dtype, copy=False), dtype.type(slope)
    if x.shape[0] <= TRANSPOSED_MAX_BATCH and w.shape[0] >= TRANSPOSED_MIN_OUTPUTS:
        y = kernels.bias_leaky_transposed(w @ x.T, bias, slope)           # (D_out, N) -> (N, D_out)
    else:
        y = np.ascontiguousarray(x @ w.T, dtype=dtype)                    # (N, D_out)
        kernels.bias_leaky_in_place(y, bias, slope)
    return y, DenseLeakyCache(x, y)


def dense_leaky_backward(dy, cache, w, slope, need_input_grad=True):
    """dy (N, D_out) -> (dx (N, D_in) or None, dw (D_out, D_in), db (D_out,)):
    dz = dy where y > 0 else slope dy,  dx = dz w,  dw = dz^T x,  db = sum_n dz."""
    x, y = cache
    dz, db = kernels.leaky_bias_backward(np.ascontiguousarray(dy, dtype=y.dtype), y,
                                         y.dtype.type(slope))
    return (dz @ w if need_input_grad else None), dz.T @ x, db


class Dense(Layer):
    """y = x w^T + b with a Glorot-uniform w and zero b.

    ``backward(dout, need_input_grad=False)`` skips dx = dy w for that call: a first layer's
    input is the data, and a training step does not need its gradient (for the MLP's first
    layer, (N, 256) @ (256, 784): a third of the step's FLOPs).
    """

    uses_rng = True
    need_input_grad = True   # the default of backward(); Sequential.backward may override it

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = in_features, out_features
        self.params["weight"] = glorot_uniform(rng, (out_features, in_features), in_features,
                                               out_features, dtype)
        self.params["bias"] = zeros(out_features, dtype)

    def forward(self, x, training=False):
        if x.ndim != 2:                          # (N, ..., D_in): the plain NumPy product
            y, self.cache = dense_forward(x, self.params["weight"], self.params["bias"])
            return y
        y, self.cache = dense_leaky_forward(x, self.params["weight"], self.params["bias"], 1.0)
        return y

    def backward(self, dout, need_input_grad=None):
        """dout (N, D_out) -> dx (N, D_in), or None when ``need_input_grad`` is False."""
        if need_input_grad is None:
            need_input_grad = self.need_input_grad
        if isinstance(self.cache, DenseCache):
            dx, self.grads["weight"], self.grads["bias"] = dense_backward(
                dout, self.cache.x, self.params["weight"], need_input_grad)
        else:
            dx, self.grads["weight"], self.grads["bias"] = dense_leaky_backward(
                dout, self.cache, self.params["weight"], 1.0, need_input_grad)
        return dx

    @classmethod
    def warm_up(cls, dtype):
        for outputs in (1, TRANSPOSED_MIN_OUTPUTS):       # both product orders
            layer = cls(2, outputs, rng=np.random.default_rng(0), dtype=dtype)
            layer.backward(layer.forward(np.ones((2, 2), dtype), training=True))

    def flops(self, input_shape):
        return self.out_features * (2 * self.in_features + 1)

    def output_shape(self, input_shape):
        return (self.out_features,)

    def config(self):
        return dict(in_features=self.in_features, out_features=self.out_features)


def can_fuse_dense(layers):
    """True if ``layers`` (two of them) is a Dense and a LeakyReLU/ReLU with slope >= 0 (then
    y > 0 exactly where the activation's input is, and backward needs only y)."""
    dense, activation = layers
    return (isinstance(dense, Dense) and isinstance(activation, LeakyReLU)
            and activation.slope >= 0)


class DenseActivation:
    """Dense -> LeakyReLU/ReLU run as one step; the two layers keep their parameters.

    The activation and the bias share one pass over the output (:func:`dense_leaky_forward`),
    and backward one pass for the activation's derivative and db; the Dense's gradients are
    written into the Dense, as a layer-by-layer backward would.
    """

    def __init__(self, dense: Dense, activation: LeakyReLU):
        self.dense, self.activation = dense, activation
        self.cache = None

    @property
    def need_input_grad(self):
        return self.dense.need_input_grad

    def forward(self, x, training=False):
        if x.ndim != 2:                          # layer by layer (see backward)
            self.cache = None
            return self.activation.forward(self.dense.forward(x, training), training)
        dense = self.dense
        y, self.cache = dense_leaky_forward(x, dense.params["weight"], dense.params["bias"],
                                            self.activation.slope)
        return y

    def infer(self, x):
        return self.forward(x, training=False)

    def backward(self, dout, need_input_grad=None):
        """dout (N, D_out) -> dx (N, D_in), or None when ``need_input_grad`` is False (None:
        the Dense's setting)."""
        if self.cache is None:                   # the forward pass went layer by layer
            return self.dense.backward(self.activation.backward(dout), need_input_grad)
        if need_input_grad is None:
            need_input_grad = self.dense.need_input_grad
        dense = self.dense
        dx, dense.grads["weight"], dense.grads["bias"] = dense_leaky_backward(
            dout, self.cache, dense.params["weight"], self.activation.slope, need_input_grad)
        return dx


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
