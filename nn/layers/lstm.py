"""Long short-term memory over a sequence, with backpropagation through time.

x (N, T, D) -> h_T (N, H), or every h_t as (N, T, H) with ``return_sequences``.
Parameters as in PyTorch: w_ih (4H, D), w_hh (4H, H), one bias b (4H,) (Keras' single bias;
PyTorch's b_ih + b_hh add up to it).  Gate order i, f, g, o along the 4H axis.

Forward, for t = 1..T with h_0 = c_0 = 0:
    a_t = x_t w_ih^T + h_{t-1} w_hh^T + b                          (N, 4H)
    i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
The batch is cut into blocks of rows that run through all T steps in parallel, each step's two
products and gate math on one thread (nn.kernels.lstm.lstm_sequence_forward; prediction's
blocks of 32 rows with the batch on the last axis, lstm_sequence_predict).

Backward, for t = T..1, dh_t = dL/dh_t from the output plus da_{t+1} w_hh handed back by step t+1:
    da_t = lstm_step_backward(...)  (see nn.kernels.lstm for the gate derivatives)
    handed to step t-1: da_t w_hh (part of dh_{t-1}) and dc_t * f_t (part of dc_{t-1})
and at every step, on the same thread, the step's share of
    dw_ih = sum_t da_t^T x_t,  dw_hh = sum_t da_t^T h_{t-1},  db = sum_t,n da_t,  dx_t = da_t w_ih
"""
from typing import NamedTuple

import numba
import numpy as np

from nn.init import constant_blocks, glorot_uniform, orthogonal
from nn.kernels import blas
from nn.kernels import lstm as kernels
from nn.layers.recurrent import ROWS_PER_BLOCK, RecurrentLayer, sequence_threads


class LSTMCache(NamedTuple):
    """What lstm_backward needs from the forward pass."""
    x: np.ndarray       # (T, N, D) the input, time-major
    w_ih: np.ndarray    # (4H, D)
    w_hh: np.ndarray    # (4H, H)
    gates: np.ndarray   # (T, N, 4H) the activations [i | f | g | o] of every step
    hs: np.ndarray      # (T + 1, N, H) h_0 = 0, h_1, ..., h_T
    cs: np.ndarray      # (T + 1, N, H) c_0 = 0, c_1, ..., c_T
    tanh_cs: np.ndarray  # (T, N, H) tanh(c_t), reused by backward


def lstm_forward(x, w_ih, w_hh, b, keep_steps=True):
    """x (N, T, D), w_ih (4H, D), w_hh (4H, H), b (4H,) -> (hs (T, N, H) every h_t, LSTMCache),
    or with ``keep_steps=False`` (prediction only: no backward) (h_T as (1, N, H), None),
    from h_0 = c_0 = 0:
        a_t = x_t w_ih^T + h_{t-1} w_hh^T + b,   i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
        c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)
    """
    n_batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    dtype = np.result_type(x.dtype, w_ih.dtype, w_hh.dtype)   # BLAS needs one type for all
    x = np.ascontiguousarray(x, dtype=dtype)                               # (N, T, D)
    b = b.astype(dtype, copy=False)
    fast = dtype == np.float32    # float32: the vectorised approximate tanh (error ~3e-7)
    if not keep_steps:
        return _last_state(x, w_ih, w_hh, b, fast)[None], None
    w_ih_t = np.ascontiguousarray(w_ih.T, dtype=dtype)                     # (D, 4H)
    w_hh_t = np.ascontiguousarray(w_hh.T, dtype=dtype)                     # (H, 4H)
    gates = np.empty((steps, n_batch, 4 * hidden), dtype=dtype)
    hs = np.zeros((steps + 1, n_batch, hidden), dtype=dtype)               # hs[0] = h_0 = 0
    cs = np.zeros((steps + 1, n_batch, hidden), dtype=dtype)               # cs[0] = c_0 = 0
    tanh_cs = np.empty((steps, n_batch, hidden), dtype=dtype)
    # All T steps in one compiled call; float64 (gradient checks) uses the exact libm tanh.
    with sequence_threads(n_batch, ROWS_PER_BLOCK):
        kernels.lstm_sequence_forward(x, w_ih_t, b, w_hh_t, gates, hs, cs, tanh_cs,
                                      ROWS_PER_BLOCK, fast)
    x_time_major = np.ascontiguousarray(x.transpose(1, 0, 2))             # (T, N, D), for backward
    return hs[1:], LSTMCache(x_time_major, w_ih, w_hh, gates, hs, cs, tanh_cs)


def _last_state(x, w_ih, w_hh, b, fast):
    """h_T (N, H) alone, for prediction: the same bits as lstm_forward's.  Blocks of
    FEATURE_MAJOR_ROWS rows run in lstm_sequence_predict (batch on the last axis, faster there);
    the rest (one image, the tail of a batch) in lstm_sequence_forward, whose steps then take
    turns in one slot of gates and two of h and c (the index is t mod the length)."""
    n_batch, steps, _ = x.shape
    hidden, dtype = w_hh.shape[1], x.dtype
    h_last = np.empty((n_batch, hidden), dtype=dtype)
    full = n_batch - n_batch % kernels.FEATURE_MAJOR_ROWS
    if full:
        with sequence_threads(full, kernels.FEATURE_MAJOR_ROWS):
            kernels.lstm_sequence_predict(x[:full], np.ascontiguousarray(w_ih, dtype=dtype), b,
                                          np.ascontiguousarray(w_hh, dtype=dtype), h_last[:full],
                                          fast)
    if full < n_batch:
        rest = n_batch - full
        hs = np.zeros((2, rest, hidden), dtype=dtype)                          # h_0 = c_0 = 0
        cs = np.zeros((2, rest, hidden), dtype=dtype)
        rows_per_block = _prediction_block_rows(rest)
        with sequence_threads(rest, rows_per_block):
            kernels.lstm_sequence_forward(
                x[full:], np.ascontiguousarray(w_ih.T, dtype=dtype), b,
                np.ascontiguousarray(w_hh.T, dtype=dtype),
                np.empty((1, rest, 4 * hidden), dtype=dtype), hs, cs,
                np.empty((1, rest, hidden), dtype=dtype), rows_per_block, fast)
        h_last[full:] = hs[steps % 2]
    return h_last


# From this many rows, prediction's batch-major rows are shared among the threads.
SHARED_FROM = 8


def _prediction_block_rows(n_batch):
    """Rows per block for predicting ``n_batch`` rows batch-major: ROWS_PER_BLOCK, or one block
    per Numba thread for a small batch (from SHARED_FROM rows).  h_T is the same bits for any
    block size, since a row's steps never read another row (training keeps blocks that depend
    on N alone: its weight gradients are summed block by block).  Measured (AMD EPYC Zen 5, 2
    threads, 2026-12-07, means of 0.4 s): batch 8 52 - 53 us as two blocks against 83 - 84 as
    one, batch 16 88 - 94 against 150 - 151, batch 24 130 - 139 against 221 - 224."""
    threads = numba.get_num_threads()
    if threads < 2 or n_batch < SHARED_FROM:
        return ROWS_PER_BLOCK
    return max(1, min(ROWS_PER_BLOCK, -(-n_batch // threads)))


def lstm_backward(dhs, cache, need_input_grad=True, hidden_grads=None):
    """dhs: dL/dh_t from the output, (T, N, H) for every step, or (N, H) for the last step only.

    hidden_grads: optional (T, N, H) array that receives the total dL/dh_t of every step (from
    the output and from step t+1).
    Returns (dx (N, T, D) or None, dw_ih (4H, D), dw_hh (4H, H), db (4H,)); dx is skipped when
    the input needs no gradient.  With da_t the gate gradients of nn.kernels.lstm_step_backward:
        dw_ih = sum_t da_t^T x_t,  dw_hh = sum_t da_t^T h_{t-1},  db = sum_t,n da_t,  dx_t = da_t w_ih
    """
    x_time_major, w_ih, w_hh, gates, hs, cs, tanh_cs = cache
    steps, n_batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    features = x_time_major.shape[2]
    dtype = gates.dtype            # the forward pass's type: BLAS needs one for all
    dhs = np.ascontiguousarray(dhs, dtype=dtype)
    dgates = np.empty_like(gates)                                          # (T, N, 4H)
    dh = np.zeros((n_batch, hidden), dtype=dtype)                          # dL/dh_t, then scratch
    dc = np.zeros((n_batch, hidden), dtype=dtype)
    if dhs.ndim == 2:
        dh[...] = dhs                                                      # dL/dh_T only
        dhs = np.empty((0, n_batch, hidden), dtype=dtype)                  # "not given"
    dx = np.empty((steps if need_input_grad else 0, n_batch, features), dtype=dtype)
    if hidden_grads is None:
        hidden_grads = np.empty((0, n_batch, hidden), dtype=dtype)
    blocks = -(-n_batch // ROWS_PER_BLOCK)
    dw_ih = np.zeros((blocks, 4 * hidden, features), dtype=dtype)         # one share per block
    dw_hh = np.zeros((blocks, 4 * hidden, hidden), dtype=dtype)
    db = np.zeros((blocks, 4 * hidden), dtype=dtype)
    with sequence_threads(n_batch, ROWS_PER_BLOCK):
        kernels.lstm_sequence_backward(dhs, dh, dc, x_time_major, hs, cs, tanh_cs, gates,
                                       np.ascontiguousarray(w_ih, dtype=dtype),
                                       np.ascontiguousarray(w_hh, dtype=dtype), dgates, dx,
                                       hidden_grads, dw_ih, dw_hh, db, ROWS_PER_BLOCK)
    # the blocks' shares, summed in block order (the same for any thread count)
    dw_ih, dw_hh, db = dw_ih.sum(axis=0), dw_hh.sum(axis=0), db.sum(axis=0)
    if not need_input_grad:
        return None, dw_ih, dw_hh, db
    return np.ascontiguousarray(dx.transpose(1, 0, 2)), dw_ih, dw_hh, db                 # (N, T, D)


class LSTM(RecurrentLayer):
    """LSTM layer: Glorot-uniform w_ih, orthogonal w_hh, zero bias but forget gate 1 (Keras).

    Parameters
    ----------
    input_size, hidden_size : int
    return_sequences : bool
        False: output the last hidden state (N, H).  True: every hidden state (N, T, H).
    need_input_grad : bool
        False for a first layer, whose input gradient nobody uses: backward then skips the
        (N*T, 4H) @ (4H, D) product and returns None.
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
        # Keras draws its (D, 4H) kernel with fan_in = D, fan_out = 4H; the transpose is ours.
        self.params["w_ih"] = glorot_uniform(rng, (4 * h, input_size), input_size, 4 * h, dtype)
        # Keras' recurrent kernel (H, 4H) is orthogonal: orthonormal rows, i.e. our columns.
        self.params["w_hh"] = orthogonal(rng, 4 * h, h, dtype=dtype)
        # [i | f | g | o] biases 0, 1, 0, 0: forget-gate bias 1, remember by default
        # (Jozefowicz et al., 2015)
        self.params["b"] = constant_blocks([0.0, 1.0, 0.0, 0.0], h, dtype)

    def sequence_forward(self, x):
        return lstm_forward(x, self.params["w_ih"], self.params["w_hh"], self.params["b"])

    def infer(self, x):
        """Prediction only (no backward may follow): h_T without keeping every step's state."""
        if self.return_sequences:
            return self.forward(x, training=False)
        last, _ = lstm_forward(x, self.params["w_ih"], self.params["w_hh"], self.params["b"],
                               keep_steps=False)
        return last[0]

    def sequence_backward(self, dhs, hidden_grads, need_input_grad):
        dx, self.grads["w_ih"], self.grads["w_hh"], self.grads["b"] = lstm_backward(
            dhs, self.cache, need_input_grad, hidden_grads)
        return dx

    def flops(self, input_shape):
        steps, features = input_shape
        hidden = self.hidden_size
        gemm = 2 * 4 * hidden * (features + hidden) + 4 * hidden        # x W_ih^T + h W_hh^T + b
        cell = hidden * (4 + 5)                                         # 4 nonlinearities, c, h
        return steps * (gemm + cell)

    @classmethod
    def warm_up(cls, dtype):
        super().warm_up(dtype)
        # the one-step kernels run inside the sequence kernels; compile them for direct callers too
        gates, state = np.zeros((1, 4), dtype), np.zeros((1, 1), dtype)
        step = kernels.lstm_step_forward_fast if dtype == np.float32 else kernels.lstm_step_forward
        step(gates, gates.copy(), state, state.copy(), state.copy(), state.copy())
        # prediction: its kernel for blocks of 32 rows (a smaller batch runs the forward one)
        cls(2, 1, rng=np.random.default_rng(0), dtype=dtype).infer(
            np.zeros((kernels.FEATURE_MAJOR_ROWS, 2, 2), dtype))
        kernels.lstm_step_backward(state.copy(), state.copy(), gates, state, state, gates.copy())
        blas.gemm(state, gates, gates.copy())
        blas.gemm_at_add(state, gates, gates.copy())
