"""Gated recurrent unit over a sequence, with backpropagation through time (PyTorch's GRU).

x (N, T, D) -> h_T (N, H), or every h_t as (N, T, H) with ``return_sequences``.
Parameters exactly as PyTorch's nn.GRU: w_ih (3H, D), w_hh (3H, H) and TWO biases b_ih (3H,),
b_hh (3H,); gate order r, z, n along the 3H axis.  Two biases, because the reset gate multiplies
the recurrent part *including* b_hn, so b_in and b_hn are not interchangeable.

Forward, for t = 1..T with h_0 = 0 (gx_t = x_t w_ih^T + b_ih, gh_t = h_{t-1} w_hh^T + b_hh):
    r_t = sigmoid(gx_r + gh_r),  z_t = sigmoid(gx_z + gh_z)
    n_t = tanh(gx_n + r_t * gh_n)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}
The batch is cut into blocks of rows that run through all T steps in parallel, each step's two
products and gate math on one thread (nn.kernels.gru.gru_sequence_forward).

Backward, for t = T..1, dh_t = dL/dh_t from the output plus what step t+1 hands back:
    da_n = dh_t (1 - z)(1 - n^2),  da_z = dh_t (h_{t-1} - n) z(1 - z),  da_r = da_n gh_n r(1 - r)
    dgx_t = [da_r | da_z | da_n],   dgh_t = [da_r | da_z | da_n * r]
    handed to step t-1: dh_t * z + dgh_t w_hh
and at every step, on the same thread, the step's share of
    dw_ih = sum_t dgx_t^T x_t,  db_ih = sum_t,n dgx_t,  dx_t = dgx_t w_ih
    dw_hh = sum_t dgh_t^T h_{t-1},  db_hh = sum_t,n dgh_t
"""
from typing import NamedTuple

import numpy as np

from nn.init import glorot_uniform, orthogonal, zeros
from nn.kernels import blas
from nn.kernels import gru as kernels
from nn.layers.recurrent import ROWS_PER_BLOCK, RecurrentLayer, sequence_threads


class GRUCache(NamedTuple):
    """What gru_backward needs from the forward pass."""
    x: np.ndarray       # (T, N, D) the input, time-major
    w_ih: np.ndarray    # (3H, D)
    w_hh: np.ndarray    # (3H, H)
    gates: np.ndarray   # (T, N, 3H) the activations [r | z | n] of every step
    hn: np.ndarray      # (T, N, H) h_{t-1} w_hn^T + b_hn, what the reset gate multiplied
    hs: np.ndarray      # (T + 1, N, H) h_0 = 0, h_1, ..., h_T


def gru_forward(x, w_ih, w_hh, b_ih, b_hh, keep_steps=True):
    """x (N, T, D), w_ih (3H, D), w_hh (3H, H), b_ih (3H,), b_hh (3H,)
    -> (hs (T, N, H) every h_t, GRUCache), or with ``keep_steps=False`` (prediction only: no
    backward) (h_T as (1, N, H), None), from h_0 = 0:
        r, z = sigmoid(gx_r + gh_r), sigmoid(gx_z + gh_z),  n = tanh(gx_n + r gh_n)
        h_t = (1 - z) n + z h_{t-1}      (gx = x_t w_ih^T + b_ih, gh = h_{t-1} w_hh^T + b_hh)
    """
    n_batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = np.result_type(x.dtype, w_ih.dtype, w_hh.dtype)   # BLAS needs one type for all
    x_time_major = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype)  # (T, N, D)
    w_ih_t = np.ascontiguousarray(w_ih.T, dtype=dtype)                     # (D, 3H)
    w_hh_t = np.ascontiguousarray(w_hh.T, dtype=dtype)                     # (H, 3H)
    kept = steps if keep_steps else 1          # without backward, the steps take turns in
    slots = steps + 1 if keep_steps else 2     # one slot of gates and hn and two of h
    gates = np.empty((kept, n_batch, 3 * hidden), dtype=dtype)
    hn = np.empty((kept, n_batch, hidden), dtype=dtype)
    hs = np.zeros((slots, n_batch, hidden), dtype=dtype)                   # hs[0] = h_0 = 0
    recurrent = np.empty((n_batch, 3 * hidden), dtype=dtype)
    # All T steps in one compiled call; float32 uses the vectorised approximate tanh (error
    # ~3e-7), float64 (gradient checks) the exact libm one.
    with sequence_threads(n_batch, ROWS_PER_BLOCK):
        kernels.gru_sequence_forward(x_time_major, w_ih_t, b_ih.astype(dtype, copy=False), w_hh_t,
                                     b_hh.astype(dtype, copy=False), gates, hn, hs, recurrent,
                                     ROWS_PER_BLOCK, dtype == np.float32)
    if not keep_steps:
        return hs[steps % 2][None], None
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
    features = x_time_major.shape[2]
    dtype = gates.dtype            # the forward pass's type: BLAS needs one for all
    dhs = np.ascontiguousarray(dhs, dtype=dtype)
    dh = np.zeros((n_batch, hidden), dtype=dtype)                          # dL/dh_t, then scratch
    if dhs.ndim == 2:
        dh[...] = dhs                                                      # dL/dh_T only
        dhs = np.empty((0, n_batch, hidden), dtype=dtype)                  # "not given"
    dgx = np.empty((n_batch, 3 * hidden), dtype=dtype)                     # one step's, scratch
    dgh = np.empty((n_batch, 3 * hidden), dtype=dtype)
    through_w_hh = np.empty((n_batch, hidden), dtype=dtype)
    dx = np.empty((steps if need_input_grad else 0, n_batch, features), dtype=dtype)
    if hidden_grads is None:
        hidden_grads = np.empty((0, n_batch, hidden), dtype=dtype)
    blocks = -(-n_batch // ROWS_PER_BLOCK)
    dw_ih = np.zeros((blocks, 3 * hidden, features), dtype=dtype)         # one share per block
    dw_hh = np.zeros((blocks, 3 * hidden, hidden), dtype=dtype)
    db_ih = np.zeros((blocks, 3 * hidden), dtype=dtype)
    db_hh = np.zeros((blocks, 3 * hidden), dtype=dtype)
    with sequence_threads(n_batch, ROWS_PER_BLOCK):
        kernels.gru_sequence_backward(dhs, dh, x_time_major, hs, gates, hn,
                                      np.ascontiguousarray(w_ih, dtype=dtype),
                                      np.ascontiguousarray(w_hh, dtype=dtype), dgx, dgh,
                                      through_w_hh, dx, hidden_grads, dw_ih, dw_hh, db_ih, db_hh,
                                      ROWS_PER_BLOCK)
    # the blocks' shares, summed in block order (the same for any thread count)
    dw_ih, dw_hh, db_ih, db_hh = (a.sum(axis=0) for a in (dw_ih, dw_hh, db_ih, db_hh))
    if not need_input_grad:
        return None, dw_ih, dw_hh, db_ih, db_hh
    return np.ascontiguousarray(dx.transpose(1, 0, 2)), dw_ih, dw_hh, db_ih, db_hh      # (N, T, D)


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

    def infer(self, x):
        """Prediction only (no backward may follow): h_T without keeping every step's state."""
        if self.return_sequences:
            return self.forward(x, training=False)
        p = self.params
        last, _ = gru_forward(x, p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], keep_steps=False)
        return last[0]

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
        super().warm_up(dtype)
        # the one-step kernels run inside the sequence kernels; compile them for direct callers too
        gates, state, bias = np.zeros((1, 3), dtype), np.zeros((1, 1), dtype), np.zeros(3, dtype)
        step = kernels.gru_step_forward_fast if dtype == np.float32 else kernels.gru_step_forward
        step(gates, gates.copy(), bias, state, state.copy(), state.copy())
        kernels.gru_step_backward(state.copy(), gates, state, state.copy(), gates.copy(),
                                  gates.copy())
        blas.gemm(state, gates, gates.copy())
        blas.gemm_at_add(state, gates, gates.copy())
