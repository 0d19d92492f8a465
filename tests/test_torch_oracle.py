"""PyTorch as the second oracle: the same float32 weights and inputs through our layers and
through torch's, forward within 1e-5 and every gradient within 1e-4 (relative to the largest
torch value), for every layer, every shipped model (cnn, lstm, gru, rnn, mlp), a Bidirectional
model, and the optimizers.

The torch side is generated from our layers' configs by tests/support/torch_twins.py (the same
twins the benchmark times); its docstring lists how each layer maps onto torch's.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is not installed: oracle tests skipped")
torch.set_num_threads(2)
F = torch.nn.functional

from models import build_model  # noqa: E402
from nn.layers import (GRU, LSTM, BatchNorm, Bidirectional, Conv2D, Dense, Dropout,  # noqa: E402
                       Flatten, LeakyReLU, Layer, MaxPool2D, ReLU, Sequential, SimpleRNN,
                       build_layers)
from nn.layers.fused import ConvActivationPool  # noqa: E402
from nn.losses import (softmax, softmax_cross_entropy_backward,  # noqa: E402
                       softmax_cross_entropy_forward)
from nn.optim import SGD, Adam  # noqa: E402
from tests.support.torch_twins import (NoTwinError, layer_twin, torch_twin,  # noqa: E402
                                       twin_from_config)

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4
OPTIM_TOL = 1e-6
SHIPPED_MODELS = ("cnn", "lstm", "gru", "rnn", "mlp")


# ----------------------------------------------------------------------------- helpers

def numpy_of(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def assert_close(ours, theirs, tol, what):
    """max|ours - theirs| / max|theirs| < tol, with shapes equal."""
    ours, theirs = numpy_of(ours), numpy_of(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: not finite"
    scale = max(float(np.abs(theirs).max()) if theirs.size else 0.0, 1e-30)
    error = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max()) / scale
    assert error < tol, f"{what}: relative difference {error:.3e} >= {tol:.0e} (max |torch| {scale:.3e})"


def leaf(array):
    """A float32 torch leaf tensor (a copy) that records its gradient."""
    return torch.tensor(np.array(array, dtype=np.float32), requires_grad=True)


def dropout_masks(network):
    """The masks our Dropout layers drew in the last training forward pass, in order."""
    return [layer.cache.mask for layer in network.layers if isinstance(layer, Dropout)]


def assert_twin_gradients(network, twin, what):
    """Every parameter gradient of ``network`` equals its twin's, read in our naming
    (``twin.gradients()``), and so does every further torch tensor that stands for the same
    parameter (torch's second bias of our single b)."""
    keys = {key for key, _, _ in network.parameters()}
    gradients, mapping = twin.gradients(), twin.parameter_map()
    assert set(gradients) == set(mapping) == keys, "every parameter must be compared"
    for key, layer, name in network.parameters():
        assert gradients[key] is not None, f"{what}: torch computed no gradient for {key}"
        assert_close(layer.grads[name], gradients[key], GRAD_TOL, f"{what} gradient {key}")
        for tied in mapping[key][1:]:
            assert_close(layer.grads[name], tied.grad, GRAD_TOL, f"{what} gradient {key} (tied)")
    return len(keys)


def check_layer_against(layer, x, training=False, seed=0):
    """Run ``layer`` and its torch twin on ``x``; compare y, dx and every parameter gradient.
    In training mode a Dropout twin multiplies by our layer's mask."""
    rng = np.random.default_rng(seed)
    network = Sequential([layer], fuse=False)
    twin = torch_twin(network).train(training)
    y = layer.forward(x, training)
    if training:
        twin.set_dropout_masks(dropout_masks(network))
    x_t = leaf(x)
    y_t = twin(x_t)
    assert_close(y, y_t, FORWARD_TOL, "forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y_t.backward(torch.from_numpy(dy))
    assert_close(dx, x_t.grad, GRAD_TOL, "input gradient")
    assert_twin_gradients(network, twin, type(layer).__name__)
    return twin, y, dx


def randomize(layer, rng, scale=0.5):
    """Replace every parameter by random values (biases included, so none is trivially 0)."""
    for name, value in layer.params.items():
        value[...] = rng.normal(0, scale, value.shape).astype(value.dtype)
    return layer


# ----------------------------------------------------------------------------- the twins

def test_twin_weights_are_ours_bit_for_bit():
    rng = np.random.default_rng(20)
    network = Sequential([Bidirectional(LSTM(5, 4, rng=rng), rng=rng), BatchNorm(8),
                          Dense(8, 3, rng=rng)])
    randomize(network.layers[0], rng)
    twin = torch_twin(network)
    for key, layer, name in network.parameters():
        tensors = twin.parameter_map()[key]
        assert tensors[0].dtype == torch.float32
        np.testing.assert_array_equal(tensors[0].detach().numpy(), layer.params[name])
        for tied in tensors[1:]:          # torch's second bias of our single b
            assert not tied.detach().numpy().any()
    for key, value in network.state().items():
        if key.endswith(("running_mean", "running_var")):
            np.testing.assert_array_equal(twin.buffers_by_key()[key], value)


def test_every_library_layer_has_a_twin():
    """A new layer type in nn.layers needs its twin here, or this fails."""
    import nn.layers
    from tests.support.torch_twins import TWIN_TYPES
    library = {name for name in nn.layers.__all__
               if isinstance(getattr(nn.layers, name), type)
               and issubclass(getattr(nn.layers, name), Layer)} - {"Layer", "Sequential"}
    assert len(library) >= 12 and library <= set(TWIN_TYPES)


def test_unknown_layer_type_has_no_twin():
    with pytest.raises(NoTwinError, match=r"no PyTorch twin for layer type 'Conv3D'.*Conv2D"):
        twin_from_config([{"type": "Conv3D", "in_channels": 1}], {})
    with pytest.raises(NoTwinError, match="Bidirectional"):
        layer_twin({"type": "Bidirectional", "layer": {"type": "Dense", "in_features": 2,
                                                       "out_features": 2}})


def test_a_users_layer_named_like_ours_has_no_twin():
    """A user's class named Dense is not the library's Dense: no twin of a guessed computation."""
    # Not a Layer subclass: defining one would register it under "Dense" in Layer.types, in
    # place of the library's, for the rest of the session (issue 17, item 6).
    class Dense:   # noqa: F811 - the point: the same name as nn.layers.Dense
        params, buffers, grads = {}, {}, {}

        def config(self):
            return {"in_features": 4, "out_features": 4}

        def forward(self, x, training=False):
            return 2 * x

    with pytest.raises(NoTwinError, match=r"test_torch_oracle.*Dense"):
        torch_twin(Sequential([Flatten(), Dense()]))


def test_twin_rejects_a_state_that_does_not_fit():
    rng = np.random.default_rng(21)
    network = Sequential([Dense(3, 2, rng=rng)])
    state = network.state()
    with pytest.raises(ValueError, match="0.bias"):
        twin_from_config(network.config()["layers"], {"0.weight": state["0.weight"]})
    with pytest.raises(ValueError, match="shape"):
        twin_from_config(network.config()["layers"], {**state, "0.weight": state["0.weight"].T})


# ----------------------------------------------------------------------------- layers

@pytest.mark.parametrize("n, c_in, h, w, c_out, stride, padding", [
    (2, 1, 8, 8, 4, 1, "same"),
    (2, 3, 7, 9, 5, 1, "valid"),
    (2, 3, 7, 9, 4, 2, "same"),    # odd: symmetric padding
    (3, 2, 8, 10, 4, 2, "same"),   # even: extra row/column at the bottom/right
    (2, 2, 9, 8, 3, 2, "valid"),
])
def test_conv2d(n, c_in, h, w, c_out, stride, padding):
    rng = np.random.default_rng([n, c_in, h, w, c_out, stride])
    layer = randomize(Conv2D(c_in, c_out, 3, stride, padding, rng=rng), rng)
    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    check_layer_against(layer, x)


def test_conv2d_even_kernel_same_padding():
    """A 4x4 'same' kernel pads 1 on the top/left and 2 on the bottom/right (TensorFlow's rule)."""
    rng = np.random.default_rng(22)
    layer = randomize(Conv2D(2, 3, 4, 1, "same", rng=rng), rng)
    check_layer_against(layer, rng.standard_normal((2, 2, 6, 7)).astype(np.float32))


@pytest.mark.parametrize("shape, pool, stride, padding", [
    ((2, 3, 8, 8), 2, 2, "same"),
    ((2, 3, 7, 7), 2, 2, "same"),   # 7x7 -> 4x4: ceil mode
    ((1, 2, 7, 9), 2, 2, "same"),
    ((2, 2, 7, 7), 2, 2, "valid"),
    ((1, 2, 7, 7), 3, 2, "valid"),  # overlapping windows
    ((1, 2, 8, 9), 3, 2, "same"),   # overlapping, -inf padded
    ((1, 2, 7, 8), 3, 3, "same"),   # 7 -> 3 windows starting at -1: not torch's ceil mode
])
def test_maxpool2d(shape, pool, stride, padding):
    rng = np.random.default_rng(sum(shape) + pool)
    layer = MaxPool2D(pool, stride, padding)
    x = (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01).astype(np.float32)  # tie-free
    check_layer_against(layer, x)


def test_dense():
    rng = np.random.default_rng(1)
    layer = randomize(Dense(7, 5, rng=rng), rng)
    check_layer_against(layer, rng.standard_normal((6, 7)).astype(np.float32))


def test_flatten():
    rng = np.random.default_rng(2)
    check_layer_against(Flatten(), rng.standard_normal((3, 4, 2, 5)).astype(np.float32))


@pytest.mark.parametrize("layer", [LeakyReLU(0.1), LeakyReLU(0.01), ReLU()],
                         ids=["leaky-0.1", "leaky-0.01", "relu"])
def test_activations(layer):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    twin, _, _ = check_layer_against(layer, x)
    assert isinstance(twin[0], torch.nn.ReLU if type(layer) is ReLU else torch.nn.LeakyReLU)


def test_dropout_eval_is_identity():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 10)).astype(np.float32)
    _, y, dx = check_layer_against(Dropout(0.4, rng=rng), x)
    np.testing.assert_array_equal(y, x)


def test_dropout_training_with_shared_mask():
    """Our layer draws a mask; torch multiplies by the very same mask: same y, same dx."""
    rng = np.random.default_rng(5)
    rate = 0.4
    layer = Dropout(rate, rng=rng)
    x = rng.standard_normal((16, 32)).astype(np.float32)
    check_layer_against(layer, x, training=True)
    mask = layer.cache.mask
    assert set(np.unique(mask)) == {0.0, np.float32(1 / (1 - rate))}
    assert abs((mask == 0).mean() - rate) < 0.1  # 512 draws: the drop fraction is near the rate


def random_batchnorm(rng, features, momentum=0.1, eps=1e-5):
    layer = BatchNorm(features, momentum=momentum, eps=eps)
    layer.params["gamma"][:] = rng.uniform(0.5, 2.0, features)
    layer.params["beta"][:] = rng.standard_normal(features)
    layer.buffers["running_mean"][:] = rng.standard_normal(features)
    layer.buffers["running_var"][:] = rng.uniform(0.5, 2.0, features)
    return layer


@pytest.mark.parametrize("momentum, eps", [(0.1, 1e-5), (0.01, 1e-3)], ids=["torch", "keras"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm(training, momentum, eps):
    rng = np.random.default_rng(6)
    layer = random_batchnorm(rng, 6, momentum, eps)
    x = (rng.standard_normal((8, 6)) * 3 + 2).astype(np.float32)
    twin, _, _ = check_layer_against(layer, x, training=training)
    # Running statistics after one step: our momentum, unbiased batch variance (eval: unchanged).
    buffers = twin.buffers_by_key()
    assert_close(layer.buffers["running_mean"], buffers["0.running_mean"], FORWARD_TOL, "running mean")
    assert_close(layer.buffers["running_var"], buffers["0.running_var"], FORWARD_TOL, "running var")
    assert layer.buffers["running_var"].dtype == np.float32


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_lstm(return_sequences):
    rng = np.random.default_rng(7)
    layer = randomize(LSTM(5, 6, return_sequences=return_sequences, rng=rng), rng)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    twin, _, _ = check_layer_against(layer, x)
    # torch's two biases enter the same sum: both get our db (checked above), bias_ih and bias_hh.
    assert [t.shape for t in twin.parameter_map()["0.b"]] == [(24,), (24,)]


@pytest.mark.parametrize("kind", [SimpleRNN, GRU, LSTM])
def test_recurrent_twins_of_every_kind(kind):
    """One case each here; tests/test_recurrent.py runs every kind, direction and output."""
    rng = np.random.default_rng(8)
    layer = randomize(Bidirectional(kind(5, 4, return_sequences=True, rng=rng), rng=rng), rng)
    check_layer_against(layer, rng.standard_normal((3, 6, 5)).astype(np.float32))


@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["moderate", "large-logits"])
def test_softmax_cross_entropy(scale):
    rng = np.random.default_rng(8)
    logits = (rng.standard_normal((8, 10)) * scale).astype(np.float32)
    labels = rng.integers(0, 10, size=8)
    loss, cache = softmax_cross_entropy_forward(logits, labels)
    dlogits = softmax_cross_entropy_backward(cache)
    logits_t = leaf(logits)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(labels))
    loss_t.backward()
    assert_close(np.float32(loss), loss_t, FORWARD_TOL, "loss")
    assert dlogits.dtype == np.float32
    assert_close(dlogits, logits_t.grad, GRAD_TOL, "dlogits")
    assert_close(softmax(logits), torch.softmax(torch.from_numpy(logits), dim=1), FORWARD_TOL, "softmax")


# ----------------------------------------------------------------------------- the fused step

@pytest.mark.parametrize("path, shape, activation", [
    ("direct", (3, 1, 8, 8), LeakyReLU(0.1)),        # one input channel, even size
    ("im2col", (3, 3, 7, 7), LeakyReLU(0.1)),        # odd size: the general kernel
    ("im2col", (2, 4, 8, 6), ReLU()),
    ("winograd", (4, 16, 16, 16), LeakyReLU(0.1)),   # >= 16 channels, 4 x 64 tiles
])
def test_fused_conv_activation_pool(path, shape, activation):
    """The fused Conv2D -> activation -> MaxPool2D step against its twin, on each of its paths."""
    rng = np.random.default_rng(shape)
    conv = Conv2D(shape[1], 5, 3, padding="same", rng=rng)
    conv.params["bias"][:] = rng.normal(0, 0.1, 5)
    network = Sequential([conv, activation, MaxPool2D(2, padding="same")])
    step, = network.steps()
    assert isinstance(step, ConvActivationPool)
    x = rng.standard_normal(shape).astype(np.float32)
    assert (step.uses_direct(x.shape), step.uses_winograd(x.shape)) == \
        (path == "direct", path == "winograd")
    twin = torch_twin(step)                       # the fused step's twin: its three layers'
    y = network.forward(x, training=True)
    x_t = leaf(x)
    y_t = twin(x_t)
    assert_close(y, y_t, FORWARD_TOL, f"fused {path} forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = network.backward(dy)
    y_t.backward(torch.from_numpy(dy))
    assert_close(dx, x_t.grad, GRAD_TOL, f"fused {path} input gradient")
    assert assert_twin_gradients(network, twin, f"fused {path}") == 2


# ----------------------------------------------------------------------------- whole models

def with_input_gradient(network, rng):
    """A copy of ``network`` (same weights) whose first layer also computes dL/dx: the shipped
    models skip it (their input is the image), the oracle compares it too."""
    configs = network.config()["layers"]
    first = configs[0].get("layer", configs[0])           # a Bidirectional's wrapped layer
    if "need_input_grad" in first:
        first["need_input_grad"] = True
    copy = build_layers(configs, rng=rng)
    copy.load_state(network.state())
    return copy


def nontrivial(network, rng):
    """Biases, BatchNorm's scale and shift and its running statistics away from their initial
    0 / 1, so that a wrong gradient or a forgotten term shows."""
    for key, layer, name in network.parameters():
        value = layer.params[name]
        if name == "gamma":
            value[...] = rng.uniform(0.5, 1.5, value.shape)
        elif name in ("bias", "beta") or name.rsplit(".", 1)[-1] in ("b", "b_ih", "b_hh"):
            value[...] = rng.normal(0, 0.05, value.shape)
    for layer in network.layers:
        if isinstance(layer, BatchNorm):
            layer.buffers["running_mean"][...] = rng.normal(0, 0.2, layer.num_features)
            layer.buffers["running_var"][...] = rng.uniform(0.5, 1.5, layer.num_features)
    return network


def images(seed, n=8):
    return np.random.default_rng(seed).uniform(0, 1, (n, 28, 28)).astype(np.float32)


def check_network_against_twin(network, x, labels, training, what):
    """Logits, loss, dL/dx, every parameter gradient and the running statistics of ``network``
    against its twin (training: the twin's dropout uses our masks, BatchNorm batch statistics)."""
    twin = torch_twin(network).train(training)
    logits = network.forward(x, training=training)
    if training:
        twin.set_dropout_masks(dropout_masks(network))
    x_t = leaf(x)
    logits_t = twin(x_t)
    assert_close(logits, logits_t, FORWARD_TOL, f"{what} logits")
    loss, cache = softmax_cross_entropy_forward(logits, labels)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(labels))
    assert_close(np.float32(loss), loss_t, FORWARD_TOL, f"{what} loss")
    dx = network.backward(softmax_cross_entropy_backward(cache))
    loss_t.backward()
    assert_close(dx, x_t.grad, GRAD_TOL, f"{what} input gradient")
    compared = assert_twin_gradients(network, twin, what)
    for key, value in twin.buffers_by_key().items():
        layer, name = network.layers[int(key.split(".")[0])], key.split(".", 1)[1]
        assert_close(layer.buffers[name], value, FORWARD_TOL, f"{what} {key}")
    return twin, compared


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_model_against_its_twin(name, training):
    """Every shipped architecture, as built by models.build_model, with its input gradient."""
    rng = np.random.default_rng(SHIPPED_MODELS.index(name))
    model = build_model(name, np.random.default_rng(0))
    network = nontrivial(with_input_gradient(model.network, rng), rng)
    x = np.ascontiguousarray(model.to_network_input(images(10 + training, 6)))
    labels = rng.integers(0, 10, size=len(x))
    _, compared = check_network_against_twin(network, x, labels, training, name.upper())
    assert compared == len(model.network.parameters()) >= 4


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_bidirectional_model_against_its_twin(training):
    """Two stacked Bidirectional layers (LSTM over the sequence, then GRU), dropout, dense.

    No BatchNorm right after the GRU here: its input gradient sums to 0 over the batch, so the
    GRU's bias gradients become sums that cancel to a few 1e-3 of their terms, and float32
    rounding alone then reaches ~1e-4 of them (float64 agrees to 1e-13).  The shipped GRU, LSTM
    and RNN models check that arrangement at their own sizes.
    """
    rng = np.random.default_rng(30)
    network = Sequential([
        Bidirectional(LSTM(28, 12, return_sequences=True, rng=rng), rng=rng),
        Bidirectional(GRU(24, 10, rng=rng), rng=rng),
        Dropout(0.3, rng=rng), Dense(20, 10, rng=rng)])
    nontrivial(network, rng)
    x = images(31, 6)
    labels = rng.integers(0, 10, size=len(x))
    _, compared = check_network_against_twin(network, x, labels, training, "BiLSTM-BiGRU")
    assert compared == 2 * 3 + 2 * 4 + 2     # BiLSTM, BiGRU, Dense


@pytest.mark.parametrize("n_images", [2, 32], ids=["im2col-blocks", "winograd-blocks"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-shared-masks"])
def test_reference_cnn(training, n_images):
    """Logits, loss and every parameter gradient of the whole reference CNN as shipped.

    eval: dropout is the identity in both.  train: our dropout layers draw masks and torch
    multiplies by the same masks.  2 images run conv2/conv3 through im2col, 32 through Winograd
    (nn.layers.fused.WINOGRAD_MIN_TILES); both must agree with torch.
    """
    model = build_model("cnn", np.random.default_rng(0))
    network = model.network
    rng = np.random.default_rng(1)
    for _, layer, name in network.parameters():  # non-zero biases, so their gradients matter
        if name == "bias":
            layer.params[name][:] = rng.normal(0, 0.05, layer.params[name].shape)
    twin = torch_twin(network).train(training)
    x = model.to_network_input(images(2, n_images))
    labels = rng.integers(0, 10, size=len(x))
    winograd = [step.uses_winograd(x_shape) for step, x_shape in
                zip([s for s in network.steps() if hasattr(s, "uses_winograd")],
                    [(n_images, 32, 14, 14), (n_images, 64, 7, 7)])]
    assert winograd == ([False, False] if n_images == 2 else [True, True])

    logits = network.forward(x, training=training)
    if training:
        masks = dropout_masks(network)
        assert all(mask is not None for mask in masks) and len(masks) == 4
        twin.set_dropout_masks(masks)
    logits_t = twin(torch.from_numpy(x))
    assert_close(logits, logits_t, FORWARD_TOL, "CNN logits")
    if not training:
        assert_close(model.logits(x[:, 0]), logits_t, FORWARD_TOL, "Model.logits")

    loss, cache = softmax_cross_entropy_forward(logits, labels)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(labels))
    assert_close(np.float32(loss), loss_t, FORWARD_TOL, "CNN loss")
    assert network.backward(softmax_cross_entropy_backward(cache)) is None  # first conv: no dx
    loss_t.backward()
    assert assert_twin_gradients(network, twin, "CNN") == 10


def test_reference_lstm():
    """The whole reference LSTM model, BatchNorm in training mode: logits, loss, every
    gradient, the input gradient, the running statistics, then eval-mode logits."""
    model = build_model("lstm", np.random.default_rng(0))
    rng = np.random.default_rng(3)
    network = with_input_gradient(model.network, rng)  # the model skips dx; compare it here too
    model.network = network
    lstm_layer, bn_layer, dense_layer = network.layers
    bn_layer.params["gamma"][:] = rng.uniform(0.5, 1.5, bn_layer.num_features)
    bn_layer.params["beta"][:] = rng.normal(0, 0.1, bn_layer.num_features)
    dense_layer.params["bias"][:] = rng.normal(0, 0.05, dense_layer.out_features)
    x = model.to_network_input(images(4))
    labels = rng.integers(0, 10, size=len(x))
    twin, compared = check_network_against_twin(network, x, labels, True, "LSTM")
    assert compared == 7
    assert set(twin.buffers_by_key()) == {"1.running_mean", "1.running_var"}

    twin.eval()
    with torch.no_grad():
        assert_close(model.logits(images(5)), twin(torch.from_numpy(images(5))),
                     FORWARD_TOL, "LSTM eval logits after one training step")


# ----------------------------------------------------------------------------- optimizers

OPTIMIZERS = {
    "adam": (lambda params: Adam(params, lr=1e-2),
             lambda tensors: torch.optim.Adam(tensors, lr=1e-2)),
    "adam-betas": (lambda params: Adam(params, lr=3e-3, betas=(0.8, 0.99), eps=1e-6),
                   lambda tensors: torch.optim.Adam(tensors, lr=3e-3, betas=(0.8, 0.99), eps=1e-6)),
    "sgd": (lambda params: SGD(params, lr=0.1),
            lambda tensors: torch.optim.SGD(tensors, lr=0.1)),
    "sgd-momentum": (lambda params: SGD(params, lr=0.1, momentum=0.9),
                     lambda tensors: torch.optim.SGD(tensors, lr=0.1, momentum=0.9)),
    "sgd-nesterov": (lambda params: SGD(params, lr=0.1, momentum=0.9, nesterov=True),
                     lambda tensors: torch.optim.SGD(tensors, lr=0.1, momentum=0.9, nesterov=True)),
}


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", OPTIMIZERS)
def test_optimizer_matches_torch(which, dtype, steps):
    """From identical parameters and gradients, ``steps`` updates give torch's parameters."""
    make_ours, make_torch = OPTIMIZERS[which]
    rng = np.random.default_rng(9)
    network = Sequential([Conv2D(2, 3, 3, rng=rng), Flatten(), Dense(12, 4, rng=rng),
                          BatchNorm(4), LSTM(3, 2, rng=rng)])
    for _, layer, name in network.parameters():
        layer.params[name] = rng.normal(0, 0.5, layer.params[name].shape).astype(dtype)
    parameters = network.parameters()
    tensors = [torch.nn.Parameter(torch.from_numpy(layer.params[name].copy()))
               for _, layer, name in parameters]
    ours, theirs = make_ours(parameters), make_torch(tensors)
    for step in range(steps):
        for (key, layer, name), tensor in zip(parameters, tensors):
            # gradients of very different sizes, so the per-element normalisation matters
            grad = (rng.standard_normal(tensor.shape) * 10.0 ** rng.integers(-3, 2)).astype(dtype)
            layer.grads[name] = grad
            tensor.grad = torch.from_numpy(grad.copy())
        before = {key: layer.params[name].copy() for key, layer, name in parameters}
        ours.step()
        theirs.step()
        for (key, layer, name), tensor in zip(parameters, tensors):
            assert layer.params[name].dtype == dtype
            assert not np.array_equal(layer.params[name], before[key]), f"{key} did not move"
            assert_close(layer.params[name], tensor, OPTIM_TOL, f"{which} step {step + 1}: {key}")
            if dtype == np.float64:  # the update itself, free of float32 rounding of p
                assert_close(layer.params[name] - before[key], tensor.detach().numpy() - before[key],
                             1e-9, f"{which} step {step + 1}: update of {key}")
