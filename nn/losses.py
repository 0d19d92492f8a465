"""Softmax and the softmax-cross-entropy loss, fused for stability and a simple gradient.

With logits z (N, C) and integer labels y (N,):
    log p = z - logsumexp(z),  logsumexp(z) = m + log sum_c exp(z_c - m),  m = max_c z_c
    L = -(1/N) sum_n log p[n, y_n]
    dL/dz = (p - onehot(y)) / N
Subtracting the row maximum keeps exp from overflowing; the fused gradient avoids dividing by
tiny probabilities.
"""
import numpy as np


def log_softmax(logits):
    """(N, C) -> (N, C): log p = z - m - log sum_c exp(z_c - m), m = max_c z_c (no overflow)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise probabilities, (N, C) -> (N, C): p = exp(z - m) / sum_c exp(z_c - m), m = max_c z_c."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy_forward(logits, labels):
    """Mean cross-entropy of integer ``labels`` (N,) under softmax(``logits``) (N, C).

    Returns (loss as a Python float, cache = probabilities and labels).
    """
    log_p = log_softmax(logits)
    n = logits.shape[0]
    loss = -log_p[np.arange(n), labels].mean()
    return float(loss), (np.exp(log_p), labels)


def softmax_cross_entropy_backward(cache):
    """(N, C) dL/dlogits = (p - onehot(labels)) / N, from the forward pass's cache."""
    probabilities, labels = cache
    n = probabilities.shape[0]
    dlogits = probabilities.copy()
    dlogits[np.arange(n), labels] -= 1
    return dlogits / dlogits.dtype.type(n)


class SoftmaxCrossEntropy:
    """Loss object: ``loss = criterion.forward(logits, labels)``; ``dlogits = criterion.backward()``."""

    def __init__(self):
        self.cache = None

    def forward(self, logits, labels):
        loss, self.cache = softmax_cross_entropy_forward(logits, labels)
        return loss

    def backward(self):
        return softmax_cross_entropy_backward(self.cache)
