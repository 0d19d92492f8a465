"""The reference LSTM: each image read as 28 timesteps of one 28-pixel row.

input (N, T=28, D=28) -> LSTM(hidden) last hidden state (N, hidden) -> BatchNorm -> dense 10
24,586 trainable parameters with hidden = 64. SPEC counts 24,842: PyTorch keeps two bias vectors,
b_ih and b_hh, whose sum is our single bias b - 256 more numbers for the same function.
"""
from nn.layers import LSTM, BatchNorm, Dense, Sequential


def build_lstm(rng, hidden=64):
    return Sequential([
        LSTM(28, hidden, need_input_grad=False, rng=rng),  # its input is the image
        BatchNorm(hidden),
        Dense(hidden, 10, rng=rng),
    ])
