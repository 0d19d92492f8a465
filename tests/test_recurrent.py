"""SimpleRNN, GRU and Bidirectional: central differences in float64, PyTorch as the oracle in
float32, the Numba step kernels against their NumPy twins, and the layer contract (backward
twice, config round trip, flat parameter dicts, hidden-state gradients).

Recurrent weights are drawn N(0, 0.5^2) so no gate saturates and every gradient is far from 0;
the upstream gradient dy is random (never ones).
"""
import json

import numpy as np
import pytest

try:
    from gradcheck import check_gradients
except ImportError:  # tests/ imported as a package
    from tests.gradcheck import check_gradients

from nn.kernels import gru as gru_kernels
from nn.kernels import reference
from nn.kernels import rnn as rnn_kernels
from nn.layers import (GRU, LSTM, Bidirectional, Dense, SimpleRNN, Sequential, build_layers)
from nn.layers.gru import gru_backward, gru_forward
from nn.layers.rnn import simple_rnn_backward, simple_rnn_forward
from nn.optim import SGD

RECURRENT = {"SimpleRNN": SimpleRNN, "GRU": GRU, "LSTM": LSTM}
N, T, D, H = 3, 5, 4, 3


# ----------------------------------------------------------------------------- helpers

def as_float64(layer):
    for store in (layer.params, layer.buffers):
        for key in list(store):
            store[key] = np.ascontiguousarray(store[key], dtype=np.float64)
    return layer


def randomize(layer, rng, scale=0.5):
    """Every parameter random, biases included (zero biases would hide a wrong bias gradient)."""
    for value in layer.params.values():
        value[...] = rng.normal(0, scale, value.shape).astype(value.dtype)
    return layer


def make(kind, rng, return_sequences, bidirectional=False, **kwargs):
    layer = RECURRENT[kind](D, H, return_sequences=return_sequences, rng=rng, **kwargs)
    layer = Bidirectional(layer, rng=rng) if bidirectional else layer
    return randomize(layer, rng)


def check_layer(layer, x, rng):
    """Central differences for dL/dx and every dL/dparam, L = sum(layer(x) * dy)."""
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    names = list(layer.params)
    analytic = [np.array(dx)] + [np.array(layer.grads[name]) for name in names]
    arrays = [x] + [layer.params[name] for name in names]
    return check_gradients(lambda x_, *_: layer.forward(x_), arrays, analytic, dy, ["x"] + names)


CASES = [(kind, bidirectional, sequences) for kind in ("SimpleRNN", "GRU", "LSTM")
         for bidirectional in (False, True) for sequences in (False, True)
         if bidirectional or kind != "LSTM"]  # the plain LSTM is checked in test_gradients.py
IDS = [f"{'Bi' if b else ''}{k}-{'sequences' if s else 'last'}" for k, b, s in CASES]


# ----------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("kind, bidirectional, sequences", CASES, ids=IDS)
def test_gradients_by_finite_differences(kind, bidirectional, sequences):
    rng = np.random.default_rng(100 + len(kind) + 2 * bidirectional + sequences)
    layer = as_float64(make(kind, rng, sequences, bidirectional))
    x = rng.standard_normal((N, T, D))
    y = layer.forward(x)
    width = 2 * H if bidirectional else H
    assert y.shape == ((N, T, width) if sequences else (N, width))
    errors = check_layer(layer, x, rng)                 # asserts each relative error < 1e-6
    assert len(errors) == 1 + len(layer.params) >= 4


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU"])
def test_gradcheck_sees_a_wrong_recurrent_gradient(kind):
    """The check above can fail: a 0.1 % error in dw_hh is caught."""
    rng = np.random.default_rng(7)
    layer = as_float64(make(kind, rng, True))
    x = rng.standard_normal((N, T, D))
    dy = rng.standard_normal(layer.forward(x).shape)
    layer.backward(dy)
    wrong = layer.grads["w_hh"] * 1.001
    w_hh = layer.params["w_hh"]
    check_gradients(lambda w: layer.forward(x), [w_hh], [layer.grads["w_hh"]], dy, ["w_hh"])
    with pytest.raises(AssertionError, match="w_hh"):
        check_gradients(lambda w: layer.forward(x), [w_hh], [wrong], dy, ["w_hh"])


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU"])
def test_need_input_grad_false_skips_dx_only(kind):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, T, D))
    forward, backward = {"SimpleRNN": (simple_rnn_forward, simple_rnn_backward),
                         "GRU": (gru_forward, gru_backward)}[kind]
    layer = as_float64(make(kind, rng, True))
    hs, cache = forward(x, *layer.params.values())
    dhs = rng.standard_normal(hs.shape)
    full = backward(dhs, cache, need_input_grad=True)
    skipped = backward(dhs, cache, need_input_grad=False)
    assert skipped[0] is None and full[0].shape == x.shape
    for a, b in zip(full[1:], skipped[1:]):
        np.testing.assert_array_equal(a, b)
    bi = Bidirectional(RECURRENT[kind](D, H, need_input_grad=False, rng=rng), rng=rng)
    assert bi.backward_layer.need_input_grad is False
    bi.forward(x.astype(np.float32))
    assert bi.backward(np.ones((N, 2 * H), np.float32)) is None


# ----------------------------------------------------------------------------- kernels vs twins

DTYPES = [np.float32, np.float64]


def tolerance(dtype):
    return dict(rtol=0, atol=4e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 4), (8, 16), (5, 7)])
def test_rnn_step_kernels(n, hidden, dtype):
    rng = np.random.default_rng(30 + n * hidden)
    pre = (rng.standard_normal((n, hidden)) * 3).astype(dtype)
    pre[0, 0], pre[-1, -1] = 40, -40                  # deep in both tails
    recurrent = rng.standard_normal((n, hidden)).astype(dtype)
    outputs = []
    for step in (rnn_kernels.rnn_step_forward, reference.rnn_step_forward):
        h = np.full((n, hidden), np.nan, dtype)
        step(pre, recurrent, h)
        assert h.dtype == dtype and np.all(np.isfinite(h))
        outputs.append(h)
    np.testing.assert_allclose(outputs[0], outputs[1], **tolerance(dtype))
    np.testing.assert_allclose(outputs[1], np.tanh(pre.astype(np.float64) + recurrent), atol=1e-6)
    dh = rng.standard_normal((n, hidden)).astype(dtype)
    results = []
    for step in (rnn_kernels.rnn_step_backward, reference.rnn_step_backward):
        da = np.full((n, hidden), np.nan, dtype)
        step(dh, outputs[1], da)
        results.append(da)
    np.testing.assert_allclose(results[0], results[1], **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 4), (8, 16), (5, 7)])
def test_gru_step_kernels(n, hidden, dtype):
    rng = np.random.default_rng(40 + n * hidden)
    pre = (rng.standard_normal((n, 3 * hidden)) * 3).astype(dtype)
    pre[0, 0], pre[-1, -1] = 40, -40                  # sigmoid and tanh far into the tails
    recurrent = (rng.standard_normal((n, 3 * hidden)) * 2).astype(dtype)
    b_hh = rng.standard_normal(3 * hidden).astype(dtype)
    h_prev = rng.uniform(-1, 1, (n, hidden)).astype(dtype)
    outputs = []
    for step in (gru_kernels.gru_step_forward, reference.gru_step_forward):
        gates = pre.copy()
        hn, h = np.full((n, hidden), np.nan, dtype), np.full((n, hidden), np.nan, dtype)
        step(gates, recurrent, b_hh, h_prev, hn, h)
        for array in (gates, hn, h):
            assert array.dtype == dtype and np.all(np.isfinite(array))
        outputs.append((gates, hn, h))
    for got, want in zip(*outputs):
        np.testing.assert_allclose(got, want, **tolerance(dtype))
    gates, hn, _ = outputs[1]
    dh0 = rng.standard_normal((n, hidden)).astype(dtype)
    results = []
    for step in (gru_kernels.gru_step_backward, reference.gru_step_backward):
        dh = dh0.copy()
        dgx, dgh = (np.full((n, 3 * hidden), np.nan, dtype) for _ in range(2))
        step(dh, gates, h_prev, hn, dgx, dgh)
        results.append((dh, dgx, dgh))
    for got, want in zip(*results):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, **tolerance(dtype))


def test_gru_reset_gate_multiplies_the_recurrent_bias():
    """PyTorch's placement: n = tanh(gx_n + r * (h w_hn^T + b_hn)), so b_hn is scaled by r while
    b_in is not; moving bias between them changes the output."""
    rng = np.random.default_rng(9)
    layer = as_float64(make("GRU", rng, False))
    x = rng.standard_normal((N, T, D))
    y = layer.forward(x)
    shift = 0.7
    layer.params["b_ih"][2 * H:] += shift
    layer.params["b_hh"][2 * H:] -= shift
    assert np.abs(layer.forward(x) - y).max() > 1e-3
    layer.params["b_ih"][2 * H:] -= shift
    layer.params["b_hh"][2 * H:] += shift
    layer.params["b_ih"][:2 * H] += shift             # for r and z only the sum matters
    layer.params["b_hh"][:2 * H] -= shift
    np.testing.assert_allclose(layer.forward(x), y, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- layer contract

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind, bidirectional, sequences", CASES, ids=IDS)
def test_backward_twice_gives_identical_gradients(kind, bidirectional, sequences, dtype):
    rng = np.random.default_rng(14)
    layer = make(kind, rng, sequences, bidirectional)
    layer = as_float64(layer) if dtype == np.float64 else layer
    x = rng.standard_normal((2, T, D)).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy_before = dy.copy()
    dx1 = np.array(layer.backward(dy))
    grads1 = {key: np.array(value) for key, value in layer.grads.items()}
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dy, dy_before)
    assert dx1.shape == x.shape and dx1.dtype == dtype
    np.testing.assert_array_equal(dx1, dx2)
    assert grads1.keys() == set(layer.params)
    for key, value in layer.grads.items():
        assert value.dtype == dtype and value.shape == layer.params[key].shape, key
        np.testing.assert_array_equal(grads1[key], value, err_msg=key)


@pytest.mark.parametrize("kind, bidirectional, sequences", CASES, ids=IDS)
def test_config_round_trip_through_build_layers(kind, bidirectional, sequences):
    rng = np.random.default_rng(15)
    layer = make(kind, rng, sequences, bidirectional, need_input_grad=False)
    net = Sequential([layer])
    config = json.loads(json.dumps(net.config()))
    rebuilt = build_layers(config["layers"], np.random.default_rng(16))
    assert rebuilt.config() == net.config()
    assert type(rebuilt.layers[0]) is type(layer)
    assert rebuilt.layers[0].need_input_grad is False
    assert rebuilt.state().keys() == net.state().keys()
    x = rng.standard_normal((2, T, D)).astype(np.float32)
    assert np.abs(rebuilt.forward(x) - net.forward(x)).max() > 1e-3   # fresh weights differ ...
    rebuilt.load_state(net.state())
    np.testing.assert_array_equal(rebuilt.forward(x), net.forward(x))  # ... until loaded
    assert rebuilt.output_shape((T, D)) == net.output_shape((T, D)) == net.forward(x).shape[1:]


def test_bidirectional_flat_dicts_reach_the_copies():
    rng = np.random.default_rng(17)
    bi = Bidirectional(GRU(D, H, rng=rng), rng=rng)
    assert list(bi.params) == [f"{side}.{name}" for side in ("forward", "backward")
                               for name in ("w_ih", "w_hh", "b_ih", "b_hh")]
    assert bi.params["forward.w_ih"] is bi.forward_layer.params["w_ih"]
    assert bi.params["backward.w_hh"] is bi.backward_layer.params["w_hh"]
    assert not np.array_equal(bi.params["forward.w_hh"], bi.params["backward.w_hh"])
    assert bi.num_parameters() == 2 * GRU(D, H).num_parameters()
    # an optimizer step through a Sequential moves the copies' own arrays
    net = Sequential([bi, Dense(2 * H, 2, rng=rng)])
    x = rng.standard_normal((2, T, D)).astype(np.float32)
    net.backward(rng.standard_normal(net.forward(x).shape).astype(np.float32))
    before = {key: np.array(value) for key, value in bi.params.items()}
    grads = {key: np.array(value) for key, value in bi.grads.items()}
    SGD(net.parameters(), lr=0.1).step()
    for key in before:
        side, name = key.split(".")
        owner = bi.forward_layer if side == "forward" else bi.backward_layer
        np.testing.assert_allclose(owner.params[name], before[key] - 0.1 * grads[key], atol=1e-7)
    with pytest.raises(KeyError):
        bi.params["sideways.w_ih"]


@pytest.mark.parametrize("kind", ["SimpleRNN", "GRU"])
def test_initialisation_like_keras(kind):
    layer = RECURRENT[kind](16, 8, rng=np.random.default_rng(18))
    gates = {"SimpleRNN": 1, "GRU": 3}[kind]
    w_ih, w_hh = layer.params["w_ih"], layer.params["w_hh"]
    assert w_ih.shape == (gates * 8, 16) and w_hh.shape == (gates * 8, 8)
    assert w_ih.dtype == w_hh.dtype == np.float32
    limit = np.sqrt(6 / (16 + gates * 8))
    assert np.abs(w_ih).max() <= limit and np.abs(w_ih).max() > 0.8 * limit
    np.testing.assert_allclose(w_hh.T @ w_hh, np.eye(8), atol=1e-5)     # orthonormal columns
    biases = [v for k, v in layer.params.items() if k.startswith("b")]
    assert len(biases) == (1 if kind == "SimpleRNN" else 2)
    assert all(b.shape == (gates * 8,) and not b.any() for b in biases)


def test_flops_and_output_shapes():
    assert SimpleRNN(4, 3).flops((5, 4)) == 5 * (2 * 3 * (4 + 3) + 3 + 2 * 3)
    assert GRU(4, 3).flops((5, 4)) == 5 * (2 * 3 * 3 * (4 + 3) + 2 * 3 * 3 + 3 * 11)
    lstm = LSTM(4, 3)
    assert Bidirectional(lstm).flops((5, 4)) == 2 * lstm.flops((5, 4))
    assert GRU(4, 3, return_sequences=True).output_shape((5, 4)) == (5, 3)
    assert SimpleRNN(4, 3).output_shape((5, 4)) == (3,)
    assert Bidirectional(GRU(4, 3, return_sequences=True)).output_shape((5, 4)) == (5, 6)
    assert Bidirectional(SimpleRNN(4, 3)).output_shape((5, 4)) == (6,)


# ----------------------------------------------------------------------------- PyTorch oracle
# Float32 through both, identical weights; forward within 1e-5 and every gradient within 1e-4,
# relative to the largest torch value.  The torch side is the layer's twin from
# tests/support/torch_twins.py: our single bias b (SimpleRNN, LSTM) is torch's bias_ih with
# bias_hh = 0, so both torch biases receive our db.

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4


def assert_close(ours, theirs, tol, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != torch's {theirs.shape}"
    assert np.all(np.isfinite(ours)), f"{what}: not finite"
    scale = max(float(np.abs(theirs).max()), 1e-30)
    error = float(np.abs(ours.astype(np.float64) - theirs.astype(np.float64)).max()) / scale
    assert error < tol, f"{what}: relative difference {error:.3e} >= {tol:.0e}"


def twin_of(layer):
    """The torch twin of one recurrent (or Bidirectional) layer, with its weights: the module
    itself (index 0 of the one-layer network twin) and {our key: [torch parameters]}."""
    pytest.importorskip("torch")
    from tests.support.torch_twins import torch_twin
    twin = torch_twin(Sequential([layer]))
    return twin[0], {key.split(".", 1)[1]: tensors for key, tensors in twin.parameter_map().items()}


ORACLE_CASES = [(kind, bidirectional, sequences) for kind in ("SimpleRNN", "GRU", "LSTM")
                for bidirectional in (False, True) for sequences in (False, True)
                if bidirectional or kind != "LSTM"]  # the plain LSTM: tests/test_torch_oracle.py


@pytest.mark.parametrize("kind, bidirectional, sequences", ORACLE_CASES, ids=IDS)
def test_against_torch(kind, bidirectional, sequences):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(50 + len(kind) + 2 * bidirectional + sequences)
    layer = make(kind, rng, sequences, bidirectional)
    module, matches = twin_of(layer)
    assert set(matches) == set(layer.params), "every parameter must be compared"
    x = rng.standard_normal((4, 7, D)).astype(np.float32)
    y = layer.forward(x)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = module(x_t)
    assert_close(y, y_t, FORWARD_TOL, "forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    y_t.backward(torch.from_numpy(dy))
    assert_close(dx, x_t.grad, GRAD_TOL, "input gradient")
    for key, tensors in matches.items():
        for tensor in tensors:
            assert_close(layer.grads[key], tensor.grad, GRAD_TOL, f"gradient of {key}")


# ----------------------------------------------------------------------------- hidden-state gradients

def unrolled(cell, x_t):
    """Run ``cell`` over x_t (N, T, D) step by step; every h_t keeps its gradient."""
    torch = pytest.importorskip("torch")
    n_batch, hidden = x_t.shape[0], cell.hidden_size
    h = torch.zeros(n_batch, hidden)
    c = torch.zeros(n_batch, hidden)
    hs = []
    for t in range(x_t.shape[1]):
        if isinstance(cell, torch.nn.LSTMCell):
            h, c = cell(x_t[:, t], (h, c))
        else:
            h = cell(x_t[:, t], h)
        h.retain_grad()
        hs.append(h)
    return hs


@pytest.mark.parametrize("kind, bidirectional, sequences",
                         [(k, b, s) for k in ("SimpleRNN", "GRU", "LSTM")
                          for b in (False, True) for s in (False, True)])
def test_hidden_grads_against_torch(kind, bidirectional, sequences):
    """backward_with_hidden_grads: hidden_grads[t] = the total dL/dh_t (output part plus what
    step t+1 sends back); dx and the parameter gradients are those of a plain backward."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(60 + len(kind) + 2 * bidirectional + sequences)
    layer = make(kind, rng, sequences, bidirectional)
    x = rng.standard_normal((4, 6, D)).astype(np.float32)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    plain_dx = layer.backward(dy)
    plain_grads = {key: value.copy() for key, value in layer.grads.items()}
    layer.forward(x)
    dx, hidden_grads = layer.backward_with_hidden_grads(dy)
    np.testing.assert_array_equal(dx, plain_dx)
    for key, value in plain_grads.items():
        np.testing.assert_array_equal(layer.grads[key], value, err_msg=key)
    sides = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    module, _ = twin_of(layer)
    cells = module.cells()       # one per direction, sharing the twin's parameters
    assert len(cells) == len(sides)
    x_t = torch.tensor(x)
    outputs, states = [], []
    for side, cell in enumerate(cells):
        hs = unrolled(cell, x_t.flip(1) if side else x_t)              # in reading order
        states.append(hs[::-1] if side else hs)                         # aligned with time
        outputs.append(torch.stack(states[-1], 1) if sequences else hs[-1])
    y_t = torch.cat(outputs, -1)
    assert_close(y, y_t, FORWARD_TOL, "forward")
    y_t.backward(torch.from_numpy(dy))
    expected = torch.cat([torch.stack([h.grad for h in hs]) for hs in states], -1)  # (T, N, *H)
    assert hidden_grads.shape == (6, 4, H * len(sides))
    assert_close(hidden_grads, expected, GRAD_TOL, "hidden_grads")
    if not sequences:    # only h_T receives an output gradient; earlier ones come through w_hh
        np.testing.assert_array_equal(hidden_grads[-1, :, :H], dy[:, :H])
        assert np.abs(hidden_grads[0, :, :H]).max() > 0
