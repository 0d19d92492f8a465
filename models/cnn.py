"""The reference CNN of the original app (SPEC): three conv blocks and a small classifier.

input (N, 1, 28, 28)
conv 3x3x32 same -> LeakyReLU(0.1) -> maxpool 2 same -> dropout 0.25    (N, 32, 14, 14)
conv 3x3x64 same -> LeakyReLU(0.1) -> maxpool 2 same -> dropout 0.25    (N, 64, 7, 7)
conv 3x3x128 same -> LeakyReLU(0.1) -> maxpool 2 same -> dropout 0.4    (N, 128, 4, 4)
flatten (2048) -> dense 128 -> LeakyReLU(0.1) -> dropout 0.3 -> dense 10 (logits)
356,234 parameters.  Other image sizes and class counts give the same blocks with other sizes.
"""
from models.inputs import image_channels
from models.registry import ModelSpec, Recipe
from nn.layers import Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D, Sequential


def build_cnn(rng, image_shape=(28, 28), num_classes=10, channels=(32, 64, 128), dense=128,
              dropout=(0.25, 0.25, 0.4, 0.3), slope=0.1):
    layers = []
    in_channels = 1
    for block, out_channels in enumerate(channels):
        layers += [
            # The first layer's input is the image: nobody needs its gradient.
            Conv2D(in_channels, out_channels, 3, padding="same", need_input_grad=block > 0, rng=rng),
            LeakyReLU(slope),
            MaxPool2D(2, padding="same"),
            Dropout(dropout[block], rng=rng),
        ]
        in_channels = out_channels
    height, width = image_shape
    for _ in channels:
        height, width = -(-height // 2), -(-width // 2)  # ceil: 28 -> 14 -> 7 -> 4
    layers += [
        Flatten(),
        Dense(in_channels * height * width, dense, rng=rng),
        LeakyReLU(slope),
        Dropout(dropout[3], rng=rng),
        Dense(dense, num_classes, rng=rng),
    ]
    return Sequential(layers)


MODEL = ModelSpec(
    name="cnn",
    title="CNN",
    description=("The original app's convolutional network: three 3x3 conv blocks (32, 64, 128 "
                 "filters, LeakyReLU, 2x2 max-pooling, dropout) and a 128-unit dense layer; it "
                 "sees the whole image at once, and its filters look for the same stroke "
                 "patterns everywhere in it."),
    build=build_cnn,
    to_input=image_channels,
    recipe=Recipe(lr=1e-3, epochs=20, schedule="cosine", augment=True),
)
