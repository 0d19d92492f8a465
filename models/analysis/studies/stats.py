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
- :func:`paired_permutation`: two models measured on the same test images, any statistic of the
  two (a mean accuracy over perturbation levels, an F1, a ratio of gradient norms): under "the
  two models are interchangeable" each image's pair of values may be swapped, so the two-sided
  p-value is the share of the 2^N swaps whose difference is at least as extreme as the one seen
  (``scipy.stats.permutation_test``, exact up to its resample count, then a random sample of swaps).
- :func:`mann_whitney`: two samples of timings, the two-sided Mann-Whitney U test
  (``scipy.stats.mannwhitneyu``).
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


PERMUTATIONS = 9999   # random swaps of a paired permutation test (all 2^N of them when fewer)
PERMUTATION_BATCH = 500   # swaps computed at once: bounds the memory to 500 x N x K numbers


def paired_permutation(values_a, values_b, statistic=None, seed=0, resamples=PERMUTATIONS):
    """{difference, p}: the paired permutation test of ``statistic(totals of A) - statistic(totals of B)``.

    Parameters
    ----------
    values_a, values_b : numpy.ndarray, (N,) or (N, K)
        Image n's values under model A and under model B: a 0/1 "right" per image, a score
        averaged over perturbation levels, or K numbers per image when the statistic needs several
        (the F1 needs "said k and is k" and "said k").
    statistic : callable or None
        ``statistic(totals)``: the number compared, from the totals over the N images (..., K) ->
        (...,); None: the mean (the totals over N), i.e. an accuracy for 0/1 values.
    seed : int
        Seeds the random swaps (a report is reproducible).

    Returns
    -------
    dict
        ``difference`` = statistic(A) - statistic(B), ``p`` its two-sided p-value, ``swapped``:
        the images whose values differ (only those change anything when swapped).

    An image with the same values under both models is left out of the swaps and kept in the
    totals: swapping it changes nothing, so the test is the same and much faster (two good
    models differ on a few hundred of 10,000 images).
    """
    values_a = np.asarray(values_a, dtype=np.float64)
    values_b = np.asarray(values_b, dtype=np.float64)
    if values_a.shape != values_b.shape:
        raise ValueError(f"paired values of different shapes: {values_a.shape} and {values_b.shape}")
    n = len(values_a)
    if statistic is None:
        statistic = lambda totals: totals[..., 0] / n           # noqa: E731 - the mean
    a, b = values_a.reshape(n, -1), values_b.reshape(n, -1)
    differ = np.any(a != b, axis=1)
    fixed = a[~differ].sum(axis=0)                               # the same under both models
    a, b = a[differ], b[differ]
    observed = float(statistic(fixed + a.sum(axis=0)) - statistic(fixed + b.sum(axis=0)))
    if len(a) < 2:
        # no image to swap, or one: two outcomes at most, the observed one among the most extreme,
        # so the two-sided p-value is 1 (SciPy wants two observations at least)
        return {"difference": observed, "p": 1.0, "swapped": int(len(a))}
    both = np.concatenate([a, b])                                # row i: image i under A, len(a) + i: under B

    # SciPy swaps the samples' entries image by image; the samples are row indices into ``both``,
    # so an image's K values are swapped together.
    def difference(index_a, index_b, axis=-1):
        index_a, index_b = np.moveaxis(index_a, axis, -1), np.moveaxis(index_b, axis, -1)
        return statistic(fixed + both[index_a].sum(axis=-2)) - statistic(fixed + both[index_b].sum(axis=-2))

    result = _scipy_stats().permutation_test(
        (np.arange(len(a)), np.arange(len(a), 2 * len(a))), difference, permutation_type="samples",
        vectorized=True, n_resamples=resamples, alternative="two-sided", batch=PERMUTATION_BATCH,
        random_state=np.random.default_rng(seed))
    return {"difference": observed, "p": float(min(1.0, result.pvalue)), "swapped": int(len(a))}


def f1_values(predictions, labels, digit):
    """(N, 2) per-image values for :func:`paired_permutation` with :func:`f1_statistic`:
    "said ``digit`` and it is", "said ``digit``"."""
    said = np.asarray(predictions) == digit
    return np.stack([said & (np.asarray(labels) == digit), said], axis=1).astype(np.float64)


def f1_statistic(labels, digit):
    """The F1 of ``digit`` from the totals of :func:`f1_values`:
    F1 = 2 TP / (predicted as the digit + truly the digit), 0 when both are 0."""
    truly = int(np.sum(np.asarray(labels) == digit))

    def f1(totals):
        true_positives, said = totals[..., 0], totals[..., 1]
        denominator = said + truly
        return np.where(denominator > 0, 2 * true_positives / np.maximum(denominator, 1), 0.0)
    return f1


def log_ratio_statistic(totals):
    """log(total of the second value / total of the first): for per-image gradient norms
    (||dL/dh_1||, ||dL/dh_T||), the log of g_T / g_1 (the means' ratio)."""
    return np.log(totals[..., 1] / totals[..., 0])


def mann_whitney(a, b):
    """{p}: the two-sided Mann-Whitney U test of two samples (e.g. two models' step times)."""
    result = _scipy_stats().mannwhitneyu(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                                         alternative="two-sided")
    return {"u": float(result.statistic), "p": float(result.pvalue)}
