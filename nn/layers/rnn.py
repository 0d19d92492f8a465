"""Simple (Elman, tanh) recurrent layer, with backpropagation through time.

x (N, T, D) -> h_T (N, H), or every h_t as (N, T, H) with ``return_sequences``.
Parameters as in PyTorch's nn.RNN: w_ih (H, D), w_hh (H, H), one bias b (H,) (PyTorch's
b_ih + b_hh add up to it).

Forward, for t = 1..T with h_0 = 0:
    a_t = x_t w_ih^T + h_{t-1} w_hh^T + b                          (N, H)
    h_t = tanh(a_t)
The batch is cut into blocks of rows that run through all T steps in parallel, each step's two
products and tanh on one thread (nn.kernels.rnn.rnn_sequence_forward).

Backward, for t = T..1, dh_t = dL/dh_t from the output plus da_{t+1} w_hh handed back by step t+1:
    da_t = dh_t * (1 - h_t^2)
    handed to step t-1: da_t w_hh (the recurrent part of dh_{t-1})
and at every step, on the same thread, the step's share of
    dw_ih = sum_t da_t^T x_t,  dw_hh = sum_t da_t^T h_{t-1},  db = sum_t,n da_t,  dx_t = da_t w_ih
"""
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, orthogonal, zeros
from nn.kernels import blas
from nn.kernels import rnn as kernels
from nn.layers.recurrent import ROWS_PER_BLOCK, RecurrentLayer, sequence_threads


class RNNCache(NamedTuple):
    """What simple_rnn_backward needs from the forward pass."""
    x: np.ndarray       # (T, N, D) the input, time-major
    w_ih: np.ndarray    # (H, D)
    w_hh: np.ndarray    # (H, H)
    hs: np.ndarray      # (T + 1, N, H) h_0 = 0, h_1, ..., h_T


def simple_rnn_forward(x, w_ih, w_hh, b, keep_steps=True):
    """x (N, T, D), w_ih (H, D), w_hh (H, H), b (H,) -> (hs (T, N, H) every h_t, RNNCache), or
    with ``keep_steps=False`` (prediction only: no backward) (h_T as (1, N, H), None):
        h_t = tanh(x_t w_ih^T + h_{t-1} w_hh^T + b),  h_0 = 0
    """
    n_batch, steps, _ = x.shape
    hidden = w_hh.shape[0]
    dtype = np.result_type(x.dtype, w_ih.dtype, w_hh.dtype)   # BLAS needs one type for all
    x_time_major = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype)  # (T, N, D)
    w_ih_t = np.ascontiguousarray(w_ih.T, dtype=dtype)                     # (D, H)
    w_hh_t = np.ascontiguousarray(w_hh.T, dtype=dtype)                     # (H, H)
    slots = steps + 1 if keep_steps else 2     # without backward, the steps take turns in two
    hs = np.zeros((slots, n_batch, hidden), dtype=dtype)                   # hs[0] = h_0 = 0
    pre = np.empty((n_batch, hidden), dtype=dtype)                         # scratch
    recurrent = np.empty((n_batch, hidden), dtype=dtype)
    # All T steps in one compiled call; float32 uses the vectorised approximate tanh (error
    # ~3e-7), float64 (gradient checks) the exact libm one.
    with sequence_threads(n_batch, ROWS_PER_BLOCK):
        kernels.rnn_sequence_forward(x_time_major, w_ih_t, b.astype(dtype, copy=False), w_hh_t,
                                     hs, pre, recurrent, ROWS_PER_BLOCK, dtype == np.float32)
    if not keep_steps:
        return hs[steps % 2][None], None
    return hs[1:], RNNCache(x_time_major, w_ih, w_hh, hs)


def simple_rnn_backward(dhs, cache, need_input_grad=True, hidden_grads=None):
    """dhs: dL/dh_t from the output, (T, N, H) for every step, or (N, H) for the last step only.

    hidden_grads: optional (T, N, H) array that receives the total dL/dh_t of every step (from
    the output and from step t+1).  Returns (dx (N, T, D) or None, dw_ih (H, D), dw_hh (H, H),
    db (H,)); dx is skipped when the input needs no gradient.  With da_t = dh_t (1 - h_t^2):
        dw_ih = sum_t da_t^T x_t,  dw_hh = sum_t da_t^T h_{t-1},  db = sum_t,n da_t,  dx_t = da_t w_ih
    """
    x_time_major, w_ih, w_hh, hs = cache
    steps, n_batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    features = x_time_major.shape[2]
    dtype = hs.dtype               # the forward pass's type: BLAS needs one for all
    dhs = np.ascontiguousarray(dhs, dtype=dtype)
    dh = np.zeros((n_batch, hidden), dtype=dtype)                          # dL/dh_t, then scratch
    if dhs.ndim == 2:
        dh[...] = dhs                                                      # dL/dh_T only
        dhs = np.empty((0, n_batch, hidden), dtype=dtype)                  # "not given"
    da = np.empty((n_batch, hidden), dtype=dtype)                          # one step's, scratch
    dx = np.empty((steps if need_input_grad else 0, n_batch, features), dtype=dtype)
    if hidden_grads is None:
        hidden_grads = np.empty((0, n_batch, hidden), dtype=dtype)
    blocks = -(-n_batch // ROWS_PER_BLOCK)
    dw_ih = np.zeros((blocks, hidden, features), dtype=dtype)             # one share per block
    dw_hh = np.zeros((blocks, hidden, hidden), dtype=dtype)
    db = np.zeros((blocks, hidden), dtype=dtype)
    with sequence_threads(n_batch, ROWS_PER_BLOCK):
        kernels.rnn_sequence_backward(dhs, dh, x_time_major, hs,
                                      np.ascontiguousarray(w_ih, dtype=dtype),
                                      np.ascontiguousarray(w_hh, dtype=dtype), da, dx,
                                      hidden_grads, dw_ih, dw_hh, db, ROWS_PER_BLOCK)
    # the blocks' shares, summed in block order (the same for any thread count)
    dw_ih, dw_hh, db = dw_ih.sum(axis=0), dw_hh.sum(axis=0), db.sum(axis=0)
    if not need_input_grad:
        return None, dw_ih, dw_hh, db
    return np.ascontiguousarray(dx.transpose(1, 0, 2)), dw_ih, dw_hh, db                 # (N, T, D)


class SimpleRNN(RecurrentLayer):
    """Elman RNN layer h_t = tanh(x_t w_ih^T + h_{t-1} w_hh^T + b): Glorot-uniform w_ih,
    orthogonal w_hh, zero bias (Keras' SimpleRNN defaults).

    Parameters
    ----------
    input_size, hidden_size : int
    return_sequences : bool
        False: output the last hidden state (N, H).  True: every hidden state (N, T, H).
    need_input_grad : bool
        False for a first layer: backward skips the (N*T, H) @ (H, D) product and returns None.
        ``backward(dout, need_input_grad=True)`` computes it for one call.

    Per call, ``forward(x, training, return_sequences=True)`` returns every hidden state and
    ``backward_with_hidden_grads(dout)`` also returns every dL/dh_t (T, N, H)
    (:class:`~nn.layers.recurrent.RecurrentLayer`).
    """

    def __init__(self, input_size, hidden_size, return_sequences=False, need_input_grad=True,
                 rng=None, dtype=np.float32):
        super().__init__(input_size, hidden_size, return_sequences, need_input_grad)
        rng = rng if rng is not None else np.random.default_rng()
        h = hidden_size
        # Keras draws its (D, H) kernel with fan_in = D, fan_out = H; the transpose is ours.
        self.params["w_ih"] = glorot_uniform(rng, (h, input_size), input_size, h, dtype)
        self.params["w_hh"] = orthogonal(rng, h, h, dtype=dtype)
        self.params["b"] = zeros(h, dtype)

    def sequence_forward(self, x):
        return simple_rnn_forward(x, self.params["w_ih"], self.params["w_hh"], self.params["b"])

    def infer(self, x):
        """Prediction only (no backward may follow): h_T without keeping every step's state."""
        if self.return_sequences:
            return self.forward(x, training=False)
        last, _ = simple_rnn_forward(x, self.params["w_ih"], self.params["w_hh"], self.params["b"],
                                     keep_steps=False)
        return last[0]

    def sequence_backward(self, dhs, hidden_grads, need_input_grad):
        dx, self.grads["w_ih"], self.grads["w_hh"], self.grads["b"] = simple_rnn_backward(
            dhs, self.cache, need_input_grad, hidden_grads)
        return dx

    def flops(self, input_shape):
        steps, features = input_shape
        hidden = self.hidden_size
        gemm = 2 * hidden * (features + hidden) + hidden    # x w_ih^T + h w_hh^T + b
        cell = hidden * 2                                   # add the two parts, tanh
        return steps * (gemm + cell)

    @classmethod
    def warm_up(cls, dtype):
        super().warm_up(dtype)
        # the one-step kernels run inside the sequence kernels; compile them for direct callers too
        state = np.zeros((1, 1), dtype)
        step = kernels.rnn_step_forward_fast if dtype == np.float32 else kernels.rnn_step_forward
        step(state, state.copy(), state.copy())
        kernels.rnn_step_backward(state, state.copy(), state.copy())
        blas.gemm(state, state.copy(), state.copy())
        blas.gemm_at_add(state, state.copy(), state.copy())
