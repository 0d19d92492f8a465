"""Connectionist Temporal Classification (Graves et al. 2006): a loss for reading a label
sequence from per-frame scores without knowing which frame shows which label, and its decoders.

Layout, batch first like every sequence in this kit: logits (N, T, C), one row of C scores per
frame (a CNN's columns fed to a bidirectional LSTM give exactly this); class ``blank`` (0 by
default, as PyTorch) is the "no label here" class.  PyTorch's ctc_loss takes (T, N, C): transpose.

A labelling l = (l_1..l_S) is read from a frame-by-frame path pi (one class per frame) by B:
merge repeated classes, then drop blanks ("a a - b b" -> "ab", "a - a" -> "aa").  Then

    p(l | x) = sum over paths pi with B(pi) = l of prod_t p(pi_t | frame t),  p = softmax(logits)
    loss_n   = -log p(l_n | x_n)

summed by the alpha/beta recursions of :mod:`nn.kernels.ctc` in log space over the extended
sequence l' = (blank, l_1, blank, l_2, ..., l_S, blank) of 2S + 1 states.  The gradient with
respect to the logits (log-softmax applied inside) is the softmax minus the state posteriors:

    dloss_n / dz[t, k] = p[t, k] - sum_{s: l'_s = k} exp(alpha_t(s) + beta_t(s) - log p(l | x))

Reductions (as PyTorch's): 'mean' = mean over the batch of loss_n / max(S_n, 1), 'sum', 'none'.

Impossible alignments: a target needs S_n frames plus one per pair of equal neighbours ("11"
needs 3: 1, blank, 1); with fewer input frames no path exists and p(l | x) = 0.  Then loss_n is
inf (PyTorch's default, so a trainer's "refuse a non-finite loss" guard sees it), or 0 with
``zero_infinity=True``; in both cases that sample's gradient is 0 (where PyTorch's is NaN without
zero_infinity): there is no alignment to pull the scores towards.

Decoding: :func:`greedy_decode` (best path: argmax per frame, then B) and
:func:`beam_search_decode` (prefix beam search over labellings, each prefix's probability split
into paths ending in a blank and paths ending in a label).  Derivations: docs/math.md, section CTC.
"""
import math
from typing import NamedTuple

import numpy as np

from nn.kernels import ctc as kernels
from nn.losses import log_softmax

REDUCTIONS = ("mean", "sum", "none")


class CTCCache(NamedTuple):
    """What ctc_backward needs from the forward pass (S' = 2 max_n S_n + 1)."""
    log_probs: np.ndarray         # (N, T, C) log-softmax of the logits
    extended: np.ndarray          # (N, S') int64: blank, l_1, blank, ..., l_S, blank (blank-padded)
    input_lengths: np.ndarray     # (N,) int64: T_n frames are read, the rest is padding
    extended_lengths: np.ndarray  # (N,) int64: 2 S_n + 1
    log_alpha: np.ndarray         # (N, T, S') the forward variable (beta waits for backward)
    log_likelihood: np.ndarray    # (N,) log p(l_n | x_n), -inf where no alignment fits
    sample_weights: np.ndarray    # (N,) d(reduced loss) / d(loss_n); 0 for a zeroed infinite loss
    reduction: str


# ----------------------------------------------------------------------------- checking inputs

def _integer_array(values, name):
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integers, got dtype {array.dtype}")
    return array.astype(np.int64)


def _lengths(values, name, n_batch, largest, what_limits=""):
    """(N,) int64 lengths, each in [0, largest] (``what_limits`` says where the limit comes from)."""
    lengths = _integer_array(values, name)
    if lengths.shape != (n_batch,):
        raise ValueError(f"{name} must have shape ({n_batch},), one per sample, got {lengths.shape}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > largest):
        bad = int(np.flatnonzero((lengths < 0) | (lengths > largest))[0])
        raise ValueError(f"{name}[{bad}] = {lengths[bad]} is outside [0, {largest}]{what_limits}")
    return lengths


def check_logits(logits, blank=0):
    """Raise a one-line ValueError unless ``logits`` is a float32/64 (N, T, C) array, blank < C."""
    if not isinstance(logits, np.ndarray) or logits.ndim != 3 or logits.dtype.kind != "f":
        shape = getattr(logits, "shape", None)
        raise ValueError(f"logits must be a float array (N, T, C), got {type(logits).__name__} "
                         f"of shape {shape}")
    if logits.dtype not in (np.float32, np.float64):
        raise ValueError(f"logits must be float32 (training) or float64 (gradient checks), "
                         f"got {logits.dtype}")
    classes = logits.shape[2]
    if not isinstance(blank, (int, np.integer)) or not 0 <= blank < classes or classes < 2:
        raise ValueError(f"blank {blank} is not one of the C = {classes} classes (need C >= 2)")


def padded_targets(targets, target_lengths, n_batch, classes, blank):
    """Targets as given (padded (N, S), or 1-D concatenated with ``target_lengths``) -> padded
    (N, S) int64 and target_lengths (N,) int64, after checking every label that will be read."""
    targets = _integer_array(targets, "targets")
    if targets.ndim == 1:
        if target_lengths is None:
            raise ValueError("targets is 1-D (concatenated), so target_lengths is required")
        lengths = _lengths(target_lengths, "target_lengths", n_batch, targets.size)
        if lengths.sum() != targets.size:
            raise ValueError(f"target_lengths sum to {lengths.sum()} but the concatenated targets "
                             f"hold {targets.size} labels")
        padded = np.full((n_batch, max(int(lengths.max(initial=0)), 1)), blank, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(lengths)))
        for n in range(n_batch):
            padded[n, :lengths[n]] = targets[starts[n]:starts[n + 1]]
    elif targets.ndim == 2:
        if targets.shape[0] != n_batch:
            raise ValueError(f"targets must have shape (N, S) with N = {n_batch}, got {targets.shape}")
        width = targets.shape[1]
        lengths = (np.full(n_batch, width, dtype=np.int64) if target_lengths is None
                   else _lengths(target_lengths, "target_lengths", n_batch, width,
                                " (S, the padded targets' width)"))
        padded = targets
    else:
        raise ValueError(f"targets must be (N, S) padded or 1-D concatenated, got shape {targets.shape}")
    used = np.arange(padded.shape[1])[None, :] < lengths[:, None]        # (N, S): the labels read
    outside = used & ((padded < 0) | (padded >= classes))
    if outside.any():
        n, i = np.argwhere(outside)[0]
        raise ValueError(f"targets[{n}, {i}] = {padded[n, i]} is outside the C = {classes} classes")
    if (used & (padded == blank)).any():
        n, i = np.argwhere(used & (padded == blank))[0]
        raise ValueError(f"targets[{n}, {i}] is the blank ({blank}), which cannot be a label")
    return padded, lengths


def extend_targets(targets, target_lengths, blank):
    """Padded targets (N, S) -> (extended (N, 2S + 1) = blank, l_1, blank, ..., l_S, blank,
    extended_lengths (N,) = 2 S_n + 1).  Padding beyond S_n stays blank and is never read."""
    n_batch, width = targets.shape
    extended = np.full((n_batch, 2 * width + 1), blank, dtype=np.int64)
    for n in range(n_batch):
        extended[n, 1:2 * target_lengths[n]:2] = targets[n, :target_lengths[n]]   # labels at odd s
    return extended, 2 * target_lengths + 1


def log_softmax_frames(logits):
    """(N, T, C) -> (N, T, C): log p[n, t, k] = z - logsumexp over the C classes of frame t."""
    n_batch, steps, classes = logits.shape
    return log_softmax(logits.reshape(n_batch * steps, classes)).reshape(n_batch, steps, classes)


# ----------------------------------------------------------------------------- the loss

def ctc_forward(logits, targets, input_lengths=None, target_lengths=None, blank=0,
                reduction="mean", zero_infinity=False):
    """CTC loss of ``targets`` under per-frame ``logits``.

    Parameters
    ----------
    logits : float ndarray (N, T, C)
        Unnormalised scores; log-softmax is applied over C here.
    targets : int ndarray (N, S) padded, or (sum S_n,) concatenated
        Labels in [0, C) other than ``blank``; padding beyond S_n is ignored.
    input_lengths : int ndarray (N,), optional
        T_n <= T frames read per sample (default: all T).
    target_lengths : int ndarray (N,), optional for padded targets
        S_n (default for padded targets: every row is S long).
    blank : int
        The blank class.
    reduction : 'mean' | 'sum' | 'none'
        'mean': (1/N) sum_n loss_n / max(S_n, 1) (PyTorch's); 'none' returns the (N,) losses.
    zero_infinity : bool
        An impossible sample's inf loss becomes 0 (its gradient is 0 either way).

    Returns (loss: Python float, or (N,) array for 'none'; CTCCache).
    """
    check_logits(logits, blank)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    n_batch, steps, classes = logits.shape
    input_lengths = (np.full(n_batch, steps, dtype=np.int64) if input_lengths is None
                     else _lengths(input_lengths, "input_lengths", n_batch, steps,
                                   " (T, the logits' frames)"))
    targets, target_lengths = padded_targets(targets, target_lengths, n_batch, classes, blank)
    extended, extended_lengths = extend_targets(targets, target_lengths, blank)

    log_probs = log_softmax_frames(logits)                                         # (N, T, C)
    log_alpha = kernels.ctc_log_alpha(log_probs, extended, input_lengths, extended_lengths)
    log_likelihood = np.full(n_batch, -np.inf, dtype=logits.dtype)
    for n in range(n_batch):
        last_frame, last_state = input_lengths[n] - 1, extended_lengths[n] - 1
        if input_lengths[n] == 0:                   # no frames: only the empty labelling fits
            log_likelihood[n] = 0.0 if target_lengths[n] == 0 else -np.inf
            continue
        # log p(l|x) = log(alpha_{T-1}(S'-1) + alpha_{T-1}(S'-2)): end on the final blank or label
        log_likelihood[n] = log_alpha[n, last_frame, last_state]
        if last_state > 0:
            log_likelihood[n] = np.logaddexp(log_likelihood[n], log_alpha[n, last_frame, last_state - 1])
    losses = -log_likelihood                                                       # (N,)
    weights = np.ones(n_batch)                                                     # 'sum', 'none'
    if reduction == "mean":
        weights = 1.0 / (n_batch * np.maximum(target_lengths, 1))                 # PyTorch's mean
    impossible = np.isinf(losses)
    if zero_infinity:
        losses[impossible] = 0.0
        weights[impossible] = 0.0
    cache = CTCCache(log_probs, extended, input_lengths, extended_lengths, log_alpha,
                     log_likelihood, weights, reduction)
    if reduction == "none":
        return losses, cache
    if impossible.any() and not zero_infinity:
        return math.inf, cache
    return float(np.sum(weights * losses.astype(np.float64))), cache


def ctc_backward(cache, dloss=None):
    """dL/dlogits (N, T, C), the dtype of the logits: the backward (beta) recursion, then the
    softmax minus the state posteriors alpha beta / p(l|x), scaled per sample.

    ``dloss`` is the upstream gradient of the returned loss: a scalar for 'mean'/'sum' (default
    1), an (N,) array for 'none' (default ones: the gradient of sum_n loss_n).
    """
    n_batch = cache.log_probs.shape[0]
    upstream = np.ones(n_batch) if dloss is None else np.asarray(dloss, dtype=np.float64)
    expected = (n_batch,) if cache.reduction == "none" else ()
    if dloss is not None and upstream.shape != expected:
        raise ValueError(f"dloss of a {cache.reduction!r} CTC loss must have shape {expected}, "
                         f"got {upstream.shape}")
    scale = (cache.sample_weights * upstream).astype(cache.log_probs.dtype)        # (N,)
    log_beta = kernels.ctc_log_beta(cache.log_probs, cache.extended, cache.input_lengths,
                                    cache.extended_lengths)                        # (N, T, S')
    return kernels.ctc_logits_gradient(cache.log_probs, cache.extended, cache.input_lengths,
                                       cache.extended_lengths, cache.log_alpha, log_beta,
                                       cache.log_likelihood, scale)


def warm_up(dtype=np.float32):
    """Compile (or load from Numba's cache) the CTC kernels for ``dtype`` on a tiny batch, e.g.
    ``nn.warmup.warm_up(extra=(nn.ctc.warm_up,))`` for a model trained with CTC."""
    logits = np.zeros((2, 3, 3), dtype=dtype)
    _, cache = ctc_forward(logits, np.array([[1, 2], [1, 0]]), target_lengths=np.array([2, 1]))
    ctc_backward(cache)


class CTCLoss:
    """Loss object: ``loss = criterion.forward(logits, targets, input_lengths, target_lengths)``;
    ``dlogits = criterion.backward()``.  Options as :func:`ctc_forward`."""

    def __init__(self, blank=0, reduction="mean", zero_infinity=False):
        self.blank, self.reduction, self.zero_infinity = blank, reduction, zero_infinity
        self.cache = None

    def forward(self, logits, targets, input_lengths=None, target_lengths=None):
        loss, self.cache = ctc_forward(logits, targets, input_lengths, target_lengths, self.blank,
                                       self.reduction, self.zero_infinity)
        return loss

    def backward(self, dloss=None):
        return ctc_backward(self.cache, dloss)


# ----------------------------------------------------------------------------- decoding

def _frames_to_read(logits, input_lengths, blank):
    check_logits(logits, blank)
    n_batch, steps, _ = logits.shape
    if input_lengths is None:
        return np.full(n_batch, steps, dtype=np.int64)
    return _lengths(input_lengths, "input_lengths", n_batch, steps, " (T, the logits' frames)")


def greedy_decode(logits, input_lengths=None, blank=0):
    """Best-path decoding: the most probable class of every frame, repeats merged, blanks dropped.

    logits (N, T, C) -> (labellings: N lists of ints, log_probabilities (N,) float64: the log-
    probability of the best *path*, sum_t max_k log p[t, k], a lower bound on that of its
    labelling, which other paths also spell).
    """
    frames = _frames_to_read(logits, input_lengths, blank)
    log_probs = log_softmax_frames(logits)
    labellings, log_probabilities = [], np.zeros(len(frames))
    for n, count in enumerate(frames):
        best = log_probs[n, :count].argmax(axis=1)                                  # (T_n,)
        log_probabilities[n] = log_probs[n, np.arange(count), best].sum(dtype=np.float64)
        new = np.ones(count, dtype=bool)
        new[1:] = best[1:] != best[:-1]                                              # merge repeats
        labellings.append([int(k) for k in best[new & (best != blank)]])             # drop blanks
    return labellings, log_probabilities


def _log_add(a, b):
    """log(e^a + e^b) for Python floats, -inf + -inf = -inf."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def prefix_beam_search(log_probs, beam_width, blank=0):
    """One sample's log_probs (T, C) -> (the most probable labelling found, as a tuple; its
    log p(l | x)).

    Each kept prefix carries two log-probabilities over the frames read so far: of the paths
    that spell it and end in a blank, and of those that end in its last label.  A frame extends
    every prefix by a blank (same prefix), by its last label (merged: same prefix, unless a
    blank separates them) or by another label (a longer prefix).  After each frame the
    ``beam_width`` most probable prefixes are kept.  Without pruning the probabilities are exact
    sums over paths, so with a wide enough beam the result is the most probable labelling.
    """
    minus_inf = -math.inf
    beams = {(): (0.0, minus_inf)}            # prefix -> (log p ending in blank, ending in a label)
    for frame in np.asarray(log_probs, dtype=np.float64):
        extended = {}

        def add(prefix, ending_blank, ending_label):
            old_blank, old_label = extended.get(prefix, (minus_inf, minus_inf))
            extended[prefix] = (_log_add(old_blank, ending_blank), _log_add(old_label, ending_label))

        for prefix, (ending_blank, ending_label) in beams.items():
            either = _log_add(ending_blank, ending_label)
            add(prefix, either + frame[blank], minus_inf)                      # a blank
            for label, log_p in enumerate(frame):
                if label == blank:
                    continue
                if prefix and prefix[-1] == label:
                    add(prefix, minus_inf, ending_label + log_p)               # "a" + "a" = "a"
                    add(prefix + (label,), minus_inf, ending_blank + log_p)    # "a-" + "a" = "aa"
                else:
                    add(prefix + (label,), minus_inf, either + log_p)
        ranked = sorted(extended.items(), key=lambda item: (-_log_add(*item[1]), item[0]))
        beams = dict(ranked[:beam_width])
    prefix, (ending_blank, ending_label) = next(iter(beams.items()))
    return prefix, _log_add(ending_blank, ending_label)


def beam_search_decode(logits, beam_width=8, input_lengths=None, blank=0):
    """Prefix beam search on every sample (:func:`prefix_beam_search`).

    logits (N, T, C) -> (labellings: N lists of ints, log_probabilities (N,) float64: log p(l | x)
    of each labelling, summed over all its paths that survived the pruning).
    """
    frames = _frames_to_read(logits, input_lengths, blank)
    if int(beam_width) != beam_width or beam_width < 1:
        raise ValueError(f"beam_width must be a positive integer, got {beam_width!r}")
    log_probs = log_softmax_frames(logits)
    labellings, log_probabilities = [], np.zeros(len(frames))
    for n, count in enumerate(frames):
        labelling, log_probabilities[n] = prefix_beam_search(log_probs[n, :count], int(beam_width), blank)
        labellings.append(list(labelling))
    return labellings, log_probabilities
