"""The statistics of a study, from SciPy's distributions (no home-made distribution code).

- :func:`summary`: over seeds, the mean, sample standard deviation (n - 1) and the 95 % t
  interval of a model's test accuracy:  mean +- t_{0.975, n-1} * sd / sqrt(n)
  (``scipy.stats.t.interval``).
- :func:`paired_t`: two models trained with the same seeds, the t-test of the per-seed
  differences d_s = a_s - b_s:  t = mean(d) / (sd(d) / sqrt(n)), n - 1 degrees of freedom
  (``scipy.stats.ttest_rel``).
- :func:`mcnemar_exact`: two models' predictions on the same test images; only the images one
  gets right and the other wrong count: b (only A right) and c (only B right).  Under "equally
  good" each of those b + c images is A's with probability 1/2, so the exact two-sided p-value is
  the binomial test of b successes in b + c trials at p = 0.5 (``scipy.stats.binomtest``).
- :func:`binomial_interval`: one run's accuracy k / n on n test images, with the exact
  (Clopper-Pearson) 95 % interval of a binomial proportion (``BinomTestResult.proportion_ci``):
  the spread of the test images, not of the seed.
- :func:`holm`: Holm's step-down correction of m p-values: sort them, p_(i) * (m - i + 1)
  (i = 1..m), each at least the one before it, capped at 1.
"""
import math

import numpy as np

ALPHA = 0.05


def _scipy_stats():
    try:
        from scipy import stats
    except ImportError:
        from nn.errors import UserError
        raise UserError("the study's statistics need SciPy; install the study extra: "
                        "pip install -e '.[study]'") from None
    return stats


def summary(values, confidence=0.95):
    """{n, mean, sd, low, high} of ``values`` (one per seed); with one value sd and the interval
    are None (a single run says nothing about the spread)."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    mean = float(values.mean())
    if n < 2:
        return {"n": n, "mean": mean, "sd": None, "low": None, "high": None}
    sd = float(values.std(ddof=1))
    if sd == 0:
        low = high = mean
    else:
        low, high = _scipy_stats().t.interval(confidence, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return {"n": n, "mean": mean, "sd": sd, "low": float(low), "high": float(high)}


def paired_t(a, b):
    """{n, mean_difference, t, p} of the paired t-test of ``a`` against ``b`` (same seeds, same
    order); None when fewer than two pairs.  Identical differences (sd 0): p 1 if they are all
    zero, else 0 (every seed says the same; SciPy would divide by zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"paired samples of different lengths: {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    differences = a - b
    mean = float(differences.mean())
    if np.all(differences == differences[0]):
        return {"n": len(a), "mean_difference": mean, "t": None, "p": 1.0 if mean == 0 else 0.0}
    result = _scipy_stats().ttest_rel(a, b)
    return {"n": len(a), "mean_difference": mean, "t": float(result.statistic), "p": float(result.pvalue)}


def mcnemar_exact(predictions_a, predictions_b, labels):
    """{only_a, only_b, p}: McNemar's exact test of two models on the same test images."""
    labels = np.asarray(labels)
    right_a = np.asarray(predictions_a) == labels
    right_b = np.asarray(predictions_b) == labels
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(right_b & ~right_a))
    if only_a + only_b == 0:
        return {"only_a": 0, "only_b": 0, "p": 1.0}
    p = _scipy_stats().binomtest(only_a, only_a + only_b, 0.5).pvalue
    return {"only_a": only_a, "only_b": only_b, "p": float(p)}


def binomial_interval(correct, images, confidence=0.95):
    """{accuracy, low, high}: ``correct`` right answers of ``images``, the exact interval."""
    interval = _scipy_stats().binomtest(int(correct), int(images)).proportion_ci(confidence, method="exact")
    return {"accuracy": correct / images, "low": float(interval.low), "high": float(interval.high)}


def holm(p_values):
    """Holm-adjusted p-values, in the order given.  Reject hypothesis i at level alpha when its
    adjusted value is <= alpha: the same decisions as Holm's step-down procedure."""
    p_values = [float(p) for p in p_values]
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
