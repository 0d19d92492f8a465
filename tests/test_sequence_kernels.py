"""The compiled recurrence: BLAS called from Numba, and the LSTM's whole-sequence kernels.

nn.kernels.blas calls the OpenBLAS that NumPy loaded, so its products must equal NumPy's own
bit for bit; the sequence kernels must equal their NumPy twins (a Python loop over the step
twins), and must not depend on how the batch is cut into blocks (which is what makes the
results independent of the thread count).
"""
import numpy as np
import pytest

from nn.kernels import blas, reference
from nn.kernels import lstm as lstm_kernels
from nn.layers.lstm import LSTM, lstm_backward, lstm_forward
from nn.threads import blas_thread_count, blas_threads


def test_numpy_here_brings_openblas():
    # NumPy's wheels on Linux ship OpenBLAS; without it the fused recurrences would fall back
    # to a triple loop (correct, ~50x slower), which this machine must never silently do.
    assert blas.AVAILABLE


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (7, 5, 3), (64, 64, 256), (33, 256, 64)])
def test_gemm_equals_numpy_matmul(m, k, n, dtype):
    rng = np.random.default_rng(m * k + n)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    c = np.full((m, n), np.nan, dtype)
    blas.gemm(a, b, c)
    np.testing.assert_array_equal(c, a @ b)          # the same library, the same arithmetic


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
    recurrent = np.empty((n_batch, 4 * hidden), x.dtype)
    module.lstm_sequence_forward(x, w_ih_t, b, w_hh_t, gates, hs, cs, tanh_cs, recurrent,
                                 rows_per_block, fast)
    return gates, hs, cs, tanh_cs


def _run_backward(module, forward, w_hh, dhs, dh_last, rows_per_block, record):
    gates, hs, cs, tanh_cs = forward
    steps, n_batch, hidden = tanh_cs.shape
    dh = dh_last.copy()
    dc = np.zeros_like(dh)
    dgates = np.full_like(gates, np.nan)
    hidden_grads = np.full((steps if record else 0, n_batch, hidden), np.nan, gates.dtype)
    module.lstm_sequence_backward(dhs, dh, dc, gates, cs, tanh_cs, w_hh, dgates, hidden_grads,
                                  rows_per_block)
    return dgates, hidden_grads, dh, dc


@pytest.mark.parametrize("n_batch, rows_per_block", [(1, 32), (5, 2), (70, 32), (64, 64)])
def test_lstm_sequence_kernels_match_the_numpy_twin_in_float64(n_batch, rows_per_block):
    rng = np.random.default_rng(n_batch)
    steps, hidden = 6, 8
    case = _sequence_case(rng, steps, n_batch, hidden, np.float64)
    ours = _run_forward(lstm_kernels, case, rows_per_block, False)
    twin = _run_forward(reference, case, rows_per_block, False)
    for got, want in zip(ours, twin):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)
    w_hh = np.ascontiguousarray(case[3].T)
    dhs = rng.standard_normal((steps, n_batch, hidden))
    for every_step in (True, False):
        step_grads = dhs if every_step else np.empty((0, n_batch, hidden))
        dh_last = np.zeros((n_batch, hidden)) if every_step else dhs[-1]
        got = _run_backward(lstm_kernels, ours, w_hh, step_grads, dh_last, rows_per_block, True)
        want = _run_backward(reference, twin, w_hh, step_grads, dh_last, rows_per_block, True)
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


@pytest.mark.parametrize("n_batch", [64, 100])
def test_results_do_not_depend_on_the_block_size(n_batch):
    """Blocks are what the threads share out; identical bits for every cut means identical
    weights for every thread count."""
    rng = np.random.default_rng(n_batch)
    layer = LSTM(28, 64, rng=rng)
    x = rng.standard_normal((n_batch, 28, 28)).astype(np.float32)
    dh = rng.standard_normal((n_batch, 64)).astype(np.float32)
    results = []
    for rows_per_block in (32, 7, n_batch):
        import nn.layers.lstm as lstm_module
        original = lstm_module.ROWS_PER_BLOCK
        lstm_module.ROWS_PER_BLOCK = rows_per_block
        try:
            hs, cache = lstm_forward(x, *(layer.params[k] for k in ("w_ih", "w_hh", "b")))
            results.append((hs, *lstm_backward(dh, cache, need_input_grad=True)))
        finally:
            lstm_module.ROWS_PER_BLOCK = original
    for other in results[1:]:
        for got, want in zip(other, results[0]):
            np.testing.assert_array_equal(got, want)
