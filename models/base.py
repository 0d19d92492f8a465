"""A trained network plus its input convention, and reading/writing it as a weights file."""

from contextlib import nullcontext

import numpy as np

from nn.errors import WeightsError
from nn.flops import network_flops
from nn.layers import Sequential, build_layers
from nn.losses import softmax
from nn.serialize import check_state, read_weights, save_weights
from nn.threads import one_numba_thread

IMAGE_SHAPE = (28, 28)
SERIAL_BELOW = 8  # images; smaller batches run the Numba kernels on one thread


class Model:
    """A named network whose input is a batch of 28x28 images in [0, 1].

    ``to_network_input`` turns images (N, 28, 28) into what the network reads: (N, 1, 28, 28)
    for the CNN, a sequence of 28 rows of 28 pixels (N, T=28, D=28) for the LSTM.
    """

    def __init__(self, name, network: Sequential, options: dict):
        self.name = name
        self.network = network
        self.options = dict(options)

    def to_network_input(self, images):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"expected images of shape (N, 28, 28), got {images.shape}")
        if self.name == "cnn":
            return images[:, None, :, :]
        return images  # LSTM: row t is timestep t

    def logits(self, images, batch_size=1000):
        """(N, 28, 28) -> (N, 10) logits, in inference mode, in chunks to bound memory."""
        x = self.to_network_input(images)
        # A few images: waking worker threads costs more than they save.
        with one_numba_thread() if len(x) < SERIAL_BELOW else nullcontext():
            out = [self.network.forward(x[i:i + batch_size], training=False)
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    def predict_proba(self, images, batch_size=1000):
        """(N, 28, 28) float32 in [0, 1] -> (N, 10) class probabilities."""
        return softmax(self.logits(images, batch_size))

    def predict(self, images, batch_size=1000):
        """(N, 28, 28) -> (N,) predicted digits: the argmax of the raw probabilities."""
        return self.logits(images, batch_size).argmax(axis=1)

    def num_parameters(self):
        return self.network.num_parameters()

    def flops(self):
        """Forward FLOPs per image (see :mod:`nn.flops`)."""
        first = self.to_network_input(np.zeros((1,) + IMAGE_SHAPE, np.float32)).shape[1:]
        return network_flops(self.network, first)[1]

    def summary(self):
        first = self.to_network_input(np.zeros((1,) + IMAGE_SHAPE, np.float32)).shape[1:]
        return self.network.summary(first)

    def save(self, path, extra=None):
        meta = {"model": self.name, "options": self.options,
                "layers": self.network.config()["layers"], "extra": extra or {}}
        save_weights(path, self.network.state(), meta)


def build_model(name, rng=None, **options):
    """A freshly initialised reference model: ``'cnn'`` or ``'lstm'`` (options: ``hidden``)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    rng = rng if rng is not None else np.random.default_rng()
    return Model(name, MODEL_NAMES[name](rng=rng, **options), options)


def load_model(path, expect=None):
    """A ready model from a weights file; ``expect='cnn'`` refuses a file of another model."""
    meta, state = read_weights(path)
    name = meta.get("model")
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise WeightsError(f"{path}: unknown model {name!r} in the weights file")
    if expect is not None and name != expect:
        raise WeightsError(f"{path}: holds the {name.upper()} model's weights, not the {expect.upper()}'s")
    options, extra = meta.get("options", {}), meta.get("extra", {})
    if not isinstance(options, dict) or not isinstance(extra, dict):
        raise WeightsError(f"{path}: malformed header ('options' and 'extra' must be JSON objects)")
    try:
        network = build_layers(meta["layers"], rng=np.random.default_rng(0))
    except (KeyError, TypeError, ValueError, OverflowError, MemoryError) as error:
        # OverflowError/MemoryError: negative or absurd layer sizes in a tampered header
        raise WeightsError(f"{path}: the architecture in the file is invalid ({error})") from None
    check_state(path, state, network.state())
    network.load_state(state)
    model = Model(name, network, options)
    model.extra = extra
    return model


def _register():
    from models.cnn import build_cnn
    from models.lstm import build_lstm
    return {"cnn": build_cnn, "lstm": build_lstm}


MODEL_NAMES = _register()
