"""Fully connected layer and the Flatten that usually precedes it.

Dense, x (N, D_in), w (D_out, D_in) as in PyTorch, b (D_out,):
    forward   y  = x w^T + b                  (N, D_out)
    backward  dx = dy w                       (N, D_in)
              dw = dy^T x                     (D_out, D_in)
              db = sum_n dy                   (D_out,)

The layer runs this through :func:`dense_leaky_forward` / :func:`dense_leaky_backward` with
slope 1 (the identity); :class:`~nn.layers.Sequential` runs a Dense followed by a LeakyReLU or
ReLU as one :class:`DenseActivation` step, the activation fused into the same passes.

w has PyTorch's shape (D_out, D_in) but is kept column-major in memory, so w^T is an ordinary
row-major (D_in, D_out) matrix and x w^T a product of two untransposed matrices, which NumPy's
BLAS runs faster than one with a transposed operand: the MLP's prediction, 784 -> 256 -> 128
-> 10, took 10-13 % less time at batch 64 and 256 on one thread, 7-10 % at batch 256 on two
(2-core AMD EPYC, 2026-12-06, three measurements each).  A weight assigned row-major still
gives the same results, more slowly.
"""
from typing import NamedTuple

import numba
import numpy as np

from nn.init import glorot_uniform, is_placeholder, zeros
from nn.kernels import dense as kernels
from nn.layers.activation import LeakyReLU
from nn.layers.base import Layer
from nn.threads import blas_threads


class DenseCache(NamedTuple):
    """What dense_backward needs from the forward pass."""
    x: np.ndarray       # (N, D_in) the input


def is_column_major(w):
    """True if w (D_out, D_in) is stored column-major, so that w^T is row-major."""
    return w.T.flags.c_contiguous


def weight_gradient(dz, x, w):
    """dw (D_out, D_in) = dz^T x in w's memory layout (the optimizer updates w in place from it):
    column-major as (x^T dz)^T."""
    x2d, dz2d = x.reshape(-1, x.shape[-1]), dz.reshape(-1, dz.shape[-1])
    return (x2d.T @ dz2d).T if is_column_major(w) else dz2d.T @ x2d


def dense_forward(x, w, b):
    """y = x w^T + b:  x (N, D_in), w (D_out, D_in), b (D_out,) -> (y (N, D_out), DenseCache)."""
    return x @ w.T + b, DenseCache(x)


def dense_backward(dy, x, w, need_input_grad=True):
    """dy (N, ..., D_out), x (N, ..., D_in), w (D_out, D_in) -> (dx (N, ..., D_in), dw (D_out, D_in),
    db (D_out,)): dx = dy w,  dw = dy^T x,  db = sum_n dy.  dx is None with
    ``need_input_grad=False``."""
    db = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
    return (dy @ w if need_input_grad else None), weight_gradient(dy, x, w), db


class DenseLeakyCache(NamedTuple):
    """What dense_leaky_backward needs from the forward pass."""
    x: np.ndarray       # (N, D_in) the input
    y: np.ndarray       # (N, D_out) the output, leaky(x w^T + b)


def dense_leaky_forward(x, w, b, slope):
    """y = leaky(x w^T + b), leaky(v) = v if v > 0 else slope v (slope >= 0; 1: no activation):
    x (N, D_in), w (D_out, D_in), b (D_out,) -> (y (N, D_out), DenseLeakyCache).

    The product in BLAS, then the bias and the activation in one pass in place."""
    dtype = np.result_type(x.dtype, w.dtype)
    y = np.ascontiguousarray(x @ w.T, dtype=dtype)                        # (N, D_out)
    kernels.bias_leaky_in_place(y, b.astype(dtype, copy=False), dtype.type(slope))
    return y, DenseLeakyCache(x, y)


def dense_leaky_backward(dy, cache, w, slope, need_input_grad=True):
    """dy (N, D_out) -> (dx (N, D_in) or None, dw (D_out, D_in), db (D_out,)):
    dz = dy where y > 0 else slope dy,  dx = dz w,  dw = dz^T x,  db = sum_n dz."""
    x, y = cache
    dz, db = kernels.leaky_bias_backward(np.ascontiguousarray(dy, dtype=y.dtype), y,
                                         y.dtype.type(slope))
    return (dz @ w if need_input_grad else None), weight_gradient(dz, x, w), db


class Dense(Layer):
    """y = x w^T + b with a Glorot-uniform w and zero b.

    ``backward(dout, need_input_grad=False)`` skips dx = dy w for that call: a first layer's
    input is the data, and a training step does not need its gradient (for the MLP's first
    layer, (N, 256) @ (256, 784): a third of the step's FLOPs).
    """

    uses_rng = True
    need_input_grad = True   # the default of backward(); Sequential.backward may override it
    column_major = ("weight",)   # so x w^T multiplies two untransposed matrices (see above)

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = in_features, out_features
        weight = glorot_uniform(rng, (out_features, in_features), in_features, out_features, dtype)
        self.params["weight"] = weight if is_placeholder(weight) else np.asfortranarray(weight)
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
        layer = cls(2, 3, rng=np.random.default_rng(0), dtype=dtype)
        layer.backward(layer.forward(np.ones((2, 2), dtype), training=True))
        # a large batch's prediction through a stack (dense_stack_infer), here of one layer
        with blas_threads(1):
            kernels.dense_stack_forward(np.ones((2, 2), dtype), (layer.params["weight"].T,),
                                        (layer.params["bias"],), np.ones(1, dtype),
                                        (np.empty((2, 3), dtype),), 1)

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


# An MLP predicts a batch of at least this many rows per thread block by block
# (dense_stack_infer); below, BLAS's own multi-thread products are faster.  Measured, the MLP's
# network on 2 threads (us, 2026-12-06): batch 64 193 layer by layer vs 230 by blocks; batch 256
# 650 - 661 vs 671 - 679 in the VM's usual state, and 885 - 932 vs 692 - 739 in a state where
# OpenBLAS's two threads slow by a third (docs/performance.md, "The MLP's prediction on two
# threads").
ROWS_PER_THREAD_FOR_BLOCKS = 128


def takes_blocks(x):
    """True if x (N, D) is a batch that a dense stack predicts faster by blocks of rows (a cheap
    test, made before :func:`dense_stack` looks at the layers)."""
    threads = numba.get_num_threads()
    return threads > 1 and x.ndim == 2 and len(x) >= ROWS_PER_THREAD_FOR_BLOCKS * threads


def dense_stack(steps):
    """[(Dense, slope)] for an execution plan made of Dense, Dense + activation and Dropout steps
    only (an MLP; dropout is the identity in prediction), each weight column-major; else None."""
    from nn.layers.dropout import Dropout
    layers = []
    for step in steps:
        if isinstance(step, DenseActivation):
            layers.append((step.dense, step.activation.slope))
        elif isinstance(step, Dense):
            layers.append((step, 1.0))
        elif not isinstance(step, Dropout):
            return None
    if not layers or not all(is_column_major(dense.params["weight"]) for dense, _ in layers):
        return None
    return layers


def dense_stack_infer(layers, x):
    """Prediction through ``layers`` (from :func:`dense_stack`), x (N, D_0) -> (N, D_L), or None
    when layer by layer is faster or the stack does not apply (then nothing was computed).

    On several threads a batch of ``ROWS_PER_THREAD_FOR_BLOCKS`` rows per thread or more is cut
    into one block of rows per thread, each thread taking its block through every layer with
    one-thread BLAS (:func:`nn.kernels.dense.dense_stack_forward`): the same bits as one thread
    (BLAS does not split a row's sums, and the blocks start at multiples of 64 rows), and no
    multi-thread BLAS product, whose threads wait for each other at every panel."""
    if not takes_blocks(x):
        return None
    dtype = x.dtype
    if dtype not in (np.float32, np.float64) or any(
            dense.params["weight"].dtype != dtype or dense.params["bias"].dtype != dtype
            for dense, _ in layers):
        return None
    x = np.ascontiguousarray(x)
    outputs = tuple(np.empty((len(x), dense.out_features), dtype) for dense, _ in layers)
    with blas_threads(1):
        kernels.dense_stack_forward(
            x, tuple(dense.params["weight"].T for dense, _ in layers),
            tuple(dense.params["bias"] for dense, _ in layers),
            np.array([slope for _, slope in layers], dtype), outputs, numba.get_num_threads())
    return outputs[-1]


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
