"""A GRU reading the 28 rows, with PyTorch's gate convention.

input (N, T=28, D=28) -> GRU(hidden) last hidden state (N, hidden) -> BatchNorm -> dense 10
r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(...), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),
h' = (1 - z) * n + z * h.  18,826 trainable parameters with hidden = 64, of which 18,048 are the
GRU's - as PyTorch counts them: a GRU needs both bias vectors, since the reset gate multiplies
W_hn h + b_hn.
"""
from models.inputs import image_rows
from models.registry import ModelSpec, Recipe
from nn.layers import GRU, BatchNorm, Dense, Sequential


def build_gru(rng, image_shape=(28, 28), num_classes=10, hidden=64):
    _, width = image_shape
    return Sequential([
        GRU(width, hidden, need_input_grad=False, rng=rng),  # its input is the image
        BatchNorm(hidden),
        Dense(hidden, num_classes, rng=rng),
    ])


MODEL = ModelSpec(
    name="gru",
    title="GRU",
    description=("A gated recurrent unit with 64 units reading the image row by row: two gates "
                 "(reset and update) instead of the LSTM's three and no separate cell state, "
                 "so about three quarters of the LSTM's parameters for the same memory trick."),
    build=build_gru,
    to_input=image_rows,
    options={"hidden": 64},
    recipe=Recipe(lr=2e-3, epochs=30, schedule="cosine", augment=True),
    recurrent=True,
)
