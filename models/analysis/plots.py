"""Figures for evaluation and comparison: training curves, confusion matrices, digit grids,
per-class bars and robustness curves, written as PNG files.

matplotlib is optional (the ``plot`` extra: ``pip install -e '.[plot]'``) and is imported only
when a figure is drawn.  Figures are built with the object-oriented API on an Agg canvas
(``Figure`` + ``FigureCanvasAgg``), never through ``pyplot``: no window, no global backend
switch, no state shared between figures, and it works without a display.
"""
import math
from pathlib import Path

import numpy as np

from nn.errors import UserError

PLOT_EXTRA = "pip install -e '.[plot]'"
DPI = 90
# One colour per model, by its position in the comparison, the same on every figure.
MODEL_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
                "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def matplotlib_available():
    """True if matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def require_matplotlib(what="--plots"):
    """Raise a one-line :class:`UserError` naming the ``plot`` extra if matplotlib is missing."""
    if not matplotlib_available():
        raise UserError(f"{what} needs matplotlib, which is not installed; install the plot extra: "
                        f"{PLOT_EXTRA}")


def model_color(index):
    """The colour of the ``index``-th model of a figure (the same index on every figure)."""
    return MODEL_COLORS[index % len(MODEL_COLORS)]


def _figure(width, height):
    """A new figure of ``width`` x ``height`` inches on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path, dpi=DPI):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    return path


def _log_minor_label(value, _position=None):
    """Label the minor ticks 2, 3 and 5 of each decade on a log axis, leave the others blank."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
    return f"{value:g}" if round(mantissa) in (2, 3, 5) and abs(mantissa - round(mantissa)) < 1e-6 else ""


def seed_band(runs, key):
    """(epochs, lowest, highest) of ``key`` per epoch over ``runs`` (each a list of epoch
    records), epochs 1..the shortest run; None when a run lacks the key."""
    length = min((len(run) for run in runs), default=0)
    if length == 0 or any(run[i].get(key) is None for run in runs for i in range(length)):
        return None
    values = np.array([[run[i][key] for i in range(length)] for run in runs], dtype=np.float64)
    return np.arange(1, length + 1), values.min(axis=0), values.max(axis=0)


def plot_training_curves(histories, path, bands=None):
    """Loss and accuracy per epoch, train (solid) vs validation (dashed), for each model.

    Parameters
    ----------
    histories : dict
        Label -> training history (the ``*.history.json`` content: ``{"epochs": [{epoch,
        train_loss, train_accuracy, val_loss, val_accuracy, ...}]}``).
    path : path-like
        PNG file to write.
    bands : dict, optional
        Label -> a list of runs over seeds (each a list of epoch records, a study's histories):
        a shaded band from the lowest to the highest seed of the validation loss and accuracy
        per epoch, in the label's colour.
    """
    many = len(histories) > 2   # then one legend beside both panels instead of one in each
    figure = _figure(12 if many else 10, 3.8 + (0.4 if many else 0))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    low = []
    for index, (label, history) in enumerate(histories.items()):
        epochs = history.get("epochs", [])
        if not epochs:
            continue
        color = model_color(index)
        x = [e["epoch"] for e in epochs]
        for key, style, kind in (("train", "-", "train"), ("val", "--", "validation")):
            if any(e[f"{key}_loss"] is None or e[f"{key}_accuracy"] is None for e in epochs):
                continue   # a run without validation (--val-fraction 0): no validation line
            loss_axes.plot(x, [e[f"{key}_loss"] for e in epochs], style, color=color,
                           label=f"{label} {kind}", marker="." if len(x) < 40 else None)
            accuracy = [100 * e[f"{key}_accuracy"] for e in epochs]
            accuracy_axes.plot(x, accuracy, style, color=color, label=f"{label} {kind}",
                               marker="." if len(x) < 40 else None)
            low.extend(accuracy[1:] if len(accuracy) > 1 else accuracy)
    for index, label in enumerate(histories):
        runs = (bands or {}).get(label)
        for key, axes, scale in (("val_loss", loss_axes, 1), ("val_accuracy", accuracy_axes, 100)):
            band = seed_band(runs, key) if runs else None
            if band is None:
                continue
            epochs, lowest, highest = band
            axes.fill_between(epochs, scale * lowest, scale * highest, color=model_color(index), alpha=0.2,
                              label=f"{label} validation, {len(runs)} seeds (lowest to highest)")
            if scale == 100:
                low.extend(scale * lowest[1:] if len(lowest) > 1 else scale * lowest)
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    loss_axes.set(title="loss (cross-entropy, log scale)", xlabel="epoch", yscale="log")
    loss_axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    loss_axes.yaxis.set_minor_formatter(FuncFormatter(_log_minor_label))
    loss_axes.tick_params(axis="y", which="minor", labelsize=7)
    accuracy_axes.set(title="accuracy (%)", xlabel="epoch")
    if low:
        # The first epoch's running training accuracy is far below the rest; zoom on the rest.
        bottom = max(0.0, min(low) - 0.3)
        accuracy_axes.set_ylim(bottom, 100.05)
    for axes in (loss_axes, accuracy_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if axes.lines and not many:
            axes.legend(fontsize=8)
    if many and accuracy_axes.lines:
        accuracy_axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    return _save(figure, path)


def _draw_confusion(axes, confusion, title):
    from matplotlib.colors import LogNorm

    confusion = np.asarray(confusion)
    k = len(confusion)
    # Log colours, so that a handful of mistakes is visible next to ~1,000 correct answers.
    shown = np.where(confusion > 0, confusion, np.nan)
    vmax = max(2, int(confusion.max()) if confusion.size else 2)
    axes.imshow(shown, cmap="Blues", norm=LogNorm(vmin=1, vmax=vmax))
    for t in range(k):
        for p in range(k):
            count = int(confusion[t, p])
            if count:
                dark = count > math.sqrt(vmax)
                axes.text(p, t, str(count), ha="center", va="center", fontsize=7,
                          color="white" if dark else "black")
    axes.set_xticks(range(k))
    axes.set_yticks(range(k))
    axes.set(xlabel="predicted digit", ylabel="true digit", title=title)


def plot_confusion_matrices(matrices, path, columns=3):
    """Heatmaps with counts, ``columns`` to a row.  ``matrices``: title -> (K, K) confusion matrix."""
    columns = max(1, min(columns, len(matrices)))
    rows = math.ceil(len(matrices) / columns)
    figure = _figure(4.8 * columns, 4.6 * rows)
    axes_list = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axes, (title, confusion) in zip(axes_list, matrices.items()):
        _draw_confusion(axes, confusion, title)
    for axes in axes_list[len(matrices):]:
        axes.set_axis_off()
    figure.tight_layout()
    return _save(figure, path)


def plot_digit_grid(images, captions, path, title, colors=None, columns=10, max_images=40):
    """A grid of digits, each under a short caption (e.g. ``"pred 3 / true 5"``).

    Parameters
    ----------
    images : array_like, shape (N, 28, 28)
        Values in [0, 1]; only the first ``max_images`` are drawn.
    captions : list of str, length N
    colors : list of str, optional
        Caption colour per image (e.g. green for right, red for wrong).
    """
    images = np.asarray(images)[:max_images]
    count = len(images)
    rows = max(1, math.ceil(count / columns))
    height = rows * 1.3 + 0.4
    figure = _figure(columns * 1.0, height)
    figure.suptitle(title, fontsize=10)
    for i in range(rows * columns):
        axes = figure.add_subplot(rows, columns, i + 1)
        axes.set_axis_off()
        if i < count:
            axes.imshow(images[i], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes.set_title(captions[i], fontsize=7, pad=2,
                           color=colors[i] if colors is not None else "black")
    if count == 0:
        figure.text(0.5, 0.45, "(none)", ha="center", va="center", fontsize=10)
    figure.tight_layout(pad=0.3, h_pad=0.5, w_pad=0.2, rect=(0, 0, 1, 1 - 0.35 / height))
    return _save(figure, path)


def plot_per_class(reports, path):
    """Precision, recall and F1 per digit, one bar per model.  ``reports``: label -> per-class list."""
    figure = _figure(11, 3.4)
    axes_list = figure.subplots(1, 3, sharey=True)
    n = len(reports)
    width = 0.8 / max(n, 1)
    low = 100.0
    for axes, key in zip(axes_list, ("precision", "recall", "f1")):
        for index, (label, rows) in enumerate(reports.items()):
            values = [100 * row[key] for row in rows]
            low = min(low, min(values) if values else low)
            x = np.arange(len(rows)) + (index - (n - 1) / 2) * width
            axes.bar(x, values, width, color=model_color(index), label=label)
        axes.set_xticks(range(10))
        axes.set(title=f"{'F1' if key == 'f1' else key} (%)", xlabel="digit")
        axes.grid(axis="y", alpha=0.3)
    axes_list[0].set_ylim(max(0.0, low - 1.0), 100.0)
    handles, labels = axes_list[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="upper right", ncol=len(labels), fontsize=8)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(figure, path)


def plot_sweep(path, title, xlabel, levels, series, examples=(), level_format=str):
    """Accuracy against the strength of a perturbation, with example digits at each level.

    Parameters
    ----------
    levels : sequence of float, length L
        The perturbation strengths (x axis).
    series : list of dict
        Each ``{"label", "accuracy": L values in [0, 1], "color", "linestyle"}``, optionally
        ``"band": (L lowest, L highest)`` in [0, 1], shaded around the curve (an interval).
    examples : list of (str, array (L, 28, 28))
        Rows of example digits under the curve, one per level, each row with a label.
    level_format : callable
        Turns a level into the short text printed under its example.
    """
    levels = list(levels)
    n_rows = len(examples)
    figure = _figure(max(8.0, 0.8 * len(levels) + 2.6), 3.6 + 0.95 * n_rows)
    grid = figure.add_gridspec(1 + n_rows, len(levels), height_ratios=[4.5] + [1] * n_rows)
    axes = figure.add_subplot(grid[0, :])
    for item in series:
        axes.plot(levels, [100 * a for a in item["accuracy"]], item.get("linestyle", "-"),
                  marker="o", markersize=4, color=item.get("color"), label=item["label"])
        if item.get("band") is not None:
            lowest, highest = item["band"]
            axes.fill_between(levels, [100 * a for a in lowest], [100 * a for a in highest],
                              color=item.get("color"), alpha=0.18, linewidth=0)
    # Zoom on the data (small drops matter when everything is near 100 %); show chance if in view.
    lowest = min((100 * min(list(item["accuracy"]) + list((item.get("band") or [[]])[0]))
                  for item in series if len(item["accuracy"])), default=0.0)
    bottom = max(0.0, 5 * math.floor((lowest - 2) / 5))
    if bottom <= 10:
        axes.axhline(10, color="gray", linewidth=0.8, linestyle=":", label="chance (10 %)")
    axes.set(title=title, xlabel=xlabel, ylabel="test accuracy (%)", ylim=(bottom, 100.5))
    axes.set_xticks(levels)
    axes.set_xticklabels([level_format(level) for level in levels], fontsize=8)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    for row, (label, images) in enumerate(examples, start=1):
        for column, image in enumerate(images):
            cell = figure.add_subplot(grid[row, column])
            cell.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            cell.set_xticks([])
            cell.set_yticks([])
            if column == 0:
                cell.set_ylabel(label, fontsize=7)
            if row == n_rows:
                cell.set_xlabel(level_format(levels[column]), fontsize=7)
    figure.tight_layout(pad=0.4)
    return _save(figure, path)


def plot_gradient_norms(path, title, steps, series):
    """Gradient norms against the timestep, on a log scale.

    Parameters
    ----------
    steps : sequence of int, length T
        The timesteps (x axis), e.g. 1..28.
    series : list of dict
        Each ``{"label", "values": T positive numbers, "color", "linestyle"}``.
    """
    figure = _figure(9, 4.4)
    axes = figure.add_subplot(1, 1, 1)
    for item in series:
        axes.plot(list(steps), item["values"], item.get("linestyle", "-"), marker=".",
                  color=item.get("color"), label=item["label"])
    axes.set(title=title, xlabel="timestep t (image row read at step t)",
             ylabel="mean ||dL/dh_t|| (log scale)", yscale="log")
    axes.set_xticks([t for t in steps if t == 1 or t % 3 == 1 or t == steps[-1]])
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout(pad=0.4)
    return _save(figure, path)
