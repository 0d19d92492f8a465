"""Softmax and the softmax-cross-entropy loss, fused for stability and a simple gradient.

With logits z (N, C) and integer labels y (N,):
    log p = z - logsumexp(z),  logsumexp(z) = m + log sum_c exp(z_c - m),  m = max_c z_c
    L = -(1/N) sum_n log p[n, y_n]
    dL/dz = (p - onehot(y)) / N
Subtracting the row maximum keeps exp from overflowing; the fused gradient avoids dividing by
tiny probabilities.
"""
import numpy as np

from nn.kernels import losses as kernels


def log_softmax(logits):
    """(N, C) -> (N, C): log p = z - m - log sum_c exp(z_c - m), m = max_c z_c (no overflow)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Row-wise probabilities, (N, C) -> (N, C): p = exp(z - m) / sum_c exp(z_c - m), m = max_c z_c.

    One compiled pass (nn.kernels.losses.softmax_rows) for float32/float64 rows; NumPy for
    other types and shapes."""
    if logits.ndim == 2 and logits.dtype in (np.float32, np.float64) and logits.shape[1] > 0:
        return kernels.softmax_rows(np.ascontiguousarray(logits))
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def _kernel_labels(logits, labels):
    """``labels`` as the int64 (N,) array the kernels take (labels = int64(labels) for
    logits (N, C) of float32 or float64), or None where the NumPy path must run (other shapes
    or types, which it handles or reports as it always has)."""
    labels = np.asarray(labels)
    if (logits.ndim == 2 and logits.dtype in (np.float32, np.float64) and labels.ndim == 1
            and labels.dtype.kind in "iu" and len(labels) == len(logits) > 0):
        return labels.astype(np.int64, copy=False)
    return None


def softmax_cross_entropy_forward(logits, labels):
    """Mean cross-entropy of integer ``labels`` (N,) under softmax(``logits``) (N, C).

    Returns (loss as a Python float, cache = probabilities and labels).  One compiled pass
    (nn.kernels.losses) for the usual float logits and integer labels; NumPy otherwise.
    """
    kernel_labels = _kernel_labels(logits, labels)
    if kernel_labels is not None:
        loss, probabilities, ok = kernels.softmax_cross_entropy(np.ascontiguousarray(logits),
                                                                kernel_labels)
        if ok:                                   # else a label out of range: NumPy says so
            return float(loss), (probabilities, kernel_labels)
    log_p = log_softmax(logits)
    n = logits.shape[0]
    loss = -log_p[np.arange(n), labels].mean()
    return float(loss), (np.exp(log_p), labels)


def softmax_cross_entropy_backward(cache):
    """(N, C) dL/dlogits = (p - onehot(labels)) / N, from the forward pass's cache."""
    probabilities, labels = cache
    if (isinstance(labels, np.ndarray) and labels.dtype == np.int64 and probabilities.ndim == 2
            and probabilities.dtype in (np.float32, np.float64)):
        return kernels.softmax_cross_entropy_backward(probabilities, labels)
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

