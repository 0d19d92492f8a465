"""PyTorch as the second oracle: the same float32 weights and inputs through our layers and
through torch's, forward within 1e-5 and every gradient within 1e-4 (relative to the largest
torch value), for every layer, both reference models, and the optimizers.

Layout notes (why no transposes appear below): our layers use PyTorch's layouts.  'same'
convolution padding follows TensorFlow (for stride 2 the extra row/column goes bottom/right),
so torch gets an explicit F.pad; 'same' max-pooling is ceil mode (or -inf padding); the LSTM's
single bias b is torch's bias_ih with bias_hh = 0.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch (the test extra) is not installed: oracle tests skipped")
torch.set_num_threads(2)
F = torch.nn.functional

from models import build_model  # noqa: E402
from nn.layers import (LSTM, BatchNorm, Conv2D, Dense, Dropout, Flatten, LeakyReLU,  # noqa: E402
                       MaxPool2D, Sequential)
from nn.losses import (softmax, softmax_cross_entropy_backward,  # noqa: E402
                       softmax_cross_entropy_forward)
from nn.optim import SGD, Adam  # noqa: E402

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4
OPTIM_TOL = 1e-6


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


def same_padding(size, kernel, stride):
    """TensorFlow's 'same': (before, after) so that out = ceil(size / stride)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def torch_pad_same(x, kernel, stride, value=0.0):
    """F.pad an NCHW tensor the way our 'same' layers pad (zeros for conv, -inf for pooling)."""
    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.pad(x, (left, right, top, bottom), value=value)


def check_layer_against(layer, x, torch_fn, torch_params, training=False, seed=0):
    """Run ``layer`` and ``torch_fn(x_t, *torch_params)``; compare y, dx and every parameter grad.

    ``torch_params`` maps our parameter name -> torch leaf tensor holding the same values.
    """
    rng = np.random.default_rng(seed)
    y = layer.forward(x, training)
    x_t = leaf(x)
    y_t = torch_fn(x_t)
    assert_close(y, y_t, FORWARD_TOL, "forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y_t.backward(torch.from_numpy(dy))
    assert_close(dx, x_t.grad, GRAD_TOL, "input gradient")
    assert set(torch_params) == set(layer.params), "every parameter must be compared"
    for name, tensor in torch_params.items():
        assert_close(layer.grads[name], tensor.grad, GRAD_TOL, f"gradient of {name}")
    return y, dx


def randomize(layer, rng, scale=0.5):
    """Replace every parameter by random values (biases included, so none is trivially 0)."""
    for name, value in layer.params.items():
        value[...] = rng.normal(0, scale, value.shape).astype(value.dtype)
    return layer


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
    weight, bias = leaf(layer.params["weight"]), leaf(layer.params["bias"])

    def torch_conv(x_t):
        if padding == "same":
            x_t = torch_pad_same(x_t, 3, stride)
        return F.conv2d(x_t, weight, bias, stride=stride)

    x = rng.standard_normal((n, c_in, h, w)).astype(np.float32)
    check_layer_against(layer, x, torch_conv, {"weight": weight, "bias": bias})


@pytest.mark.parametrize("shape, pool, stride, padding", [
    ((2, 3, 8, 8), 2, 2, "same"),
    ((2, 3, 7, 7), 2, 2, "same"),   # 7x7 -> 4x4: ceil mode
    ((1, 2, 7, 9), 2, 2, "same"),
    ((2, 2, 7, 7), 2, 2, "valid"),
    ((1, 2, 7, 7), 3, 2, "valid"),  # overlapping windows
    ((1, 2, 8, 9), 3, 2, "same"),   # overlapping, -inf padded
])
def test_maxpool2d(shape, pool, stride, padding):
    rng = np.random.default_rng(sum(shape) + pool)
    layer = MaxPool2D(pool, stride, padding)
    x = (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01).astype(np.float32)  # tie-free

    def torch_pool(x_t):
        if padding == "same" and pool == stride:
            return F.max_pool2d(x_t, pool, stride, ceil_mode=True)
        if padding == "same":
            x_t = torch_pad_same(x_t, pool, stride, value=-np.inf)
        return F.max_pool2d(x_t, pool, stride)

    check_layer_against(layer, x, torch_pool, {})


def test_dense():
    rng = np.random.default_rng(1)
    layer = randomize(Dense(7, 5, rng=rng), rng)
    weight, bias = leaf(layer.params["weight"]), leaf(layer.params["bias"])
    x = rng.standard_normal((6, 7)).astype(np.float32)
    check_layer_against(layer, x, lambda x_t: F.linear(x_t, weight, bias), {"weight": weight, "bias": bias})


def test_flatten():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 2, 5)).astype(np.float32)
    check_layer_against(Flatten(), x, lambda x_t: torch.flatten(x_t, 1), {})


@pytest.mark.parametrize("slope", [0.1, 0.01])
def test_leaky_relu(slope):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    check_layer_against(LeakyReLU(slope), x, lambda x_t: F.leaky_relu(x_t, slope), {})


def test_dropout_eval_is_identity():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 10)).astype(np.float32)
    check_layer_against(Dropout(0.4, rng=rng), x, lambda x_t: F.dropout(x_t, 0.4, training=False), {})


def test_dropout_training_with_shared_mask():
    """Our layer draws a mask; torch multiplies by the very same mask: same y, same dx."""
    rng = np.random.default_rng(5)
    rate = 0.4
    layer = Dropout(rate, rng=rng)
    x = rng.standard_normal((16, 32)).astype(np.float32)
    masks = []

    def torch_dropout(x_t):
        masks.append(torch.from_numpy(layer.cache.mask))
        return x_t * masks[-1]

    check_layer_against(layer, x, torch_dropout, {}, training=True)
    mask = layer.cache.mask
    assert set(np.unique(mask)) == {0.0, np.float32(1 / (1 - rate))}
    assert abs((mask == 0).mean() - rate) < 0.1  # 512 draws: the drop fraction is near the rate


def random_batchnorm(rng, features):
    layer = BatchNorm(features)
    layer.params["gamma"][:] = rng.uniform(0.5, 2.0, features)
    layer.params["beta"][:] = rng.standard_normal(features)
    layer.buffers["running_mean"][:] = rng.standard_normal(features)
    layer.buffers["running_var"][:] = rng.uniform(0.5, 2.0, features)
    return layer


def torch_batchnorm(layer):
    bn = torch.nn.BatchNorm1d(layer.num_features, momentum=0.1, eps=1e-5)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(layer.params["gamma"]))
        bn.bias.copy_(torch.from_numpy(layer.params["beta"]))
        bn.running_mean.copy_(torch.from_numpy(layer.buffers["running_mean"]))
        bn.running_var.copy_(torch.from_numpy(layer.buffers["running_var"]))
    return bn


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm(training):
    rng = np.random.default_rng(6)
    layer = random_batchnorm(rng, 6)
    bn = torch_batchnorm(layer)
    bn.train(training)
    x = (rng.standard_normal((8, 6)) * 3 + 2).astype(np.float32)
    check_layer_against(layer, x, bn, {"gamma": bn.weight, "beta": bn.bias}, training=training)
    # Running statistics after one step: momentum 0.1, unbiased batch variance (eval: unchanged).
    assert_close(layer.buffers["running_mean"], bn.running_mean, FORWARD_TOL, "running mean")
    assert_close(layer.buffers["running_var"], bn.running_var, FORWARD_TOL, "running var")
    assert layer.buffers["running_var"].dtype == np.float32


def torch_lstm(layer):
    """torch.nn.LSTM with our weights: bias_ih = b, bias_hh = 0 (their sum is our b)."""
    lstm = torch.nn.LSTM(layer.input_size, layer.hidden_size, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.from_numpy(layer.params["w_ih"]))
        lstm.weight_hh_l0.copy_(torch.from_numpy(layer.params["w_hh"]))
        lstm.bias_ih_l0.copy_(torch.from_numpy(layer.params["b"]))
        lstm.bias_hh_l0.zero_()
    return lstm


@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
def test_lstm(return_sequences):
    rng = np.random.default_rng(7)
    layer = randomize(LSTM(5, 6, return_sequences=return_sequences, rng=rng), rng)
    lstm = torch_lstm(layer)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)

    def run(x_t):
        out, _ = lstm(x_t)
        return out if return_sequences else out[:, -1]

    check_layer_against(layer, x, run, {"w_ih": lstm.weight_ih_l0, "w_hh": lstm.weight_hh_l0,
                                        "b": lstm.bias_ih_l0})
    # torch's two biases enter the same sum: both get our db.
    assert_close(layer.grads["b"], lstm.bias_hh_l0.grad, GRAD_TOL, "gradient of b vs bias_hh")


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


# ----------------------------------------------------------------------------- whole models

def torch_cnn(network):
    """The equivalent torch.nn.Sequential of our CNN, with the same weights."""
    modules = []
    for layer in network.layers:
        if isinstance(layer, Conv2D):
            assert layer.stride == 1 and layer.padding == "same" and layer.kernel_size % 2 == 1
            conv = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                                   padding=layer.kernel_size // 2)
            with torch.no_grad():
                conv.weight.copy_(torch.from_numpy(layer.params["weight"]))
                conv.bias.copy_(torch.from_numpy(layer.params["bias"]))
            modules.append(conv)
        elif isinstance(layer, LeakyReLU):
            modules.append(torch.nn.LeakyReLU(layer.slope))
        elif isinstance(layer, MaxPool2D):
            assert layer.padding == "same" and layer.pool_size == layer.stride
            modules.append(torch.nn.MaxPool2d(layer.pool_size, ceil_mode=True))
        elif isinstance(layer, Dropout):
            modules.append(torch.nn.Dropout(layer.rate))
        elif isinstance(layer, Flatten):
            modules.append(torch.nn.Flatten())
        elif isinstance(layer, Dense):
            linear = torch.nn.Linear(layer.in_features, layer.out_features)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(layer.params["weight"]))
                linear.bias.copy_(torch.from_numpy(layer.params["bias"]))
            modules.append(linear)
        else:
            raise AssertionError(f"unexpected layer {layer!r} in the CNN")
    return torch.nn.Sequential(*modules)


def torch_forward(modules, x_t, masks=None):
    """Apply ``modules`` in order; dropout multiplies by our masks when given (else identity)."""
    masks = list(masks or [])
    for module in modules:
        if isinstance(module, torch.nn.Dropout) and masks:
            x_t = x_t * torch.from_numpy(masks.pop(0))
        else:
            x_t = module(x_t)
    assert not masks
    return x_t


def torch_grads_by_key(network, modules):
    """Our parameter keys ('<layer>.<name>') -> the matching torch gradient."""
    names = {"weight": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
             "w_ih": "weight_ih_l0", "w_hh": "weight_hh_l0", "b": "bias_ih_l0"}
    return {key: getattr(modules[int(key.split(".")[0])], names[name]).grad
            for key, _, name in network.parameters()}


def images(seed, n=8):
    return np.random.default_rng(seed).uniform(0, 1, (n, 28, 28)).astype(np.float32)


@pytest.mark.parametrize("n_images", [2, 32], ids=["im2col-blocks", "winograd-blocks"])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train-shared-masks"])
def test_reference_cnn(training, n_images):
    """Logits, loss and every parameter gradient of the whole reference CNN.

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
    modules = torch_cnn(network).eval()
    x = model.to_network_input(images(2, n_images))
    labels = rng.integers(0, 10, size=len(x))
    winograd = [step.uses_winograd(x_shape) for step, x_shape in
                zip([s for s in network.steps() if hasattr(s, "uses_winograd")],
                    [(n_images, 32, 14, 14), (n_images, 64, 7, 7)])]
    assert winograd == ([False, False] if n_images == 2 else [True, True])

    logits = network.forward(x, training=training)
    masks = [layer.cache.mask for layer in network.layers if isinstance(layer, Dropout)] if training else None
    if training:
        assert all(mask is not None for mask in masks) and len(masks) == 4
    logits_t = torch_forward(modules, torch.from_numpy(x), masks)
    assert_close(logits, logits_t, FORWARD_TOL, "CNN logits")
    if not training:
        assert_close(model.logits(x[:, 0]), logits_t, FORWARD_TOL, "Model.logits")

    loss, cache = softmax_cross_entropy_forward(logits, labels)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(labels))
    assert_close(np.float32(loss), loss_t, FORWARD_TOL, "CNN loss")
    assert network.backward(softmax_cross_entropy_backward(cache)) is None  # first conv: no dx
    loss_t.backward()
    torch_grads = torch_grads_by_key(network, modules)
    assert len(torch_grads) == 10
    for key, _, name in network.parameters():
        assert_close(network.layers[int(key.split(".")[0])].grads[name], torch_grads[key],
                     GRAD_TOL, f"CNN gradient {key}")


def test_reference_lstm():
    """The whole reference LSTM model, BatchNorm in training mode: logits, loss, every
    gradient, the input gradient, the running statistics, then eval-mode logits."""
    model = build_model("lstm", np.random.default_rng(0))
    network = model.network
    rng = np.random.default_rng(3)
    lstm_layer, bn_layer, dense_layer = network.layers
    bn_layer.params["gamma"][:] = rng.uniform(0.5, 1.5, bn_layer.num_features)
    bn_layer.params["beta"][:] = rng.normal(0, 0.1, bn_layer.num_features)
    dense_layer.params["bias"][:] = rng.normal(0, 0.05, dense_layer.out_features)
    lstm_t, bn_t = torch_lstm(lstm_layer), torch_batchnorm(bn_layer)
    linear_t = torch.nn.Linear(dense_layer.in_features, dense_layer.out_features)
    with torch.no_grad():
        linear_t.weight.copy_(torch.from_numpy(dense_layer.params["weight"]))
        linear_t.bias.copy_(torch.from_numpy(dense_layer.params["bias"]))
    lstm_layer.need_input_grad = True  # the model skips its input's gradient; compare it here too
    x = model.to_network_input(images(4))
    labels = rng.integers(0, 10, size=len(x))

    def torch_model(x_t):
        out, _ = lstm_t(x_t)
        return linear_t(bn_t(out[:, -1]))

    bn_t.train()
    logits = network.forward(x, training=True)
    x_t = leaf(x)
    logits_t = torch_model(x_t)
    assert_close(logits, logits_t, FORWARD_TOL, "LSTM logits")
    loss, cache = softmax_cross_entropy_forward(logits, labels)
    loss_t = F.cross_entropy(logits_t, torch.from_numpy(labels))
    assert_close(np.float32(loss), loss_t, FORWARD_TOL, "LSTM loss")
    dx = network.backward(softmax_cross_entropy_backward(cache))
    loss_t.backward()
    assert_close(dx, x_t.grad, GRAD_TOL, "LSTM input gradient")
    torch_grads = torch_grads_by_key(network, [lstm_t, bn_t, linear_t])
    assert len(torch_grads) == 7
    for key, layer, name in network.parameters():
        assert_close(layer.grads[name], torch_grads[key], GRAD_TOL, f"LSTM gradient {key}")
    assert_close(bn_layer.buffers["running_mean"], bn_t.running_mean, FORWARD_TOL, "running mean")
    assert_close(bn_layer.buffers["running_var"], bn_t.running_var, FORWARD_TOL, "running var")

    bn_t.eval()
    with torch.no_grad():
        assert_close(model.logits(images(5)), torch_model(torch.from_numpy(images(5))),
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
