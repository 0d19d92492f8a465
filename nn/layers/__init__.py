"""Layers: each a thin class around a pure forward/backward function pair."""
from nn.layers import registry
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
from nn.layers.registry import layer_class, type_name
from nn.layers.rnn import SimpleRNN
from nn.layers.sequential import Sequential

# The library's own layers by bare name.  Every layer class, the user's too, is in
# nn.layers.registry.classes by module and name.
LAYER_TYPES = registry.library_types


def build_layers(layer_configs, rng=None):
    """Rebuild a Sequential from :meth:`Sequential.config`'s ``layers`` list.

    Each config's ``"type"`` is a name :func:`nn.layers.registry.layer_class` resolves: a
    library layer's bare name ("Dense" is always the library's), a user layer's bare name if no
    other layer has it, or a qualified name ("__main__.Dense").
    """
    layers = []
    for index, config in enumerate(layer_configs):
        config = dict(config)
        name = config.pop("type")
        cls = layer_class(name)
        if cls is Sequential:   # a container, not something a weights header may name
            raise ValueError(f"unknown layer type {name!r}")
        if cls.uses_rng:
            config["rng"] = rng
        try:
            layers.append(cls(**config))
        except TypeError as error:   # say which class the name meant: "Dense" is the library's
            raise TypeError(f"layer {index}, {name!r} = {registry.qualified_name(cls)}: "
                            f"{error}") from None
    return Sequential(layers)


__all__ = ["Layer", "Conv2D", "MaxPool2D", "Dense", "Flatten", "LeakyReLU", "ReLU", "Dropout",
           "BatchNorm", "LSTM", "SimpleRNN", "GRU", "Bidirectional", "Sequential", "LAYER_TYPES",
           "build_layers", "layer_class", "type_name"]
