"""Layers: each a thin class around a pure forward/backward function pair."""
from nn.layers.activation import LeakyReLU, ReLU
from nn.layers.base import Layer
from nn.layers.batchnorm import BatchNorm
from nn.layers.bidirectional import Bidirectional
from nn.layers.conv import Conv2D
from nn.layers.dense import Dense, Flatten
from nn.layers.dropout import Dropout
from nn.layers.gru import GRU
from nn.layers.lstm import LSTM
from nn.layers.pool import MaxPool2D
from nn.layers.rnn import SimpleRNN
from nn.layers.sequential import Sequential

# Every Layer subclass defined so far, by name (a layer defined elsewhere joins when its module
# is imported).  Sequential is a container, not something a weights header may name.
LAYER_TYPES = Layer.types


def build_layers(layer_configs, rng=None):
    """Rebuild a Sequential from :meth:`Sequential.config`'s ``layers`` list."""
    layers = []
    for config in layer_configs:
        config = dict(config)
        name = config.pop("type")
        cls = LAYER_TYPES.get(name) if name != "Sequential" else None
        if cls is None:
            raise ValueError(f"unknown layer type {name!r}")
        if cls.uses_rng:
            config["rng"] = rng
        layers.append(cls(**config))
    return Sequential(layers)


__all__ = ["Layer", "Conv2D", "MaxPool2D", "Dense", "Flatten", "LeakyReLU", "ReLU", "Dropout",
           "BatchNorm", "LSTM", "SimpleRNN", "GRU", "Bidirectional", "Sequential", "LAYER_TYPES",
           "build_layers"]
