"""How this machine's two thread pools behave: the numbers behind nn.threads' OpenMP spin and
Dense's row-split prediction (docs/performance.md, 2026-12-06).

    python bench/threads_probe.py [--threads 2] [--windows 12] [--seconds 0.25]

wake      an empty parallel kernel (``prange`` over the threads), back to back and after a busy
          gap of 20 - 500 us: what starting Numba's OpenMP workers costs, and from which gap
          on they have gone to sleep (set GOMP_SPINCOUNT or OMP_WAIT_POLICY=PASSIVE to compare)
products  x (256, 784) @ w^T (784, 256) in ``--windows`` windows of ``--seconds``, one after
          another: NumPy's BLAS on all threads, then the batch cut into one block of rows per
          thread with one-thread BLAS (nn.kernels.dense.dense_stack_forward), then one thread
          alone (us, medians).  A VM may switch between states while it runs; the columns
          show which product loses how much in each.
"""
import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import nn  # noqa: E402
from nn.threads import threads_from_argv  # noqa: E402

nn.configure_threads(threads_from_argv(sys.argv) or 2)  # before NumPy loads BLAS

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from nn.kernels import dense as dense_kernels  # noqa: E402
from nn.threads import blas_threads  # noqa: E402

GAPS_US = (0, 20, 50, 100, 150, 200, 300, 500)


@njit(parallel=True)
def touch_each_thread(counts):
    """The smallest parallel kernel: one increment per thread."""
    for part in prange(counts.size):
        counts[part] += 1


def median_us(function, seconds):
    """Median wall time of ``function()`` over ``seconds`` of calls, in us."""
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not times:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def wake_costs(seconds):
    """{gap in us: us an empty parallel kernel takes after that much busy time}."""
    counts = np.zeros(numba.get_num_threads())
    touch_each_thread(counts)                           # compiled before timing
    costs = {}
    for gap in GAPS_US:
        def after_gap():
            busy_wait(gap * 1e-6)
            touch_each_thread(counts)
        costs[gap] = median_us(after_gap, seconds) - gap
    return costs


def product_windows(windows, seconds):
    """[(BLAS on all threads, rows split, one thread) in us] per window."""
    rng = np.random.default_rng(0)
    x = rng.random((256, 784), dtype=np.float32)
    w = np.asfortranarray(rng.standard_normal((256, 784), dtype=np.float32))
    bias, y = np.zeros(256, np.float32), np.empty((256, 256), np.float32)
    threads = numba.get_num_threads()

    def split():
        dense_kernels.dense_stack_forward(x, (w.T,), (bias,), np.ones(1, np.float32), (y,), threads)

    rows = []
    for _ in range(windows):
        blas = median_us(lambda: x @ w.T, seconds)
        with blas_threads(1):
            split_us = median_us(split, seconds)
            one = median_us(lambda: x @ w.T, seconds)
        rows.append((blas, split_us, one))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--windows", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=0.25)
    args = parser.parse_args(argv)
    if args.windows < 1 or args.seconds <= 0:
        parser.error("--windows must be at least 1 and --seconds positive")
    print(f"wake: an empty parallel kernel on {numba.get_num_threads()} threads, after a busy gap")
    for gap, cost in wake_costs(args.seconds).items():
        print(f"  gap {gap:4d} us: {cost:7.1f} us")
    print("products: x (256, 784) @ w^T, us per product")
    print("  window   BLAS, all threads   rows split   one thread")
    for number, (blas, split, one) in enumerate(product_windows(args.windows, args.seconds), 1):
        print(f"  {number:6d}   {blas:17.0f}   {split:10.0f}   {one:10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
