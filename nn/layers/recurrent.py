"""What every recurrent layer shares: last state or whole sequence, and the hidden-state gradients.

A recurrent layer (LSTM, GRU, SimpleRNN) supplies its pure pair as two methods:
    sequence_forward(x)                                   -> hs (T, N, H) every hidden state, cache
    sequence_backward(dhs, hidden_grads, need_input_grad) -> dx or None, assigning self.grads
where dhs is dL/dh_t for every step (T, N, H) or for the last step only (N, H), and
hidden_grads is None or a (T, N, H) array to fill with the total dL/dh_t of every step.
This class turns them into the Layer contract:
    forward(x, training)  x (N, T, D) -> h_T (N, H), or every h_t as (N, T, H) with
                          ``return_sequences``
    backward(dout)        dout (N, H) or (N, T, H), as forward returned -> dx (N, T, D) or None
and offers, per call and without changing the layer (its settings are the constructor's):
    forward(x, training, return_sequences=True)   every hidden state from a last-state layer
    backward(dout, need_input_grad=True)          dx from a layer built to skip it
    backward_with_hidden_grads(dout)              (dx, hidden_grads (T, N, H)): every dL/dh_t
"""
from contextlib import contextmanager, nullcontext

import numpy as np

from nn.layers.base import Layer
from nn.threads import blas_threads, one_numba_thread


# Batch rows per block of a compiled recurrence (nn.kernels.lstm.lstm_sequence_forward, and the
# GRU's and SimpleRNN's): blocks run in parallel, each through every step.  Measured, LSTM
# training step forward + backward, batch 64 / 256, medians of 200: 1 thread 3.1 / 13.3 ms with
# blocks of 32, 3.3 / 13.9 ms with 64, 3.3 / 13.0 ms with one block; 2 threads 2.6 / 8.6 ms,
# 3.6 / 8.8 ms, 3.6 / 12.4 ms.  A constant, so results do not depend on the thread count (they
# do not depend on the block size either: the rows never mix, and tests/test_recurrent.py and
# tests/test_sequence_kernels.py check it bit for bit).
ROWS_PER_BLOCK = 32


@contextmanager
def sequence_threads(n_batch, rows_per_block):
    """The threads of a compiled recurrence over ``n_batch`` rows in blocks of
    ``rows_per_block``: BLAS on one thread (each Numba thread multiplies its own rows: see
    nn.kernels.blas), and Numba's kernel on the calling thread alone when the batch is a single
    block, which no second thread could share.  Measured, the LSTM's prediction at batch 16
    with 2 threads set (AMD EPYC Zen 5, 2026-12-06, means of 0.5 s in turns): 157 - 177 us
    on one thread, 159 - 239 waking the second."""
    with blas_threads(1), (one_numba_thread() if n_batch <= rows_per_block else nullcontext()):
        yield


class RecurrentLayer(Layer):
    """Base of LSTM, GRU and SimpleRNN (not a layer of its own: ``abstract``)."""

    abstract = True
    uses_rng = True

    def __init__(self, input_size, hidden_size, return_sequences=False, need_input_grad=True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.return_sequences = return_sequences
        self.need_input_grad = need_input_grad
        self.steps = None            # T of the last forward pass
        self.sequence_output = None  # whether the last forward pass returned every step

    def sequence_forward(self, x):
        raise NotImplementedError

    def sequence_backward(self, dhs, hidden_grads, need_input_grad):
        raise NotImplementedError

    def forward(self, x, training=False, return_sequences=None):
        """x (N, T, D) -> h_T (N, H), or every h_t (N, T, H).

        ``return_sequences`` chooses for this call (None: the layer's own setting); backward
        then expects the gradient of what this call returned.
        """
        if return_sequences is None:
            return_sequences = self.return_sequences
        hs, self.cache = self.sequence_forward(x)                          # (T, N, H)
        self.steps, self.sequence_output = hs.shape[0], bool(return_sequences)
        if return_sequences:
            return np.ascontiguousarray(hs.transpose(1, 0, 2))
        return hs[-1].copy()

    def backward(self, dout, need_input_grad=None):
        """dout (N, H) or (N, T, H), as the last forward returned -> dx (N, T, D).

        ``need_input_grad`` chooses for this call (None: the layer's own setting); dx is None
        when it is False.
        """
        return self._backward(dout, need_input_grad, hidden_grads=None)

    def backward_with_hidden_grads(self, dout, need_input_grad=None):
        """:meth:`backward`, also returning every step's total dL/dh_t.

        Returns
        -------
        dx : numpy.ndarray or None
            (N, T, D), as :meth:`backward` returns it.
        hidden_grads : numpy.ndarray
            (T, N, H): hidden_grads[t] = dL/dh_t, the output's part plus what step t+1 hands
            back through w_hh.
        """
        hidden_grads = np.empty((self.steps, dout.shape[0], self.hidden_size), dtype=dout.dtype)
        dx = self._backward(dout, need_input_grad, hidden_grads)
        return dx, hidden_grads

    def _backward(self, dout, need_input_grad, hidden_grads):
        if need_input_grad is None:
            need_input_grad = self.need_input_grad
        # every step's gradient (N, T, H) -> (T, N, H), or the last step's alone (N, H)
        dhs = np.ascontiguousarray(dout.transpose(1, 0, 2)) if self.sequence_output else dout
        return self.sequence_backward(dhs, hidden_grads, need_input_grad)

    def output_shape(self, input_shape):
        steps, _ = input_shape
        return (steps, self.hidden_size) if self.return_sequences else (self.hidden_size,)

    @classmethod
    def warm_up(cls, dtype):
        """Compile or load the kernels: a forward and backward pass of a tiny layer."""
        layer = cls(2, 1, rng=np.random.default_rng(0), dtype=dtype)
        for return_sequences in (True, False):
            out = layer.forward(np.zeros((1, 2, 2), dtype), training=True,
                                return_sequences=return_sequences)
            layer.backward(np.ones_like(out))

    def config(self):
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    return_sequences=self.return_sequences, need_input_grad=self.need_input_grad)
