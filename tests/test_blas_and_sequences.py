"""BLAS called from Numba (nn.kernels.blas), and the LSTM's whole-sequence kernels built on it.

nn.kernels.blas calls SciPy's BLAS through scipy.linalg.cython_blas; on this machine SciPy's
and NumPy's wheels both bundle OpenBLAS, so its products must equal NumPy's own bit for bit; the sequence kernels must equal their NumPy twins (a Python loop over the step
twins), and must not depend on how the batch is cut into blocks (which is what makes the
results independent of the thread count).
"""
import numpy as np
import pytest

from nn.kernels import blas, reference
from nn.kernels import lstm as lstm_kernels
from nn.layers.lstm import LSTM, lstm_backward, lstm_forward
from nn.threads import blas_thread_count, blas_threads


def test_the_kernels_bind_scipys_cython_blas():
    """The documented, portable route (no /proc scanning, no private symbol names): our symbol
    names lead to the addresses SciPy exports for compiled code."""
    import inspect

    import llvmlite.binding as llvm
    from numba.extending import get_cython_function_address
    for symbol, name in ((blas._SGEMM_SYMBOL, "sgemm"), (blas._DGEMM_SYMBOL, "dgemm")):
        assert llvm.address_of_symbol(symbol) == get_cython_function_address(
            "scipy.linalg.cython_blas", name)
    source = inspect.getsource(blas)
    assert "/proc" not in source.replace("no /proc", "") and "scipy_cblas" not in source


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 5, 3), (64, 64, 256), (33, 256, 64)])
def test_gemm_equals_numpy_matmul(m, k, n, dtype):
    rng = np.random.default_rng(m * k + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    c = np.full((m, n), np.nan, dtype)
    blas.gemm(a, b, c)
    np.testing.assert_array_equal(c, a @ b)          # the same library, the same arithmetic


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_at_add_accumulates_the_transposed_product(dtype):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((9, 4)).astype(dtype), rng.standard_normal((9, 6)).astype(dtype)
    c0 = rng.standard_normal((4, 6)).astype(dtype)
    c = c0.copy()
    blas.gemm_at_add(a, b, c)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(c, c0 + a.T @ b, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_general_equals_numpy_matmul_bit_for_bit_and_accumulates(dtype):
    """The three products of the Winograd block: U V, dM V^T (added onto a partial sum) and
    U^T dM, on a block of columns of a wider array (a slice of a batch), as NumPy gives them."""
    rng = np.random.default_rng(4)
    u = rng.standard_normal((12, 8)).astype(dtype)
    v_all = rng.standard_normal((8, 90)).astype(dtype)
    dm = rng.standard_normal((12, 50)).astype(dtype)
    v = v_all[:, 20:70]                                  # rows of 50 with a stride of 90
    product = np.empty((12, 50), dtype)
    blas.gemm_general(u, v, product, False, False, False)
    np.testing.assert_array_equal(product, np.matmul(u, np.ascontiguousarray(v)))
    transposed = np.empty((8, 50), dtype)
    blas.gemm_general(u, dm, transposed, True, False, False)
    np.testing.assert_array_equal(transposed, np.matmul(np.ascontiguousarray(u.T), dm))
    partial = rng.standard_normal((12, 8)).astype(dtype)
    expected = partial + np.matmul(dm, np.ascontiguousarray(v.T))
    blas.gemm_general(dm, v, partial, False, True, True)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(partial, expected, rtol=tolerance, atol=tolerance)


def test_gemm_on_a_block_of_rows_writes_only_that_block():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((10, 6)).astype(np.float32)
    b = rng.standard_normal((6, 4)).astype(np.float32)
    c = np.full((10, 4), -7.0, np.float32)
    blas.gemm(a[3:8], b, c[2:7])
    np.testing.assert_array_equal(c[2:7], a[3:8] @ b)
    assert np.all(c[:2] == -7) and np.all(c[7:] == -7)


def test_gemm_falls_back_to_loops_for_strided_rows():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((6, 5))
    b = rng.standard_normal((5, 3))
    c = np.empty((3, 6))
    blas.gemm(b.T, a.T, c)                 # transposed views: BLAS's row strides do not apply
    np.testing.assert_allclose(c, b.T @ a.T, rtol=1e-13, atol=1e-13)


def test_gemm_accepts_any_stride_on_a_length_one_axis():
    # np.ascontiguousarray(w.T) of a (4, 1) w keeps strides (4, 4): "contiguous" to NumPy,
    # an illegal leading dimension to BLAS (which printed an error and left c unwritten)
    w = np.arange(4, dtype=np.float32).reshape(4, 1)
    b = np.ascontiguousarray(w.T)
    a = np.full((3, 1), 2, np.float32)
    c = np.full((3, 4), np.nan, np.float32)
    blas.gemm(a, b, c)
    np.testing.assert_array_equal(c, np.tile(2 * np.arange(4, dtype=np.float32), (3, 1)))


def test_gemm_falls_back_to_loops_for_mixed_types():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 2)).astype(np.float32)
    c = np.empty((4, 2))
    blas.gemm(a, b, c)
    np.testing.assert_allclose(c, a @ b.astype(np.float64), rtol=1e-6, atol=1e-6)


def test_blas_threads_sets_and_restores_the_count():
    before = blas_thread_count()
    assert before is not None and before >= 1
    with blas_threads(1):
        assert blas_thread_count() == 1
    assert blas_thread_count() == before


def _sequence_case(rng, steps, n_batch, hidden, dtype, features=5):
    x = (rng.standard_normal((steps, n_batch, features)) * 2).astype(dtype)
    w_ih_t = (rng.standard_normal((features, 4 * hidden)) * 0.5).astype(dtype)
    b = rng.standard_normal(4 * hidden).astype(dtype)
    w_hh_t = (rng.standard_normal((hidden, 4 * hidden)) * 0.5).astype(dtype)
    return x, w_ih_t, b, w_hh_t


def _run_forward(module, case, rows_per_block, fast):
    x, w_ih_t, b, w_hh_t = case
    steps, n_batch, hidden = x.shape[0], x.shape[1], w_hh_t.shape[0]
    gates = np.full((steps, n_batch, 4 * hidden), np.nan, x.dtype)
    hs = np.zeros((steps + 1, n_batch, hidden), x.dtype)
    cs = np.zeros_like(hs)
    tanh_cs = np.full((steps, n_batch, hidden), np.nan, x.dtype)
    # the forward kernel reads x batch-major (N, T, D), the backward one time-major (T, N, D)
    module.lstm_sequence_forward(np.ascontiguousarray(x.transpose(1, 0, 2)), w_ih_t, b, w_hh_t,
                                 gates, hs, cs, tanh_cs, rows_per_block, fast)
    return gates, hs, cs, tanh_cs


def _run_backward(module, case, forward, dhs, dh_last, rows_per_block, record):
    x, w_ih_t, _, w_hh_t = case
    gates, hs, cs, tanh_cs = forward
    steps, n_batch, hidden = tanh_cs.shape
    blocks = 1 if module is reference else -(-n_batch // rows_per_block)
    dh = dh_last.copy()
    dc = np.zeros_like(dh)
    dgates = np.full_like(gates, np.nan)
    dx = np.full(x.shape, np.nan, x.dtype)
    hidden_grads = np.full((steps if record else 0, n_batch, hidden), np.nan, gates.dtype)
    dw_ih = np.zeros((blocks,) + w_ih_t.T.shape, x.dtype)
    dw_hh = np.zeros((blocks,) + w_hh_t.T.shape, x.dtype)
    db = np.zeros((blocks, w_hh_t.shape[1]), x.dtype)
    module.lstm_sequence_backward(dhs, dh, dc, x, hs, cs, tanh_cs, gates,
                                  np.ascontiguousarray(w_ih_t.T), np.ascontiguousarray(w_hh_t.T),
                                  dgates, dx, hidden_grads, dw_ih, dw_hh, db, rows_per_block)
    return dgates, dx, hidden_grads, dh, dc, dw_ih.sum(0), dw_hh.sum(0), db.sum(0)


@pytest.mark.parametrize("n_batch, rows_per_block", [(1, 32), (5, 2), (70, 32), (64, 64)])
def test_lstm_sequence_kernels_match_the_numpy_twin_in_float64(n_batch, rows_per_block):
    rng = np.random.default_rng(n_batch)
    steps, hidden = 6, 8
    case = _sequence_case(rng, steps, n_batch, hidden, np.float64)
    ours = _run_forward(lstm_kernels, case, rows_per_block, False)
    twin = _run_forward(reference, case, rows_per_block, False)
    for got, want in zip(ours, twin):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    dhs = rng.standard_normal((steps, n_batch, hidden))
    for every_step in (True, False):
        step_grads = dhs if every_step else np.empty((0, n_batch, hidden))
        dh_last = np.zeros((n_batch, hidden)) if every_step else dhs[-1]
        got = _run_backward(lstm_kernels, case, ours, step_grads, dh_last, rows_per_block, True)
        want = _run_backward(reference, case, twin, step_grads, dh_last, rows_per_block, True)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)


def test_lstm_sequence_forward_fast_is_the_float32_twin():
    rng = np.random.default_rng(11)
    case = _sequence_case(rng, 28, 40, 16, np.float32)
    ours = _run_forward(lstm_kernels, case, 32, True)
    exact = _run_forward(reference, [a.astype(np.float64) for a in case], 32, True)
    for got, want in zip(ours, exact):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)   # 28 steps of ~3e-7 each


def _run_predict(case, fast, module=lstm_kernels):
    """h_T from lstm_sequence_predict (N a multiple of its 32-row blocks, batch-last inside)."""
    x, w_ih_t, b, w_hh_t = case
    h_last = np.full((x.shape[1], w_hh_t.shape[0]), np.nan, x.dtype)
    module.lstm_sequence_predict(np.ascontiguousarray(x.transpose(1, 0, 2)),
                                       np.ascontiguousarray(w_ih_t.T), b,
                                       np.ascontiguousarray(w_hh_t.T), h_last, fast)
    return h_last


@pytest.mark.parametrize("n_batch", [32, 96])
@pytest.mark.parametrize("steps", [5, 6])
def test_lstm_sequence_predict_matches_the_numpy_twin_in_float64(n_batch, steps):
    rng = np.random.default_rng(n_batch + steps)
    case = _sequence_case(rng, steps, n_batch, 8, np.float64, features=28)
    want = _run_forward(reference, case, 32, False)[1][-1]
    np.testing.assert_allclose(_run_predict(case, False), want, rtol=0, atol=1e-13)
    np.testing.assert_allclose(_run_predict(case, False, reference), want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("n_batch", [32, 64, 96])
def test_lstm_sequence_predict_is_the_forward_kernels_last_state_bit_for_bit(n_batch):
    rng = np.random.default_rng(n_batch)
    case = _sequence_case(rng, 28, n_batch, 64, np.float32, features=28)
    want = _run_forward(lstm_kernels, case, 32, True)[1][-1]
    got = _run_predict(case, True)
    assert got.dtype == np.float32 and not np.isnan(got).any()
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_batch", [1, 31, 32, 70])
def test_float64_prediction_without_kept_steps_matches_the_forward_pass(n_batch):
    """The exact (libm) gate math through both of prediction's paths: 32-row blocks and the
    rest."""
    rng = np.random.default_rng(n_batch)
    layer = LSTM(28, 16, rng=rng, dtype=np.float64)
    x = rng.standard_normal((n_batch, 28, 28))
    np.testing.assert_allclose(layer.infer(x), layer.forward(x, training=False), rtol=0,
                               atol=1e-13)


def _layer_step(n_batch, rows_per_block=None, threads=None):
    """Forward and backward of a seeded LSTM layer: (hs, dx, dw_ih, dw_hh, db)."""
    import numba

    import nn.layers.lstm as lstm_module
    rng = np.random.default_rng(n_batch)
    layer = LSTM(28, 64, rng=rng)
    x = rng.standard_normal((n_batch, 28, 28)).astype(np.float32)
    dh = rng.standard_normal((n_batch, 64)).astype(np.float32)
    original, previous = lstm_module.ROWS_PER_BLOCK, numba.get_num_threads()
    lstm_module.ROWS_PER_BLOCK = rows_per_block or original
    numba.set_num_threads(threads or previous)
    try:
        hs, cache = lstm_forward(x, *(layer.params[k] for k in ("w_ih", "w_hh", "b")))
        return (hs, *lstm_backward(dh, cache, need_input_grad=True))
    finally:
        lstm_module.ROWS_PER_BLOCK = original
        numba.set_num_threads(previous)


@pytest.mark.parametrize("n_batch", [64, 100])
def test_results_do_not_depend_on_the_thread_count(n_batch):
    import numba
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    one, two = _layer_step(n_batch, threads=1), _layer_step(n_batch, threads=2)
    for got, want in zip(two, one):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n_batch", [64, 100])
def test_block_size_changes_only_the_order_of_the_gradient_sums(n_batch):
    """Each row's recurrence is the same computation in any block (bit for bit); only the
    weight gradients, summed block by block, may differ in the last bits."""
    results = [_layer_step(n_batch, rows_per_block) for rows_per_block in (32, 7, n_batch)]
    for other in results[1:]:
        np.testing.assert_array_equal(other[0], results[0][0])          # hs
        np.testing.assert_array_equal(other[1], results[0][1])          # dx
        for got, want in zip(other[2:], results[0][2:]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("n_batch", [1, 31, 32, 64, 70, 100])
def test_prediction_without_kept_steps_gives_the_same_last_state(n_batch):
    """infer() runs blocks of 32 rows batch-last and the rest with the steps taking turns in two
    slots of h and c; h_T must be the same bits as the forward pass's."""
    rng = np.random.default_rng(n_batch)
    layer = LSTM(28, 64, rng=rng)
    x = rng.standard_normal((n_batch, 28, 28)).astype(np.float32)
    want = layer.forward(x, training=False)
    got = layer.infer(x)
    assert got.shape == (n_batch, 64)
    np.testing.assert_array_equal(got, want)


def test_ring_slots_match_the_twin():
    rng = np.random.default_rng(12)
    x, w_ih_t, b, w_hh_t = _sequence_case(rng, 5, 3, 4, np.float64)
    results = []
    for module in (lstm_kernels, reference):
        gates, tanh_cs = np.empty((1, 3, 16)), np.empty((1, 3, 4))
        hs, cs = np.zeros((2, 3, 4)), np.zeros((2, 3, 4))
        module.lstm_sequence_forward(np.ascontiguousarray(x.transpose(1, 0, 2)), w_ih_t, b,
                                     w_hh_t, gates, hs, cs, tanh_cs, 32, False)
        results.append(hs[5 % 2])
    full = _run_forward(reference, (x, w_ih_t, b, w_hh_t), 32, False)[1][-1]
    np.testing.assert_allclose(results[0], results[1], rtol=0, atol=1e-13)
    np.testing.assert_allclose(results[0], full, rtol=0, atol=1e-13)


def test_model_prediction_uses_the_inference_path():
    from models import build_model
    model = build_model("lstm", rng=np.random.default_rng(0))
    images = np.random.default_rng(1).uniform(0, 1, (10, 28, 28)).astype(np.float32)
    calls = []
    original = LSTM.infer
    LSTM.infer = lambda self, x: calls.append(len(x)) or original(self, x)
    try:
        probabilities = model.predict_proba(images)
    finally:
        LSTM.infer = original
    assert calls == [10]
    logits = model.network.forward(model.to_network_input(images), training=False)
    np.testing.assert_allclose(probabilities.argmax(1), logits.argmax(1))


HIDDEN_NUMPY_BLAS_CHILD = r"""
import ctypes, json, sys
if sys.argv[1] == "hide":   # NumPy's OpenBLAS cannot be opened by name (the old way to call it)
    real_cdll = ctypes.CDLL.__init__
    def cdll_without_numpys_openblas(self, name, *args, **kwargs):
        if name and "openblas64" in str(name).lower():
            raise OSError("hidden by the test")
        return real_cdll(self, name, *args, **kwargs)
    ctypes.CDLL.__init__ = cdll_without_numpys_openblas
import nn
nn.configure_threads(1)
import numpy as np
from nn.layers.lstm import LSTM
rng = np.random.default_rng(0)
layer = LSTM(5, 4, rng=rng)
x = rng.standard_normal((3, 6, 5)).astype(np.float32)
out = layer.forward(x, training=True)
dx = layer.backward(np.ones_like(out))
print(json.dumps({"out": out.tolist(), "dx": dx.tolist()}))
"""


@pytest.mark.slow
def test_the_lstm_computes_the_same_without_access_to_numpys_openblas(tmp_path):
    """The kernels need nothing of NumPy's BLAS: with NumPy's OpenBLAS hidden from ctypes (how
    the previous version bound it), in a fresh cache, the LSTM's forward and
    backward give exactly what they give with everything in view."""
    import json
    import subprocess
    import sys

    def child(mode, cache):
        env = dict(__import__("os").environ, NUMBA_CACHE_DIR=str(cache))
        done = subprocess.run([sys.executable, "-c", HIDDEN_NUMPY_BLAS_CHILD, mode], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    shown, hidden = child("show", tmp_path / "a"), child("hide", tmp_path / "b")
    assert hidden == shown
    assert np.isfinite(np.array(shown["dx"])).all() and np.abs(np.array(shown["dx"])).sum() > 0


def test_a_small_prediction_batch_is_shared_among_the_threads(monkeypatch):
    """Prediction's batch-major rows (a batch under 32, or a batch's tail) of 8 rows or more run
    one block per thread: 16 rows on 2 threads took 88 - 94 us against 150 as one block (AMD
    EPYC Zen 5, 2026-12-07), and h_T is the same bits for any block size."""
    import numba

    import nn.layers.lstm as lstm_module
    from nn import set_threads
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two Numba threads")
    seen = []
    original = lstm_module.kernels.lstm_sequence_forward

    def recording(*args):
        seen.append((len(args[0]), args[-2], numba.get_num_threads()))   # rows, rows per block
        return original(*args)
    monkeypatch.setattr(lstm_module.kernels, "lstm_sequence_forward", recording)
    rng = np.random.default_rng(5)
    layer = LSTM(28, 64, rng=rng)
    x = rng.standard_normal((16, 28, 28)).astype(np.float32)
    with set_threads(1):
        one = layer.infer(x)
    with set_threads(2):
        two = layer.infer(x)
        layer.infer(x[:7])                                        # too few to share
    assert seen == [(16, 32, 1), (16, 8, 2), (7, 32, 1)]
    np.testing.assert_array_equal(two, one)
    np.testing.assert_array_equal(two, layer.forward(x, training=False)[:16])
