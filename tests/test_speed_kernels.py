"""The kernels added for speed (issue 10) against their NumPy twins in nn.kernels.reference."""
import numpy as np
import pytest

from nn.kernels import reference
from nn.kernels import dropout as dropout_kernels
from nn.layers import Dropout


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, rate", [((64, 32, 14, 14), 0.25), ((3, 5), 0.5), ((1000,), 0.0),
                                         ((16, 128), 0.9)])
def test_dropout_kernel_matches_its_twin(dtype, shape, rate):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    key = np.uint64(0xDEADBEEF12345678)
    threshold = int(round(rate * 2 ** 24))
    scale = dtype(1 / (1 - rate))
    y, mask = dropout_kernels.dropout_forward(x, key, threshold, scale)
    y_ref, mask_ref = reference.dropout_forward(x, key, threshold, scale)
    np.testing.assert_array_equal(mask, mask_ref)
    np.testing.assert_array_equal(y, y_ref)
    if x.size > 10000:
        assert abs((mask == 0).mean() - rate) < 0.01


def test_dropout_layer_is_reproducible_and_resumable():
    x = np.ones((8, 300), np.float32)
    a, b = Dropout(0.3, rng=np.random.default_rng(7)), Dropout(0.3, rng=np.random.default_rng(7))
    first = a.forward(x, training=True)
    np.testing.assert_array_equal(first, b.forward(x, training=True))   # same seed, same mask
    state = a.rng_state()
    second = a.forward(x, training=True)
    assert not np.array_equal(first, second)                             # a new mask each step
    b.set_rng_state(state)
    np.testing.assert_array_equal(second, b.forward(x, training=True))  # restored: same stream
