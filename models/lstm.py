"""The reference LSTM: each image read as 28 timesteps of one 28-pixel row.

input (N, T=28, D=28) -> LSTM(hidden) last hidden state (N, hidden) -> BatchNorm -> dense 10
24,586 trainable parameters with hidden = 64. SPEC counts 24,842: PyTorch keeps two bias vectors,
b_ih and b_hh, whose sum is our single bias b - 256 more numbers for the same function.
"""
from models.inputs import image_rows
from models.registry import ModelSpec, Recipe
from nn.layers import LSTM, BatchNorm, Dense, Sequential


def build_lstm(rng, image_shape=(28, 28), num_classes=10, hidden=64):
    _, width = image_shape
    return Sequential([
        LSTM(width, hidden, need_input_grad=False, rng=rng),  # its input is the image
        BatchNorm(hidden),
        Dense(hidden, num_classes, rng=rng),
    ])


MODEL = ModelSpec(
    name="lstm",
    title="LSTM",
    description=("The original app's recurrent network: an LSTM with 64 units reads the image "
                 "one row at a time, top to bottom, and answers from its last hidden state "
                 "(batch-normalised, then a dense layer); its gates decide what to keep of the "
                 "rows it has read."),
    build=build_lstm,
    to_input=image_rows,
    options={"hidden": 64},
    recipe=Recipe(lr=2e-3, epochs=30, schedule="cosine", augment=True),
    recurrent=True,
)
