"""Per-call options instead of switches set on live layers (issue 17, item 7).

    backward(dout, need_input_grad=True)       dL/dx from a layer built to skip it (saliency)
    forward(x, training, return_sequences=True) every hidden state of a last-state layer (study view)
    backward_with_hidden_grads(dout)           (dx, every dL/dh_t) (the report's memory section)

Each must give exactly the bits of a layer *built* that way, and leave the layer as it was:
its settings and config unchanged, and an ordinary forward/backward afterwards bit for bit that
of an untouched copy.
"""
import copy

import numpy as np
import pytest

from models import build_model
from models.analysis import memory, saliency, study
from nn.layers import (GRU, LSTM, Bidirectional, Conv2D, Dense, LeakyReLU, MaxPool2D, Sequential,
                       SimpleRNN)
from nn.losses import SoftmaxCrossEntropy
from nn.optim import SGD
from nn.step import TrainingStep

N, T, D, H = 3, 5, 4, 6
RECURRENT = {"SimpleRNN": SimpleRNN, "GRU": GRU, "LSTM": LSTM}
CASES = [(kind, bidirectional) for kind in RECURRENT for bidirectional in (False, True)]


def recurrent(kind, bidirectional, seed, **settings):
    """A recurrent layer (or Bidirectional one) with random weights drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    layer = RECURRENT[kind](D, H, rng=rng, **settings)
    layer = Bidirectional(layer, rng=rng) if bidirectional else layer
    for value in layer.params.values():
        value[...] = rng.normal(0, 0.5, value.shape)
    return layer


def assert_same_bits(a, b, what):
    if a is None or b is None:
        assert a is None and b is None, what
        return
    assert a.dtype == b.dtype and a.shape == b.shape, what
    np.testing.assert_array_equal(a, b, err_msg=what)


def assert_same_grads(layer, other):
    assert set(layer.grads) == set(other.grads)
    for key in layer.grads:
        assert_same_bits(layer.grads[key], other.grads[key], f"gradient of {key}")


def assert_ordinary_pass_unchanged(layer, untouched, x, dy):
    """forward(x, training=True) then backward(dy) give the same bits on both."""
    assert layer.config() == untouched.config()
    for training in (False, True):
        assert_same_bits(layer.forward(x, training), untouched.forward(x, training), "forward")
        assert_same_bits(layer.backward(dy), untouched.backward(dy), "backward")
        assert_same_grads(layer, untouched)


# ----------------------------------------------------------------------------- need_input_grad

@pytest.mark.parametrize("kind, bidirectional", CASES)
def test_recurrent_input_gradient_on_request(kind, bidirectional):
    layer = recurrent(kind, bidirectional, 1, need_input_grad=False)
    built_with_it = recurrent(kind, bidirectional, 1, need_input_grad=True)
    untouched = copy.deepcopy(layer)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    dy = rng.standard_normal((N, H * (2 if bidirectional else 1))).astype(np.float32)
    layer.forward(x, training=True)
    built_with_it.forward(x, training=True)
    dx = layer.backward(dy, need_input_grad=True)
    assert dx.shape == x.shape and np.abs(dx).max() > 0
    assert_same_bits(dx, built_with_it.backward(dy), "dx")
    assert_same_grads(layer, built_with_it)
    assert layer.need_input_grad is False
    assert_ordinary_pass_unchanged(layer, untouched, x, dy)
    assert layer.backward(dy) is None                         # skipped again, as built


def conv_block(seed, in_channels, need_input_grad):
    rng = np.random.default_rng(seed)
    conv = Conv2D(in_channels, 4, 3, need_input_grad=need_input_grad, rng=rng)
    conv.params["bias"][...] = rng.normal(0, 0.1, 4)
    return Sequential([conv, LeakyReLU(0.1), MaxPool2D(2)])


@pytest.mark.parametrize("in_channels, batch, side", [(1, 2, 6), (2, 2, 6), (16, 4, 16)],
                         ids=["direct", "im2col", "winograd"])
@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "layers"])
def test_convolution_input_gradient_on_request(in_channels, batch, side, fuse):
    """The fused block's three paths (direct first block, im2col, Winograd) and the plain
    layers: need_input_grad=True for one call is the block built with it."""
    block = conv_block(3, in_channels, need_input_grad=False)
    built_with_it = conv_block(3, in_channels, need_input_grad=True)
    block.fuse = built_with_it.fuse = fuse
    untouched = copy.deepcopy(block)
    rng = np.random.default_rng(4)
    x = rng.permutation(batch * in_channels * side * side).reshape(
        batch, in_channels, side, side).astype(np.float32) / (batch * in_channels * side * side)
    y = block.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    built_with_it.forward(x, training=True)
    dx = block.backward(dy, need_input_grad=True)
    assert dx.shape == x.shape and np.abs(dx).max() > 0
    assert_same_bits(dx, built_with_it.backward(dy), "dx")
    assert_same_grads(block.layers[0], built_with_it.layers[0])
    assert block.layers[0].need_input_grad is False
    assert_ordinary_pass_unchanged(block, untouched, x, dy)
    assert block.backward(dy) is None


def test_sequential_asks_every_layer_that_skips_for_its_input_gradient():
    """need_input_grad=True reaches a skipping layer that is not the first; False lets the
    first layer skip; neither changes a layer."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    dy = rng.standard_normal((N, H)).astype(np.float32)
    networks = [Sequential([LeakyReLU(0.1), LSTM(D, H, need_input_grad=need_input_grad,
                                                 rng=np.random.default_rng(6))])
                for need_input_grad in (False, True)]
    for network in networks:
        network.forward(x)
    dx = networks[0].backward(dy, need_input_grad=True)
    assert dx.shape == x.shape and networks[0].layers[1].need_input_grad is False
    assert_same_bits(dx, networks[1].backward(dy), "dx")
    first = LSTM(D, H, rng=np.random.default_rng(6))
    stack = Sequential([first, LeakyReLU(0.1)])
    stack.forward(x)
    assert stack.backward(dy, need_input_grad=False) is None
    assert first.need_input_grad is True
    stack.forward(x)
    assert stack.backward(dy).shape == x.shape


@pytest.mark.parametrize("fuse", [True, False], ids=["fused", "layers"])
def test_a_training_step_skips_the_first_layers_input_gradient(fuse):
    """TrainingStep asks the first step for no dL/dx (the MLP's first Dense skips its largest
    product); the parameter gradients are those of a full backward, bit for bit."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 12)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])

    def network():
        return Sequential([Dense(12, 8, rng=np.random.default_rng(8)), LeakyReLU(0.1),
                           Dense(8, 3, rng=np.random.default_rng(9))], fuse=fuse)

    full, stepped = network(), network()
    criterion = SoftmaxCrossEntropy()
    criterion.forward(full.forward(x, training=True), labels)
    dx = full.backward(criterion.backward())
    assert dx.shape == x.shape and np.abs(dx).max() > 0
    calls, first = [], stepped.steps()[0]
    original = first.backward

    def spy(dout, **options):
        result = original(dout, **options)
        calls.append((options, result))
        return result

    first.backward = spy
    TrainingStep(stepped, SGD(stepped.parameters(), lr=0.0))(x, labels)
    assert calls == [({"need_input_grad": False}, None)]
    assert stepped.layers[0].need_input_grad is True
    for mine, theirs in zip(stepped.layers, full.layers):
        assert_same_grads(mine, theirs)
    del first.backward
    stepped.forward(x, training=True)
    assert_same_bits(stepped.backward(np.ones((5, 3), np.float32)),
                     full.backward(np.ones((5, 3), np.float32)), "dx of an ordinary backward")


# ----------------------------------------------------------------------------- return_sequences

@pytest.mark.parametrize("kind, bidirectional", CASES)
def test_every_hidden_state_on_request(kind, bidirectional):
    layer = recurrent(kind, bidirectional, 7)
    built_with_it = recurrent(kind, bidirectional, 7, return_sequences=True)
    untouched = copy.deepcopy(layer)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    width = H * (2 if bidirectional else 1)
    for training in (False, True):
        y = layer.forward(x, training, return_sequences=True)
        assert y.shape == (N, T, width)
        assert_same_bits(y, built_with_it.forward(x, training), "every hidden state")
    dy = rng.standard_normal((N, T, width)).astype(np.float32)
    assert_same_bits(layer.backward(dy), built_with_it.backward(dy), "dx")
    assert_same_grads(layer, built_with_it)
    assert layer.return_sequences is False and layer.output_shape((T, D)) == (width,)
    assert_ordinary_pass_unchanged(layer, untouched, x, dy[:, -1])


def test_infer_keeps_the_layers_own_setting_after_a_sequence_call():
    layer = recurrent("LSTM", False, 9)
    x = np.random.default_rng(10).standard_normal((N, T, D)).astype(np.float32)
    layer.forward(x, return_sequences=True)
    assert layer.infer(x).shape == (N, H)


# ----------------------------------------------------------------------------- hidden-state gradients

@pytest.mark.parametrize("sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind, bidirectional", CASES)
def test_hidden_gradients_on_request(kind, bidirectional, sequences):
    layer = recurrent(kind, bidirectional, 11, return_sequences=sequences)
    twin = recurrent(kind, bidirectional, 11, return_sequences=sequences)
    untouched = copy.deepcopy(layer)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    y = layer.forward(x, training=True)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    twin.forward(x, training=True)
    attributes = set(vars(layer))
    dx, hidden_grads = layer.backward_with_hidden_grads(dy)
    assert hidden_grads.shape == (T, N, y.shape[-1]) and np.abs(hidden_grads).max() > 0
    assert_same_bits(dx, twin.backward(dy), "dx")              # the plain backward's bits
    assert_same_grads(layer, twin)
    assert set(vars(layer)) == attributes                      # nothing new kept on the layer
    assert_ordinary_pass_unchanged(layer, untouched, x, dy)


# ----------------------------------------------------------------------------- the callers

def assert_model_unchanged(model, untouched, images):
    """Same config, and a training-mode forward and backward with the same bits."""
    assert model.network.config() == untouched.network.config()
    x = model.to_network_input(images)
    outputs = []
    for network in (model.network, untouched.network):
        y = network.forward(x, training=True)
        network.backward(np.ones_like(y) / y.size)
        outputs.append((y, {key: layer.grads[name].copy()
                            for key, layer, name in network.parameters()}))
    (y, grads), (y_untouched, grads_untouched) = outputs
    assert_same_bits(y, y_untouched, "logits")
    assert grads.keys() == grads_untouched.keys()
    for key in grads:
        assert_same_bits(grads[key], grads_untouched[key], key)


@pytest.mark.parametrize("name", ["cnn", "gru"])
def test_the_study_views_memory_and_saliency_leave_the_model_as_it_was(name):
    model = build_model(name, rng=np.random.default_rng(13))
    untouched = copy.deepcopy(model)
    images = np.random.default_rng(14).random((4, 28, 28)).astype(np.float32)
    saliency.input_gradient(model, images[0])
    if study.reads_rows(model):
        rows = study.row_by_row(model, images[0])
        # the head on 28 states at once vs on one: BLAS may round the last bit differently
        np.testing.assert_allclose(rows[-1], model.predict_proba(images[:1])[0], rtol=1e-5)
    if memory.takes_part(model):
        norms = memory.hidden_gradient_norms(model, images, np.arange(4), batch_size=2)
        assert norms.shape == (28,) and np.all(norms > 0)
    assert_model_unchanged(model, untouched, images)
