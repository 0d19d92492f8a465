"""Layers: each a thin class around a pure forward/backward function pair."""
from nn.layers.activation import LeakyReLU, ReLU
from nn.layers.base import Layer
from nn.layers.batchnorm import BatchNorm
from nn.layers.conv import Conv2D
from nn.layers.dense import Dense, Flatten
from nn.layers.dropout import Dropout
from nn.layers.lstm import LSTM
from nn.layers.pool import MaxPool2D
from nn.layers.sequential import Sequential

LAYER_TYPES = {cls.__name__: cls for cls in
               (Conv2D, MaxPool2D, Dense, Flatten, LeakyReLU, ReLU, Dropout, BatchNorm, LSTM)}


def build_layers(layer_configs, rng=None):
    """Rebuild a Sequential from :meth:`Sequential.config`'s ``layers`` list."""
    layers = []
    for config in layer_configs:
        config = dict(config)
        cls = LAYER_TYPES[config.pop("type")]
        if cls in (Conv2D, Dense, LSTM, Dropout):
            config["rng"] = rng
        layers.append(cls(**config))
    return Sequential(layers)


__all__ = ["Layer", "Conv2D", "MaxPool2D", "Dense", "Flatten", "LeakyReLU", "ReLU", "Dropout",
           "BatchNorm", "LSTM", "Sequential", "LAYER_TYPES", "build_layers"]
