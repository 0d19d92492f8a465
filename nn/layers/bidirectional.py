"""Bidirectional wrapper: one recurrent layer reads the sequence forwards, a second (its own
weights) reads it backwards, and their outputs are concatenated (PyTorch's bidirectional=True).

x (N, T, D) -> [h^f_T | h^b_1] (N, 2H), or [h^f_t | h^b_t] for every t as (N, T, 2H).

The backward copy runs on the time-reversed input x_T, ..., x_1, so its last state h^b_1 is the
one after reading x_1, and its sequence output is re-reversed so that position t holds the state
that has read x_T, ..., x_t.  Backward: the two halves of dout go to the two copies (the
backward copy's half reversed in time the same way), and dx = dx^f + reverse(dx^b), since x
feeds both copies.

Parameters, gradients and buffers are those of the copies under the prefixes ``forward.`` and
``backward.`` (e.g. "forward.w_ih", "backward.w_ih"), in views that read and write the copies'
own dicts, so Sequential.state()/load_state and the optimizers need nothing special.
"""
from collections.abc import MutableMapping

import numpy as np

from nn.layers.base import Layer
from nn.layers.registry import layer_class, type_name


class PrefixedDicts(MutableMapping):
    """A live view of several dicts as one, key '<prefix>.<name>' -> dicts[prefix][name]."""

    def __init__(self, dicts):
        self.dicts = dicts                                   # prefix -> dict

    def _split(self, key):
        prefix, _, name = key.partition(".")
        if prefix not in self.dicts or not name:
            raise KeyError(key)
        return self.dicts[prefix], name

    def __getitem__(self, key):
        store, name = self._split(key)
        return store[name]

    def __setitem__(self, key, value):
        store, name = self._split(key)
        store[name] = value

    def __delitem__(self, key):
        store, name = self._split(key)
        del store[name]

    def __iter__(self):
        return (f"{prefix}.{name}" for prefix, store in self.dicts.items() for name in store)

    def __len__(self):
        return sum(len(store) for store in self.dicts.values())


class Bidirectional(Layer):
    """Wrap a recurrent layer (LSTM, SimpleRNN, GRU) to read the sequence in both directions.

    Parameters
    ----------
    layer : Layer or dict
        The forward-direction layer, or its config {"type": "GRU", "input_size": ..., ...} (the
        form :meth:`config` writes).  The backward-direction copy is built from the same config
        with fresh weights drawn from ``rng``.  ``return_sequences`` and ``need_input_grad``
        are the wrapped layer's.
    rng : np.random.Generator, optional
        Draws the weights of the copies built here.

    Attributes
    ----------
    forward_layer, backward_layer : Layer

    Per call, as the wrapped layers offer: ``forward(x, training, return_sequences=True)``,
    ``backward(dout, need_input_grad=True)`` and ``backward_with_hidden_grads(dout)``, whose
    hidden gradients are (T, N, 2H), [dL/dh^f_t | dL/dh^b_t] aligned with time like the
    sequence output.
    """
    uses_rng = True

    def __init__(self, layer, rng=None, dtype=None):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        if isinstance(layer, dict):
            layer = self._build(layer, rng, dtype)
        if dtype is None:
            dtype = next(iter(layer.params.values())).dtype
        self.forward_layer = layer
        self.backward_layer = self._build({"type": type_name(type(layer)), **layer.config()},
                                          rng, dtype)
        self.sequence_output = None  # whether the last forward pass returned every step
        layers = {"forward": self.forward_layer, "backward": self.backward_layer}
        self.params = PrefixedDicts({k: v.params for k, v in layers.items()})
        self.grads = PrefixedDicts({k: v.grads for k, v in layers.items()})
        self.buffers = PrefixedDicts({k: v.buffers for k, v in layers.items()})

    @staticmethod
    def _build(config, rng, dtype):
        config = dict(config)
        cls = layer_class(config.pop("type"))
        if dtype is not None:
            config["dtype"] = dtype
        return cls(**config, rng=rng)

    @property
    def hidden_size(self):
        return self.forward_layer.hidden_size

    @property
    def return_sequences(self):
        return self.forward_layer.return_sequences

    @property
    def need_input_grad(self):
        return self.forward_layer.need_input_grad

    def forward(self, x, training=False, return_sequences=None):
        """x (N, T, D) -> (N, 2H), or (N, T, 2H) with return_sequences (None: the wrapped
        layer's setting, for this call only)."""
        if return_sequences is None:
            return_sequences = self.return_sequences
        self.sequence_output = bool(return_sequences)
        y_f = self.forward_layer.forward(x, training, return_sequences)    # (N, H) or (N, T, H)
        y_b = self.backward_layer.forward(x[:, ::-1], training, return_sequences)  # x_T..x_1
        if return_sequences:
            y_b = y_b[:, ::-1]                                             # re-align with time
        return np.concatenate([y_f, y_b], axis=-1)                         # (N, 2H) or (N, T, 2H)

    def infer(self, x):
        """Prediction only (no backward may follow): each copy's own inference path, which for
        a last-state output keeps no per-step state."""
        if self.return_sequences:
            return self.forward(x, training=False)
        return np.concatenate([self.forward_layer.infer(x),
                               self.backward_layer.infer(x[:, ::-1])], axis=-1)   # (N, 2H)

    def _halves(self, dout):
        """dout (N, 2H) or (N, T, 2H) -> the two copies' upstream gradients, in reading order."""
        hidden = self.hidden_size
        d_f, d_b = dout[..., :hidden], dout[..., hidden:]
        if self.sequence_output:
            d_b = d_b[:, ::-1]                                             # into reading order
        return np.ascontiguousarray(d_f), np.ascontiguousarray(d_b)

    def backward(self, dout, need_input_grad=None):
        """dout as the last forward returned -> dx (N, T, D), or None if the input gradient is
        skipped (``need_input_grad``: None for the wrapped layer's setting)."""
        d_f, d_b = self._halves(dout)
        dx_f = self.forward_layer.backward(d_f, need_input_grad)
        dx_b = self.backward_layer.backward(d_b, need_input_grad)
        return self._input_gradient(dx_f, dx_b)

    def backward_with_hidden_grads(self, dout, need_input_grad=None):
        """:meth:`backward`, also returning hidden_grads (T, N, 2H): [dL/dh^f_t | dL/dh^b_t]."""
        d_f, d_b = self._halves(dout)
        dx_f, hidden_f = self.forward_layer.backward_with_hidden_grads(d_f, need_input_grad)
        dx_b, hidden_b = self.backward_layer.backward_with_hidden_grads(d_b, need_input_grad)
        hidden_grads = np.concatenate([hidden_f, hidden_b[::-1]], axis=2)  # aligned with time
        return self._input_gradient(dx_f, dx_b), hidden_grads

    @staticmethod
    def _input_gradient(dx_f, dx_b):
        if dx_f is None:
            return None
        return dx_f + dx_b[:, ::-1]                                        # x feeds both copies

    def output_shape(self, input_shape):
        *rest, hidden = self.forward_layer.output_shape(input_shape)
        return (*rest, 2 * hidden)

    def flops(self, input_shape):
        return self.forward_layer.flops(input_shape) + self.backward_layer.flops(input_shape)

    def config(self):
        return {"layer": {"type": type_name(type(self.forward_layer)), **self.forward_layer.config()}}

    def __repr__(self):
        return f"Bidirectional({self.forward_layer!r})"
