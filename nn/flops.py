"""Counting floating-point operations per image, layer by layer (inference, forward pass).

A multiply-add counts as 2 FLOPs; every other elementwise operation, comparison or
nonlinearity (exp, tanh) as 1.  Training costs about three times the forward pass (the
backward pass computes two products per forward product: one for the input gradient, one for
the weights), which is the usual estimate used for throughput in GFLOP/s.
"""
import numpy as np

from nn.layers import (LSTM, BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D,
                       Sequential)


def layer_flops(layer, input_shape):
    """FLOPs of one layer for one sample of ``input_shape`` (no batch axis)."""
    output_shape = layer.output_shape(input_shape)
    outputs = int(np.prod(output_shape))
    if isinstance(layer, Conv2D):
        in_channels = input_shape[0]
        return outputs * (2 * in_channels * layer.kernel_size ** 2 + 1)   # products + bias
    if isinstance(layer, Dense):
        return layer.out_features * (2 * layer.in_features + 1)
    if isinstance(layer, MaxPool2D):
        return outputs * (layer.pool_size ** 2 - 1)                     # comparisons
    if isinstance(layer, LeakyReLU):
        return outputs
    if isinstance(layer, BatchNorm):
        return 2 * outputs                                              # scale and shift
    if isinstance(layer, LSTM):
        steps, features = input_shape
        hidden = layer.hidden_size
        gemm = 2 * 4 * hidden * (features + hidden) + 4 * hidden        # x W_ih^T + h W_hh^T + b
        cell = hidden * (4 + 5)                                         # 4 nonlinearities, c, h
        return steps * (gemm + cell)
    if isinstance(layer, (Dropout, Flatten)):
        return 0
    raise TypeError(f"no FLOP count for {type(layer).__name__}")


def network_flops(network: Sequential, input_shape):
    """[(layer name, FLOPs)] for one sample, and the total."""
    rows, shape = [], tuple(input_shape)
    for layer in network.layers:
        rows.append((type(layer).__name__, layer_flops(layer, shape)))
        shape = layer.output_shape(shape)
    return rows, sum(f for _, f in rows)


def model_flops(model):
    """Forward FLOPs per image of a :class:`models.Model`."""
    first = model.to_network_input(np.zeros((1, 28, 28), np.float32)).shape[1:]
    return network_flops(model.network, first)[1]
