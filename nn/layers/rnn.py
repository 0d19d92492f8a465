"""Simple (Elman, tanh) recurrent layer, with backpropagation through time.

x (N, T, D) -> h_T (N, H), or every h_t as (N, T, H) with ``return_sequences``.
Parameters as in PyTorch's nn.RNN: w_ih (H, D), w_hh (H, H), one bias b (H,) (PyTorch's
b_ih + b_hh add up to it).

Forward, for t = 1..T with h_0 = 0:
    a_t = x_t w_ih^T + h_{t-1} w_hh^T + b                          (N, H)
    h_t = tanh(a_t)
The x-part of every a_t is one (T*N, D) @ (D, H) product before the loop.

Backward, for t = T..1, dh_t = dL/dh_t from the output plus da_{t+1} w_hh handed back by step t+1:
    da_t = dh_t * (1 - h_t^2)
    handed to step t-1: da_t w_hh (the recurrent part of dh_{t-1})
and after the loop, in three big products over all timesteps at once:
    dw_ih = sum_t da_t^T x_t,  dw_hh = sum_t da_t^T h_{t-1},  db = sum_t,n da_t,  dx_t = da_t w_ih
"""
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, orthogonal, zeros
from nn.kernels import rnn as kernels
from nn.layers.recurrent import RecurrentLayer


class RNNCache(NamedTuple):
    """What simple_rnn_backward needs from the forward pass."""
    x: np.ndarray       # (T, N, D) the input, time-major
    w_ih: np.ndarray    # (H, D)
    w_hh: np.ndarray    # (H, H)
    hs: np.ndarray      # (T + 1, N, H) h_0 = 0, h_1, ..., h_T


def simple_rnn_forward(x, w_ih, w_hh, b):
    """x (N, T, D), w_ih (H, D), w_hh (H, H), b (H,) -> (hs (T, N, H) every h_t, RNNCache):
        h_t = tanh(x_t w_ih^T + h_{t-1} w_hh^T + b),  h_0 = 0
    """
    n_batch, steps, _ = x.shape
    hidden = w_hh.shape[0]
    x_time_major = np.ascontiguousarray(x.transpose(1, 0, 2))              # (T, N, D)
    pre = x_time_major.reshape(steps * n_batch, -1) @ w_ih.T                # (T*N, H)
    pre += b                                                               # x_t w_ih^T + b
    pre = pre.reshape(steps, n_batch, hidden)
    w_hh_t = np.ascontiguousarray(w_hh.T)                                  # (H, H)
    hs = np.zeros((steps + 1, n_batch, hidden), dtype=x.dtype)             # hs[0] = h_0 = 0
    recurrent = np.empty((n_batch, hidden), dtype=x.dtype)
    for t in range(steps):
        np.matmul(hs[t], w_hh_t, out=recurrent)                            # h_{t-1} w_hh^T
        kernels.rnn_step_forward(pre[t], recurrent, hs[t + 1])             # h_t = tanh(a_t)
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
    da = np.empty((steps, n_batch, hidden), dtype=dhs.dtype)               # (T, N, H)
    dh = np.zeros((n_batch, hidden), dtype=dhs.dtype)
    every_step = dhs.ndim == 3
    if not every_step:
        dh[...] = dhs                                                      # dL/dh_T only
    for t in range(steps - 1, -1, -1):
        if every_step:
            dh += dhs[t]                                                   # + output part
        if hidden_grads is not None:
            hidden_grads[t] = dh
        kernels.rnn_step_backward(dh, hs[t + 1], da[t])                    # da_t = dh_t (1 - h_t^2)
        np.matmul(da[t], w_hh, out=dh)                                     # dh_{t-1} = da_t w_hh
    da2d = da.reshape(steps * n_batch, hidden)
    dw_ih = da2d.T @ x_time_major.reshape(steps * n_batch, -1)            # (H, D)
    dw_hh = da2d.T @ hs[:-1].reshape(steps * n_batch, hidden)             # (H, H)
    db = da2d.sum(axis=0)                                                  # (H,)
    if not need_input_grad:
        return None, dw_ih, dw_hh, db
    dx = (da2d @ w_ih).reshape(steps, n_batch, -1).transpose(1, 0, 2)      # (N, T, D)
    return np.ascontiguousarray(dx), dw_ih, dw_hh, db


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
        state = np.zeros((1, 1), dtype)
        kernels.rnn_step_forward(state, state.copy(), state.copy())
        kernels.rnn_step_backward(state, state.copy(), state.copy())
