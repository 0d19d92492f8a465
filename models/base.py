"""A trained network plus its input convention, and reading/writing it as a weights file.

    model = load_model("cnn")                    # a shipped model, by name, from any folder
    model = load_model("runs/my-cnn.npz")        # a weights file
    probabilities = model.predict_proba(images)  # images: float32 (N, H, W) in [0, 1]
"""
import json
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from models import registry
from models.registry import REPOSITORY_WEIGHTS, shipped_weights  # noqa: F401  (models.shipped_weights)
from nn.errors import UserError, WeightsError
from nn.finite import all_finite
from nn.flops import network_flops
from nn.layers import Sequential, build_layers
from nn.layers.registry import canonical_name
from nn.losses import softmax
from nn.init import shapes_only
from nn.serialize import WeightsArchive, check_state, save_weights, weights_header
from nn.threads import one_numba_thread

IMAGE_SHAPE = (28, 28)   # MNIST's, the default for a model built without data
SERIAL_BELOW = 8         # images; smaller batches run the Numba kernels on one thread
HEADER_KEY = "cnn-vs-lstm-numpy"  # the safetensors metadata entry holding our JSON header


class ImageError(UserError, ValueError):
    """Images a model cannot read: wrong shape, wrong type (uint8 0..255), NaN or infinite."""


class Model:
    """A named network whose input is a batch of images (N, H, W), float, in [0, 1].

    ``to_network_input`` turns them into what the network reads, as the model's file declares:
    (N, 1, 28, 28) for the CNN, a sequence of 28 rows of 28 pixels (N, T=28, D=28) for the
    recurrent models, 784 pixels for the MLP.
    """

    def __init__(self, spec, network: Sequential, options: dict, num_classes=10, image_shape=IMAGE_SHAPE):
        self.spec = spec
        self.network = network
        self.options = dict(options)
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(side) for side in image_shape)
        self.extra = {}

    @property
    def name(self):
        return self.spec.name

    @property
    def title(self):
        return self.spec.title

    def check_images(self, images):
        """``images`` as float32 (N, H, W), or :class:`ImageError` naming what is wrong.

        uint8 pixels (0..255) are refused rather than silently read as 255 times too bright:
        divide by 255 first.  One (H, W) image is taken as a batch of one.
        """
        images = np.asarray(images)
        if images.dtype == np.uint8 or not (np.issubdtype(images.dtype, np.floating)
                                            or images.dtype == np.bool_):
            raise ImageError(f"expected float images in [0, 1], got {images.dtype} "
                             "(for uint8 pixels 0..255, pass images / 255)")
        height, width = self.image_shape
        if images.ndim == 2 and images.shape == self.image_shape:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != self.image_shape:
            raise ImageError(f"expected images of shape (N, {height}, {width}) or ({height}, {width}), "
                             f"got {images.shape}")
        images = images.astype(np.float32, copy=False)
        if not all_finite(images):
            raise ImageError("the images contain NaN or infinite values")
        return images

    def to_network_input(self, images):
        return self.spec.to_input(self.check_images(images))

    def logits(self, images, batch_size=1000):
        """(N, H, W) -> (N, classes) logits, in inference mode, in chunks to bound memory."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        x = self.to_network_input(images)
        # A few images: waking worker threads costs more than they save.
        with one_numba_thread() if len(x) < SERIAL_BELOW else nullcontext():
            out = [self.network.infer(x[i:i + batch_size])
                   for i in range(0, len(x), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.num_classes), np.float32)

    def predict_proba(self, images, batch_size=1000):
        """(N, H, W) float in [0, 1] -> (N, classes) class probabilities."""
        return softmax(self.logits(images, batch_size))

    def predict(self, images, batch_size=1000):
        """(N, H, W) -> (N,) predicted classes: the argmax of the raw probabilities."""
        return self.logits(images, batch_size).argmax(axis=1)

    def num_parameters(self):
        return self.network.num_parameters()

    def input_shape(self):
        """One sample's network input shape (no batch axis)."""
        return self.spec.to_input(np.zeros((1,) + self.image_shape, np.float32)).shape[1:]

    def flops(self):
        """Forward FLOPs per image (see :mod:`nn.flops`)."""
        return network_flops(self.network, self.input_shape())[1]

    def summary(self):
        return self.network.summary(self.input_shape())

    def header(self, extra=None):
        """What a weights file says besides the arrays: model, options, sizes, layers."""
        return {"model": self.name, "options": self.options, "num_classes": self.num_classes,
                "image_shape": list(self.image_shape),
                "layers": self.network.config()["layers"], "extra": extra or {}}

    def save(self, path, extra=None):
        """Write the weights as .npz (:mod:`nn.serialize`); :func:`load_model` reads them."""
        save_weights(path, self.network.state(), self.header(extra))

    def to_safetensors(self, path, extra=None):
        """Write the weights as safetensors, readable by PyTorch and the Hugging Face tools.

        Tensors keep our names ('0.weight', '0.w_ih', '1.running_mean': '<layer index>.<name>')
        and layouts (PyTorch's); the metadata holds ``model`` and, under
        ``HEADER_KEY``, the whole JSON header of a weights file (architecture, checksum), so
        :func:`load_model` reads the file back with every check of an .npz.
        """
        from nn.safetensors import save_file
        state = self.network.state()
        header = weights_header(state, self.header(extra))
        save_file(state, path, {"model": self.name, HEADER_KEY: json.dumps(header)})


def build_model(name, rng=None, num_classes=10, image_shape=IMAGE_SHAPE, **options):
    """A freshly initialised model of a registered kind (``registry.names()``).

    ``options`` override the model file's defaults (``ModelSpec.options``, e.g. ``hidden``).
    """
    spec = registry.get(name)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise UserError(f"model {name!r} has no option {', '.join(unknown)} "
                        f"(its options: {', '.join(spec.options) or 'none'})")
    options = {**spec.options, **options}
    rng = rng if rng is not None else np.random.default_rng()
    network = spec.build(rng, image_shape=tuple(image_shape), num_classes=num_classes, **options)
    return Model(spec, network, options, num_classes, image_shape)


def resolve_weights(source):
    """A weights path from a path or a model name ('cnn' -> its shipped weights)."""
    text = str(source)
    looks_like_name = ("/" not in text and "\\" not in text
                       and not text.endswith((".npz", ".safetensors")))
    if looks_like_name and not Path(text).exists():
        spec = registry.get(text)  # an unknown name: one line listing the known ones
        path = shipped_weights(text)
        if not path.is_file():
            origin = f" (from {spec.source})" if spec.from_model_file else ""
            raise WeightsError(f"model {text!r}{origin} has no shipped weights ({path}); train it "
                               f"with: {spec.train_command}")
        return path
    return Path(source)


def weights_from_flags(model, model_file, weights, what):
    """(model name or None, weights path) named by a command's --model, --model-file and --weights.

    A model file is registered first and names the model unless --model does; without a model or
    weights it is one line: "say which ``what``: ..." (e.g. ``what="model to evaluate"``)."""
    if model_file:
        model = model or registry.load_model_file(model_file).name
    if not model and not weights:
        raise UserError(f"say which {what}: --model NAME ({', '.join(registry.names())}) or --weights PATH")
    return model, resolve_weights(weights or model)


def load_model(source, expect=None):
    """A ready model from a weights file (.npz, or .safetensors written by
    :meth:`Model.to_safetensors`) or a shipped model's name.

    ``expect='cnn'`` refuses a file of another model.  A model defined outside the package must
    be registered first (``registry.load_model_file``, the ``--model-file`` flag).

    Nothing is built or read before it is checked: the header first (model, options, sizes),
    then the architecture it lists, built as shapes only (no weights drawn or allocated), is
    compared with what the model's own file builds for those options and with the shapes and
    dtypes the file declares for its arrays; only then is the data read and its checksum
    verified.
    """
    path = resolve_weights(source)
    if path.suffix == ".safetensors":
        from nn.safetensors import SafetensorsFile
        archive = SafetensorsFile(path, header_key=HEADER_KEY)
    else:
        archive = WeightsArchive(path)
    with archive:
        spec, network, options, num_classes, image_shape, extra = _checked_architecture(
            path, archive.meta, archive.arrays, expect)
        state = archive.read_state()
    network.load_state(state)
    model = Model(spec, network, options, num_classes, image_shape)
    model.extra = extra
    return model


def _checked_architecture(path, meta, arrays, expect):
    """Validate a weights header against the registry and the declared arrays (``arrays``: key
    -> object with ``shape`` and ``dtype``), allocating nothing.  Returns (spec, network with
    placeholder weights, options, num_classes, image_shape, extra)."""
    name = meta.get("model")
    if not isinstance(name, str):
        raise WeightsError(f"{path}: the weights file names no model")
    try:
        spec = registry.get(name)
    except UserError:
        raise WeightsError(f"{path}: holds a model {name!r} that is not defined here; "
                           "load its file with --model-file PATH") from None
    if expect is not None and name != expect:
        raise WeightsError(f"{path}: holds the {spec.title} model's weights, not the "
                           f"{registry.get(expect).title}'s")
    options, extra = meta.get("options", {}), meta.get("extra", {})
    if not isinstance(options, dict) or not isinstance(extra, dict):
        raise WeightsError(f"{path}: malformed header ('options' and 'extra' must be JSON objects)")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise WeightsError(f"{path}: the {spec.title} model has no option {', '.join(unknown)}")
    options = {**spec.options, **options}
    num_classes, image_shape = meta.get("num_classes", 10), meta.get("image_shape", list(IMAGE_SHAPE))
    if (not isinstance(num_classes, int) or not 2 <= num_classes <= 10_000
            or not isinstance(image_shape, list) or len(image_shape) != 2
            or not all(isinstance(side, int) and 1 <= side <= 4096 for side in image_shape)):
        raise WeightsError(f"{path}: malformed header (num_classes {num_classes!r}, "
                           f"image_shape {image_shape!r})")
    if spec.from_model_file:
        # A person's model file may have changed since the weights were written: build it and
        # pass one small batch through before anything else, so a mistake in it is one line
        # naming the file (and their own code's lines), not a traceback from deep in a command.
        from models.probe import check_model_spec
        check_model_spec(spec, options, tuple(image_shape), num_classes)
    layers = meta.get("layers")
    if not isinstance(layers, list) or not layers:
        raise WeightsError(f"{path}: the weights file lists no layers")
    with shapes_only():  # placeholders: no weight is drawn or allocated
        try:
            network = build_layers(layers, rng=np.random.default_rng(0))
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError, MemoryError) as error:
            raise WeightsError(f"{path}: the architecture in the file is invalid "
                               f"({_one_line(error)})") from None
        check_state(path, arrays, network.state())
        try:
            reference = spec.build(np.random.default_rng(0), image_shape=tuple(image_shape),
                                   num_classes=num_classes, **options)
        except (TypeError, ValueError, OverflowError, MemoryError) as error:
            raise WeightsError(f"{path}: the {spec.title} model cannot be built with the "
                               f"header's options {options} ({_one_line(error)})") from None
    expected = json.loads(json.dumps(reference.config()["layers"]))
    if _architecture(layers) != _architecture(expected):
        where = next((i for i, (a, b) in enumerate(zip(layers, expected))
                      if _architecture(a) != _architecture(b)), min(len(layers), len(expected)))
        found = _architecture(layers[where], False) if where < len(layers) else "nothing"
        builds = _architecture(expected[where], False) if where < len(expected) else "nothing"
        raise WeightsError(f"{path}: the header's layers are not what the {spec.title} model "
                           f"builds with options {options}: layer {where} is {found}, "
                           f"expected {builds}")
    return spec, reference, options, num_classes, image_shape, extra


# Layer settings that change how a layer runs, not what it computes (need_input_grad=False
# skips an unused gradient): a file written before one existed, or with another value, holds
# the same model.  The network is built by the model's own file, with its own settings.
NOT_ARCHITECTURE = frozenset({"need_input_grad"})


def _architecture(value, canonical=True):
    """``value`` (layer configs, nested) without the NOT_ARCHITECTURE keys; with ``canonical``
    each layer type by the qualified name of its class, so that "Dense" and
    "nn.layers.dense.Dense" are one type, and so are a user layer's bare and qualified names
    (:mod:`nn.layers.registry`)."""
    if isinstance(value, dict):
        return {k: canonical_name(v) if k == "type" and canonical else _architecture(v, canonical)
                for k, v in value.items() if k not in NOT_ARCHITECTURE}
    if isinstance(value, list):
        return [_architecture(v, canonical) for v in value]
    return value


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__
