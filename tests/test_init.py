"""Initialisers: Keras' defaults, drawn from a seeded generator."""
import numpy as np
import pytest

from nn.init import glorot_uniform, orthogonal
from nn.layers import LSTM, Conv2D, Dense


def test_glorot_uniform_has_the_right_limit_and_variance():
    rng = np.random.default_rng(0)
    w = glorot_uniform(rng, (400, 300), fan_in=300, fan_out=400)
    limit = np.sqrt(6 / 700)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.99 * limit                      # it uses the whole range
    assert w.var() == pytest.approx(limit ** 2 / 3, rel=0.02)  # U(-a, a) has variance a^2 / 3


@pytest.mark.parametrize("rows, cols", [(256, 64), (64, 256), (50, 50)])
def test_orthogonal_is_orthonormal(rows, cols):
    q = orthogonal(np.random.default_rng(1), rows, cols, dtype=np.float64)
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)


def test_layers_initialise_like_keras_and_reproducibly():
    lstm = LSTM(28, 64, rng=np.random.default_rng(2))
    b = lstm.params["b"]
    np.testing.assert_array_equal(b[64:128], 1.0)               # forget gate
    np.testing.assert_array_equal(np.delete(b, np.s_[64:128]), 0.0)
    np.testing.assert_allclose(lstm.params["w_hh"].T @ lstm.params["w_hh"], np.eye(64), atol=1e-5)
    conv = Conv2D(3, 8, 3, rng=np.random.default_rng(3))
    assert np.abs(conv.params["weight"]).max() <= np.sqrt(6 / (27 + 72))
    np.testing.assert_array_equal(conv.params["bias"], 0.0)
    a, b2 = Dense(5, 4, rng=np.random.default_rng(4)), Dense(5, 4, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(a.params["weight"], b2.params["weight"])
    # ... and the weights are random draws, not a constant (all zeros would pass the line above):
    # almost every entry distinct (float32 draws may collide), another seed gives others, and the
    # spread is Glorot's.
    other = Dense(5, 4, rng=np.random.default_rng(5)).params["weight"]
    for w in (a.params["weight"], conv.params["weight"], lstm.params["w_ih"], lstm.params["w_hh"]):
        assert len(np.unique(w)) >= 0.99 * w.size
    assert not np.any(a.params["weight"] == other)
    wide = Dense(300, 400, rng=np.random.default_rng(6)).params["weight"]
    assert wide.std() == pytest.approx(np.sqrt(6 / 700) / np.sqrt(3), rel=0.02)
