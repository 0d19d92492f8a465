"""Gated recurrent unit over a sequence, with backpropagation through time (PyTorch's GRU).

x (N, T, D) -> h_T (N, H), or every h_t as (N, T, H) with ``return_sequences``.
Parameters exactly as PyTorch's nn.GRU: w_ih (3H, D), w_hh (3H, H) and TWO biases b_ih (3H,),
b_hh (3H,); gate order r, z, n along the 3H axis.  Two biases, because the reset gate multiplies
the recurrent part *including* b_hn, so b_in and b_hn are not interchangeable.

Forward, for t = 1..T with h_0 = 0 (gx_t = x_t w_ih^T + b_ih, gh_t = h_{t-1} w_hh^T + b_hh):
    r_t = sigmoid(gx_r + gh_r),  z_t = sigmoid(gx_z + gh_z)
    n_t = tanh(gx_n + r_t * gh_n)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}
Every gx_t is one (T*N, D) @ (D, 3H) product before the loop; only gh_t waits for h_{t-1}.

Backward, for t = T..1, dh_t = dL/dh_t from the output plus what step t+1 hands back:
    da_n = dh_t (1 - z)(1 - n^2),  da_z = dh_t (h_{t-1} - n) z(1 - z),  da_r = da_n gh_n r(1 - r)
    dgx_t = [da_r | da_z | da_n],   dgh_t = [da_r | da_z | da_n * r]
    handed to step t-1: dh_t * z + dgh_t w_hh
and after the loop, over all timesteps at once:
    dw_ih = sum_t dgx_t^T x_t,  db_ih = sum_t,n dgx_t,  dx_t = dgx_t w_ih
    dw_hh = sum_t dgh_t^T h_{t-1},  db_hh = sum_t,n dgh_t
"""
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, orthogonal, zeros
from nn.kernels import gru as kernels
from nn.layers.recurrent import RecurrentLayer


class GRUCache(NamedTuple):
    """What gru_backward needs from the forward pass."""
    x: np.ndarray       # (T, N, D) the input, time-major
    w_ih: np.ndarray    # (3H, D)
    w_hh: np.ndarray    # (3H, H)
    gates: np.ndarray   # (T, N, 3H) the activations [r | z | n] of every step
    hn: np.ndarray      # (T, N, H) h_{t-1} w_hn^T + b_hn, what the reset gate multiplied
    hs: np.ndarray      # (T + 1, N, H) h_0 = 0, h_1, ..., h_T


def gru_forward(x, w_ih, w_hh, b_ih, b_hh):
    """x (N, T, D), w_ih (3H, D), w_hh (3H, H), b_ih (3H,), b_hh (3H,)
    -> (hs (T, N, H) every h_t, GRUCache), step by step from h_0 = 0:
        r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z),  n = tanh(gx_n + r gh_n)
        h_t = (1 - z) n + z h_{t-1}      (gx = x_t w_ih^T + b_ih, gh = h_{t-1} w_hh^T + b_hh)
    """
    n_batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    x_time_major = np.ascontiguousarray(x.transpose(1, 0, 2))              # (T, N, D)
    gates = x_time_major.reshape(steps * n_batch, -1) @ w_ih.T             # (T*N, 3H)
    gates += b_ih                                                          # gx = x w_ih^T + b_ih
    gates = gates.reshape(steps, n_batch, 3 * hidden)
    w_hh_t = np.ascontiguousarray(w_hh.T)                                  # (H, 3H)
    hs = np.zeros((steps + 1, n_batch, hidden), dtype=x.dtype)             # hs[0] = h_0 = 0
    hn = np.empty((steps, n_batch, hidden), dtype=x.dtype)
    recurrent = np.empty((n_batch, 3 * hidden), dtype=x.dtype)
    for t in range(steps):
        np.matmul(hs[t], w_hh_t, out=recurrent)                            # h_{t-1} w_hh^T
        # r, z, n and h_t = (1 - z) n + z h_{t-1}; gh = recurrent + b_hh is added in the kernel
        kernels.gru_step_forward(gates[t], recurrent, b_hh, hs[t], hn[t], hs[t + 1])
    return hs[1:], GRUCache(x_time_major, w_ih, w_hh, gates, hn, hs)


def gru_backward(dhs, cache, need_input_grad=True, hidden_grads=None):
    """dhs: dL/dh_t from the output, (T, N, H) for every step, or (N, H) for the last step only.

    hidden_grads: optional (T, N, H) array that receives the total dL/dh_t of every step.
    Returns (dx (N, T, D) or None, dw_ih (3H, D), dw_hh (3H, H), db_ih (3H,), db_hh (3H,)):
        dw_ih = sum_t dgx_t^T x_t,  dw_hh = sum_t dgh_t^T h_{t-1},  dx_t = dgx_t w_ih
    with the per-step dgx_t, dgh_t of the module docstring.
    """
    x_time_major, w_ih, w_hh, gates, hn, hs = cache
    steps, n_batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    dgx = np.empty_like(gates, dtype=dhs.dtype)                            # (T, N, 3H)
    dgh = np.empty_like(gates, dtype=dhs.dtype)                            # (T, N, 3H)
    dh = np.zeros((n_batch, hidden), dtype=dhs.dtype)
    through_w_hh = np.empty((n_batch, hidden), dtype=dhs.dtype)
    every_step = dhs.ndim == 3
    if not every_step:
        dh[...] = dhs                                                      # dL/dh_T only
    for t in range(steps - 1, -1, -1):
        if every_step:
            dh += dhs[t]                                                   # + output part
        if hidden_grads is not None:
            hidden_grads[t] = dh
        kernels.gru_step_backward(dh, gates[t], hs[t], hn[t], dgx[t], dgh[t])  # dh <- dh * z
        np.matmul(dgh[t], w_hh, out=through_w_hh)
        dh += through_w_hh                                  # dh_{t-1} = dh_t z + dgh_t w_hh
    dgx2d = dgx.reshape(steps * n_batch, 3 * hidden)
    dgh2d = dgh.reshape(steps * n_batch, 3 * hidden)
    dw_ih = dgx2d.T @ x_time_major.reshape(steps * n_batch, -1)           # (3H, D)
    dw_hh = dgh2d.T @ hs[:-1].reshape(steps * n_batch, hidden)            # (3H, H)
    db_ih = dgx2d.sum(axis=0)                                              # (3H,)
    db_hh = dgh2d.sum(axis=0)                                              # (3H,)
    if not need_input_grad:
        return None, dw_ih, dw_hh, db_ih, db_hh
    dx = (dgx2d @ w_ih).reshape(steps, n_batch, -1).transpose(1, 0, 2)     # (N, T, D)
    return np.ascontiguousarray(dx), dw_ih, dw_hh, db_ih, db_hh


class GRU(RecurrentLayer):
    """GRU layer in PyTorch's convention: Glorot-uniform w_ih, orthogonal w_hh, zero biases
    (Keras' GRU defaults; Keras' reset_after=True is this same cell, with gate order z, r, h).

    Parameters
    ----------
    input_size, hidden_size : int
    return_sequences : bool
        False: output the last hidden state (N, H).  True: every hidden state (N, T, H).
    need_input_grad : bool
        False for a first layer: backward skips the (N*T, 3H) @ (3H, D) product and returns None.
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
        # Keras draws its (D, 3H) kernel with fan_in = D, fan_out = 3H; the transpose is ours.
        self.params["w_ih"] = glorot_uniform(rng, (3 * h, input_size), input_size, 3 * h, dtype)
        self.params["w_hh"] = orthogonal(rng, 3 * h, h, dtype=dtype)
        self.params["b_ih"] = zeros(3 * h, dtype)
        self.params["b_hh"] = zeros(3 * h, dtype)

    def sequence_forward(self, x):
        p = self.params
        return gru_forward(x, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"])

    def sequence_backward(self, dhs, hidden_grads, need_input_grad):
        g = self.grads
        dx, g["w_ih"], g["w_hh"], g["b_ih"], g["b_hh"] = gru_backward(
            dhs, self.cache, need_input_grad, hidden_grads)
        return dx

    def flops(self, input_shape):
        steps, features = input_shape
        hidden = self.hidden_size
        gemm = 2 * 3 * hidden * (features + hidden) + 2 * 3 * hidden   # both products, both biases
        cell = hidden * (3 + 3 + 5)     # 3 pre-activation adds, 3 nonlinearities, r*gh_n, h_t
        return steps * (gemm + cell)

    @classmethod
    def warm_up(cls, dtype):
        gates, state, bias = np.zeros((1, 3), dtype), np.zeros((1, 1), dtype), np.zeros(3, dtype)
        kernels.gru_step_forward(gates, gates.copy(), bias, state, state.copy(), state.copy())
        kernels.gru_step_backward(state.copy(), gates, state, state.copy(), gates.copy(),
                                  gates.copy())
