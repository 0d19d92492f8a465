"""CTC kernels: the forward (alpha) and backward (beta) recursions in log space, and the
gradient with respect to the logits.

Every sample n has its own extended label sequence l' (S' = 2S + 1 states: a blank before,
between and after the S labels, so l'_s is a label at odd s and the blank at even s) and its own
number of frames T_n.  With y[t, k] = log p(k | frame t) (the log-softmax of the logits):

    alpha_t(s) = y[t, l'_s] + log( alpha_{t-1}(s) + alpha_{t-1}(s-1) + [skip] alpha_{t-1}(s-2) )
    beta_t(s)  = log( e^{y[t+1, l'_s]} beta_{t+1}(s) + e^{y[t+1, l'_{s+1}]} beta_{t+1}(s+1)
                      + [skip] e^{y[t+1, l'_{s+2}]} beta_{t+1}(s+2) )
(all in log space: "+" inside log() is log-add), where a skip over a blank is allowed only into
a label that differs from the label two states back.  alpha includes frame t's emission, beta
does not, so alpha_t(s) + beta_t(s) is the log-probability of all alignments through state s at
frame t, and log p(l | x) = log( alpha_{T-1}(S'-1) + alpha_{T-1}(S'-2) ).  Graves et al. 2006,
section 4.1 (their beta includes the emission; ours leaves it out so the product needs no
division).

Unreachable states hold -inf, which log-add treats as probability 0.  Types are inferred, so
the same kernels run in float32 and float64.  Serial: the loss is a small part of a training
step, and the batch is the only axis free of dependencies.
"""
import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _log_add(a, b):
    """log(e^a + e^b) without overflow or underflow; -inf when both are -inf."""
    if a < b:
        a, b = b, a
    if b == -np.inf:
        return a
    return a + math.log1p(math.exp(b - a))


@njit(cache=True, inline="always")
def _can_skip(extended, s):
    """True if state s may be entered from s - 2: l'_s is a label (odd s) unlike l'_{s-2}."""
    return s >= 2 and s % 2 == 1 and extended[s] != extended[s - 2]


@njit(cache=True)
def ctc_log_alpha(log_probs, extended, input_lengths, extended_lengths):
    """log_probs (N, T, C); extended (N, S') int64, blank-interleaved labels; input_lengths (N,)
    T_n; extended_lengths (N,) 2 S_n + 1  ->  log_alpha (N, T, S'), -inf where unreachable and
    for t >= T_n.

    alpha_0(0) = y[0, blank],  alpha_0(1) = y[0, l_1]  (a path starts with a blank or the first
    label); then alpha_t(s) = y[t, l'_s] + log-add of alpha_{t-1}(s), (s-1), and (s-2) if skipping.
    """
    n_batch, steps, _ = log_probs.shape
    log_alpha = np.full((n_batch, steps, extended.shape[1]), -np.inf, dtype=log_probs.dtype)
    for n in range(n_batch):
        frames, states = input_lengths[n], extended_lengths[n]
        if frames == 0:
            continue
        labels = extended[n]
        log_alpha[n, 0, 0] = log_probs[n, 0, labels[0]]
        if states > 1:
            log_alpha[n, 0, 1] = log_probs[n, 0, labels[1]]
        for t in range(1, frames):
            for s in range(states):
                total = log_alpha[n, t - 1, s]                                  # stay
                if s >= 1:
                    total = _log_add(total, log_alpha[n, t - 1, s - 1])         # step
                if _can_skip(labels, s):
                    total = _log_add(total, log_alpha[n, t - 1, s - 2])         # skip a blank
                log_alpha[n, t, s] = total + log_probs[n, t, labels[s]]
    return log_alpha


@njit(cache=True)
def ctc_log_beta(log_probs, extended, input_lengths, extended_lengths):
    """Same arguments as :func:`ctc_log_alpha` -> log_beta (N, T, S'): the log-probability of
    the frames after t given state s at frame t (frame t's own emission excluded).

    beta_{T-1}(S'-1) = beta_{T-1}(S'-2) = 0 (= log 1: a path ends on the last label or the final
    blank); then beta_t(s) = log-add over s' in {s, s+1, s+2 if skipping} of y[t+1, l'_s'] +
    beta_{t+1}(s').
    """
    n_batch, steps, _ = log_probs.shape
    log_beta = np.full((n_batch, steps, extended.shape[1]), -np.inf, dtype=log_probs.dtype)
    for n in range(n_batch):
        frames, states = input_lengths[n], extended_lengths[n]
        if frames == 0:
            continue
        labels = extended[n]
        log_beta[n, frames - 1, states - 1] = 0.0
        if states > 1:
            log_beta[n, frames - 1, states - 2] = 0.0
        for t in range(frames - 2, -1, -1):
            for s in range(states):
                total = log_beta[n, t + 1, s] + log_probs[n, t + 1, labels[s]]
                if s + 1 < states:
                    total = _log_add(total, log_beta[n, t + 1, s + 1] + log_probs[n, t + 1, labels[s + 1]])
                if s + 2 < states and _can_skip(labels, s + 2):
                    total = _log_add(total, log_beta[n, t + 1, s + 2] + log_probs[n, t + 1, labels[s + 2]])
                log_beta[n, t, s] = total
    return log_beta


@njit(cache=True)
def ctc_logits_gradient(log_probs, extended, input_lengths, extended_lengths, log_alpha, log_beta,
                        log_likelihood, scale):
    """dL/dlogits (N, T, C) for L = sum_n scale[n] * (-log p(l_n | x_n)):

        dlogits[n, t, k] = scale[n] * ( p[t, k] - sum_{s: l'_s = k} exp(alpha_t(s) + beta_t(s) - log p(l|x)) )

    for t < T_n, and 0 for the padding frames t >= T_n.  A sample with log p(l|x) = -inf (no
    alignment fits) or scale 0 gets a zero gradient.  log_likelihood (N,), scale (N,).
    """
    n_batch, steps, classes = log_probs.shape
    dlogits = np.zeros_like(log_probs)
    for n in range(n_batch):
        if scale[n] == 0 or log_likelihood[n] == -np.inf:
            continue
        labels = extended[n]
        for t in range(input_lengths[n]):
            for k in range(classes):
                dlogits[n, t, k] = math.exp(log_probs[n, t, k])                   # p[t, k]
            for s in range(extended_lengths[n]):
                # the posterior of state s at frame t, a number in [0, 1]
                posterior = math.exp(log_alpha[n, t, s] + log_beta[n, t, s] - log_likelihood[n])
                dlogits[n, t, labels[s]] -= posterior
            for k in range(classes):
                dlogits[n, t, k] *= scale[n]
    return dlogits
