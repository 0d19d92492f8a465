"""Evaluate a trained model on the MNIST test images: accuracy, per-class report, confusion matrix.

    python -m models.evaluate --model cnn                      # shipped weights, all 10,000 images
    python -m models.evaluate --model gru --json               # the same numbers as one JSON object
    python -m models.evaluate --model cnn --plots plots/       # + PNG figures (needs matplotlib)
    python -m models.evaluate --weights runs/my.npz            # any weights file (it names its model)
    python -m models.evaluate --model lstm --threads 1         # BLAS and Numba on one thread

What it prints (text mode): the test accuracy and mean cross-entropy, a per-digit table of
precision, recall, F1 and support (see :mod:`models.analysis.metrics` for the definitions), and the
confusion matrix with rows = true digit, columns = predicted digit.  ``--json`` prints the same
as one JSON object and nothing else on standard output.  ``--plots DIR`` also writes the
training curves (from the history JSON saved beside the weights), the confusion matrix as a
heatmap, and grids of correctly and wrongly classified test digits.

A weights file that is missing, damaged or of the other model, a missing data folder or a bad
flag gives one line ``error: ...`` and exit status 2, before anything is written.  The command
line (flags, checks, printing) is :mod:`models.commands.evaluate`; this module computes.
"""
import json
from pathlib import Path

import numpy as np

from models.analysis import metrics
from kit.data import ensure_mnist, resolve_data_dir
from kit.mnist import load_dataset
from models.training.checkpoint import sibling_paths
from nn.losses import log_softmax

GRID_IMAGES = 40  # digits per grid figure


class Evaluation:
    """The outcome of running a model over labelled images.

    Attributes
    ----------
    labels, predictions : numpy.ndarray, int64, shape (N,)
    probabilities : numpy.ndarray, float32, shape (N, C)
    confusion : numpy.ndarray, int64, shape (C, C)   rows: true class, columns: predicted
    loss : float     mean cross-entropy
    """

    def __init__(self, labels, logits):
        logits = np.asarray(logits)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.predictions = logits.argmax(axis=1)
        log_p = log_softmax(logits.astype(np.float64))
        self.probabilities = np.exp(log_p).astype(np.float32)
        self.loss = float(-log_p[np.arange(len(self.labels)), self.labels].mean())  # mean cross-entropy
        self.confusion = metrics.confusion_matrix(self.labels, self.predictions, logits.shape[1])
        self.per_class = metrics.per_class_report(self.confusion)
        self.macro = metrics.macro_average(self.per_class)

    @property
    def n_images(self):
        return int(len(self.labels))

    @property
    def correct(self):
        return self.predictions == self.labels

    @property
    def accuracy(self):
        return metrics.accuracy(self.confusion)

    def summary(self):
        """The JSON-ready numbers: accuracy, loss, per-class rows, macro average, confusion matrix."""
        return {"n_images": self.n_images, "n_correct": int(self.correct.sum()),
                "accuracy": self.accuracy, "loss": self.loss, "per_class": self.per_class,
                "macro_avg": self.macro, "confusion_matrix": self.confusion.tolist()}


def evaluate(model, images, labels, batch_size=500):
    """Run ``model`` on ``images`` (N, 28, 28) in inference mode; returns an :class:`Evaluation`."""
    return Evaluation(labels, model.logits(images, batch_size=batch_size))


def load_test_set(data_arg, limit=None, num_classes=10, download=False):
    """(images, labels, folder) of the test split; ``limit`` keeps the first N."""
    directory = resolve_data_dir(data_arg)
    ensure_mnist(directory, download_if_missing=download)
    images, labels, _ = load_dataset(directory, "test", num_classes)
    if limit:
        images, labels = images[:limit], labels[:limit]
    return images, labels, directory


def read_history(weights_path):
    """The training history JSON beside a weights file, or (None, reason) if there is none."""
    history_path = sibling_paths(weights_path)[0]
    if not history_path.is_file():
        return None, f"no training history at {history_path}"
    try:
        history = json.loads(history_path.read_text(encoding="utf-8"))
        epochs = history["epochs"]
        for record in epochs:
            for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                # null validation numbers: a run with --val-fraction 0 had no validation set
                if record[key] is not None or not key.startswith("val_"):
                    float(record[key])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return None, f"{history_path}: not a readable training history ({type(error).__name__}: {error})"
    return history, str(history_path)


def describe_weights(model, path):
    """'CNN weights/cnn.npz (epoch 18, validation accuracy 99.42%)'."""
    extra = getattr(model, "extra", {}) or {}
    details = []
    if "epoch" in extra:
        details.append(f"epoch {extra['epoch']}")
    if isinstance(extra.get("val_accuracy"), (int, float)):
        details.append(f"validation accuracy {100 * extra['val_accuracy']:.2f}%")
    return f"{model.title} {path}" + (f" ({', '.join(details)})" if details else "")


def grid_of(images, evaluation, which, limit=GRID_IMAGES):
    """Images and captions for a grid of right (``which='correct'``) or wrong answers.

    Right answers: the first ``limit`` in test-set order.  Wrong answers: the most confident
    mistakes first (highest probability given to the wrong digit), the ones worth looking at.
    """
    correct = evaluation.correct
    if which == "correct":
        index = np.flatnonzero(correct)[:limit]
    else:
        index = np.flatnonzero(~correct)
        confidence = evaluation.probabilities[index, evaluation.predictions[index]]
        index = index[np.argsort(-confidence, kind="stable")][:limit]
    captions = [f"pred {evaluation.predictions[i]} / true {evaluation.labels[i]}\n"
                f"p={evaluation.probabilities[i, evaluation.predictions[i]]:.2f}" for i in index]
    return images[index], captions, index


def write_plots(directory, model, weights_path, images, evaluation):
    """The PNG figures of ``--plots``; returns (written paths, notes about skipped figures)."""
    from models.analysis import plots

    directory = Path(directory)
    name, label = model.name, model.name.upper()
    written, notes = [], []
    history, where = read_history(weights_path)
    if history is not None and history.get("epochs"):
        written.append(plots.plot_training_curves({label: history}, directory / f"{name}_training_curves.png"))
    else:
        notes.append(f"training curves skipped: {where if history is None else 'the history has no epochs'}")
    written.append(plots.plot_confusion_matrices(
        {f"{label}: confusion matrix ({evaluation.n_images:,} test images)": evaluation.confusion},
        directory / f"{name}_confusion.png"))
    for which, color, title in (
            ("correct", "green", f"{label}: correctly classified test digits (first {GRID_IMAGES})"),
            ("wrong", "red", f"{label}: misclassified test digits, most confident first "
                             f"({int((~evaluation.correct).sum()):,} in all)")):
        grid_images, captions, _ = grid_of(images, evaluation, which)
        written.append(plots.plot_digit_grid(grid_images, captions, directory / f"{name}_{which}.png",
                                             title, colors=[color] * len(captions)))
    return written, notes


def format_text(model, weights_path, data_dir, evaluation):
    e = evaluation
    lines = [describe_weights(model, weights_path),
             f"test images: {e.n_images:,} from {data_dir}",
             f"accuracy {100 * e.accuracy:.2f}% ({int(e.correct.sum()):,} of {e.n_images:,} correct), "
             f"mean loss {e.loss:.4f}",
             "",
             "per-class report",
             metrics.format_per_class(e.per_class, e.macro),
             "",
             "confusion matrix (rows: true digit, columns: predicted digit)",
             metrics.format_confusion(e.confusion)]
    mistakes = metrics.top_confusions(e.confusion, 3)
    if mistakes:
        lines += ["", "most frequent mistakes: " + ", ".join(
            f"{t} read as {p} ({n}x)" for t, p, n in mistakes)]
    return "\n".join(lines)
