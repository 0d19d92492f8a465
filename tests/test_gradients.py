"""Every backward pass against central finite differences in float64, and every Numba kernel
against its NumPy twin in nn.kernels.reference.

Loss for a layer check: L = sum(layer(x) * dy) with a random dy (never ones: with dy = 1
BatchNorm's dx is exactly zero and hides any bug in it).  Points are chosen where the derivative
exists: max-pool inputs are a scaled random permutation (no ties, no near-ties within eps),
LeakyReLU inputs stay away from 0, dropout uses a fixed mask, and LSTM weights are scaled so the
gates are not saturated.
"""
import numba
import numpy as np
import pytest

try:
    from gradcheck import check_gradients, relative_error
except ImportError:  # tests/ imported as a package
    from tests.gradcheck import check_gradients, relative_error

from nn.kernels import conv as conv_kernels
from nn.kernels import lstm as lstm_kernels
from nn.kernels import pool as pool_kernels
from nn.kernels import reference
from nn.layers import (LSTM, BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU, MaxPool2D,
                       ReLU, Sequential)
from nn.layers.conv import conv2d_backward, conv2d_forward, conv_geometry
from nn.layers.dropout import dropout_backward, dropout_forward, dropout_mask
from nn.layers.pool import pool_geometry
from nn.losses import softmax_cross_entropy_backward, softmax_cross_entropy_forward


# ----------------------------------------------------------------------------- helpers

@pytest.fixture
def serial_numba():
    """Run Numba's parallel kernels on one thread for the duration of a finite-difference check.

    A check calls forward thousands of times on tiny arrays; on a busy 2-core machine the
    parallel kernels' thread hand-off then costs ~100x the work itself.  The kernels write
    disjoint outputs per batch item, so the result does not depend on the thread count; the
    kernel-vs-reference tests below run them with the default thread count.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


def as_float64(layer):
    """Cast a layer's (or a Sequential's) parameters and buffers to float64, in place, each in
    its own memory layout (a Dense weight stays column-major)."""
    for sub in getattr(layer, "layers", [layer]):
        for store in (sub.params, sub.buffers):
            for key in store:
                store[key] = store[key].astype(np.float64)
    return layer


def tie_free(rng, shape, spacing=0.01):
    """Distinct values spaced ``spacing`` apart in random order: max-pool has a unique argmax."""
    size = int(np.prod(shape))
    return ((rng.permutation(size) - size / 2) * spacing).reshape(shape).astype(np.float64)


def away_from_zero(rng, shape, low=0.1, high=1.0):
    """Random values with |x| in [low, high): no kink of a (leaky) ReLU within eps."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


def check_layer(layer, x, rng, training=False, before_forward=None):
    """Finite-difference check of dL/dx and of every dL/dparam of ``layer`` at ``x``.

    ``before_forward`` runs before every forward call (e.g. to re-seed a dropout layer's rng so
    each call draws the same mask).
    """
    def f(x_, *params):
        if before_forward is not None:
            before_forward()
        return layer.forward(x_, training)

    y = f(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    names = [name for _, _, name in parameters_of(layer)]
    params = [owner.params[name] for _, owner, name in parameters_of(layer)]
    analytic = [np.array(dx)] + [np.array(owner.grads[name]) for _, owner, name in parameters_of(layer)]
    assert len(analytic) == 1 + len(params)
    return check_gradients(f, [x] + params, analytic, dy, ["x"] + names)


def parameters_of(layer):
    if isinstance(layer, Sequential):
        return layer.parameters()
    return [(name, layer, name) for name in layer.params]


# ----------------------------------------------------------------------------- the checker itself

def test_gradcheck_catches_a_wrong_gradient():
    """The checker must fail on a gradient off by 0.1 % and on a wrong sign in one entry."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    x = rng.standard_normal((2, 4))
    dy = rng.standard_normal((2, 3))
    f = lambda x_: x_ @ w.T  # noqa: E731
    good = dy @ w
    assert check_gradients(f, [x], [good], dy)[0] < 1e-8
    with pytest.raises(AssertionError, match="relative error"):
        check_gradients(f, [x], [good * 1.001], dy)
    bad = good.copy()
    bad[1, 2] = -bad[1, 2]
    with pytest.raises(AssertionError, match="relative error"):
        check_gradients(f, [x], [bad], dy)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0


# ----------------------------------------------------------------------------- layers

CONV_CASES = [
    # N, C_in, H, W, C_out, k, stride, padding
    (2, 1, 7, 9, 2, 3, 1, "same"),
    (2, 3, 7, 9, 4, 3, 1, "valid"),
    (1, 2, 7, 9, 3, 3, 2, "same"),   # odd sizes, stride 2: 4x5 out, symmetric pad
    (2, 2, 8, 6, 3, 3, 2, "same"),   # even sizes, stride 2: pad only bottom/right
    (1, 3, 8, 9, 2, 3, 2, "valid"),
    (1, 2, 6, 7, 2, 5, 2, "same"),   # a larger kernel
]


@pytest.mark.usefixtures("serial_numba")
@pytest.mark.parametrize("n, c_in, h, w, c_out, k, stride, padding", CONV_CASES)
def test_conv2d(n, c_in, h, w, c_out, k, stride, padding):
    rng = np.random.default_rng([n, c_in, h, w, c_out, k, stride])
    layer = as_float64(Conv2D(c_in, c_out, k, stride, padding, rng=rng))
    layer.params["bias"][:] = rng.standard_normal(c_out)
    x = rng.standard_normal((n, c_in, h, w))
    out_h, out_w = ((-(-h // stride), -(-w // stride)) if padding == "same"
                    else ((h - k) // stride + 1, (w - k) // stride + 1))
    assert layer.forward(x).shape == (n, c_out, out_h, out_w)
    check_layer(layer, x, rng)


def test_conv2d_without_input_grad():
    """need_input_grad=False skips dx but the parameter gradients are unchanged."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 5, 6))
    w, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    y, cache = conv2d_forward(x, w, b, 1, "same")
    dy = rng.standard_normal(y.shape)
    dx, dw, db = conv2d_backward(dy, cache, need_input_grad=True)
    none, dw2, db2 = conv2d_backward(dy, cache, need_input_grad=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


POOL_CASES = [
    # shape, pool, stride, padding, output spatial size
    ((2, 3, 8, 8), 2, 2, "same", (4, 4)),
    ((2, 2, 7, 7), 2, 2, "same", (4, 4)),    # ceil: the last window hangs over the edge
    ((1, 2, 7, 9), 2, 2, "same", (4, 5)),
    ((2, 2, 7, 7), 2, 2, "valid", (3, 3)),
    ((1, 2, 7, 7), 3, 2, "valid", (3, 3)),   # overlapping windows share pixels
    ((1, 2, 8, 9), 3, 2, "same", (4, 5)),    # overlapping and padded
]


@pytest.mark.usefixtures("serial_numba")
@pytest.mark.parametrize("shape, pool, stride, padding, out", POOL_CASES)
def test_maxpool2d(shape, pool, stride, padding, out):
    rng = np.random.default_rng(sum(shape) + pool * 10 + stride)
    layer = MaxPool2D(pool, stride, padding)
    x = tie_free(rng, shape)
    assert layer.forward(x).shape == shape[:2] + out
    check_layer(layer, x, rng)


def test_maxpool2d_overlap_routes_to_shared_maximum():
    """A pixel that is the maximum of two overlapping windows gets both gradients."""
    x = np.zeros((1, 1, 3, 5))
    x[0, 0, 1, 2] = 9.0   # centre column: inside windows 0 and 1 of a 3x3, stride-2 pool
    layer = MaxPool2D(3, 2, "valid")
    y = layer.forward(x)
    assert y.shape == (1, 1, 1, 2) and np.all(y == 9.0)
    dx = layer.backward(np.array([[[[2.0, 3.0]]]]))
    assert dx[0, 0, 1, 2] == 5.0 and dx.sum() == 5.0


@pytest.mark.parametrize("row_major", [False, True])
def test_dense(row_major):
    """Both memory layouts of the weight: column-major as built, row-major if assigned so."""
    rng = np.random.default_rng(2)
    layer = as_float64(Dense(5, 4, rng=rng))
    assert layer.params["weight"].flags.f_contiguous
    if row_major:
        layer.params["weight"] = np.ascontiguousarray(layer.params["weight"])
    layer.params["bias"][:] = rng.standard_normal(4)
    check_layer(layer, rng.standard_normal((3, 5)), rng)


def test_dense_on_a_sequence_of_vectors():
    """x (N, T, D_in): the product applies to every vector; backward used to fail on it (dy^T x
    multiplied the wrong axes) and summed db over the batch axis only."""
    rng = np.random.default_rng(12)
    layer = as_float64(Dense(5, 4, rng=rng))
    layer.params["bias"][:] = rng.standard_normal(4)
    check_layer(layer, rng.standard_normal((3, 2, 5)), rng)


def test_flatten():
    rng = np.random.default_rng(3)
    layer = Flatten()
    x = rng.standard_normal((2, 3, 4, 5))
    assert layer.forward(x).shape == (2, 60)
    check_layer(layer, x, rng)


@pytest.mark.parametrize("layer", [LeakyReLU(0.1), LeakyReLU(0.3), ReLU()], ids=repr)
def test_activation(layer):
    rng = np.random.default_rng(4)
    x = away_from_zero(rng, (3, 4, 5))
    check_layer(layer, x, rng)


def test_dropout_pure_functions_with_fixed_mask():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 3))
    rate = 0.4
    mask = dropout_mask(rng, x.shape, rate, np.float64)
    assert mask.dtype == np.float64
    assert set(np.unique(mask)) == {0.0, 1.0 / (1.0 - rate)}
    dy = rng.standard_normal(x.shape)
    check_gradients(lambda x_: dropout_forward(x_, mask), [x], [dropout_backward(dy, mask)], dy)


def test_dropout_layer_with_injected_mask():
    """The layer in training mode, its rng re-seeded before each forward so the mask is fixed."""
    rng = np.random.default_rng(6)
    layer = Dropout(0.5)

    def reseed():
        layer.rng = np.random.default_rng(1234)

    x = rng.standard_normal((3, 8))
    reseed()
    y = layer.forward(x, training=True)
    assert np.any(y == 0) and np.any(y != 0)
    check_layer(layer, x, rng, training=True, before_forward=reseed)


def test_dropout_eval_is_identity():
    rng = np.random.default_rng(7)
    layer = Dropout(0.5, rng=rng)
    x = rng.standard_normal((3, 8))
    assert layer.forward(x, training=False) is x
    check_layer(layer, x, rng, training=False)


def random_batchnorm(rng, features):
    layer = as_float64(BatchNorm(features))
    layer.params["gamma"][:] = rng.uniform(0.5, 2.0, features) * rng.choice([-1, 1], features)
    layer.params["beta"][:] = rng.standard_normal(features)
    layer.buffers["running_mean"][:] = rng.standard_normal(features)
    layer.buffers["running_var"][:] = rng.uniform(0.5, 2.0, features)
    return layer


@pytest.mark.parametrize("n, features", [(6, 5), (3, 4)])
def test_batchnorm_training(n, features):
    rng = np.random.default_rng(8 + n)
    layer = random_batchnorm(rng, features)
    x = rng.standard_normal((n, features)) * rng.uniform(0.5, 3, features) + rng.standard_normal(features)
    check_layer(layer, x, rng, training=True)


def test_batchnorm_eval():
    rng = np.random.default_rng(9)
    layer = random_batchnorm(rng, 5)
    check_layer(layer, rng.standard_normal((4, 5)), rng, training=False)


def random_lstm(rng, d, h, return_sequences):
    layer = as_float64(LSTM(d, h, return_sequences=return_sequences, rng=rng))
    layer.params["w_ih"][:] = rng.normal(0, 0.5, layer.params["w_ih"].shape)
    layer.params["w_hh"][:] = rng.normal(0, 0.5, layer.params["w_hh"].shape)
    layer.params["b"][:] = rng.normal(0, 0.3, layer.params["b"].shape)
    return layer


@pytest.mark.usefixtures("serial_numba")
@pytest.mark.parametrize("return_sequences", [False, True])
def test_lstm(return_sequences):
    rng = np.random.default_rng(10 + return_sequences)
    n, t, d, h = 3, 5, 4, 3
    layer = random_lstm(rng, d, h, return_sequences)
    x = rng.standard_normal((n, t, d))
    y = layer.forward(x)
    assert y.shape == ((n, t, h) if return_sequences else (n, h))
    # Not saturated: the gate pre-activations stay where sigmoid/tanh have slope.
    gates = x.reshape(-1, d) @ layer.params["w_ih"].T + layer.params["b"]
    assert np.abs(gates).max() < 4
    check_layer(layer, x, rng)


def test_softmax_cross_entropy():
    rng = np.random.default_rng(11)
    logits = rng.standard_normal((4, 6)) * 2
    labels = rng.integers(0, 6, size=4)
    loss, cache = softmax_cross_entropy_forward(logits, labels)
    dlogits = softmax_cross_entropy_backward(cache)
    scale = 0.7  # a non-unit upstream gradient on the scalar loss
    check_gradients(lambda z: softmax_cross_entropy_forward(z, labels)[0], [logits],
                    [dlogits * scale], scale)


# ----------------------------------------------------------------------------- whole stacks

def check_network_with_loss(net, x, labels, before_forward=lambda: None):
    """L = softmax_cross_entropy(net(x) in training mode, labels): dL/dx and every dL/dparam."""
    def loss(x_, *params):
        before_forward()
        return softmax_cross_entropy_forward(net.forward(x_, training=True), labels)[0]

    before_forward()
    _, cache = softmax_cross_entropy_forward(net.forward(x, training=True), labels)
    dx = np.array(net.backward(softmax_cross_entropy_backward(cache)))
    keys = [key for key, _, _ in net.parameters()]
    params = [layer.params[name] for _, layer, name in net.parameters()]
    grads = [np.array(layer.grads[name]) for _, layer, name in net.parameters()]
    check_gradients(loss, [x] + params, [dx] + grads, 1.0, ["x"] + keys)


@pytest.mark.usefixtures("serial_numba")
@pytest.mark.parametrize("side", [8, 7])
@pytest.mark.parametrize("rate", [0.0, 0.3])
def test_small_cnn_end_to_end(side, rate):
    """Conv -> LeakyReLU -> MaxPool -> Dropout -> Flatten -> Dense -> softmax-cross-entropy.

    Dropout is off (rate 0) or has a fixed mask (its rng re-seeded before every forward).
    """
    rng = np.random.default_rng(12 + side)
    pooled = -(-side // 2)
    dropout = Dropout(rate)
    net = as_float64(Sequential([
        Conv2D(1, 3, 3, padding="same", rng=rng), LeakyReLU(0.1), MaxPool2D(2, padding="same"),
        dropout, Flatten(), Dense(3 * pooled * pooled, 5, rng=rng)]))
    for _, layer, name in net.parameters():
        if name == "bias":
            layer.params[name][:] = rng.normal(0, 0.1, layer.params[name].shape)
    x = rng.uniform(0, 1, (2, 1, side, side))
    labels = rng.integers(0, 5, size=2)

    def reseed():
        dropout.rng = np.random.default_rng(99)

    check_network_with_loss(net, x, labels, reseed)


@pytest.mark.usefixtures("serial_numba")
def test_small_lstm_batchnorm_dense_end_to_end():
    """LSTM (last state) -> BatchNorm (training mode) -> Dense -> softmax-cross-entropy."""
    rng = np.random.default_rng(13)
    n, t, d, h, classes = 5, 4, 3, 4, 3
    bn = random_batchnorm(rng, h)
    net = Sequential([random_lstm(rng, d, h, False), bn, as_float64(Dense(h, classes, rng=rng))])
    net.layers[2].params["bias"][:] = rng.normal(0, 0.1, classes)
    x = rng.standard_normal((n, t, d))
    labels = rng.integers(0, classes, size=n)
    check_network_with_loss(net, x, labels)


# ----------------------------------------------------------------------------- backward is idempotent

TWICE_CASES = {  # name -> rng -> (fresh layer, input, training)
    "conv": lambda rng: (Conv2D(2, 3, 3, 2, "same", rng=rng), rng.standard_normal((2, 2, 7, 6)), True),
    "conv-first": lambda rng: (Conv2D(2, 3, 3, 1, "valid", need_input_grad=False, rng=rng),
                               rng.standard_normal((2, 2, 5, 6)), True),
    "maxpool": lambda rng: (MaxPool2D(2, padding="same"), tie_free(rng, (2, 2, 7, 7)), True),
    "maxpool-overlap": lambda rng: (MaxPool2D(3, 2, "valid"), tie_free(rng, (2, 2, 7, 7)), True),
    "dense": lambda rng: (Dense(5, 4, rng=rng), rng.standard_normal((3, 5)), True),
    "flatten": lambda rng: (Flatten(), rng.standard_normal((2, 3, 4)), True),
    "leaky_relu": lambda rng: (LeakyReLU(0.1), rng.standard_normal((3, 4)), True),
    "relu": lambda rng: (ReLU(), rng.standard_normal((3, 4)), True),
    "dropout-train": lambda rng: (Dropout(0.5, rng=rng), rng.standard_normal((3, 8)), True),
    "dropout-eval": lambda rng: (Dropout(0.5, rng=rng), rng.standard_normal((3, 8)), False),
    "batchnorm-train": lambda rng: (BatchNorm(4), rng.standard_normal((5, 4)), True),
    "batchnorm-eval": lambda rng: (BatchNorm(4), rng.standard_normal((5, 4)), False),
    "lstm-last": lambda rng: (LSTM(3, 4, rng=rng), rng.standard_normal((2, 5, 3)), True),
    "lstm-sequences": lambda rng: (LSTM(3, 4, return_sequences=True, rng=rng),
                                   rng.standard_normal((2, 5, 3)), True),
    "lstm-sequences-n1": lambda rng: (LSTM(3, 4, return_sequences=True, rng=rng),
                                      rng.standard_normal((1, 5, 3)), True),
    "sequential": lambda rng: (Sequential([Conv2D(1, 2, 3, rng=rng), LeakyReLU(0.1), MaxPool2D(2),
                                           Dropout(0.3, rng=rng), Flatten(), Dense(2 * 4 * 4, 3, rng=rng)]),
                               rng.standard_normal((2, 1, 7, 7)), True),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TWICE_CASES)
def test_backward_twice_gives_identical_gradients(case, dtype):
    """backward assigns gradients (never accumulates) and leaves its upstream gradient alone."""
    layer, x, training = TWICE_CASES[case](np.random.default_rng(14))
    layer = as_float64(layer) if dtype == np.float64 else layer
    x = x.astype(dtype)
    y = layer.forward(x, training)
    assert y.dtype == dtype
    dy = np.random.default_rng(15).standard_normal(y.shape).astype(dtype)
    dy_before = dy.copy()
    dx1 = layer.backward(dy)
    grads1 = {key: np.array(owner.grads[name]) for key, owner, name in parameters_of(layer)}
    dx1 = None if dx1 is None else np.array(dx1)
    dx2 = layer.backward(dy)
    grads2 = {key: np.array(owner.grads[name]) for key, owner, name in parameters_of(layer)}
    np.testing.assert_array_equal(dy, dy_before)
    if dx1 is None:
        assert dx2 is None
    else:
        assert dx1.shape == x.shape and dx1.dtype == dtype
        np.testing.assert_array_equal(dx1, dx2)
    assert grads1.keys() == {key for key, _, _ in parameters_of(layer)}
    for key in grads1:
        assert grads1[key].dtype == dtype, key
        np.testing.assert_array_equal(grads1[key], grads2[key], err_msg=key)


# ----------------------------------------------------------------------------- kernels vs reference

DTYPES = [np.float32, np.float64]
CONV_KERNEL_CASES = [
    # N, C, H, W, k, stride, padding
    (1, 1, 5, 5, 3, 1, "same"),
    (2, 3, 7, 9, 3, 1, "valid"),
    (3, 2, 8, 6, 3, 2, "same"),
    (2, 2, 9, 7, 5, 2, "same"),
    (2, 4, 6, 6, 1, 1, "valid"),
    (1, 2, 11, 8, 3, 3, "same"),
]


def _geometry(h, w, k, stride, padding):
    return conv_geometry(h, w, k, k, stride, padding)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c, h, w, k, stride, padding", CONV_KERNEL_CASES)
def test_im2col_col2im_kernels(n, c, h, w, k, stride, padding, dtype):
    rng = np.random.default_rng(16 + h * w + k)
    out_h, out_w, top, left = _geometry(h, w, k, stride, padding)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    col = conv_kernels.im2col(x, k, k, stride, top, left, out_h, out_w)
    assert col.dtype == dtype and col.shape == (c * k * k, n * out_h * out_w)
    np.testing.assert_array_equal(col, reference.im2col(x, k, k, stride, top, left, out_h, out_w))
    dcol = rng.standard_normal(col.shape).astype(dtype)
    dx = conv_kernels.col2im(dcol, n, c, h, w, k, k, stride, top, left, out_h, out_w)
    want = reference.col2im(dcol, n, c, h, w, k, k, stride, top, left, out_h, out_w)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, want, rtol=0, atol=8 * np.finfo(dtype).eps * np.abs(want).max())
    # col2im is the adjoint of im2col: <im2col(x), dcol> = <x, col2im(dcol)>
    lhs = np.vdot(col.astype(np.float64), dcol.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), dx.astype(np.float64))
    assert abs(lhs - rhs) <= (1e-5 if dtype == np.float32 else 1e-12) * max(abs(lhs), 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, c_out, positions", [(1, 1, 1), (2, 3, 20), (5, 4, 9), (3, 7, 16)])
def test_gemm_layout_kernels(n, c_out, positions, dtype):
    rng = np.random.default_rng(17 + n * c_out * positions)
    y2d = rng.standard_normal((c_out, n * positions)).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    y = conv_kernels.gemm_to_nchw(y2d, bias, n)
    assert y.dtype == dtype and y.shape == (n, c_out, positions)
    np.testing.assert_array_equal(y, reference.gemm_to_nchw(y2d, bias, n))
    dy = rng.standard_normal((n, c_out, positions)).astype(dtype)
    dy2d = conv_kernels.nchw_to_gemm(dy)
    assert dy2d.dtype == dtype
    np.testing.assert_array_equal(dy2d, reference.nchw_to_gemm(dy))


POOL_KERNEL_CASES = [
    # shape, pool, stride, padding
    ((2, 3, 8, 8), 2, 2, "same"),
    ((2, 2, 7, 7), 2, 2, "same"),
    ((1, 3, 7, 9), 2, 2, "valid"),
    ((2, 2, 8, 9), 3, 2, "same"),
    ((1, 2, 9, 9), 3, 2, "valid"),
    ((3, 1, 5, 6), 3, 1, "same"),
]


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, pool, stride, padding", POOL_KERNEL_CASES)
def test_maxpool_kernels(shape, pool, stride, padding, dtype, ties):
    """Same maxima and same argmax (ties: the first maximum wins, in both) and same dx."""
    rng = np.random.default_rng(18 + sum(shape) + pool)
    out_h, out_w, top, left = pool_geometry(shape[2], shape[3], pool, stride, padding)
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(dtype)
    args = (pool, pool, stride, stride, top, left, out_h, out_w)
    y, argmax = pool_kernels.maxpool_forward(x, *args)
    y_ref, argmax_ref = reference.maxpool_forward(x, *args)
    assert y.dtype == dtype and y.shape == shape[:2] + (out_h, out_w)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = pool_kernels.maxpool_backward(dy, argmax, shape[2], shape[3])
    dx_ref = reference.maxpool_backward(dy, argmax_ref, shape[2], shape[3])
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=4 * np.finfo(dtype).eps * np.abs(dy).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 4), (8, 16), (5, 7)])
def test_lstm_step_kernels(n, hidden, dtype):
    rng = np.random.default_rng(19 + n * hidden)
    tol = dict(rtol=0, atol=4e-6 if dtype == np.float32 else 1e-14)
    pre = (rng.standard_normal((n, 4 * hidden)) * 3).astype(dtype)
    pre[0, 0] = 40  # sigmoid far into both tails must not overflow
    pre[-1, -1] = -40
    c_prev = rng.standard_normal((n, hidden)).astype(dtype)
    recurrent = np.zeros_like(pre)  # the split of a_t into gates + recurrent: see the test below
    outputs = {}
    for name, step in (("numba", lstm_kernels.lstm_step_forward), ("numpy", reference.lstm_step_forward)):
        gates = pre.copy()
        c, tanh_c, h = (np.full((n, hidden), np.nan, dtype) for _ in range(3))
        step(gates, recurrent, c_prev, c, tanh_c, h)
        outputs[name] = (gates, c, tanh_c, h)
    for got, want in zip(outputs["numba"], outputs["numpy"]):
        assert got.dtype == dtype and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, **tol)

    gates, _, tanh_c, _ = outputs["numpy"]
    dh = rng.standard_normal((n, hidden)).astype(dtype)
    dc0 = rng.standard_normal((n, hidden)).astype(dtype)
    results = {}
    for name, step in (("numba", lstm_kernels.lstm_step_backward), ("numpy", reference.lstm_step_backward)):
        dc = dc0.copy()
        dgates = np.full((n, 4 * hidden), np.nan, dtype)
        step(dh, dc, gates, c_prev, tanh_c, dgates)
        results[name] = (dc, dgates)
    for got, want in zip(results["numba"], results["numpy"]):
        assert got.dtype == dtype and np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 4), (8, 16), (64, 64)])
def test_lstm_step_forward_fast_kernel(n, hidden):
    """The float32 kernel with a rational tanh, against the exact NumPy twin run in float64."""
    rng = np.random.default_rng(20 + n * hidden)
    pre = (rng.standard_normal((n, 4 * hidden)) * 4).astype(np.float32)
    pre.flat[:8] = [40, -40, 9, -9, 7.9, -7.9, 1e-6, 0]  # beyond and at the clamp, and near 0
    c_prev = (rng.standard_normal((n, hidden)) * 2).astype(np.float32)
    gates = pre.copy()
    c, tanh_c, h = (np.full((n, hidden), np.nan, np.float32) for _ in range(3))
    lstm_kernels.lstm_step_forward_fast(gates, np.zeros_like(pre), c_prev, c, tanh_c, h)
    gates64 = pre.astype(np.float64)
    c64, tanh_c64, h64 = (np.empty((n, hidden)) for _ in range(3))
    reference.lstm_step_forward(gates64, np.zeros_like(gates64), c_prev.astype(np.float64), c64,
                                tanh_c64, h64)
    for name, got, want in (("gates", gates, gates64), ("c", c, c64), ("tanh_c", tanh_c, tanh_c64),
                            ("h", h, h64)):
        assert got.dtype == np.float32 and np.all(np.isfinite(got)), name
        # tanh error 3.4e-7 (sigmoid half that), times |c_prev| <= ~8 in c
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-6, err_msg=name)
    assert np.all(np.abs(gates) <= 1) and np.all(np.abs(tanh_c) <= 1)


def test_lstm_need_input_grad_false_skips_dx_only():
    """An LSTM that is the first layer skips dx; its parameter gradients do not change."""
    from nn.layers.lstm import lstm_backward, lstm_forward
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 5, 4))
    w_ih, w_hh, b = (rng.standard_normal(s) * 0.5 for s in ((8, 4), (8, 2), (8,)))
    hs, cache = lstm_forward(x, w_ih, w_hh, b)
    dhs = rng.standard_normal(hs.shape)
    full = lstm_backward(dhs, cache, need_input_grad=True)
    skipped = lstm_backward(dhs, cache, need_input_grad=False)
    assert skipped[0] is None and full[0].shape == x.shape
    for a, c in zip(full[1:], skipped[1:]):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("kernel", ["lstm_step_forward", "lstm_step_forward_fast"])
def test_lstm_step_adds_the_recurrent_part(kernel):
    """a_t = gates + recurrent: splitting the pre-activations between the two gives one answer."""
    rng = np.random.default_rng(23)
    pre = (rng.standard_normal((6, 4 * 5)) * 3).astype(np.float32)
    recurrent = (rng.standard_normal(pre.shape) * 2).astype(np.float32)
    c_prev = rng.standard_normal((6, 5)).astype(np.float32)
    results = []
    for gates, extra in ((pre.copy(), np.zeros_like(pre)), (pre - recurrent, recurrent)):
        c, tanh_c, h = (np.empty((6, 5), np.float32) for _ in range(3))
        getattr(lstm_kernels, kernel)(gates, extra, c_prev, c, tanh_c, h)
        results.append((gates, c, h))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
