"""Compile, or load from Numba's on-disk cache, the kernels a program runs before anything is timed.

The first call of a Numba function for a given argument type compiles it (seconds) or, with a
warm cache, loads the machine code (milliseconds).  ``warm_up()`` pays that once, on tiny arrays,
for every kernel the library uses - each layer class runs its own (``Layer.warm_up``), then the
fused conv block, the optimizers and the loss - so the first training step, benchmark repeat or
prediction runs at full speed.  ``warm_up(network=net)`` does it for the layer kinds ``net``
contains only (training one model need not compile the others' kernels: an MLP's first run
compiled the LSTM's too).
"""
import time

import numpy as np

from nn import optim
from nn.kernels import blas, finite
from nn.layers import registry
from nn.layers.base import Layer
from nn.layers.conv import Conv2D
from nn.layers.fused import ConvActivationPool
from nn.losses import softmax, softmax_cross_entropy_backward, softmax_cross_entropy_forward


def _warm_up_loss(dtype):
    """The softmax cross-entropy's kernels (nn.kernels.losses), through the loss's functions
    (not a SoftmaxCrossEntropy object, whose calls a program may be counting)."""
    _, cache = softmax_cross_entropy_forward(np.zeros((2, 3), dtype), np.array([0, 2]))
    softmax_cross_entropy_backward(cache)
    softmax(np.zeros((2, 3), dtype))


def _warm_up_checks(dtype):
    """The finiteness checks a prediction runs on its images (nn.finite), both kernels."""
    x = np.zeros((2, 3), dtype)
    finite.all_finite(x)
    finite.all_finite_blocks(x, 2)


def _warm_up_products(dtype):
    """The BLAS products callable from kernels (nn.kernels.blas), called directly as the tests
    and a user's own kernels may: a kernel loaded from the cache does not compile its callees."""
    a = np.ones((2, 2), dtype)
    blas.gemm(a, a, a.copy())
    blas.gemm_at_add(a, a, a.copy())
    blas.gemm_general(a, a, a.copy(), True, True, False)


def layer_types(network):
    """The classes of ``network`` and of every layer inside it (Sequential's layers, a
    Bidirectional's two directions, ...), found through the attributes holding layers."""
    found, stack = set(), [network]
    while stack:
        layer = stack.pop()
        if type(layer) in found:
            continue
        found.add(type(layer))
        for value in vars(layer).values():
            inner = value if isinstance(value, (list, tuple)) else [value]
            stack.extend(item for item in inner if isinstance(item, Layer))
    return found


# Seconds to compile, from an empty cache, what warm_up(network=...) runs for one layer kind in
# float32 (forward, backward; Conv2D: with the fused block and pooling; a recurrent kind: with
# the BatchNorm before it); BASE_SECONDS: the optimizers', the loss's, the products' and the
# augmentation's kernels.  Only the one line's estimate uses them.  From the seconds a first
# training run compiles on a quiet machine (`python bench/first_run.py --runs 3`, a 2-core AMD
# EPYC Zen 5 VM, 2026-12-07 04:19 UTC: mlp 4.7 - 5.3, rnn 6.3 - 7.1, gru 7.2 - 8.0, lstm 10.9 -
# 11.1, cnn 26.0 - 29.2); the old figures (CPU seconds of a loaded machine, halved) said 0.4 -
# 0.9 of that.
COMPILE_SECONDS = {"Conv2D": 22.6, "LSTM": 7.0, "GRU": 3.6, "SimpleRNN": 2.7, "Dropout": 1.0}
BASE_SECONDS = 4.0


def compile_seconds(network=None):
    """The estimated seconds :func:`warm_up` takes with an empty Numba cache (float32)."""
    kinds = registry.classes.values() if network is None else layer_types(network)
    return BASE_SECONDS + sum(COMPILE_SECONDS.get(kind.__name__, 0.0) for kind in kinds)


def warm_up(dtypes=(np.float32,), extra=(), network=None):
    """Run every kernel once per dtype (and each ``extra(dtype)``); returns the seconds it took.

    ``network``: only the kernels of the layer kinds in it (the fused conv block if it has a
    convolution), and the optimizers'; by default every registered layer class's.
    """
    start = time.perf_counter()
    kinds = list(registry.classes.values()) if network is None else \
        [kind for kind in layer_types(network) if hasattr(kind, "warm_up")]
    for dtype in dtypes:
        for layer_type in kinds:           # the library's and the user's
            layer_type.warm_up(dtype)
        if network is None or Conv2D in kinds:
            ConvActivationPool.warm_up(dtype)
        optim.warm_up(dtype)
        _warm_up_loss(dtype)
        _warm_up_checks(dtype)
        _warm_up_products(dtype)
        for warm in extra:
            warm(dtype)
    return time.perf_counter() - start
