"""A stack of layers applied one after another; backward runs them in reverse."""
from nn.layers.base import Layer


class Sequential(Layer):
    def __init__(self, layers):
        super().__init__()
        self.layers = list(layers)

    def forward(self, x, training=False):
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def parameters(self):
        """(key, layer, name) for every trainable array; key is '<layer index>.<name>'."""
        return [(f"{i}.{name}", layer, name)
                for i, layer in enumerate(self.layers) for name in layer.params]

    def state(self):
        """Every array that defines the trained model: parameters and buffers, by key."""
        state = {}
        for i, layer in enumerate(self.layers):
            for name, value in layer.params.items():
                state[f"{i}.{name}"] = value
            for name, value in layer.buffers.items():
                state[f"{i}.{name}"] = value
        return state

    def load_state(self, state):
        """Copy arrays from ``state`` (as returned by :meth:`state`) into the layers, in place."""
        for i, layer in enumerate(self.layers):
            for store in (layer.params, layer.buffers):
                for name in store:
                    store[name][...] = state[f"{i}.{name}"]

    def num_parameters(self):
        return sum(layer.num_parameters() for layer in self.layers)

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def config(self):
        return {"layers": [{"type": type(layer).__name__, **layer.config()} for layer in self.layers]}

    def summary(self, input_shape):
        """A table of layers, output shapes and parameter counts, like Keras' model.summary()."""
        lines = [f"{'layer':<34}{'output shape':<20}{'parameters':>12}"]
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
            lines.append(f"{repr(layer)[:33]:<34}{str(shape):<20}{layer.num_parameters():>12,}")
        lines.append(f"{'total':<54}{self.num_parameters():>12,}")
        return "\n".join(lines)
