"""Classification metrics from predicted and true labels: confusion matrix, precision, recall, F1.

Everything is computed from the confusion matrix ``C`` (rows: true digit, columns: predicted
digit), so the numbers of a report always agree with the matrix printed beside them:

    C[t, p]      = number of images of digit t that the model called p
    precision_k  = C[k, k] / sum_t C[t, k]   (of the images called k, the share that are k)
    recall_k     = C[k, k] / sum_p C[k, p]   (of the images of k, the share called k)
    F1_k         = 2 precision_k recall_k / (precision_k + recall_k)
    accuracy     = trace(C) / sum(C)

A ratio whose denominator is 0 (a digit never predicted, or absent from the labels) is reported
as 0.0, the convention scikit-learn uses by default, so that every value is a finite number that
JSON can hold.
"""
import numpy as np

NUM_CLASSES = 10


def confusion_matrix(true_labels, predicted_labels, num_classes=NUM_CLASSES):
    """Count (true, predicted) pairs.

    Parameters
    ----------
    true_labels, predicted_labels : array_like of int, shape (N,)
        Values in ``0 .. num_classes - 1``.

    Returns
    -------
    numpy.ndarray
        ``int64``, shape ``(num_classes, num_classes)``; ``C[t, p]`` counts images of class
        ``t`` predicted as ``p``.
    """
    true_labels = np.asarray(true_labels, dtype=np.int64).ravel()
    predicted_labels = np.asarray(predicted_labels, dtype=np.int64).ravel()
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(f"{len(true_labels)} true labels but {len(predicted_labels)} predictions")
    for name, labels in (("true", true_labels), ("predicted", predicted_labels)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must be in 0..{num_classes - 1}")
    flat = true_labels * num_classes + predicted_labels  # one bin per (t, p) pair
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator, denominator):
    """Elementwise numerator / denominator, 0.0 where the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def accuracy(confusion):
    """Share of correct answers: trace(C) / sum(C) (0.0 for an empty matrix)."""
    confusion = np.asarray(confusion)
    return float(_ratio(np.trace(confusion), confusion.sum()))


def precision_recall_f1(confusion):
    """Per-class precision, recall, F1 and support, each an array of shape (K,).

    ``support[k]`` is the number of images whose true class is ``k`` (the row sum).
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    correct = np.diag(confusion)
    predicted = confusion.sum(axis=0)   # column sums: how often each class was answered
    support = confusion.sum(axis=1)     # row sums: how many images each class has
    precision = _ratio(correct, predicted)
    recall = _ratio(correct, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support


def per_class_report(confusion):
    """The per-class table as a list of dicts: digit, precision, recall, f1, support."""
    precision, recall, f1, support = precision_recall_f1(confusion)
    return [dict(digit=k, precision=float(precision[k]), recall=float(recall[k]),
                 f1=float(f1[k]), support=int(support[k]))
            for k in range(len(support))]


def macro_average(per_class):
    """Unweighted mean of precision, recall and F1 over the classes, and the total support."""
    return dict(precision=float(np.mean([row["precision"] for row in per_class])),
                recall=float(np.mean([row["recall"] for row in per_class])),
                f1=float(np.mean([row["f1"] for row in per_class])),
                support=int(sum(row["support"] for row in per_class)))


def top_confusions(confusion, count=3):
    """The ``count`` most frequent mistakes as (true, predicted, times), most frequent first.

    Ties are broken by true then predicted class, so the order is reproducible.
    """
    confusion = np.asarray(confusion)
    mistakes = [(int(confusion[t, p]), t, p) for t in range(len(confusion))
                for p in range(len(confusion)) if t != p and confusion[t, p] > 0]
    mistakes.sort(key=lambda m: (-m[0], m[1], m[2]))
    return [(t, p, n) for n, t, p in mistakes[:count]]


def format_per_class(per_class, macro=None):
    """An aligned text table: digit, precision, recall, F1 (in %) and support."""
    lines = [f"{'digit':>7}  {'precision':>9}  {'recall':>7}  {'F1':>7}  {'support':>7}"]
    for row in per_class:
        lines.append(f"{row['digit']:>7}  {100 * row['precision']:>8.2f}%  "
                     f"{100 * row['recall']:>6.2f}%  {100 * row['f1']:>6.2f}%  {row['support']:>7,}")
    if macro is not None:
        lines.append(f"{'macro':>7}  {100 * macro['precision']:>8.2f}%  "
                     f"{100 * macro['recall']:>6.2f}%  {100 * macro['f1']:>6.2f}%  {macro['support']:>7,}")
    return "\n".join(lines)


def format_confusion(confusion):
    """An aligned text confusion matrix, rows true digit, columns predicted digit, with totals."""
    confusion = np.asarray(confusion)
    k = len(confusion)
    largest = max([0] + [int(v) for v in confusion.sum(axis=0)] + [int(v) for v in confusion.sum(axis=1)])
    width = max(5, len(f"{largest:,}") + 1)                         # a count column
    total_width = max(7, len(f"{int(confusion.sum()):,}") + 2)      # the row-total column
    header = f"{'true/pred':>9}"
    header += "".join(f"{p:>{width}}" for p in range(k)) + f"{'total':>{total_width}}"
    lines = [header]
    for t in range(k):
        lines.append(f"{t:>9}" + "".join(f"{int(confusion[t, p]):>{width},}" for p in range(k))
                     + f"{int(confusion[t].sum()):>{total_width},}")
    lines.append(f"{'total':>9}" + "".join(f"{int(confusion[:, p].sum()):>{width},}" for p in range(k))
                 + f"{int(confusion.sum()):>{total_width},}")
    return "\n".join(lines)
