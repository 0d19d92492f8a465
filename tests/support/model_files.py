"""A person's model file (``--model-file``) with one mistake chosen per test: the template and
the mistakes every command must name in one line (issue 20 item 4), shared by the trainer's,
the other commands' and the canvas's tests."""

MODEL_FILE = '''
import numpy as np
from models.inputs import image_pixels
from models.registry import ModelSpec, Recipe
from nn.layers import Dense, ReLU, Sequential


def build(rng, image_shape=(28, 28), num_classes=10, hidden=16):
    pixels = image_shape[0] * image_shape[1]
    {body}


def to_input(images):
    {to_input}


MODEL = ModelSpec(name="{name}", title="Mine", description="a person's model file",
                  build=build, to_input=to_input, options={{"hidden": 16}},
                  recipe=Recipe(epochs=1), shipped=False)
'''
GOOD_BUILD = "return Sequential([Dense(pixels, hidden, rng=rng), ReLU(), Dense(hidden, num_classes, rng=rng)])"
GOOD_INPUT = "return image_pixels(images)"

# (case, build body, to_input body, what the one line says, a frame of the person's own code
# expected below it or None)
BROKEN = [
    ("raises", "return helper(pixels)\n\n\ndef helper(pixels):\n    raise RuntimeError('my bug')", GOOD_INPUT,
     "build() raised RuntimeError: my bug", "in helper"),
    ("none", "Sequential([Dense(pixels, num_classes, rng=rng)])", GOOD_INPUT,
     "build() returned NoneType, not a network", None),
    ("outputs", "return Sequential([Dense(pixels, 7, rng=rng)])", GOOD_INPUT,
     "outputs of shape (2, 7) for 2 images, not (2, 10)", None),
    ("input_size", "return Sequential([Dense(100, num_classes, rng=rng)])", GOOD_INPUT,
     "does it expect another input size?", None),
    ("to_input_shape", GOOD_BUILD, "return images.reshape(1, -1)",
     "to_input() turned 2 images of 28 x 28 into (1, 1568)", None),
]
TO_INPUT_RAISES = ("to_input_raises", GOOD_BUILD, "return images.reshape(len(images), 3, -1)",
                   "to_input() of 2 images of 28 x 28 raised ValueError", "in to_input")
TO_INPUT_SIZE = ("to_input_size", GOOD_BUILD, "return images.reshape(len(images), -1)[:, :700]",
                 "does it expect another input size?", None)


def write_model_file(folder, name, body=GOOD_BUILD, to_input=GOOD_INPUT):
    """``folder/name.py``, a model file named ``name`` with the given bodies; returns its path."""
    path = folder / f"{name}.py"
    path.write_text(MODEL_FILE.format(body=body, to_input=to_input, name=name))
    return path
