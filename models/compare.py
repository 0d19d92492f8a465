"""CNN versus LSTM: the comparison report.

    python -m models.compare                          # weights/cnn.npz vs weights/lstm.npz
    python -m models.compare --out docs/compare       # where report.md and the PNGs go

Evaluates both models on the MNIST test images and writes ``report.md`` (plus ``report.json``
with every number, and PNG figures when matplotlib is installed) into ``--out``:

- per model: test accuracy, parameters, FLOPs per image, training time per epoch (from the
  history JSON beside the weights), single-image prediction latency, training curves;
- per class: precision, recall and F1 side by side, both confusion matrices, the digits one model
  gets right and the other wrong (both ways) and the digits both miss;
- robustness: accuracy of both models as the digits are shifted, rotated, scaled, blurred,
  noised or have rows blanked, one figure per perturbation, on a fixed subset of test images.

Every sentence in the report is generated from the numbers it sits next to.  Seeds are fixed,
so two runs on the same weights and data give the same report except for the timings.
"""
import nn

if __name__ == "__main__":
    nn.configure_threads()  # before NumPy loads BLAS

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from models import metrics
from models.base import load_model
from models.evaluate import evaluate, load_test_set, read_history
from kit.cli import CommandLineParser, positive_int
from kit.augment import affine_maps, warp
from nn.errors import UserError
from kit.cli import exit_on_user_error
from nn.flops import network_flops
from nn.serialize import atomic_write_text

SEED = 20240611          # the sweep subset and the noise are drawn from generators seeded here
SWEEP_IMAGES = 2000      # test images in the robustness sweeps (a fixed random subset)
LATENCY_CALLS = 200      # single-image predictions timed per model (the median is reported)
LATENCY_WARMUP = 20
GRID_IMAGES = 40
MODELS = ("cnn", "lstm")


# --- perturbations: (N, 28, 28) float32 in [0, 1] -> same shape; identity returns the input ---

def shift(images, rows=0.0, cols=0.0):
    """Move the digits ``rows`` px down and ``cols`` px right (negative: up / left)."""
    if rows == 0 and cols == 0:
        return images
    n = len(images)
    return warp(images, affine_maps(np.zeros(n), np.ones(n), np.full(n, float(rows)),
                                    np.full(n, float(cols))).astype(np.float32))


def rotate(images, degrees):
    """Turn the digits ``degrees`` counter-clockwise about the image centre (bilinear)."""
    if degrees == 0:
        return images
    n = len(images)
    return warp(images, affine_maps(np.full(n, float(degrees)), np.ones(n), np.zeros(n),
                                    np.zeros(n)).astype(np.float32))


def rescale(images, factor):
    """Scale the digits by ``factor`` about the image centre (bilinear; > 1 may crop)."""
    if factor == 1:
        return images
    n = len(images)
    return warp(images, affine_maps(np.zeros(n), np.full(n, float(factor)), np.zeros(n),
                                    np.zeros(n)).astype(np.float32))


def gaussian_kernel(sigma):
    """Normalised 1-D Gaussian weights over [-ceil(3 sigma), ceil(3 sigma)], shape (2r + 1,)."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-t ** 2 / (2 * sigma ** 2))
    return weights / weights.sum()


def gaussian_blur(images, sigma):
    """Separable Gaussian blur with standard deviation ``sigma`` px; outside the image is black.

    A 2-D Gaussian factorises, G(r, c) = g(r) g(c), so blurring is a 1-D convolution along the
    columns followed by one along the rows: 2(2R + 1) instead of (2R + 1)^2 products per pixel.
        out[n, r, c] = sum_i sum_j g[i] g[j] x[n, r + i - R, c + j - R]   (x = 0 off the image)
    """
    if sigma <= 0:
        return images
    images = np.asarray(images)
    weights = gaussian_kernel(sigma)
    radius = len(weights) // 2
    n, height, width = images.shape
    x = np.pad(images.astype(np.float64), ((0, 0), (radius, radius), (radius, radius)))
    across = sum(w * x[:, :, j:j + width] for j, w in enumerate(weights))      # (N, H + 2R, W)
    out = sum(w * across[:, i:i + height, :] for i, w in enumerate(weights))   # (N, H, W)
    return out.astype(images.dtype)


def add_noise(images, std, rng):
    """Add Gaussian noise of standard deviation ``std`` to every pixel, clipped to [0, 1]."""
    if std <= 0:
        return images
    noisy = images + rng.normal(0.0, std, images.shape).astype(images.dtype)
    return np.clip(noisy, 0.0, 1.0)


def blank_rows(images, count, side):
    """Set the ``count`` top (``side='top'``) or bottom rows of every image to black."""
    if count <= 0:
        return images
    out = images.copy()
    if side == "top":
        out[:, :count, :] = 0
    else:
        out[:, out.shape[1] - count:, :] = 0
    return out


# --- the sweeps ---

def _number(value):
    return f"{value:g}"


@dataclass
class Sweep:
    """One robustness experiment: a perturbation applied at several strengths.

    ``variants`` maps a variant name ("" if there is only one) to ``apply(images, level, rng)``.
    ``phrase(level)`` says the level in words for the generated sentences ("a 4 px shift right").
    """
    key: str
    title: str
    xlabel: str
    levels: list
    identity: float
    variants: dict
    phrase: Callable
    what: str
    styles: dict = field(default_factory=dict)


def _signed(unit_positive, unit_negative, noun):
    def phrase(level):
        if level == 0:
            return f"no {noun}"
        return f"a {abs(level):g} px {noun} {unit_positive if level > 0 else unit_negative}"
    return phrase


SWEEPS = [
    Sweep("shift_x", "Horizontal shift", "shift (px; negative = left, positive = right)",
          [-4, -3, -2, -1, 0, 1, 2, 3, 4], 0,
          {"": lambda x, level, rng: shift(x, cols=level)},
          _signed("right", "left", "shift"),
          "every digit moved sideways by a whole number of pixels (the image keeps its size; "
          "what leaves the frame is lost)"),
    Sweep("shift_y", "Vertical shift", "shift (px; negative = up, positive = down)",
          [-4, -3, -2, -1, 0, 1, 2, 3, 4], 0,
          {"": lambda x, level, rng: shift(x, rows=level)},
          _signed("down", "up", "shift"),
          "every digit moved up or down by a whole number of pixels - for the LSTM this changes "
          "at which timestep each stroke arrives"),
    Sweep("rotation", "Rotation", "rotation (degrees, counter-clockwise)",
          [0, 5, 10, 15, 20, 25, 30], 0,
          {"": lambda x, level, rng: rotate(x, level)},
          lambda level: f"a {level:g} degree rotation",
          "every digit turned counter-clockwise about the image centre (bilinear resampling)"),
    Sweep("scale", "Scale", "scale factor (1 = original size)",
          [0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3], 1.0,
          {"": lambda x, level, rng: rescale(x, level)},
          lambda level: f"scale {level:g}",
          "every digit shrunk or enlarged about the image centre (bilinear resampling)"),
    Sweep("blur", "Gaussian blur", "blur standard deviation sigma (px)",
          [0, 0.5, 1.0, 1.5, 2.0], 0,
          {"": lambda x, level, rng: gaussian_blur(x, level)},
          lambda level: f"a blur of sigma {level:g} px",
          "every digit blurred with a separable Gaussian kernel (zero padding)"),
    Sweep("noise", "Gaussian noise", "noise standard deviation (pixel values in [0, 1])",
          [0, 0.1, 0.2, 0.3, 0.4, 0.5], 0,
          {"": lambda x, level, rng: add_noise(x, level, rng)},
          lambda level: f"noise of std {level:g}",
          "independent Gaussian noise added to every pixel, then clipped to [0, 1] "
          "(a fixed seed per level)"),
    Sweep("blank_rows", "Blanked rows", "rows set to black",
          [0, 2, 4, 6, 8, 10, 12], 0,
          {"top": lambda x, level, rng: blank_rows(x, level, "top"),
           "bottom": lambda x, level, rng: blank_rows(x, level, "bottom")},
          lambda level: f"{level:g} blanked rows",
          "the top or the bottom rows of every image set to black - for the LSTM the first or the "
          "last timesteps of its input become empty",
          styles={"top": "-", "bottom": "--"}),
]


def sweep_subset(n_images, size, seed=SEED):
    """Sorted indices of a fixed random subset of ``size`` of ``n_images`` test images."""
    if size >= n_images:
        return np.arange(n_images)
    return np.sort(np.random.default_rng(seed).choice(n_images, size=size, replace=False))


def example_index(labels, digit=5):
    """The image shown under the robustness curves: the first ``digit`` (a 5 has strokes at the
    top, middle and bottom, so every perturbation visibly changes it), else the first image."""
    found = np.flatnonzero(np.asarray(labels) == digit)
    return int(found[0]) if len(found) else 0


def run_sweeps(models, images, labels, sweeps=SWEEPS, seed=SEED, log=None):
    """Accuracy of every model at every level of every sweep.

    Returns ``{sweep key: {"levels": [...], "variants": {variant: {"accuracy": {model: [...]},
    "example": (L, 28, 28) array}}}}``; the example row is one perturbed image per level
    (see :func:`example_index`).
    """
    clean = {name: float((model.predict(images) == labels).mean()) for name, model in models.items()}
    example = example_index(labels)
    results = {}
    for sweep_index, sweep in enumerate(sweeps):
        started = time.perf_counter()
        variants = {}
        for variant_index, (variant, apply) in enumerate(sweep.variants.items()):
            accuracy = {name: [] for name in models}
            examples = []
            for level_index, level in enumerate(sweep.levels):
                rng = np.random.default_rng([seed, sweep_index, variant_index, level_index])
                perturbed = apply(images, level, rng)
                examples.append(perturbed[example])
                for name, model in models.items():
                    if perturbed is images:      # the identity level: reuse the clean answers
                        accuracy[name].append(clean[name])
                    else:
                        accuracy[name].append(float((model.predict(perturbed) == labels).mean()))
            variants[variant] = {"accuracy": accuracy, "example": np.stack(examples)}
        results[sweep.key] = {"levels": list(sweep.levels), "variants": variants}
        if log:
            log(f"  robustness: {sweep.title.lower()} done in {time.perf_counter() - started:.1f} s")
    return results


# --- measurements ---

def single_image_latency(model, image, calls=LATENCY_CALLS, warmup=LATENCY_WARMUP):
    """Median seconds of ``model.predict_proba`` on one image, after ``warmup`` untimed calls."""
    batch = np.ascontiguousarray(image[None], dtype=np.float32)
    for _ in range(warmup):
        model.predict_proba(batch)
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter()
        model.predict_proba(batch)
        times[i] = time.perf_counter() - started
    return float(np.median(times))


def training_summary(history):
    """Mean seconds and images/s per epoch, epochs, best epoch and validation accuracy."""
    if not history or not history.get("epochs"):
        return None
    epochs = history["epochs"]
    seconds = [float(e["seconds"]) for e in epochs if "seconds" in e]
    speed = [float(e["images_per_second"]) for e in epochs if "images_per_second" in e]
    best = max(epochs, key=lambda e: e["val_accuracy"])
    return {"epochs": len(epochs),
            "seconds_per_epoch": float(np.mean(seconds)) if seconds else None,
            "images_per_second": float(np.mean(speed)) if speed else None,
            "best_epoch": int(history.get("best_epoch") or best["epoch"]),
            "best_val_accuracy": float(history.get("best_val_accuracy") or best["val_accuracy"]),
            "final_train_accuracy": float(epochs[-1]["train_accuracy"]),
            "final_val_accuracy": float(epochs[-1]["val_accuracy"]),
            "final_train_loss": float(epochs[-1]["train_loss"]),
            "final_val_loss": float(epochs[-1]["val_loss"])}


def disagreements(evaluations):
    """Indices where exactly one model is right (each way), and where both are wrong."""
    cnn, lstm = evaluations["cnn"], evaluations["lstm"]
    return {"cnn_right_lstm_wrong": np.flatnonzero(cnn.correct & ~lstm.correct),
            "lstm_right_cnn_wrong": np.flatnonzero(lstm.correct & ~cnn.correct),
            "both_wrong": np.flatnonzero(~cnn.correct & ~lstm.correct)}


# --- words generated from the numbers ---

def pct(value, digits=1):
    """0.9713 -> '97.1 %'."""
    return f"{100 * value:.{digits}f} %"


def _fmt_seconds(seconds):
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:,.1f} s"


def _ratio_words(a, b):
    """How many times a is b: '14.5x as many' style number."""
    return f"{a / b:.1f}x" if b else "n/a"


def _at_level(names, base, values):
    """'the CNN keeps 99.2 % while the LSTM drops to 61.3 % (-37.2 points)': a model "keeps" its
    accuracy if it lost less than 1 point, the same bar as the 'at most 1 point' sentences."""
    drops = {name: base[name] - values[name] for name in names}
    if all(drop < 0.01 for drop in drops.values()):
        return "both models stay within 1 point: " + ", ".join(
            f"the {name.upper()} scores {pct(values[name])}" for name in names)
    parts = [f"the {name.upper()} keeps {pct(values[name])}" if drops[name] < 0.01 else
             f"the {name.upper()} drops to {pct(values[name])} (-{100 * drops[name]:.1f} points)"
             for name in names]
    kept = sum(drops[name] < 0.01 for name in names)
    return (" while " if kept == 1 else " and ").join(parts)


def _arms(levels, identity):
    """Levels from the identity outwards, one list per direction (e.g. left and right)."""
    up = sorted(level for level in levels if level > identity)
    down = sorted((level for level in levels if level < identity), reverse=True)
    return [arm for arm in (up, down) if arm]


def _reach_words(sweep, arm, level, subject):
    """'the CNN loses at most 1 point up to a 2 px shift right' and its variants."""
    if level is None:
        return f"{subject} more than 1 point already at {sweep.phrase(arm[0])}"
    if level == arm[-1]:
        return f"{subject} at most 1 point all the way to {sweep.phrase(level)}"
    return f"{subject} at most 1 point up to {sweep.phrase(level)}"


def describe_sweep(sweep, result, names=MODELS):
    """What a sweep's numbers show: a list of paragraphs (each a few generated sentences)."""
    levels = result["levels"]
    at = {level: i for i, level in enumerate(levels)}
    base_index = at[sweep.identity]
    sentences = []
    for variant, data in result["variants"].items():
        acc = data["accuracy"]
        where = f" (rows blanked at the {variant})" if variant else ""
        base = {name: acc[name][base_index] for name in names}
        if not variant or variant == next(iter(result["variants"])):
            sentences.append(["Unperturbed, the subset is classified with " + " and ".join(
                f"{pct(base[name])} ({name.upper()})" for name in names) + " accuracy."])
        for arm in _arms(levels, sweep.identity):
            sentences.append([])
            extreme = arm[-1]
            values = {name: acc[name][at[extreme]] for name in names}
            at_where = f" at the {variant}" if variant else ""
            sentences[-1].append(f"At {sweep.phrase(extreme)}{at_where} {_at_level(names, base, values)}.")
            # How far each model goes before losing more than one point.
            reach = {}
            for name in names:
                reach[name] = None
                for level in arm:
                    if acc[name][at[level]] < base[name] - 0.01:
                        break
                    reach[name] = level
            if len(set(reach.values())) == 1:
                sentence = _reach_words(sweep, arm, reach[names[0]], "both models lose") + "."
            else:
                sentence = "; ".join(_reach_words(sweep, arm, reach[name], f"the {name.upper()} loses")
                                     for name in names) + "."
            if variant:
                sentence = f"with the {variant} rows blanked, {sentence}"
            sentences[-1].append(sentence[0].upper() + sentence[1:])
        # Which model loses more, level by level.
        others = [i for i in range(len(levels)) if i != base_index]
        if len(names) == 2 and others:
            a, b = names
            drop = {name: [base[name] - acc[name][i] for i in others] for name in names}
            a_more = sum(da > db for da, db in zip(drop[a], drop[b]))
            b_more = sum(db > da for da, db in zip(drop[a], drop[b]))
            mean = {name: float(np.mean([acc[name][i] for i in others])) for name in names}
            if a_more == b_more:
                who = f"the {a.upper()} and the {b.upper()} each lose more accuracy at {a_more} of them"
            else:
                worse, better = (a, b) if a_more > b_more else (b, a)
                who = (f"the {worse.upper()} loses more accuracy than the {better.upper()} at "
                       f"{max(a_more, b_more)} of them")
            sentences.append([
                f"Over the {len(others)} perturbed levels{where} {who}; averaged over those levels "
                f"the {a.upper()} scores {pct(mean[a])} and the {b.upper()} {pct(mean[b])}."])
    return [" ".join(paragraph) for paragraph in sentences]


def describe_summary(evaluations, facts, training):
    e = evaluations
    c, l = e["cnn"], e["lstm"]
    errors = {name: e[name].n_images - int(e[name].correct.sum()) for name in MODELS}
    sentence = (f"On the {c.n_images:,} test images the CNN is right {pct(c.accuracy, 2)} of the time "
                f"({errors['cnn']:,} errors) and the LSTM {pct(l.accuracy, 2)} ({errors['lstm']:,} errors)")
    worse, fewer = sorted(MODELS, key=lambda name: -errors[name])
    if errors[worse] > errors[fewer] > 0:
        sentence += (f": the {worse.upper()} makes {_ratio_words(errors[worse], errors[fewer])} as many "
                     f"errors as the {fewer.upper()}")
    text = [sentence + "."]
    p, f = facts["parameters"], facts["flops"]
    text.append(f"The CNN has {_ratio_words(p['cnn'], p['lstm'])} as many parameters as the LSTM "
                f"({p['cnn']:,} vs {p['lstm']:,}) and needs {_ratio_words(f['cnn'], f['lstm'])} its "
                f"FLOPs per image ({f['cnn'] / 1e6:.2f} vs {f['lstm'] / 1e6:.2f} MFLOPs).")
    lat = facts["latency"]
    text.append(f"One image takes {_fmt_seconds(lat['cnn'])} to classify with the CNN and "
                f"{_fmt_seconds(lat['lstm'])} with the LSTM (median of {facts['latency_calls']} "
                f"calls on this machine).")
    train = training
    if train["cnn"] and train["lstm"] and train["cnn"]["seconds_per_epoch"] and train["lstm"]["seconds_per_epoch"]:
        text.append(f"An epoch of training took {_fmt_seconds(train['cnn']['seconds_per_epoch'])} for the "
                    f"CNN ({train['cnn']['images_per_second']:,.0f} images/s) and "
                    f"{_fmt_seconds(train['lstm']['seconds_per_epoch'])} for the LSTM "
                    f"({train['lstm']['images_per_second']:,.0f} images/s), averaged over "
                    f"{train['cnn']['epochs']} and {train['lstm']['epochs']} epochs.")
    return text


def describe_training(training):
    text = []
    for name in MODELS:
        t = training[name]
        if not t:
            text.append(f"No training history was found for the {name.upper()}.")
            continue
        gap = t["final_train_accuracy"] - t["final_val_accuracy"]
        text.append(f"The {name.upper()} reached its best validation accuracy, {pct(t['best_val_accuracy'], 2)}, "
                    f"at epoch {t['best_epoch']} of {t['epochs']}; in its last epoch training accuracy "
                    f"was {pct(t['final_train_accuracy'], 2)} and validation {pct(t['final_val_accuracy'], 2)} "
                    f"({'a gap of ' + format(100 * abs(gap), '.2f') + ' points' if abs(gap) >= 0.0005 else 'no gap'}"
                    f"{', validation above training' if gap < -0.0005 else ''}).")
    return text


def describe_per_class(evaluations):
    rows = {name: evaluations[name].per_class for name in MODELS}
    text = []
    for name in MODELS:
        weakest = min(rows[name], key=lambda r: (r["f1"], r["digit"]))
        text.append(f"The {name.upper()}'s weakest digit is {weakest['digit']} "
                    f"(F1 {pct(weakest['f1'], 2)}).")
    gaps = [(rows["cnn"][k]["f1"] - rows["lstm"][k]["f1"], k) for k in range(len(rows["cnn"]))]
    cnn_higher = sum(g > 0 for g, _ in gaps)
    lstm_higher = sum(g < 0 for g, _ in gaps)
    gap, digit = max(gaps, key=lambda g: (abs(g[0]), -g[1]))
    text.append(f"The CNN's F1 is higher for {cnn_higher} of the 10 digits and the LSTM's for "
                f"{lstm_higher}; the largest difference is for digit {digit} "
                f"({100 * abs(gap):.2f} points in favour of the {'CNN' if gap > 0 else 'LSTM'}).")
    return text


def describe_confusions(evaluations):
    text = []
    for name in MODELS:
        mistakes = metrics.top_confusions(evaluations[name].confusion, 3)
        if mistakes:
            text.append(f"The {name.upper()}'s most frequent mistakes: " + ", ".join(
                f"{t} read as {p} ({n}x)" for t, p, n in mistakes) + ".")
        else:
            text.append(f"The {name.upper()} makes no mistakes on these images.")
    return text


def describe_disagreements(evaluations, groups):
    n = evaluations["cnn"].n_images
    both = groups["both_wrong"]
    same = int((evaluations["cnn"].predictions[both] == evaluations["lstm"].predictions[both]).sum())
    return [f"Of the {n:,} images, the CNN gets {len(groups['cnn_right_lstm_wrong']):,} right that the "
            f"LSTM gets wrong, the LSTM gets {len(groups['lstm_right_cnn_wrong']):,} right that the CNN "
            f"gets wrong, and both miss {len(both):,} ({same:,} of those with the same wrong answer)."]


# --- figures ---

def _caption_pair(evaluations, i):
    c, l = evaluations["cnn"], evaluations["lstm"]
    return f"CNN {c.predictions[i]}  LSTM {l.predictions[i]}\ntrue {c.labels[i]}"


def _order_by_confidence(evaluation_list, index):
    """Most confident wrong answers first: the largest probability among the wrong models."""
    if len(index) == 0:
        return index
    confidence = np.zeros(len(index))
    for e in evaluation_list:
        wrong = ~e.correct[index]
        confidence = np.maximum(confidence, np.where(wrong, e.probabilities[index, e.predictions[index]], 0))
    return index[np.argsort(-confidence, kind="stable")]


def write_figures(out, images, evaluations, groups, histories, sweep_results, log):
    """All PNG figures; returns {figure id: file name} (relative to ``out``)."""
    from models import plots

    figures = {}
    labels = {name: name.upper() for name in MODELS}
    present = {labels[name]: histories[name] for name in MODELS if histories[name] and histories[name].get("epochs")}
    if present:
        plots.plot_training_curves(present, out / "training_curves.png")
        figures["training_curves"] = "training_curves.png"
    plots.plot_per_class({labels[name]: evaluations[name].per_class for name in MODELS}, out / "per_class.png")
    figures["per_class"] = "per_class.png"
    plots.plot_confusion_matrices({f"{labels[name]} ({evaluations[name].n_images:,} test images)":
                                   evaluations[name].confusion for name in MODELS}, out / "confusion.png")
    figures["confusion"] = "confusion.png"
    titles = {"cnn_right_lstm_wrong": ("CNN right, LSTM wrong", [evaluations["lstm"]]),
              "lstm_right_cnn_wrong": ("LSTM right, CNN wrong", [evaluations["cnn"]]),
              "both_wrong": ("both wrong", [evaluations["cnn"], evaluations["lstm"]])}
    for key, (title, wrong_models) in titles.items():
        index = _order_by_confidence(wrong_models, groups[key])
        if len(index) == 0:
            continue  # the report says "None." instead of showing an empty grid
        shown = index[:GRID_IMAGES]
        plots.plot_digit_grid(images[shown], [_caption_pair(evaluations, i) for i in shown], out / f"{key}.png",
                              f"{title}: {len(shown)} of {len(index):,}, most confident mistakes first",
                              colors=["black"] * len(shown))
        figures[key] = f"{key}.png"
    for sweep in SWEEPS:
        result = sweep_results[sweep.key]
        series, examples = [], []
        for variant, data in result["variants"].items():
            for index, name in enumerate(MODELS):
                series.append({"label": labels[name] + (f", {variant} rows" if variant else ""),
                               "accuracy": data["accuracy"][name], "color": plots.model_color(name, index),
                               "linestyle": sweep.styles.get(variant, "-")})
            examples.append((f"{variant} rows" if variant else "example", data["example"]))
        file = f"robustness_{sweep.key}.png"
        plots.plot_sweep(out / file, f"{sweep.title}: accuracy on the robustness subset", sweep.xlabel,
                         result["levels"], series, examples, level_format=_number)
        figures[sweep.key] = file
    log(f"  {len(figures)} figures written")
    return figures


# --- the report ---

def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _bullets(sentences):
    return [f"- {sentence}" for sentence in sentences] + [""]


def _figure_link(figures, key, alt):
    return f"![{alt}]({figures[key]})\n" if key in figures else ""


def build_report(facts, evaluations, groups, training, sweep_results, figures, figure_note):
    e = evaluations
    lines = ["# CNN versus LSTM on MNIST", "",
             f"Generated by `{facts['command']}` from `{facts['weights']['cnn']}` and "
             f"`{facts['weights']['lstm']}` on {e['cnn'].n_images:,} test images "
             f"(`{facts['data']}`). Every sentence below is generated from the numbers next to it; "
             f"seeds are fixed, so a rerun gives the same report except for the timings.", ""]
    if figure_note:
        lines += [f"> {figure_note}", ""]
    lines += ["## At a glance", ""]
    train = training
    rows = []
    for name in MODELS:
        t = train[name]
        rows.append([name.upper(), pct(e[name].accuracy, 2),
                     f"{e[name].n_images - int(e[name].correct.sum()):,}",
                     f"{facts['parameters'][name]:,}", f"{facts['flops'][name] / 1e6:.2f}",
                     _fmt_seconds(t["seconds_per_epoch"]) if t and t["seconds_per_epoch"] else "n/a",
                     f"{t['images_per_second']:,.0f}" if t and t["images_per_second"] else "n/a",
                     _fmt_seconds(facts["latency"][name])])
    lines += [_table(["model", "test accuracy", "errors", "parameters", "MFLOPs / image",
                      "training time / epoch", "training images / s", "1-image latency"], rows), ""]
    lines += _bullets(describe_summary(e, facts, training))
    lines += [f"Machine: {facts['machine']}. Latency is the median of {facts['latency_calls']} calls of "
              f"`predict_proba` on one image after {LATENCY_WARMUP} warm-up calls; training times are "
              f"those recorded in the history files written by the training scripts (with whatever "
              f"else the machine was doing at the time).", ""]

    lines += ["## Training curves", "", _figure_link(figures, "training_curves",
                                                     "training curves of both models")]
    lines += _bullets(describe_training(training))

    lines += ["## Per class", "", "Precision: of the images a model called *k*, the share that are "
              "*k*. Recall: of the images of *k*, the share it called *k*. F1: their harmonic mean.", ""]
    header = ["digit"] + [f"{m.upper()} {k}" for m in MODELS for k in ("precision", "recall", "F1")] + ["support"]
    rows = []
    for k in range(10):
        rows.append([k] + [pct(e[m].per_class[k][key], 2) for m in MODELS for key in ("precision", "recall", "f1")]
                    + [f"{e['cnn'].per_class[k]['support']:,}"])
    rows.append(["macro"] + [pct(e[m].macro[key], 2) for m in MODELS for key in ("precision", "recall", "f1")]
                + [f"{e['cnn'].macro['support']:,}"])
    lines += [_table(header, rows), "", _figure_link(figures, "per_class", "per-class precision, recall and F1")]
    lines += _bullets(describe_per_class(e))

    lines += ["## Confusion matrices", "", "Rows: true digit; columns: predicted digit.", "",
              _figure_link(figures, "confusion", "confusion matrices")]
    for name in MODELS:
        lines += [f"{name.upper()}:", "", "```", metrics.format_confusion(e[name].confusion), "```", ""]
    lines += _bullets(describe_confusions(e))

    lines += ["## Where they disagree", ""]
    lines += _bullets(describe_disagreements(e, groups))
    for key, title in (("cnn_right_lstm_wrong", "CNN right, LSTM wrong"),
                       ("lstm_right_cnn_wrong", "LSTM right, CNN wrong"),
                       ("both_wrong", "Both wrong")):
        count = len(groups[key])
        lines += [f"### {title} ({count:,})", "",
                  (f"Showing the {min(count, GRID_IMAGES)} most confident mistakes; each digit is "
                   f"captioned with both models' answers and the true label." if count else "None."), ""]
        if count:
            lines += [_figure_link(figures, key, title)]

    lines += ["## Robustness", "",
              f"Accuracy as the test digits are perturbed, on a fixed random subset of "
              f"{facts['sweep_images']:,} of the {e['cnn'].n_images:,} test images (seed {SEED}), "
              f"so the unperturbed accuracies below are those of the subset. The row of digits under "
              f"each curve shows the same test image at each level.", ""]
    for sweep in SWEEPS:
        result = sweep_results[sweep.key]
        lines += [f"### {sweep.title}", "", f"What changes: {sweep.what}.", "",
                  _figure_link(figures, sweep.key, f"accuracy under {sweep.title.lower()}")]
        header = [sweep.xlabel]
        for variant in result["variants"]:
            header += [f"{m.upper()}{' ' + variant if variant else ''}" for m in MODELS]
        rows = []
        for i, level in enumerate(result["levels"]):
            row = [_number(level)]
            for data in result["variants"].values():
                row += [pct(data["accuracy"][m][i]) for m in MODELS]
            rows.append(row)
        lines += [_table(header, rows), ""]
        lines += _bullets(describe_sweep(sweep, result))

    lines += ["## Reproduce", "", "```", facts["command"], "```", "",
              "The MNIST files are read from `--data DIR`, else `$MNIST_DIR`, else `./data/mnist`; "
              "`python -m models.compare --help` lists the options.", "",
              f"The whole run took {facts['elapsed_seconds']:.0f} s on this machine.", ""]
    return "\n".join(lines)


def console_summary(evaluations, facts, training):
    header = f"{'model':<6}{'accuracy':>10}{'errors':>8}{'parameters':>12}{'MFLOPs':>8}{'s/epoch':>9}{'latency':>10}"
    lines = [header]
    for name in MODELS:
        e, t = evaluations[name], training[name]
        per_epoch = f"{t['seconds_per_epoch']:.0f}" if t and t["seconds_per_epoch"] else "n/a"
        lines.append(f"{name.upper():<6}{100 * e.accuracy:>9.2f}%{e.n_images - int(e.correct.sum()):>8,}"
                     f"{facts['parameters'][name]:>12,}{facts['flops'][name] / 1e6:>8.2f}{per_epoch:>9}"
                     f"{facts['latency'][name] * 1000:>8.2f}ms")
    return "\n".join(lines)


def _json_ready(sweep_results):
    return {key: {"levels": r["levels"],
                  "variants": {v: {"accuracy": d["accuracy"]} for v, d in r["variants"].items()}}
            for key, r in sweep_results.items()}


def make_parser():
    parser = CommandLineParser(
        prog="python -m models.compare",
        description="Compare the CNN and the LSTM on the MNIST test images and write a Markdown "
                    "report with figures.")
    add = parser.add_argument
    add("--data", metavar="DIR", help="folder with the MNIST IDX files (default: $MNIST_DIR, else ./data/mnist)")
    add("--out", metavar="DIR", default="reports/compare", help="folder for report.md, report.json and the PNGs "
                                                                "(default: reports/compare)")
    add("--cnn", metavar="PATH", default="weights/cnn.npz", help="CNN weights (default: weights/cnn.npz)")
    add("--lstm", metavar="PATH", default="weights/lstm.npz", help="LSTM weights (default: weights/lstm.npz)")
    add("--limit", type=positive_int, metavar="N", help="use only the first N test images")
    add("--sweep-images", type=positive_int, metavar="N", default=SWEEP_IMAGES,
        help=f"test images in the robustness sweeps, a fixed random subset (default: {SWEEP_IMAGES})")
    add("--latency-calls", type=positive_int, metavar="N", default=LATENCY_CALLS,
        help=f"single-image predictions timed per model (default: {LATENCY_CALLS})")
    add("--quiet", action="store_true", help="print only the summary table")
    return parser


@exit_on_user_error
def main(argv=None):
    started = time.perf_counter()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    paths = {"cnn": Path(args.cnn), "lstm": Path(args.lstm)}
    models = {name: load_model(paths[name], expect=name) for name in MODELS}
    images, labels, data_dir = load_test_set(args.data, args.limit)
    from models import plots
    have_plots = plots.matplotlib_available()

    log(f"evaluating both models on {len(images):,} test images")
    evaluations = {name: evaluate(models[name], images, labels) for name in MODELS}
    histories = {name: read_history(paths[name])[0] for name in MODELS}
    training = {name: training_summary(histories[name]) for name in MODELS}
    log(f"timing single-image predictions ({args.latency_calls} calls per model)")
    latency = {name: single_image_latency(models[name], images[0], args.latency_calls) for name in MODELS}
    subset = sweep_subset(len(images), args.sweep_images)
    log(f"robustness sweeps on {len(subset):,} images")
    sweep_results = run_sweeps(models, images[subset], labels[subset], log=log)
    groups = disagreements(evaluations)

    command = "python -m models.compare " + " ".join(argv) if argv else "python -m models.compare"
    facts = {"command": command.strip(), "data": str(data_dir),
             "weights": {name: str(paths[name]) for name in MODELS},
             "parameters": {name: int(models[name].num_parameters()) for name in MODELS},
             "flops": {name: int(models[name].flops()) for name in MODELS},
             "latency": latency, "latency_calls": args.latency_calls, "sweep_images": len(subset),
             "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
                        f"Python {platform.python_version()}, NumPy {np.__version__}"}

    try:
        out.mkdir(parents=True, exist_ok=True)
        figures, figure_note = {}, None
        if have_plots:
            figures = write_figures(out, images, evaluations, groups, histories, sweep_results, log)
        else:
            figure_note = (f"Figures skipped: matplotlib is not installed (install the plot extra: "
                           f"{plots.PLOT_EXTRA}); the tables hold the same numbers.")
        facts["elapsed_seconds"] = time.perf_counter() - started
        report = build_report(facts, evaluations, groups, training, sweep_results, figures, figure_note)
        atomic_write_text(out / "report.md", report)
        atomic_write_text(out / "report.json", json.dumps({
            **facts, "training": training, "seed": SEED,
            "evaluations": {name: evaluations[name].summary() for name in MODELS},
            "disagreements": {key: len(value) for key, value in groups.items()},
            "robustness": _json_ready(sweep_results), "figures": figures}, indent=1) + "\n")
    except OSError as error:
        raise UserError(f"cannot write the report into {out}: {error.strerror or error}") from None

    print(console_summary(evaluations, facts, training))
    print(f"report: {out / 'report.md'}" + (f" with {len(figures)} figures" if figures else "")
          + f"; {time.perf_counter() - started:.0f} s")
    if figure_note:
        print(f"note: figures skipped - matplotlib is not installed (install the plot extra: {plots.PLOT_EXTRA})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
