"""The kernels added for speed (issue 10) against their NumPy twins in nn.kernels.reference."""
import os

import numpy as np

import nn.layers.fused as fused_layers
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, outputs", [(64, 256), (17, 5), (1, 10)])
@pytest.mark.parametrize("slope", [0.0, 0.1, 1.0])
def test_dense_kernels_match_their_twins(dtype, batch, outputs, slope):
    from nn.kernels import dense as dense_kernels
    rng = np.random.default_rng(batch)
    y = rng.standard_normal((batch, outputs)).astype(dtype)
    b = rng.standard_normal(outputs).astype(dtype)
    in_place, twin = y.copy(), y.copy()
    dense_kernels.bias_leaky_in_place(in_place, b, dtype(slope))
    reference.bias_leaky_in_place(twin, b, dtype(slope))
    np.testing.assert_array_equal(in_place, twin)
    v = y + b
    np.testing.assert_array_equal(in_place, np.where(v > 0, v, dtype(slope) * v))
    dy = rng.standard_normal((batch, outputs)).astype(dtype)
    dz, db = dense_kernels.leaky_bias_backward(dy, y, dtype(slope))
    dz_ref, db_ref = reference.leaky_bias_backward(dy, y, dtype(slope))
    np.testing.assert_array_equal(dz, dz_ref)
    np.testing.assert_allclose(db, db_ref, rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_kernels_match_their_twins_and_the_numpy_loss(dtype):
    from nn import losses
    from nn.kernels import losses as loss_kernels
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((37, 10)) * 5).astype(dtype)
    logits[3] = 80.0                      # a row whose exp would overflow without the shift
    labels = rng.integers(0, 10, 37)
    loss, probabilities, ok = loss_kernels.softmax_cross_entropy(logits, labels)
    loss_ref, probabilities_ref, ok_ref = reference.softmax_cross_entropy(logits, labels)
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    assert ok and ok_ref and loss > 1.0
    np.testing.assert_allclose(loss, loss_ref, rtol=tolerance)
    np.testing.assert_allclose(probabilities, probabilities_ref, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(loss_kernels.softmax_cross_entropy_backward(probabilities, labels),
                                  reference.softmax_cross_entropy_backward(probabilities, labels))
    # the NumPy formulation nn.losses keeps for other inputs gives the same numbers
    log_p = losses.log_softmax(logits)
    np.testing.assert_allclose(loss, -log_p[np.arange(37), labels].mean(), rtol=10 * tolerance)
    bad = labels.copy()
    bad[5] = 10
    assert not loss_kernels.softmax_cross_entropy(logits, bad)[2]
    with pytest.raises(IndexError):       # out of range: the NumPy path reports it, as before
        losses.softmax_cross_entropy_forward(logits, bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_kernel_matches_numpys_formula(dtype):
    """nn.losses.softmax (one compiled pass for float rows) against exp(z - m) / sum, written
    out in NumPy; a row of 80s must not overflow, and other inputs still take NumPy's path."""
    from nn import losses
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((37, 10)) * 5).astype(dtype)
    logits[3] = 80.0
    shifted = logits - logits.max(axis=1, keepdims=True)
    expected = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    probabilities = losses.softmax(logits)
    assert probabilities.dtype == dtype
    tolerance = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(reference.softmax_rows(logits), expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(probabilities, expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(probabilities[3], 0.1, rtol=tolerance)
    np.testing.assert_allclose(losses.softmax(logits[:, ::2]), losses.softmax(logits[:, ::2].copy()))
    np.testing.assert_allclose(losses.softmax(logits.astype(np.float16)), expected, rtol=2e-3,
                               atol=2e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batchnorm_kernels_match_their_twins(dtype):
    from nn.kernels import batchnorm as batchnorm_kernels
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 24)) * 3 + 2).astype(dtype)
    gamma, beta = (rng.standard_normal(24).astype(dtype) for _ in range(2))
    eps = dtype(1e-5)
    tolerance = 2e-6 if dtype == np.float32 else 1e-13
    forward = batchnorm_kernels.batchnorm_train_forward(x, gamma, beta, eps)
    for mine, twin in zip(forward, reference.batchnorm_train_forward(x, gamma, beta, eps)):
        assert mine.dtype == dtype
        np.testing.assert_allclose(mine, twin, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(forward[1].mean(axis=0), 0, atol=10 * tolerance)
    dy = rng.standard_normal((64, 24)).astype(dtype)
    _, x_hat, _, _, inv_std = forward
    backward = batchnorm_kernels.batchnorm_train_backward(dy, x_hat, inv_std, gamma)
    twin = reference.batchnorm_train_backward(dy, x_hat, inv_std, gamma)
    for mine, theirs in zip(backward, twin):
        np.testing.assert_allclose(mine, theirs, rtol=tolerance, atol=10 * tolerance)


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


# ----------------------------------------------------------------------------- Winograd F(2x2, 3x3)
from nn.kernels import winograd  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [14, 7, 4, 3])
@pytest.mark.parametrize("slice_images", [1, 2, 8])      # 3 images: whole slices, a part one, one slice
def test_winograd_kernels_match_their_twins(dtype, size, slice_images):
    """The sliced forward and backward kernels against the whole-batch NumPy twins of each step
    (input transform, products, output transform + pool; pool backward, dU, dV, input backward)."""
    from nn.threads import blas_threads
    rng = np.random.default_rng(size)
    n, c_in, c_out = 3, 4, 5
    tiles = (size + 1) // 2
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    x = rng.standard_normal((n, c_in, size, size)).astype(dtype)
    u = rng.standard_normal((16, c_out, c_in)).astype(dtype)
    bias, slope = rng.standard_normal(c_out).astype(dtype), dtype(0.1)
    with blas_threads(1):
        v, pooled, argmax = winograd.winograd_forward(x, u, bias, slope, slice_images, True)
        _, pooled_only, argmax_only = winograd.winograd_forward(x, u, bias, slope, slice_images, False)
    v_ref, pooled_ref, argmax_ref = reference.winograd_forward(x, u, bias, slope, slice_images, True)
    np.testing.assert_allclose(v, v_ref, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(pooled, pooled_ref, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_array_equal(pooled_only, pooled)
    np.testing.assert_array_equal(argmax_only, argmax)

    dpooled = rng.standard_normal(pooled.shape).astype(dtype)
    with blas_threads(1):
        du, db, dx = winograd.winograd_backward(dpooled, pooled, argmax, v, u, slope, size, size,
                                                slice_images, 2, True)
        du_only, db_only, no_dx = winograd.winograd_backward(dpooled, pooled, argmax, v, u, slope,
                                                             size, size, slice_images, 2, False)
    du_ref, db_ref, dx_ref = reference.winograd_backward(dpooled, pooled, argmax, v_ref, u, slope,
                                                         size, size, slice_images, 2, True)
    np.testing.assert_allclose(db, db_ref, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(du, du_ref, rtol=tolerance, atol=tolerance * 10)
    np.testing.assert_allclose(dx, dx_ref, rtol=tolerance, atol=tolerance * 10)
    np.testing.assert_array_equal(du_only, du)
    np.testing.assert_array_equal(db_only, db)
    assert no_dx.shape == (0, c_in, size, size)
    # the twins themselves, step by step against the NumPy formulas they chain
    dm_ref, _ = reference.winograd_pool_backward(dpooled, pooled, argmax, slope)
    np.testing.assert_allclose(du_ref, np.einsum("kot,kct->koc", dm_ref, v_ref), rtol=1e-5, atol=1e-4)

    w = rng.standard_normal((c_out, c_in, 3, 3)).astype(dtype)
    from nn.layers.fused import winograd_filter
    np.testing.assert_allclose(winograd_filter(w), reference.winograd_filter(w),
                               rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(winograd.winograd_filter_grad(du), reference.winograd_filter_grad(du),
                               rtol=tolerance, atol=tolerance)


def test_winograd_sums_over_two_groups_on_one_or_two_threads_and_one_per_thread_above():
    from nn.layers.fused import winograd_groups
    assert [winograd_groups(threads) for threads in (1, 2, 3, 8)] == [2, 2, 3, 8]


def winograd_block(seed=0, n_images=9, size=14):
    """A fused Conv2D(32 -> 24) + LeakyReLU + MaxPool2D step on the Winograd path, its input and
    an output gradient (float32)."""
    from nn.layers import Conv2D, LeakyReLU, MaxPool2D, Sequential
    rng = np.random.default_rng(seed)
    layers = [Conv2D(32, 24, 3, rng=rng), LeakyReLU(0.1), MaxPool2D(2, padding="same")]
    layers[0].params["bias"] = rng.standard_normal(24).astype(np.float32) * 0.1
    network = Sequential(layers)
    x = rng.standard_normal((n_images, 32, size, size)).astype(np.float32)
    dy = rng.standard_normal((n_images, 24, (size + 1) // 2, (size + 1) // 2)).astype(np.float32)
    return network, x, dy


def test_winograd_block_gives_the_same_bits_on_one_and_two_threads(monkeypatch):
    """Slices (3 of 4, 4 and 1 images) go to whichever thread is free, but dU is summed in two
    fixed groups added in order, so one and two threads agree to the last bit."""
    monkeypatch.setattr(fused_layers, "WINOGRAD_MIN_TILES", 1)
    import numba
    results = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            network, x, dy = winograd_block()
            assert network.steps()[0].uses_winograd(x.shape)
            y = network.forward(x, training=True)
            dx = network.backward(dy)
            results.append((y, dx, network.layers[0].grads["weight"], network.layers[0].grads["bias"]))
    finally:
        numba.set_num_threads(before)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_winograd_infer_gives_forwards_output_and_keeps_forwards_cache(monkeypatch):
    """infer() keeps no V, and a backward after it still belongs to the last forward()."""
    monkeypatch.setattr(fused_layers, "WINOGRAD_MIN_TILES", 1)
    network, x, dy = winograd_block(seed=1)
    step = network.steps()[0]
    y = step.forward(x, training=True)
    dx = step.backward(dy)
    step.forward(x, training=True)
    other = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_array_equal(step.infer(x), y)
    assert not np.array_equal(step.infer(other), y)
    np.testing.assert_array_equal(step.backward(dy), dx)


@pytest.mark.parametrize("chunk", [64, 2])   # one slice, and a batch of 5 in slices of 2, 2, 1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [14, 7, 8])
def test_winograd_block_matches_the_separate_layers(dtype, size, chunk, monkeypatch):
    monkeypatch.setattr(fused_layers, "WINOGRAD_MIN_TILES", 1)   # small inputs take Winograd here
    """The Winograd path of the fused block (>= 16 input channels) against Conv2D -> LeakyReLU
    -> MaxPool2D run one by one (im2col + GEMM): output, input gradient, parameter gradients."""
    import copy
    from nn.layers import Conv2D, LeakyReLU, MaxPool2D, Sequential
    from nn.layers import fused as fused_module
    from nn.layers.fused import ConvActivationPool
    monkeypatch.setattr(fused_module, "WINOGRAD_SLICE_IMAGES", chunk)
    rng = np.random.default_rng(size)
    layers = [Conv2D(32, 24, 3, rng=rng), LeakyReLU(0.1), MaxPool2D(2, padding="same")]
    layers[0].params["weight"] = layers[0].params["weight"].astype(dtype)
    layers[0].params["bias"] = rng.standard_normal(24).astype(dtype) * 0.1
    fused, plain = Sequential(layers), Sequential(copy.deepcopy(layers), fuse=False)
    x = rng.standard_normal((5, 32, size, size)).astype(dtype)
    step = fused.steps()[0]
    assert isinstance(step, ConvActivationPool) and step.uses_winograd(x.shape)
    y, y_plain = fused.forward(x, True), plain.forward(x, True)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dx_plain = fused.backward(dy), plain.backward(dy)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.abs(y_plain).max()
    np.testing.assert_allclose(y, y_plain, rtol=0, atol=tolerance * scale)
    np.testing.assert_allclose(dx, dx_plain, rtol=0, atol=tolerance * np.abs(dx_plain).max())
    for key in ("weight", "bias"):
        expected = plain.layers[0].grads[key]
        np.testing.assert_allclose(fused.layers[0].grads[key], expected, rtol=0,
                                   atol=tolerance * np.abs(expected).max(), err_msg=key)


# ----------------------------------------------------------------------------- direct first block
from nn.kernels import fused as fused_kernels  # noqa: E402


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [28, 6, 2])
def test_direct_first_block_matches_its_twin(dtype, size):
    rng = np.random.default_rng(size)
    x = rng.random((3, 1, size, size)).astype(dtype)
    w = rng.standard_normal((5, 1, 3, 3)).astype(dtype)
    bias, slope = rng.standard_normal(5).astype(dtype) * 0.1, dtype(0.1)
    pooled, argmax = fused_kernels.conv3x3_single_channel_leaky_maxpool2x2(x, w, bias, slope)
    pooled_ref, argmax_ref = reference.conv3x3_single_channel_leaky_maxpool2x2(x, w, bias, slope)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(pooled, pooled_ref, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dpooled = rng.standard_normal(pooled.shape).astype(dtype)
    dw, db = fused_kernels.conv3x3_single_channel_leaky_maxpool_backward(dpooled, pooled, argmax, slope, x)
    dw_ref, db_ref = reference.conv3x3_single_channel_leaky_maxpool_backward(dpooled, pooled, argmax, slope, x)
    np.testing.assert_allclose(dw, dw_ref, rtol=tolerance * 10, atol=tolerance * 10)
    np.testing.assert_allclose(db, db_ref, rtol=tolerance * 10, atol=tolerance * 10)


@pytest.mark.parametrize("zeros", [False, True])
def test_direct_first_block_matches_the_separate_layers(zeros):
    """Output, parameter gradients and tie-breaking of the direct conv1 path against the layers."""
    import copy
    from nn.layers import Conv2D, LeakyReLU, MaxPool2D, Sequential
    rng = np.random.default_rng(3)
    layers = [Conv2D(1, 8, 3, need_input_grad=False, rng=rng), LeakyReLU(0.1), MaxPool2D(2, padding="same")]
    layers[0].params["bias"][:] = rng.standard_normal(8) * 0.1
    fused, plain = Sequential(layers), Sequential(copy.deepcopy(layers), fuse=False)
    x = (np.zeros if zeros else lambda s, d: rng.random(s).astype(d))((4, 1, 28, 28), np.float32)
    assert fused.steps()[0].uses_direct(x.shape)
    y, y_plain = fused.forward(x, True), plain.forward(x, True)
    np.testing.assert_allclose(y, y_plain, rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    fused.backward(dy)
    plain.backward(dy)
    for key in ("weight", "bias"):
        np.testing.assert_allclose(fused.layers[0].grads[key], plain.layers[0].grads[key],
                                   rtol=1e-5, atol=1e-5, err_msg=key)


def test_winograd_runs_only_where_it_pays():
    """One image goes through im2col (Winograd's transforms cost more than they save), a
    training batch of 64 through Winograd, for both of the CNN's Winograd-capable blocks."""
    from nn.layers import Conv2D, LeakyReLU, MaxPool2D
    conv2 = fused_layers.ConvActivationPool(Conv2D(32, 64, 3), LeakyReLU(0.1), MaxPool2D(2))
    conv3 = fused_layers.ConvActivationPool(Conv2D(64, 128, 3), LeakyReLU(0.1), MaxPool2D(2))
    assert [conv2.uses_winograd((n, 32, 14, 14)) for n in (1, 5, 6, 64)] == [False, False, True, True]
    assert [conv3.uses_winograd((n, 64, 7, 7)) for n in (1, 15, 16, 64)] == [False, False, True, True]


def test_dense_keeps_its_weight_column_major_and_a_row_major_one_gives_the_same_values():
    """Built, the weight is column-major (x w^T then multiplies untransposed matrices) and its
    gradient comes in the same layout, so the optimizer updates it in place without a copy; a
    weight assigned row-major gives the same output and gradients."""
    from nn.layers import Dense
    rng = np.random.default_rng(3)
    column = Dense(20, 7, rng=np.random.default_rng(0))
    row = Dense(20, 7, rng=np.random.default_rng(0))
    row.params["weight"] = np.ascontiguousarray(row.params["weight"])
    assert column.params["weight"].flags.f_contiguous and not column.params["weight"].flags.c_contiguous
    np.testing.assert_array_equal(column.params["weight"], row.params["weight"])
    x = rng.standard_normal((5, 20)).astype(np.float32)
    dy = rng.standard_normal((5, 7)).astype(np.float32)
    np.testing.assert_allclose(column.forward(x, training=True), row.forward(x, training=True),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(column.backward(dy), row.backward(dy), rtol=1e-5, atol=1e-6)
    assert column.grads["weight"].flags.f_contiguous and row.grads["weight"].flags.c_contiguous
    np.testing.assert_allclose(column.grads["weight"], row.grads["weight"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(column.grads["weight"], dy.T @ x, rtol=1e-5, atol=1e-6)


def test_adam_updates_a_column_major_parameter_in_place_as_a_row_major_one():
    """The optimizer's kernels run over flat views in the parameter's own memory order; before,
    a column-major parameter was refused."""
    from nn.layers import Dense
    from nn.optim import Adam
    rng = np.random.default_rng(4)
    layers = [Dense(30, 6, rng=np.random.default_rng(1)) for _ in range(2)]
    layers[1].params["weight"] = np.ascontiguousarray(layers[1].params["weight"])
    held = layers[0].params["weight"]
    optimizers = [Adam([("w", layer, "weight"), ("b", layer, "bias")], lr=0.01) for layer in layers]
    for _ in range(3):
        x = rng.standard_normal((4, 30)).astype(np.float32)
        dy = rng.standard_normal((4, 6)).astype(np.float32)
        for layer, optimizer in zip(layers, optimizers):
            layer.forward(x, training=True)
            layer.backward(dy)
            optimizer.step()
    assert layers[0].params["weight"] is held and held.flags.f_contiguous
    np.testing.assert_allclose(layers[0].params["weight"], layers[1].params["weight"],
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(held, Dense(30, 6, rng=np.random.default_rng(1)).params["weight"])


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("depth", [1, 3])
def test_dense_stack_forward_matches_its_twin_with_the_same_bits_for_any_block_count(dtype, tol, depth):
    from nn.kernels import dense as dense_kernels
    from nn.threads import blas_threads
    rng = np.random.default_rng(3)
    widths = [70, 40, 25, 9][:depth + 1]
    x = rng.standard_normal((300, widths[0])).astype(dtype)
    weights_t = tuple(np.asfortranarray(rng.standard_normal((o, i)).astype(dtype)).T
                      for i, o in zip(widths, widths[1:]))
    biases = tuple(rng.standard_normal(o).astype(dtype) for o in widths[1:])
    slopes = np.array([0.0, 0.1, 1.0][-depth:], dtype)
    twin = tuple(np.empty((300, o), dtype) for o in widths[1:])
    reference.dense_stack_forward(x, weights_t, biases, slopes, twin, 1)
    results = []
    for blocks in (1, 2, 3, 7):
        outputs = tuple(np.full((300, o), np.nan, dtype) for o in widths[1:])
        with blas_threads(1):
            dense_kernels.dense_stack_forward(x, weights_t, biases, slopes, outputs, blocks)
        results.append(outputs)
    for got, expected in zip(results[0], twin):
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    for outputs in results[1:]:
        for got, first in zip(outputs, results[0]):
            np.testing.assert_array_equal(got, first)   # every row written, whatever its block


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
@pytest.mark.parametrize("batch", [512, 300])
def test_mlp_prediction_gives_the_same_bits_on_one_and_two_threads(batch):
    """A large batch on two threads goes through the MLP block by block (dense_stack_forward),
    each thread with one-thread BLAS; BLAS's own two-thread products gave other last bits (up to
    8.3e-7 in the logits)."""
    import models
    from nn.threads import set_threads
    model = models.build_model("mlp", rng=np.random.default_rng(0))
    images = np.random.default_rng(1).random((batch, 28, 28), dtype=np.float32)
    with set_threads(1):
        one = model.logits(images)
    with set_threads(2):
        two = model.logits(images)
    np.testing.assert_array_equal(two, one)


def test_only_a_stack_of_dense_layers_on_a_large_batch_goes_by_blocks():
    from nn.layers import Dense, Dropout, LeakyReLU, Sequential
    from nn.layers.dense import ROWS_PER_THREAD_FOR_BLOCKS, dense_stack, dense_stack_infer
    from nn.threads import set_threads
    rng = np.random.default_rng(5)
    mlp = Sequential([Dense(64, 32, rng=rng), LeakyReLU(0.1), Dropout(0.5, rng=rng),
                      Dense(32, 10, rng=rng)])
    for layer in (mlp.layers[0], mlp.layers[3]):
        layer.params["bias"][:] = rng.standard_normal(layer.out_features).astype(np.float32)
    stack = dense_stack(mlp.steps())
    assert [(type(dense).__name__, slope) for dense, slope in stack] == [("Dense", 0.1), ("Dense", 1.0)]
    big = rng.standard_normal((2 * ROWS_PER_THREAD_FOR_BLOCKS, 64)).astype(np.float32)
    with set_threads(1):
        assert dense_stack_infer(stack, big) is None          # one thread: layer by layer
        expected = mlp.infer(big)
    with set_threads(2):
        assert dense_stack_infer(stack, big[:10]) is None     # a small batch: layer by layer
        by_blocks = dense_stack_infer(stack, big)
        np.testing.assert_array_equal(by_blocks, expected)
        np.testing.assert_array_equal(mlp.infer(big), expected)
    h = np.maximum(big @ mlp.layers[0].params["weight"].T + mlp.layers[0].params["bias"], 0) + \
        0.1 * np.minimum(big @ mlp.layers[0].params["weight"].T + mlp.layers[0].params["bias"], 0)
    np.testing.assert_allclose(expected, h @ mlp.layers[3].params["weight"].T + mlp.layers[3].params["bias"],
                               rtol=1e-4, atol=1e-5)
    assert dense_stack(Sequential([Dense(4, 3, rng=rng), LeakyReLU(0.0)], fuse=False).steps()) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finiteness_kernels_match_their_twin_wherever_the_bad_value_is(dtype):
    """Both kernels against np.isfinite for NaN, +inf and -inf in every block (first, last,
    middle row and column), a clean batch, and the largest finite value (which is finite)."""
    from nn.kernels import finite
    rng = np.random.default_rng(3)
    clean = rng.standard_normal((37, 29)).astype(dtype)
    cases = [clean, np.full((5, 3), np.finfo(dtype).max, dtype), np.zeros((0, 4), dtype)]
    for bad in (np.nan, np.inf, -np.inf):
        for row, column in ((0, 0), (36, 28), (18, 14), (9, 1), (27, 27)):
            x = clean.copy()
            x[row, column] = bad
            cases.append(x)
    for x in cases:
        expected = reference.all_finite(x)
        assert bool(finite.all_finite(x)) == expected, x.shape
        for blocks in (1, 2, 3, 7):
            assert bool(finite.all_finite_blocks(x, blocks)) == expected, (x.shape, blocks)
    assert reference.all_finite(clean) and not reference.all_finite(cases[3])


@pytest.mark.parametrize("where", [0, 200, 255])
def test_a_large_batch_with_one_bad_pixel_is_refused_on_two_threads(where):
    """nn.finite.all_finite splits a large batch among the threads: a NaN in any block is found,
    and a clean batch passes."""
    import models
    from models.base import ImageError
    from nn.finite import PARALLEL_FROM, all_finite
    from nn.threads import set_threads
    model = models.build_model("mlp", rng=np.random.default_rng(0))
    images = np.random.default_rng(4).random((256, 28, 28), dtype=np.float32)
    assert images.size >= PARALLEL_FROM
    with set_threads(2):
        assert all_finite(images)
        assert model.predict_proba(images).shape == (256, 10)
        images[where, 27, 27] = np.nan
        assert not all_finite(images)
        with pytest.raises(ImageError, match="NaN or infinite"):
            model.predict_proba(images)
        images[where, 27, 27] = -np.inf
        with pytest.raises(ImageError, match="NaN or infinite"):
            model.predict_proba(images)
    strided = np.random.default_rng(5).random((8, 28, 56), dtype=np.float32)[:, :, ::2]
    strided[3, 2, 1] = np.inf                      # not contiguous: NumPy's isfinite decides
    assert not all_finite(strided) and all_finite(strided[:3])
