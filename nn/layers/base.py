"""The contract every layer keeps.

``forward(x, training)`` computes the output and caches what ``backward`` needs;
``backward(dout)`` returns dL/dx and *assigns* (never accumulates) dL/dparam into ``grads``, so a
second call gives the same answer.  ``params`` and ``grads`` share keys; running statistics that
are saved but not trained live in ``buffers``.
"""
import numpy as np


class Layer:
    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.cache = None

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable, so the layer can be rebuilt from a file."""
        return {}

    def output_shape(self, input_shape):
        """Shape of one sample's output given one sample's input shape (no batch axis)."""
        return input_shape

    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def __call__(self, x, training=False):
        return self.forward(x, training)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
