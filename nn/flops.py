"""Counting floating-point operations per sample, layer by layer (inference, forward pass).

A multiply-add counts as 2 FLOPs; every other elementwise operation, comparison or
nonlinearity (exp, tanh) as 1.  Each layer counts its own (:meth:`nn.layers.Layer.flops`).
Training costs about three times the forward pass (the backward pass computes two products per
forward product: one for the input gradient, one for the weights), which is the usual estimate
used for throughput in GFLOP/s.
"""


def layer_flops(layer, input_shape):
    """FLOPs of one layer for one sample of ``input_shape`` (no batch axis)."""
    return int(layer.flops(tuple(input_shape)))


def network_flops(network, input_shape):
    """[(layer name, FLOPs)] for one sample, and the total."""
    rows, shape = [], tuple(input_shape)
    for layer in network.layers:
        rows.append((type(layer).__name__, layer_flops(layer, shape)))
        shape = layer.output_shape(shape)
    return rows, sum(f for _, f in rows)
