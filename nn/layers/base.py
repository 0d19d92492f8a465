"""The contract every layer keeps, and the one place a layer declares what the library needs.

``forward(x, training)`` computes the output and caches what ``backward`` needs;
``backward(dout)`` returns dL/dx and *assigns* (never accumulates) dL/dparam into ``grads``, so a
second call gives the same answer.  ``params`` and ``grads`` share keys; running statistics that
are saved but not trained live in ``buffers``.

A layer that can skip its input gradient (built with ``need_input_grad=False``, as a first layer
is) also takes ``backward(dout, need_input_grad=True)``: that one call computes dL/dx anyway,
without changing the layer (saliency maps need the image's gradient).

A new layer is one subclass, and the class itself tells the rest of the library about it:
- defining the class registers it by module and name (:mod:`nn.layers.registry`), so a weights
  file whose header names it can be rebuilt (:func:`nn.layers.build_layers`); a class that has
  the name of a library layer (a user's own ``Dense``) is kept apart under its module's name;
- ``uses_rng = True`` if its constructor takes ``rng`` (initial weights, dropout masks);
- ``flops(input_shape)``: forward FLOPs for one sample (:mod:`nn.flops`);
- ``warm_up(dtype)``: run its Numba kernels once on tiny arrays (:mod:`nn.warmup`).
"""
import numpy as np

from nn.layers import registry


class Layer:
    uses_rng = False      # True: the constructor takes rng=np.random.Generator
    # Parameters kept column-major (Fortran order) in memory, for faster products (Dense's
    # weight); a loaded network gets them so too.  Values, shapes and files are the same either way.
    column_major = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("abstract", False):   # a shared base is no layer of its own
            registry.register(cls)

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.cache = None

    def forward(self, x, training=False):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def infer(self, x):
        """Forward pass for prediction only: no backward follows, so a layer may skip what only
        backward needs (the LSTM keeps no per-step state).  By default forward(x, False)."""
        return self.forward(x, training=False)

    def config(self) -> dict:
        """The constructor arguments, JSON-serialisable, so the layer can be rebuilt from a file."""
        return {}

    def output_shape(self, input_shape):
        """Shape of one sample's output given one sample's input shape (no batch axis)."""
        return input_shape

    def flops(self, input_shape) -> int:
        """Forward-pass FLOPs for one sample (a multiply-add counts 2); 0 for pure data movement."""
        return 0

    @classmethod
    def warm_up(cls, dtype) -> None:
        """Call every Numba kernel the layer uses once, on tiny arrays of ``dtype``."""

    def num_parameters(self) -> int:
        return sum(p.size for p in self.params.values())

    def __call__(self, x, training=False):
        return self.forward(x, training)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"
