"""PyTorch twins of the kit's networks, generated from the layers' configs: one module for the
oracle tests and the benchmark.

    twin = torch_twin(network)               # a torch.nn.Sequential, our weights copied in
    logits_t = twin(torch.from_numpy(x))     # same layout as our network's input
    twin.gradients()                         # {'0.weight': ndarray, ...}: our parameter keys

A twin is built from what a weights file holds - each layer's ``config()`` (its type and
constructor arguments) and the network's ``state()`` (parameters and buffers by key) - so
:func:`twin_from_config` needs neither ``nn`` nor Numba: the benchmark's PyTorch process builds
its twin from an exported file and never loads our library.  Every layer type of ``nn.layers``
has a twin; a layer of any other class (a user's own, even one named like ours) raises
:class:`NoTwinError` instead of being guessed at.  The fused Conv2D -> activation -> MaxPool2D
step is an execution plan of three layers, so its twin is the three layers' twins.

Correspondences (our layouts are PyTorch's, so weights copy without transposes, float32):
- Conv2D 'same': TensorFlow's padding, on the bottom/right when uneven; for stride 1 and an odd
  kernel that is torch's symmetric ``padding=k // 2``, otherwise an explicit ``F.pad``.
- MaxPool2D 'same': -inf padding, which is torch's ``ceil_mode`` when no padding goes on the
  top/left (2x2 windows); 'valid' is torch's default.
- Dropout: the identity in eval mode; in training mode torch's own dropout, or multiplication by
  given masks (:meth:`NetworkTwin.set_dropout_masks`) so both sides drop the same entries.
- BatchNorm: ``BatchNorm1d`` with our momentum and eps (the same running-average convention).
- LSTM, SimpleRNN: our single bias b is torch's ``bias_ih`` with ``bias_hh = 0``; both receive
  our db.  GRU: both biases as they are (the same r, z, n gates; r multiplies W_hn h + b_hn).
- Bidirectional: torch's ``bidirectional=True`` (the ``_reverse`` weights are our backward copy);
  the last-state output is [h^f_T | h^b_1] as ours.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn as tnn

__all__ = ["NoTwinError", "NetworkTwin", "torch_twin", "twin_from_config", "layer_twin",
           "TWIN_TYPES"]


class NoTwinError(TypeError):
    """A layer that has no PyTorch twin (a type this module does not know)."""


def _tensor(array):
    """A float32 torch copy of ``array`` (bit-exact for float32 input)."""
    return torch.from_numpy(np.array(array, dtype=np.float32, order="C"))


def _load(parameter, array, what):
    if tuple(parameter.shape) != tuple(np.shape(array)):
        raise ValueError(f"{what}: shape {np.shape(array)} does not fit torch's {tuple(parameter.shape)}")
    with torch.no_grad():
        parameter.copy_(_tensor(array))


def same_padding(size, kernel, stride):
    """TensorFlow's 'same' (before, after) padding of one axis: out = ceil(size / stride),
    total = max((out - 1) stride + kernel - size, 0), floor(total / 2) before (nn.layers.conv)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TwinMixin:
    """What every twin module says about itself: which torch tensors stand for which of our
    parameters (each of the list's gradients must equal ours) and buffers."""

    def kit_parameters(self) -> dict:
        return {}

    def kit_buffers(self) -> dict:
        return {}

    def load_kit_state(self, arrays):
        """Copy our arrays (name -> ndarray, the layer's params and buffers) in, as float32."""
        for name, tensors in self.kit_parameters().items():
            _load(tensors[0], arrays[name], name)
            for tied in tensors[1:]:          # a second bias that adds to the first: zero
                with torch.no_grad():
                    tied.zero_()
        for name, tensor in self.kit_buffers().items():
            _load(tensor, arrays[name], name)


class DenseTwin(TwinMixin, tnn.Linear):
    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features)

    def kit_parameters(self):
        return {"weight": [self.weight], "bias": [self.bias]}


class Conv2DTwin(TwinMixin, tnn.Conv2d):
    """Conv2d with our 'same' (TensorFlow's) or 'valid' padding."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding="same",
                 need_input_grad=True):
        symmetric = padding == "same" and stride == 1 and kernel_size % 2 == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=kernel_size // 2 if symmetric else 0)
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same' or 'valid', not {padding!r}")
        self.explicit_same = padding == "same" and not symmetric

    def forward(self, x):
        if self.explicit_same:
            k, s = self.kernel_size[0], self.stride[0]
            top, bottom = same_padding(x.shape[2], k, s)
            left, right = same_padding(x.shape[3], k, s)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)

    def kit_parameters(self):
        return {"weight": [self.weight], "bias": [self.bias]}


class MaxPool2DTwin(TwinMixin, tnn.Module):
    def __init__(self, pool_size=2, stride=None, padding="same"):
        super().__init__()
        self.pool_size, self.stride, self.padding = pool_size, stride or pool_size, padding
        self._padding_of = {}   # (H, W) -> None (torch's ceil mode will do) or F.pad's padding

    @staticmethod
    def _ceil_mode_size(size, kernel, stride):
        """torch's ceil_mode output length (no padding): the last window starts inside."""
        out = math.ceil((size - kernel) / stride) + 1
        return out - 1 if (out - 1) * stride >= size else out

    def _same_padding(self, height, width):
        """None where torch's ceil mode equals our 'same' pooling, else (left, right, top,
        bottom), worked out once per input size (the benchmark times this module)."""
        if (height, width) not in self._padding_of:
            k, s = self.pool_size, self.stride
            (top, bottom), (left, right) = same_padding(height, k, s), same_padding(width, k, s)
            ceil_mode = (top, left) == (0, 0) and all(
                self._ceil_mode_size(size, k, s) == -(-size // s) for size in (height, width))
            self._padding_of[height, width] = None if ceil_mode else (left, right, top, bottom)
        return self._padding_of[height, width]

    def forward(self, x):
        k, s = self.pool_size, self.stride
        if self.padding == "valid":
            return F.max_pool2d(x, k, s)
        padding = self._same_padding(x.shape[2], x.shape[3])
        if padding is None:
            return F.max_pool2d(x, k, s, ceil_mode=True)
        return F.max_pool2d(F.pad(x, padding, value=-math.inf), k, s)


class LeakyReLUTwin(TwinMixin, tnn.LeakyReLU):
    def __init__(self, slope=0.1):
        super().__init__(slope)


class ReLUTwin(TwinMixin, tnn.ReLU):
    pass


class FlattenTwin(TwinMixin, tnn.Flatten):
    pass


class DropoutTwin(TwinMixin, tnn.Dropout):
    """torch's dropout, or in training mode multiplication by ``mask`` when one is set."""

    def __init__(self, rate):
        super().__init__(rate)
        self.mask = None      # (x.shape) 0 or 1 / (1 - rate), our layer's mask

    def forward(self, x):
        if self.training and self.mask is not None:
            return x * self.mask
        return super().forward(x)


class BatchNormTwin(TwinMixin, tnn.BatchNorm1d):
    def __init__(self, num_features, momentum=0.1, eps=1e-5):
        super().__init__(num_features, eps=eps, momentum=momentum)

    def kit_parameters(self):
        return {"gamma": [self.weight], "beta": [self.bias]}

    def kit_buffers(self):
        return {"running_mean": self.running_mean, "running_var": self.running_var}


class RecurrentTwin(TwinMixin):
    """Output and weight names shared by the LSTM, GRU and RNN twins (one or two directions)."""

    single_bias = True     # our b is torch's bias_ih, with bias_hh = 0
    cell_class = None

    def setup(self, return_sequences, bidirectional):
        self.return_sequences = return_sequences
        self.directions = {"forward": "_l0", "backward": "_l0_reverse"} if bidirectional \
            else {"": "_l0"}

    def forward(self, x):
        """x (N, T, D) -> (N, T, dirs * H) with return_sequences, else the last states
        [h^f_T | h^b_1] (N, dirs * H)."""
        out, state = super().forward(x)
        if self.return_sequences:
            return out
        h_n = state[0] if isinstance(state, tuple) else state          # LSTM: (h_n, c_n)
        return h_n[0] if h_n.shape[0] == 1 else torch.cat(list(h_n), dim=1)

    def kit_parameters(self):
        found = {}
        for prefix, suffix in self.directions.items():
            key = f"{prefix}." if prefix else ""

            def weight(name):
                return getattr(self, name + suffix)
            found[key + "w_ih"] = [weight("weight_ih")]
            found[key + "w_hh"] = [weight("weight_hh")]
            if self.single_bias:
                found[key + "b"] = [weight("bias_ih"), weight("bias_hh")]
            else:
                found[key + "b_ih"] = [weight("bias_ih")]
                found[key + "b_hh"] = [weight("bias_hh")]
        return found

    def cells(self):
        """One torch cell per direction, sharing this module's parameters, for unrolling step
        by step (e.g. to read dL/dh_t of every step)."""
        cells = []
        for suffix in self.directions.values():
            cell = self.cell_class(self.input_size, self.hidden_size)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(cell, name, getattr(self, name + suffix))   # the same Parameter
            cells.append(cell)
        return cells


class LSTMTwin(RecurrentTwin, tnn.LSTM):
    cell_class = tnn.LSTMCell

    def __init__(self, input_size, hidden_size, return_sequences=False, need_input_grad=True,
                 bidirectional=False):
        tnn.LSTM.__init__(self, input_size, hidden_size, batch_first=True,
                          bidirectional=bidirectional)
        self.setup(return_sequences, bidirectional)


class SimpleRNNTwin(RecurrentTwin, tnn.RNN):
    cell_class = staticmethod(lambda d, h: tnn.RNNCell(d, h, nonlinearity="tanh"))

    def __init__(self, input_size, hidden_size, return_sequences=False, need_input_grad=True,
                 bidirectional=False):
        tnn.RNN.__init__(self, input_size, hidden_size, nonlinearity="tanh", batch_first=True,
                         bidirectional=bidirectional)
        self.setup(return_sequences, bidirectional)


class GRUTwin(RecurrentTwin, tnn.GRU):
    single_bias = False
    cell_class = tnn.GRUCell

    def __init__(self, input_size, hidden_size, return_sequences=False, need_input_grad=True,
                 bidirectional=False):
        tnn.GRU.__init__(self, input_size, hidden_size, batch_first=True,
                         bidirectional=bidirectional)
        self.setup(return_sequences, bidirectional)


RECURRENT_TWINS = {"LSTM": LSTMTwin, "GRU": GRUTwin, "SimpleRNN": SimpleRNNTwin}


def _bidirectional(layer):
    """Bidirectional({'type': 'GRU', ...}) -> the recurrent twin with bidirectional=True."""
    inner = dict(layer)
    kind = inner.pop("type", None)
    if kind not in RECURRENT_TWINS:
        raise NoTwinError(f"no PyTorch twin for Bidirectional({kind}): it wraps LSTM, GRU or "
                          "SimpleRNN")
    return RECURRENT_TWINS[kind](**inner, bidirectional=True)


# our layer type -> build(**config) -> twin module
TWIN_TYPES = {
    "Conv2D": Conv2DTwin, "MaxPool2D": MaxPool2DTwin, "Dense": DenseTwin, "Flatten": FlattenTwin,
    "LeakyReLU": LeakyReLUTwin, "ReLU": ReLUTwin, "Dropout": DropoutTwin,
    "BatchNorm": BatchNormTwin, **RECURRENT_TWINS, "Bidirectional": _bidirectional,
}


def layer_twin(config, arrays=None):
    """The twin of one layer from its config {'type': ..., **arguments}, with ``arrays`` (the
    layer's params and buffers by name) copied in when given."""
    config = dict(config)
    kind = config.pop("type", None)
    build = TWIN_TYPES.get(kind)
    if build is None:
        raise NoTwinError(f"no PyTorch twin for layer type {kind!r}; twins exist for "
                          f"{', '.join(sorted(TWIN_TYPES))}")
    try:
        module = build(**config)
    except TypeError as error:   # a config this twin does not understand
        raise NoTwinError(f"cannot build the PyTorch twin of {kind}({config}): {error}") from None
    if arrays is not None:
        expected = set(module.kit_parameters()) | set(module.kit_buffers())
        if set(arrays) != expected:
            raise ValueError(f"{kind}: arrays {sorted(arrays)} do not match the twin's "
                             f"{sorted(expected)}")
        module.load_kit_state(arrays)
    return module


class NetworkTwin(tnn.Sequential):
    """The twin of a Sequential: module i stands for our layer i, keys '<i>.<name>' as ours."""

    def _twins(self):
        return list(enumerate(self))

    def parameter_map(self):
        """{our parameter key: [torch parameters whose gradient must equal ours]}."""
        return {f"{i}.{name}": tensors for i, module in self._twins()
                for name, tensors in module.kit_parameters().items()}

    def gradients(self):
        """{our parameter key: the twin's gradient as a NumPy array} after a backward pass."""
        return {key: tensors[0].grad.detach().numpy() if tensors[0].grad is not None else None
                for key, tensors in self.parameter_map().items()}

    def buffers_by_key(self):
        """{our buffer key: the twin's value as a NumPy array} (BatchNorm's running statistics)."""
        return {f"{i}.{name}": tensor.detach().numpy() for i, module in self._twins()
                for name, tensor in module.kit_buffers().items()}

    def dropouts(self):
        return [module for module in self if isinstance(module, DropoutTwin)]

    def set_dropout_masks(self, masks):
        """Training mode multiplies by these masks (one per Dropout, in order; None: torch's own
        dropout again), so that both sides drop the same entries."""
        dropouts = self.dropouts()
        masks = [None] * len(dropouts) if masks is None else list(masks)
        if len(masks) != len(dropouts):
            raise ValueError(f"{len(masks)} masks for {len(dropouts)} Dropout layers")
        for module, mask in zip(dropouts, masks):
            module.mask = None if mask is None else torch.from_numpy(np.asarray(mask))


def twin_from_config(layer_configs, state):
    """A :class:`NetworkTwin` from a Sequential's ``config()['layers']`` and its ``state()``
    (parameters and buffers by key '<layer index>.<name>'), all float32."""
    modules, used = [], set()
    for i, config in enumerate(layer_configs):
        probe = layer_twin(config)
        names = list(probe.kit_parameters()) + list(probe.kit_buffers())
        arrays = {}
        for name in names:
            key = f"{i}.{name}"
            if key not in state:
                raise ValueError(f"the state has no {key!r} for layer {i} ({config.get('type')})")
            arrays[name] = state[key]
            used.add(key)
        probe.load_kit_state(arrays)
        modules.append(probe)
    extra = set(state) - used
    if extra:
        raise ValueError(f"the state has arrays no layer uses: {sorted(extra)}")
    return NetworkTwin(*modules)


def _check_kit_layer(layer):
    """A layer must be the library's own class: a user's class named like one of ours would
    otherwise get the twin of a different computation."""
    cls = type(layer)
    if cls.__name__ not in TWIN_TYPES or not cls.__module__.startswith("nn.layers."):
        raise NoTwinError(f"no PyTorch twin for {cls.__module__}.{cls.__qualname__}: twins exist "
                          f"for the nn.layers types {', '.join(sorted(TWIN_TYPES))}")
    inner = getattr(layer, "forward_layer", None)     # Bidirectional: the wrapped layer too
    if inner is not None:
        _check_kit_layer(inner)


def _layers_of(network):
    """The layers a network runs: a Sequential's, a fused step's three, or one layer."""
    if hasattr(network, "layers"):
        return list(network.layers)
    if all(hasattr(network, name) for name in ("conv", "activation", "pool")):   # fused step
        return [network.conv, network.activation, network.pool]
    return [network]


def torch_twin(network):
    """The twin of a Sequential, a fused Conv2D -> activation -> MaxPool2D step, or a single
    layer (then a one-module NetworkTwin: keys '0.<name>'), with its current weights."""
    layers = _layers_of(network)
    for layer in layers:
        _check_kit_layer(layer)
    configs = [{"type": type(layer).__name__, **layer.config()} for layer in layers]
    state = {f"{i}.{name}": value for i, layer in enumerate(layers)
             for store in (layer.params, layer.buffers) for name, value in store.items()}
    return twin_from_config(configs, state)
