"""Compile, or load from Numba's on-disk cache, every kernel before anything is timed or shown.

The first call of a Numba function for a given argument type compiles it (seconds) or, with a
warm cache, loads the machine code (milliseconds).  ``warm_up()`` pays that once, on tiny arrays,
for every kernel the library uses, so the first training step, benchmark repeat or prediction
in draw.py runs at full speed.
"""
import time

import numpy as np

from nn.kernels import affine, conv, fused, lstm, optim, pool


def warm_up(dtypes=(np.float32,)):
    """Run every kernel once per dtype; returns the seconds it took."""
    start = time.perf_counter()
    for dtype in dtypes:
        x = np.ones((1, 1, 3, 3), dtype=dtype)
        col = conv.im2col(x, 3, 3, 1, 1, 1, 3, 3)
        conv.col2im(col, 1, 1, 3, 3, 3, 3, 1, 1, 1, 3, 3)
        y = conv.gemm_to_nchw(col[:1], np.zeros(1, dtype), 1)
        conv.nchw_to_gemm(y)
        pooled, argmax = pool.maxpool_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
        pool.maxpool_backward(pooled, argmax, 3, 3)
        slope = dtype(0.1)
        pooled, argmax = fused.bias_leaky_maxpool_forward(col[:1], np.zeros(1, dtype), slope, 1, 3, 3,
                                                          2, 2, 0, 0, 2, 2)
        fused.bias_leaky_maxpool_backward(pooled, pooled, argmax, slope, 3, 3)
        fused.bias_leaky_maxpool2x2_forward(np.ones((1, 4), dtype), np.zeros(1, dtype), slope, 1, 2, 2)
        gates, state = np.zeros((1, 4), dtype), np.zeros((1, 1), dtype)
        step = lstm.lstm_step_forward_fast if dtype == np.float32 else lstm.lstm_step_forward
        step(gates, gates.copy(), state, state.copy(), state.copy(), state.copy())
        lstm.lstm_step_backward(state.copy(), state.copy(), gates, state, state, gates.copy())
        affine.affine_warp(np.zeros((1, 2, 2), dtype), np.zeros((1, 2, 3), dtype))
        ones = np.ones(2, dtype)
        for update in (optim.adam_update, optim.adam_update_parallel):
            update(ones.copy(), ones, ones.copy(), ones.copy(), 0.9, 0.999, 1e-3, 1.0, 1e-8)
    return time.perf_counter() - start
