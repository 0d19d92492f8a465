"""Compile, or load from Numba's on-disk cache, every kernel before anything is timed or shown.

The first call of a Numba function for a given argument type compiles it (seconds) or, with a
warm cache, loads the machine code (milliseconds).  ``warm_up()`` pays that once, on tiny arrays,
for every kernel the library uses - each layer class runs its own (``Layer.warm_up``), then the
fused conv block, the optimizers and the loss - so the first training step, benchmark repeat or
prediction runs at full speed.
"""
import time

import numpy as np

from nn import optim
from nn.layers import registry
from nn.layers.fused import ConvActivationPool
from nn.losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward


def _warm_up_loss(dtype):
    """The softmax cross-entropy's kernels (nn.kernels.losses), through the loss's functions
    (not a SoftmaxCrossEntropy object, whose calls a program may be counting)."""
    _, cache = softmax_cross_entropy_forward(np.zeros((2, 3), dtype), np.array([0, 2]))
    softmax_cross_entropy_backward(cache)


def warm_up(dtypes=(np.float32,), extra=()):
    """Run every kernel once per dtype (and each ``extra(dtype)``); returns the seconds it took."""
    start = time.perf_counter()
    for dtype in dtypes:
        for layer_type in list(registry.classes.values()):   # the library's and the user's
            layer_type.warm_up(dtype)
        ConvActivationPool.warm_up(dtype)
        optim.warm_up(dtype)
        _warm_up_loss(dtype)
        for warm in extra:
            warm(dtype)
    return time.perf_counter() - start
