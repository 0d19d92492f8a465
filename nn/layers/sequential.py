"""A stack of layers applied one after another; backward runs them in reverse.

With ``fuse=True`` (the default) each Conv2D -> LeakyReLU -> MaxPool2D run is executed as one
fused step (:mod:`nn.layers.fused`), and each Dense -> LeakyReLU/ReLU pair as another
(:class:`nn.layers.dense.DenseActivation`); the layers, their parameters and gradients stay
the same.
"""
import numpy as np

from nn.init import is_placeholder
from nn.layers.base import Layer
from nn.layers.dense import DenseActivation, can_fuse_dense, dense_stack, dense_stack_infer, takes_blocks
from nn.layers.fused import ConvActivationPool, can_fuse
from nn.layers.registry import type_name


class Sequential(Layer):
    def __init__(self, layers, fuse=True):
        super().__init__()
        self.layers = list(layers)
        self.fuse = fuse
        self._plan = None
        self._plan_key = None

    def steps(self):
        """The execution plan: the layers, with fusable runs replaced by one fused step."""
        key = (self.fuse, tuple(map(id, self.layers)))
        if self._plan_key != key:
            plan, i = [], 0
            while i < len(self.layers):
                run = self.layers[i:i + 3]
                if self.fuse and len(run) == 3 and can_fuse(run):
                    plan.append(ConvActivationPool(*run))
                    i += 3
                elif self.fuse and len(run) >= 2 and can_fuse_dense(run[:2]):
                    plan.append(DenseActivation(*run[:2]))
                    i += 2
                else:
                    plan.append(self.layers[i])
                    i += 1
            self._plan, self._plan_key = plan, key
        return self._plan

    def forward(self, x, training=False):
        for step in self.steps():
            x = step.forward(x, training)
        return x

    def infer(self, x):
        """Prediction only (see Layer.infer): no backward may follow.  A stack of dense layers
        (an MLP) may take a large batch block by block (:func:`nn.layers.dense.dense_stack_infer`)."""
        steps = self.steps()
        stack = dense_stack(steps) if takes_blocks(x) else None
        y = dense_stack_infer(stack, x) if stack is not None else None
        if y is not None:
            return y
        for step in steps:
            x = step.infer(x)
        return x

    def backward(self, dout, need_input_grad=None):
        """dout (N, ...) the gradient of forward's output -> dL/dx (N, ...), or None where the
        first layer skips its input gradient.

        ``need_input_grad`` decides for this call only, the layers are not changed: True returns
        dL/dx even where layers were built to skip it (a saliency map's d/d image: each such
        layer computes its input gradient); False lets the first layer skip it; None keeps every
        layer's own setting.
        """
        steps = self.steps()
        for position in range(len(steps) - 1, -1, -1):
            step = steps[position]
            if need_input_grad is None or not hasattr(step, "need_input_grad"):
                dout = step.backward(dout)     # a layer without the setting returns dL/dx
            elif need_input_grad or position == 0:
                dout = step.backward(dout, need_input_grad=need_input_grad)
            else:
                dout = step.backward(dout)
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
        """Copy arrays from ``state`` (as returned by :meth:`state`) into the layers, in place.

        A placeholder of a network built under :func:`nn.init.shapes_only` is replaced by a
        copy of the array instead (it has no memory to copy into).
        """
        for i, layer in enumerate(self.layers):
            for store in (layer.params, layer.buffers):
                for name in store:
                    value = state[f"{i}.{name}"]
                    if is_placeholder(store[name]):
                        order = "F" if name in layer.column_major else "C"
                        store[name] = np.array(value, dtype=store[name].dtype, order=order)
                    else:
                        store[name][...] = value

    def num_parameters(self):
        return sum(layer.num_parameters() for layer in self.layers)

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def config(self):
        return {"layers": [{"type": type_name(type(layer)), **layer.config()} for layer in self.layers]}

    def summary(self, input_shape):
        """A table of layers, output shapes and parameter counts, like Keras' model.summary()."""
        lines = [f"{'layer':<34}{'output shape':<20}{'parameters':>12}"]
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
            lines.append(f"{repr(layer)[:33]:<34}{str(shape):<20}{layer.num_parameters():>12,}")
        lines.append(f"{'total':<54}{self.num_parameters():>12,}")
        return "\n".join(lines)
