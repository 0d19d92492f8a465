"""The GRU's and SimpleRNN's whole-sequence kernels (nn.kernels.gru, nn.kernels.rnn).

Like the LSTM's (tests/test_blas_and_sequences.py): each kernel must equal its NumPy twin (a
Python loop over the step twins, nn.kernels.reference), its results must not depend on the
thread count or on how the batch is cut into blocks of rows, and prediction without kept steps
must give the same last state as the training forward pass.
"""
import numba
import numpy as np
import pytest

from nn.kernels import gru as gru_kernels
from nn.kernels import reference
from nn.kernels import rnn as rnn_kernels
from nn.layers import GRU, Bidirectional, SimpleRNN
from nn.layers.gru import gru_backward, gru_forward
from nn.layers.rnn import simple_rnn_backward, simple_rnn_forward

KINDS = ["GRU", "SimpleRNN"]
GATES = {"GRU": 3, "SimpleRNN": 1}      # rows of w_ih per hidden unit


def _case(kind, rng, steps, n_batch, hidden, dtype, features=5):
    """x (T, N, D) and the kernels' weights: (w_ih_t, b_ih, w_hh_t, b_hh) or (w_ih_t, b, w_hh_t)."""
    width = GATES[kind] * hidden
    x = (rng.standard_normal((steps, n_batch, features)) * 2).astype(dtype)
    w_ih_t = (rng.standard_normal((features, width)) * 0.5).astype(dtype)
    w_hh_t = (rng.standard_normal((hidden, width)) * 0.5).astype(dtype)
    b_ih, b_hh = (rng.standard_normal(width).astype(dtype) for _ in range(2))
    return (x, w_ih_t, b_ih, w_hh_t, b_hh) if kind == "GRU" else (x, w_ih_t, b_ih, w_hh_t)


def _forward(kind, module, case, rows_per_block, fast, keep_steps=True):
    """Run module's <kind>_sequence_forward; returns its outputs (GRU: gates, hn, hs; RNN: hs)."""
    x, w_hh_t = case[0], case[3]
    steps, n_batch, hidden = x.shape[0], x.shape[1], w_hh_t.shape[0]
    kept, slots = (steps, steps + 1) if keep_steps else (1, 2)
    hs = np.zeros((slots, n_batch, hidden), x.dtype)
    if kind == "GRU":
        gates = np.full((kept, n_batch, 3 * hidden), np.nan, x.dtype)
        hn = np.full((kept, n_batch, hidden), np.nan, x.dtype)
        module.gru_sequence_forward(*case, gates, hn, hs, np.empty((n_batch, 3 * hidden), x.dtype),
                                    rows_per_block, fast)
        return gates, hn, hs
    module.rnn_sequence_forward(*case, hs, np.empty((n_batch, hidden), x.dtype),
                                np.empty((n_batch, hidden), x.dtype), rows_per_block, fast)
    return (hs,)


def _backward(kind, module, case, forward, dhs, dh_last, rows_per_block, want_dx, record):
    """Run module's <kind>_sequence_backward; returns (dx, hidden_grads, dh, *parameter grads)."""
    x, w_ih_t, w_hh_t = case[0], case[1], case[3]
    hs = forward[-1]
    steps, n_batch, hidden = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    width = w_hh_t.shape[1]
    blocks = 1 if module is reference else -(-n_batch // rows_per_block)
    dh = dh_last.copy()
    dx = np.full((steps if want_dx else 0,) + x.shape[1:], np.nan, x.dtype)
    hidden_grads = np.full((steps if record else 0, n_batch, hidden), np.nan, x.dtype)
    w_ih, w_hh = np.ascontiguousarray(w_ih_t.T), np.ascontiguousarray(w_hh_t.T)
    dw_ih = np.zeros((blocks,) + w_ih.shape, x.dtype)
    dw_hh = np.zeros((blocks,) + w_hh.shape, x.dtype)
    biases = [np.zeros((blocks, width), x.dtype) for _ in range(2 if kind == "GRU" else 1)]
    if kind == "GRU":
        gates, hn, _ = forward
        scratch = [np.full((n_batch, width), np.nan, x.dtype) for _ in range(2)]
        module.gru_sequence_backward(dhs, dh, x, hs, gates, hn, w_ih, w_hh, *scratch,
                                     np.full((n_batch, hidden), np.nan, x.dtype), dx,
                                     hidden_grads, dw_ih, dw_hh, *biases, rows_per_block)
    else:
        module.rnn_sequence_backward(dhs, dh, x, hs, w_ih, w_hh,
                                     np.full((n_batch, hidden), np.nan, x.dtype), dx,
                                     hidden_grads, dw_ih, dw_hh, *biases, rows_per_block)
    return (dx, hidden_grads, dh, dw_ih.sum(0), dw_hh.sum(0)) + tuple(b.sum(0) for b in biases)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_batch, rows_per_block", [(1, 32), (5, 2), (70, 32), (64, 64)])
def test_sequence_kernels_match_the_numpy_twin_in_float64(kind, n_batch, rows_per_block):
    rng = np.random.default_rng(n_batch + 100 * rows_per_block)
    steps, hidden = 6, 8
    case = _case(kind, rng, steps, n_batch, hidden, np.float64)
    module = gru_kernels if kind == "GRU" else rnn_kernels
    ours = _forward(kind, module, case, rows_per_block, False)
    twin = _forward(kind, reference, case, rows_per_block, False)
    for got, want in zip(ours, twin):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.abs(twin[-1][1:]).max() > 0.1       # a real recurrence, not all zeros
    dhs = rng.standard_normal((steps, n_batch, hidden))
    for every_step in (True, False):
        step_grads = dhs if every_step else np.empty((0, n_batch, hidden))
        dh_last = np.zeros((n_batch, hidden)) if every_step else dhs[-1]
        for want_dx, record in ((True, True), (False, False)):
            got = _backward(kind, module, case, ours, step_grads, dh_last, rows_per_block,
                            want_dx, record)
            want = _backward(kind, reference, case, twin, step_grads, dh_last, rows_per_block,
                             want_dx, record)
            for g, w in zip(got, want):
                assert g.shape == w.shape and np.all(np.isfinite(g))
                np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_float32_kernels_are_close_to_the_exact_twin(kind):
    """float32 uses the rational tanh (error ~3e-7 per call) and float32 products."""
    rng = np.random.default_rng(11)
    steps, n_batch, hidden = 28, 40, 16
    case = _case(kind, rng, steps, n_batch, hidden, np.float32)
    case64 = [a.astype(np.float64) for a in case]
    module = gru_kernels if kind == "GRU" else rnn_kernels
    ours = _forward(kind, module, case, 32, True)
    exact = _forward(kind, reference, case64, 32, False)
    for got, want in zip(ours, exact):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-5)   # 28 steps of ~3e-7 each
    dhs = rng.standard_normal((steps, n_batch, hidden)).astype(np.float32)
    got = _backward(kind, module, case, ours, dhs, np.zeros_like(dhs[0]), 32, True, True)
    want = _backward(kind, reference, case64, exact, dhs.astype(np.float64),
                     np.zeros((n_batch, hidden)), 32, True, True)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-4 * max(np.abs(w).max(), 1))


def _layer_step(kind, n_batch, rows_per_block=None, threads=None, sequences=False):
    """Forward and backward of a seeded layer in float32: (hs, dx, hidden_grads, *grads)."""
    import nn.layers.recurrent as recurrent_module
    import nn.layers.gru as gru_module
    import nn.layers.rnn as rnn_module
    rng = np.random.default_rng(n_batch)
    layer = {"GRU": GRU, "SimpleRNN": SimpleRNN}[kind](28, 64, rng=rng)
    x = rng.standard_normal((n_batch, 28, 28)).astype(np.float32)
    shape = (n_batch, 28, 64) if sequences else (n_batch, 64)
    dout = rng.standard_normal(shape).astype(np.float32)
    modules = (recurrent_module, gru_module, rnn_module)
    original, previous = recurrent_module.ROWS_PER_BLOCK, numba.get_num_threads()
    for module in modules:
        module.ROWS_PER_BLOCK = rows_per_block or original
    numba.set_num_threads(threads or previous)
    try:
        hs = layer.forward(x, training=True, return_sequences=sequences)
        dx, hidden_grads = layer.backward_with_hidden_grads(dout)
        return (hs, dx, hidden_grads, *(layer.grads[k] for k in sorted(layer.grads)))
    finally:
        for module in modules:
            module.ROWS_PER_BLOCK = original
        numba.set_num_threads(previous)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_batch, sequences", [(64, False), (100, True)])
def test_results_do_not_depend_on_the_thread_count(kind, n_batch, sequences):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    one = _layer_step(kind, n_batch, threads=1, sequences=sequences)
    two = _layer_step(kind, n_batch, threads=2, sequences=sequences)
    for got, want in zip(two, one):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_batch", [64, 100])
def test_block_size_changes_only_the_order_of_the_gradient_sums(kind, n_batch):
    """Each row's recurrence is the same computation in any block (bit for bit); only the
    weight gradients, summed block by block, may differ in the last bits."""
    results = [_layer_step(kind, n_batch, rows_per_block) for rows_per_block in (32, 7, n_batch)]
    for other in results[1:]:
        for got, want in zip(other[:3], results[0][:3]):                # hs, dx, hidden_grads
            np.testing.assert_array_equal(got, want)
        for got, want in zip(other[3:], results[0][3:]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_batch", [1, 64, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prediction_without_kept_steps_gives_the_same_last_state(kind, n_batch, dtype):
    """infer() lets the steps take turns in two slots of h; h_T must be the same bits."""
    rng = np.random.default_rng(n_batch)
    layer = {"GRU": GRU, "SimpleRNN": SimpleRNN}[kind](28, 64, rng=rng, dtype=dtype)
    x = rng.standard_normal((n_batch, 28, 28)).astype(dtype)
    want = layer.forward(x, training=False)
    got = layer.infer(x)
    assert got.shape == (n_batch, 64) and got.dtype == dtype
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_ring_slots_match_the_twin(kind):
    rng = np.random.default_rng(12)
    case = _case(kind, rng, 5, 3, 4, np.float64)
    module = gru_kernels if kind == "GRU" else rnn_kernels
    ring = [_forward(kind, m, case, 32, False, keep_steps=False)[-1][5 % 2]
            for m in (module, reference)]
    full = _forward(kind, reference, case, 32, False)[-1][-1]
    np.testing.assert_allclose(ring[0], ring[1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(ring[0], full, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name, cls", [("gru", GRU), ("rnn", SimpleRNN)])
def test_model_prediction_uses_the_inference_path(name, cls, monkeypatch):
    from models import build_model
    model = build_model(name, rng=np.random.default_rng(0))
    images = np.random.default_rng(1).uniform(0, 1, (10, 28, 28)).astype(np.float32)
    calls = []
    original = cls.infer
    monkeypatch.setattr(cls, "infer", lambda self, x: calls.append(len(x)) or original(self, x))
    probabilities = model.predict_proba(images)
    assert calls == [10]
    logits = model.network.forward(model.to_network_input(images), training=False)
    np.testing.assert_array_equal(probabilities.argmax(1), logits.argmax(1))


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_prediction_uses_the_copies_inference_path(kind, monkeypatch):
    rng = np.random.default_rng(3)
    layer = Bidirectional({"type": kind, "input_size": 6, "hidden_size": 5}, rng=rng)
    x = rng.standard_normal((9, 7, 6)).astype(np.float32)
    want = layer.forward(x, training=False)
    cls = type(layer.forward_layer)
    calls = []
    original = cls.infer
    monkeypatch.setattr(cls, "infer", lambda self, x: calls.append(x.shape) or original(self, x))
    got = layer.infer(x)
    assert calls == [(9, 7, 6), (9, 7, 6)]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_pure_pair_without_input_gradient_gives_the_same_parameter_gradients(kind):
    rng = np.random.default_rng(4)
    layer = {"GRU": GRU, "SimpleRNN": SimpleRNN}[kind](6, 5, rng=rng)
    x = rng.standard_normal((40, 7, 6)).astype(np.float32)
    dhs = rng.standard_normal((7, 40, 5)).astype(np.float32)
    forward, backward = ((gru_forward, gru_backward) if kind == "GRU"
                         else (simple_rnn_forward, simple_rnn_backward))
    names = sorted(layer.params, key=list(layer.params).index)
    _, cache = forward(x, *(layer.params[k] for k in names))
    with_dx = backward(dhs, cache, need_input_grad=True)
    without = backward(dhs, cache, need_input_grad=False)
    assert with_dx[0].shape == x.shape and without[0] is None
    for got, want in zip(without[1:], with_dx[1:]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n, hidden", [(1, 1), (3, 4), (32, 64), (5, 7)])
def test_fast_step_kernels_are_close_to_the_exact_twins(n, hidden):
    """The float32 step kernels with the rational tanh, one step, far into both tails too."""
    rng = np.random.default_rng(50 + n * hidden)
    pre = (rng.standard_normal((n, 3 * hidden)) * 3).astype(np.float32)
    pre[0, 0], pre[-1, -1] = 40, -40
    recurrent = (rng.standard_normal((n, 3 * hidden)) * 2).astype(np.float32)
    b_hh = rng.standard_normal(3 * hidden).astype(np.float32)
    h_prev = rng.uniform(-1, 1, (n, hidden)).astype(np.float32)
    outputs = []
    for step, dtype in ((gru_kernels.gru_step_forward_fast, np.float32),
                        (reference.gru_step_forward_fast, np.float64)):
        gates = pre.astype(dtype)
        hn, h = np.full((n, hidden), np.nan, dtype), np.full((n, hidden), np.nan, dtype)
        step(gates, recurrent.astype(dtype), b_hh.astype(dtype), h_prev.astype(dtype), hn, h)
        outputs.append((gates, hn, h))
    for got, want in zip(*outputs):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    h = np.full((n, hidden), np.nan, np.float32)
    rnn_kernels.rnn_step_forward_fast(pre[:, :hidden], recurrent[:, :hidden], h)
    want = np.empty((n, hidden))
    reference.rnn_step_forward_fast(pre[:, :hidden].astype(np.float64),
                                    recurrent[:, :hidden].astype(np.float64), want)
    np.testing.assert_allclose(h, want, rtol=0, atol=1e-6)


def test_the_shared_recurrent_helpers_match_their_twins():
    """nn.kernels.recurrent's loops, called through a kernel, against nn.kernels.reference."""
    from numba import njit

    from nn.kernels import recurrent

    @njit
    def run(a, b, dh, dhs, hidden_grads, total, start, stop):
        recurrent._add_bias_rows(a, b, start, stop)
        recurrent._take_output_gradient(dh, dhs, hidden_grads, 1, start, stop)
        recurrent._add_rows_into(total, a, start, stop)
        return recurrent._row_block(2, 3, 7), recurrent._tanh_fast(np.float32(0.5))

    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal(shape).astype(np.float32)
              for shape in ((5, 4), (4,), (5, 4), (2, 5, 4), (2, 5, 4), (4,))]
    twins = [a.copy() for a in arrays]
    block, tanh = run(*arrays, 1, 4)
    reference.add_bias_rows(twins[0], twins[1], 1, 4)
    reference.take_output_gradient(twins[2], twins[3], twins[4], 1, 1, 4)
    reference.add_rows_into(twins[5], twins[0], 1, 4)
    for mine, twin in zip(arrays, twins):
        np.testing.assert_array_equal(mine, twin)
    assert block == reference.row_block(2, 3, 7) == (6, 7)
    assert abs(tanh - reference.tanh_fast(0.5)) < 4e-7


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_a_batch_of_one_block_runs_on_the_calling_thread_alone(kind, monkeypatch):
    """Blocks of ROWS_PER_BLOCK rows run in parallel; a batch of one block leaves a second
    thread nothing to run, so the kernels get one Numba thread (nn.layers.recurrent's
    sequence_threads gives what waking the other cost).  BLAS is on one thread inside every
    sequence kernel."""
    import importlib

    from nn import set_threads
    from nn.layers import LSTM
    from nn.layers.recurrent import ROWS_PER_BLOCK
    from nn.threads import blas_thread_count
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    prefix = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}[kind]
    module = importlib.import_module(f"nn.layers.{prefix}")       # its kernels: module.kernels
    seen = []
    for direction in ("forward", "backward", "predict"):
        name = f"{prefix}_sequence_{direction}"
        if not hasattr(module.kernels, name):   # only the LSTM's prediction has its own kernel
            continue
        original = getattr(module.kernels, name)

        def recording(*args, original=original, direction=direction):
            seen.append((direction, numba.get_num_threads(), blas_thread_count()))
            return original(*args)
        monkeypatch.setattr(module.kernels, name, recording)
    layer = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[kind](6, 5,
                                                                    rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2 * ROWS_PER_BLOCK, 4, 6)).astype(np.float32)
    one_block, two = ROWS_PER_BLOCK, 2 * ROWS_PER_BLOCK
    # the LSTM predicts blocks of 32 rows with its own kernel, the rest with the forward one
    lstm_prediction = {1: [("forward", 1, 1)], one_block: [("predict", 1, 1)],
                       one_block + 1: [("predict", 1, 1), ("forward", 1, 1)],
                       two: [("predict", 2, 1)]}
    with set_threads(2):
        for n_batch, threads in [(1, 1), (one_block, 1), (one_block + 1, 2), (two, 2)]:
            seen.clear()
            layer.backward(np.ones_like(layer.forward(x[:n_batch], training=True)))
            assert seen == [("forward", threads, 1), ("backward", threads, 1)]
            seen.clear()
            layer.infer(x[:n_batch])
            assert seen == (lstm_prediction[n_batch] if kind == "LSTM"
                            else [("forward", threads, 1)])
        assert numba.get_num_threads() == 2          # restored after each call
