"""The reader: a whole number read from a strip 28 px high and any width, without cutting it into
digits - a CNN whose columns feed a bidirectional LSTM, trained with CTC (Shi et al. 2015).

input (N, 1, 28, W), W a multiple of 4
conv 3x3x32 same -> LeakyReLU(0.1) -> maxpool 2 same            (N, 32, 14, W/2)
conv 3x3x64 same -> LeakyReLU(0.1) -> maxpool 2 same            (N, 64, 7, W/4)
Columns: column t's 64 x 7 features are frame t                 (N, T=W/4, 448)
Bidirectional(LSTM(hidden)) every step, [forward | backward]    (N, T, 2 hidden)
FrameScores: one dense layer per frame, shared                  (N, T, 11) logits

Class 0 is CTC's blank, class k + 1 the digit k (:func:`digits_of`).  A frame sees 4 columns
of pixels directly and, through the convolutions, 10; the LSTM lets each frame's score depend on
the whole strip, which is what separates two touching digits (where one ends is clearer with
both in view).  Trained by the kit's one trainer, ``python -m models.train --model reader``
(:class:`models.training.reader_data.NumberData` composes its numbers; ``python -m
models.training.reader`` is the same with the reader's own flags); read with
:func:`models.reading.read_number_image`.  It is a sequence model (``kind="sequence"``): the
per-digit commands (evaluate, compare, the canvas's model list) do not list it.
"""
import numpy as np

from models.inputs import image_channels
from models.registry import ModelSpec, Recipe
from nn.ctc import CTCLoss, greedy_decode
from nn.layers import LSTM, Bidirectional, Conv2D, LeakyReLU, MaxPool2D, Sequential
from nn.layers.base import Layer
from nn.layers.dense import dense_backward, dense_forward
from nn.init import glorot_uniform

BLANK = 0
NUM_CLASSES = 11        # blank + 10 digits
STRIDE = 4              # image columns per frame (two 2x2 poolings)


class Columns(Layer):
    """(N, C, H, W) -> (N, T=W, C*H): each column of the feature maps is one frame.

    y[n, t, c*H + h] = x[n, c, h, t]; backward moves the gradient back the same way.
    """

    def forward(self, x, training=False):
        self.cache = x.shape
        n, channels, height, width = x.shape
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(n, width, channels * height))

    def backward(self, dout):
        n, channels, height, width = self.cache
        return np.ascontiguousarray(dout.reshape(n, width, channels, height).transpose(0, 2, 3, 1))

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        return (width, channels * height)


class FrameScores(Layer):
    """The same dense layer on every frame: x (N, T, F) -> y (N, T, K), y = x W^T + b."""
    uses_rng = True

    def __init__(self, in_features, out_features, rng=None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.in_features, self.out_features = in_features, out_features
        self.params["weight"] = glorot_uniform(rng, (out_features, in_features), in_features,
                                               out_features, dtype)
        self.params["bias"] = np.zeros(out_features, dtype)

    def forward(self, x, training=False):
        n, steps, features = x.shape
        y, self.cache = dense_forward(x.reshape(n * steps, features), self.params["weight"],
                                      self.params["bias"])
        return y.reshape(n, steps, self.out_features)

    def backward(self, dout):
        n, steps, _ = dout.shape
        dx, self.grads["weight"], self.grads["bias"] = dense_backward(
            dout.reshape(n * steps, self.out_features), self.cache.x, self.params["weight"])
        return dx.reshape(n, steps, self.in_features)

    def output_shape(self, input_shape):
        return (input_shape[0], self.out_features)

    def flops(self, input_shape):
        return input_shape[0] * self.out_features * (2 * self.in_features + 1)

    def config(self):
        return {"in_features": self.in_features, "out_features": self.out_features}


def build_reader(rng, image_shape=(28, STRIDE), num_classes=NUM_CLASSES, channels=(32, 64),
                 hidden=96):
    """The reader for strips of height ``image_shape[0]`` (any width: the network never fixes it)."""
    height = image_shape[0]
    layers, in_channels = [], 1
    for block, out_channels in enumerate(channels):
        layers += [Conv2D(in_channels, out_channels, 3, padding="same", need_input_grad=block > 0,
                          rng=rng),
                   LeakyReLU(0.1), MaxPool2D(2, padding="same")]
        in_channels = out_channels
        height = -(-height // 2)
    features = in_channels * height
    layers += [Columns(),
               Bidirectional(LSTM(features, hidden, return_sequences=True, rng=rng), rng=rng),
               FrameScores(2 * hidden, num_classes, rng=rng)]
    return Sequential(layers)


def frames_of(widths):
    """(N,) image widths -> (N,) frames the network reads from each: ceil(width / 4)."""
    return -(-np.asarray(widths, np.int64) // STRIDE)


def digits_of(labelling):
    """A decoded labelling (classes 1..10) -> the digits it spells, as a string."""
    return "".join(str(k - 1) for k in labelling)


class NumberLoss:
    """CTC over the reader's frames, for :class:`nn.step.TrainingStep`.

    ``labels`` is (targets (N, S) digits 0..9 padded with -1, widths (N,), target_lengths (N,)),
    as :func:`kit.images.compose.compose_numbers` returns them; ``count_correct`` says how many
    numbers the greedy decoding reads exactly.
    """

    def __init__(self):
        self.ctc = CTCLoss(blank=BLANK, reduction="mean", zero_infinity=True)

    def forward(self, logits, labels):
        targets, widths, target_lengths = labels
        classes = np.where(targets >= 0, targets + 1, BLANK)       # digit k is class k + 1
        return self.ctc.forward(logits, classes, frames_of(widths), target_lengths)

    def backward(self):
        return self.ctc.backward()

    def count_correct(self, logits, labels):
        targets, widths, target_lengths = labels
        read, _ = greedy_decode(logits, frames_of(widths), BLANK)
        return sum(list(target[:length] + 1) == labelling
                   for target, length, labelling in zip(targets, target_lengths, read))


MODEL = ModelSpec(
    name="reader",
    title="Reader",
    description=("Reads a whole number without cutting it into digits: two 3x3 conv blocks "
                 "(32, 64 filters) turn the strip into columns, a bidirectional LSTM reads them "
                 "left to right and right to left, and each column scores blank or a digit; "
                 "trained with CTC on numbers composed from MNIST training digits."),
    build=build_reader,
    to_input=image_channels,
    options={"channels": [32, 64], "hidden": 96},
    recipe=Recipe(lr=2e-3, epochs=12, batch_size=32, schedule="cosine", numbers=16000,
                  test_numbers=300),
    kind="sequence",
)
