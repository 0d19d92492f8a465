"""A dense baseline: the 784 pixels through two hidden layers, no notion of rows or neighbours.

input (N, 784) -> dense 256 -> ReLU -> dropout 0.2 -> dense 128 -> ReLU -> dropout 0.2 -> dense 10
235,146 parameters.
"""
from models.inputs import image_pixels
from models.registry import ModelSpec, Recipe
from nn.layers import Dense, Dropout, ReLU, Sequential


def build_mlp(rng, image_shape=(28, 28), num_classes=10, hidden=256, dropout=0.2):
    pixels = image_shape[0] * image_shape[1]
    second = max(hidden // 2, 1)
    return Sequential([
        Dense(pixels, hidden, rng=rng),
        ReLU(),
        Dropout(dropout, rng=rng),
        Dense(hidden, second, rng=rng),
        ReLU(),
        Dropout(dropout, rng=rng),
        Dense(second, num_classes, rng=rng),
    ])


MODEL = ModelSpec(
    name="mlp",
    title="MLP",
    description=("A dense baseline: the 784 pixels as one flat vector through two hidden layers "
                 "(256 and 128 ReLU units, dropout 0.2). It knows nothing of rows or of which "
                 "pixels are neighbours; what it reaches shows what the CNN's and the recurrent "
                 "models' structure adds."),
    build=build_mlp,
    to_input=image_pixels,
    options={"hidden": 256},
    recipe=Recipe(lr=1e-3, epochs=30, schedule="cosine", augment=True),
)
