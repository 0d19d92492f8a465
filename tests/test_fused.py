"""The fused Conv2D -> LeakyReLU -> MaxPool2D step equals the three layers run one by one, and
the fused Dense -> LeakyReLU/ReLU step the two."""
import copy

import numpy as np
import pytest

import models
from nn.layers import Conv2D, Dense, Dropout, LeakyReLU, MaxPool2D, ReLU, Sequential
from nn.layers.dense import DenseActivation
from nn.layers.fused import ConvActivationPool


def run(network, x, dy, training=True):
    y = network.forward(x, training)
    dx = network.backward(dy)
    grads = {f"{i}.{k}": v.copy() for i, layer in enumerate(network.layers) for k, v in layer.grads.items()}
    return y, dx, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size, stride, padding, activation", [
    (7, 1, "same", LeakyReLU(0.1)), (8, 1, "same", LeakyReLU(0.1)), (9, 2, "same", ReLU()),
    (10, 1, "valid", LeakyReLU(0.2)), (7, 2, "valid", LeakyReLU(0.1)),
])
def test_fused_step_matches_the_separate_layers(dtype, size, stride, padding, activation):
    rng = np.random.default_rng(size)
    layers = [Conv2D(3, 5, 3, stride=stride, padding=padding, rng=rng), activation, MaxPool2D(2, padding="same")]
    for layer in layers:
        for k in layer.params:
            layer.params[k] = rng.standard_normal(layer.params[k].shape).astype(dtype)
    fused, plain = Sequential(layers, fuse=True), Sequential(copy.deepcopy(layers), fuse=False)
    assert isinstance(fused.steps()[0], ConvActivationPool) and len(plain.steps()) == 3
    x = rng.standard_normal((4, 3, size, size)).astype(dtype)
    shape = fused.forward(x).shape
    dy = rng.standard_normal(shape).astype(dtype)
    y_fused, dx_fused, g_fused = run(fused, x, dy)
    y_plain, dx_plain, g_plain = run(plain, x, dy)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y_fused, y_plain, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(dx_fused, dx_plain, rtol=tolerance, atol=tolerance)
    assert g_fused.keys() == g_plain.keys()
    for key in g_fused:
        np.testing.assert_allclose(g_fused[key], g_plain[key], rtol=tolerance, atol=tolerance * 10, err_msg=key)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", [ReLU(), LeakyReLU(0.1)], ids=["relu", "leaky"])
@pytest.mark.parametrize("hidden", [6, 40], ids=["x-wT", "w-xT"])   # the two product orders
def test_fused_dense_step_matches_the_separate_layers_bit_for_bit(dtype, activation, hidden):
    """Same product, same passes: the fused step's output and gradients are the layers' bits;
    the dropout after it and the dense layer alone (no activation) are planned as before."""
    rng = np.random.default_rng(11)
    layers = [Dense(9, hidden, rng=rng, dtype=dtype), activation,
              Dropout(0.3, rng=np.random.default_rng(12)), Dense(hidden, 4, rng=rng, dtype=dtype)]
    for layer in layers:
        for k in layer.params:
            layer.params[k] = rng.standard_normal(layer.params[k].shape).astype(dtype)
    fused, plain = Sequential(layers, fuse=True), Sequential(copy.deepcopy(layers), fuse=False)
    assert [type(step) for step in fused.steps()] == [DenseActivation, Dropout, Dense]
    assert len(plain.steps()) == 4
    x = rng.standard_normal((5, 9)).astype(dtype)
    dy = rng.standard_normal((5, 4)).astype(dtype)
    for training in (True, False):
        y_fused, dx_fused, g_fused = run(fused, x, dy, training)
        y_plain, dx_plain, g_plain = run(plain, x, dy, training)
        assert y_fused.dtype == dtype and np.any(y_fused != 0)
        np.testing.assert_array_equal(y_fused, y_plain)
        np.testing.assert_array_equal(dx_fused, dx_plain)
        assert g_fused.keys() == g_plain.keys() == {"0.weight", "0.bias", "3.weight", "3.bias"}
        for key in g_fused:
            np.testing.assert_array_equal(g_fused[key], g_plain[key], err_msg=key)
    # and both are x w^T + b, leaky, x w^T + b (eval: dropout is the identity)
    hidden = x @ layers[0].params["weight"].T + layers[0].params["bias"]
    hidden = np.where(hidden > 0, hidden, hidden * dtype(activation.slope))
    expected = hidden @ layers[3].params["weight"].T + layers[3].params["bias"]
    np.testing.assert_allclose(fused.forward(x), expected, rtol=1e-5, atol=1e-5)


def test_reference_cnn_fused_and_unfused_agree():
    model = models.build_model("cnn", rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    x = model.to_network_input(rng.random((8, 28, 28), dtype=np.float32))
    plain = Sequential(model.network.layers, fuse=False)
    assert sum(isinstance(s, ConvActivationPool) for s in model.network.steps()) == 3
    y_fused = model.network.forward(x, training=False)
    y_plain = plain.forward(x, training=False)
    np.testing.assert_allclose(y_fused, y_plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_matches_its_numpy_twin(dtype):
    from nn.kernels import optim, reference
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((7, 5)).astype(dtype) for _ in range(2)] + \
             [np.abs(rng.standard_normal((7, 5))).astype(dtype) * s for s in (0.1, 0.01)]
    ours, twin = [a.copy() for a in arrays], [a.copy() for a in arrays]
    args = (0.9, 0.999, 1e-3 / (1 - 0.9 ** 3), np.sqrt(1 - 0.999 ** 3), 1e-8)
    parallel = [a.copy() for a in arrays]
    optim.adam_update(*(a.reshape(-1) for a in ours), *args)
    optim.adam_update_parallel(*(a.reshape(-1) for a in parallel), *args)
    reference.adam_update(twin[0], twin[1], twin[2], twin[3], *args)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    for a, b, c in zip(ours, twin, parallel):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("size", [8, 7])  # the exact-fit 2x2 kernel, and the general one
def test_fused_step_breaks_ties_like_the_separate_layers(size):
    """A blank input makes every window a tie: both paths must route the gradient to the
    window's first element, as PyTorch does."""
    rng = np.random.default_rng(5)
    layers = [Conv2D(2, 3, 3, rng=rng), LeakyReLU(0.1), MaxPool2D(2, padding="same")]
    layers[0].params["bias"][:] = [0.5, -0.5, 0.0]
    fused, plain = Sequential(layers, fuse=True), Sequential(copy.deepcopy(layers), fuse=False)
    x = np.zeros((2, 2, size, size), np.float32)
    dy = rng.standard_normal(fused.forward(x).shape).astype(np.float32)
    y_fused, dx_fused, g_fused = run(fused, x, dy)
    y_plain, dx_plain, g_plain = run(plain, x, dy)
    np.testing.assert_array_equal(y_fused, y_plain)
    np.testing.assert_allclose(dx_fused, dx_plain, rtol=1e-6, atol=1e-6)
    for key in g_plain:
        np.testing.assert_allclose(g_fused[key], g_plain[key], rtol=1e-6, atol=1e-6, err_msg=key)
