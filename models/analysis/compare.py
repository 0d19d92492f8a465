"""The comparison report: every shipped model (or the ones named) on the MNIST test images.

    python -m models.compare                                   # every shipped model
    python -m models.compare --models cnn,lstm,gru,rnn,mlp     # these, in this order
    python -m models.compare --models cnn,runs/my.npz          # a name or a weights file each
    python -m models.compare --pair cnn,lstm --out docs/compare
    python -m models.compare --threads 1                       # steadier speeds on a busy machine

Evaluates the models on the MNIST test images and writes ``report.md`` (plus ``report.json``
with every number, and PNG figures when matplotlib is installed) into ``--out``:

- per model: its description (from its model file), test accuracy, parameters, FLOPs per image,
  training speed measured in this run (a short timed training loop, batch 64), single-image
  prediction latency, training curves (from the history JSON beside the weights);
- per class: F1 side by side (precision and recall in the figure and the JSON), every confusion
  matrix, how often each model is right where another is wrong, and for one chosen pair
  (``--pair``, default the first two) the digits one gets right and the other wrong, both ways,
  and the digits both miss;
- robustness: accuracy of every model as the digits are shifted, rotated, scaled, blurred,
  noised or have rows blanked, one figure per perturbation, on a fixed subset of test images;
- "Does the LSTM remember longer?": for the recurrent models, the gradient norm ||dL/dh_t|| per
  row at initialisation and after training, and the accuracy when blank rows follow the digit
  (see :mod:`models.analysis.memory`).

Every sentence in the report is generated from the numbers it sits next to.  Seeds are fixed,
so two runs on the same weights and data give the same report except for the timings.
"""
import sys

import nn
from nn.threads import threads_from_argv

if __name__ == "__main__":
    nn.configure_threads(threads_from_argv(sys.argv[1:]))  # before NumPy loads BLAS

import hashlib
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

from models import registry
from models.analysis import memory, metrics
from models.base import build_model, load_model, resolve_weights
from models.analysis.evaluate import evaluate, load_test_set, read_history
from kit.cli import CommandLineParser, positive_int
from kit.images.augment import affine_maps, warp
from nn.errors import UserError
from kit.cli import exit_on_user_error
from nn.losses import SoftmaxCrossEntropy
from nn.optim import Adam
from nn.serialize import atomic_write_text

SEED = 20240611          # the sweep subset and the noise are drawn from generators seeded here
SWEEP_IMAGES = 2000      # test images in the robustness sweeps (a fixed random subset)
LATENCY_CALLS = 200      # single-image predictions timed per model (the median is reported)
LATENCY_WARMUP = 20
GRID_IMAGES = 40
SPEED_BATCH = 64         # the training-speed loop: batch size, untimed warm-up steps, timed seconds
SPEED_WARMUP = 3
SPEED_SECONDS = 4.0


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
          "every digit moved up or down by a whole number of pixels - for a recurrent model this changes "
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
          "the top or the bottom rows of every image set to black - for a recurrent model the first or the "
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


def training_speed(model, images, labels, batch_size=SPEED_BATCH, seconds=SPEED_SECONDS,
                   warmup=SPEED_WARMUP, seed=SEED):
    """Training images/s of a fresh copy of ``model``, timed in this process.

    One step is what the trainer does per batch without augmentation: forward in training mode,
    softmax cross-entropy, backward, an Adam step (lr 1e-3).  The batches cycle through
    ``images`` (test images will do: the speed does not depend on the pixels).  ``warmup`` untimed
    steps first, then steps until ``seconds`` have passed (at least five).  The rate is
    ``batch_size`` over the median step time, so a burst of other work on the machine during a
    few steps does not set it; the mean rate is returned too.
    """
    fresh = build_model(model.name, rng=np.random.default_rng(seed), num_classes=model.num_classes,
                        image_shape=model.image_shape, **model.options)
    x = np.ascontiguousarray(fresh.to_network_input(images))
    labels = np.asarray(labels)
    optimizer = Adam(fresh.network.parameters(), lr=1e-3)
    criterion = SoftmaxCrossEntropy()

    def step(i):
        index = np.arange(i * batch_size, (i + 1) * batch_size) % len(x)
        logits = fresh.network.forward(x[index], training=True)
        criterion.forward(logits, labels[index])
        fresh.network.backward(criterion.backward())
        optimizer.step()

    for i in range(warmup):
        step(i)
    times, started = [], time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 5:
        before = time.perf_counter()
        step(warmup + len(times))
        times.append(time.perf_counter() - before)
    return {"images_per_second": batch_size / float(np.median(times)),
            "mean_images_per_second": batch_size * len(times) / float(np.sum(times)),
            "steps": len(times), "seconds": float(np.sum(times)), "batch_size": batch_size}


def numba_threads():
    """The number of threads Numba's parallel kernels use in this process."""
    import numba
    return int(numba.get_num_threads())


def training_summary(history):
    """Epochs, best epoch and validation accuracy, last epoch's accuracies and losses."""
    if not history or not history.get("epochs"):
        return None
    epochs = history["epochs"]
    best = max(epochs, key=lambda e: e["val_accuracy"])
    return {"epochs": len(epochs),
            "best_epoch": int(history.get("best_epoch") or best["epoch"]),
            "best_val_accuracy": float(history.get("best_val_accuracy") or best["val_accuracy"]),
            "final_train_accuracy": float(epochs[-1]["train_accuracy"]),
            "final_val_accuracy": float(epochs[-1]["val_accuracy"]),
            "final_train_loss": float(epochs[-1]["train_loss"]),
            "final_val_loss": float(epochs[-1]["val_loss"])}


def disagreements(evaluations, pair):
    """For the pair (a, b): indices where exactly one is right (each way), and where both are wrong."""
    a, b = pair
    ea, eb = evaluations[a], evaluations[b]
    return {f"{a}_right_{b}_wrong": np.flatnonzero(ea.correct & ~eb.correct),
            f"{b}_right_{a}_wrong": np.flatnonzero(eb.correct & ~ea.correct),
            f"{a}_{b}_both_wrong": np.flatnonzero(~ea.correct & ~eb.correct)}


def right_where_wrong(evaluations):
    """``{a: {b: count}}``: the images model a gets right and model b gets wrong (a != b)."""
    return {a: {b: int((ea.correct & ~eb.correct).sum()) for b, eb in evaluations.items() if b != a}
            for a, ea in evaluations.items()}


def error_overlap(evaluations):
    """How the models' errors overlap: images every model misses (and of those, how many get the
    same wrong answer from all), and per model the images only it misses / only it gets right."""
    correct = np.stack([e.correct for e in evaluations.values()])          # (M, N)
    predictions = np.stack([e.predictions for e in evaluations.values()])  # (M, N)
    all_wrong = ~correct.any(axis=0)
    same = all_wrong & (predictions == predictions[0]).all(axis=0)
    names = list(evaluations)
    wrong_count = (~correct).sum(axis=0)
    return {"all_wrong": int(all_wrong.sum()), "all_wrong_same_answer": int(same.sum()),
            "only_wrong": {name: int((~correct[i] & (wrong_count == 1)).sum()) for i, name in enumerate(names)},
            "only_right": {name: int((correct[i] & (wrong_count == len(names) - 1)).sum())
                           for i, name in enumerate(names)} if len(names) > 2 else None}


# --- words generated from the numbers ---

def title_of(name):
    """A model's display title ('CNN') from its model file, else its name in capitals."""
    try:
        return registry.get(name).title
    except UserError:
        return name.upper()


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


def _join(parts):
    """['a'] -> 'a'; ['a', 'b'] -> 'a and b'; ['a', 'b', 'c'] -> 'a, b and c'."""
    parts = list(parts)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _all(names):
    return "both models" if len(names) == 2 else f"all {len(names)} models"


def _at_level(names, base, values):
    """'the CNN keeps 99.2 % while the LSTM drops to 61.3 % (-37.2 points)': a model "keeps" its
    accuracy if it lost less than 1 point, the same bar as the 'at most 1 point' sentences."""
    drops = {name: base[name] - values[name] for name in names}
    if all(drop < 0.01 for drop in drops.values()):
        return f"{_all(names)} stay within 1 point: " + ", ".join(
            f"the {title_of(name)} scores {pct(values[name])}" for name in names)
    parts = [f"the {title_of(name)} keeps {pct(values[name])}" if drops[name] < 0.01 else
             f"the {title_of(name)} drops to {pct(values[name])} (-{100 * drops[name]:.1f} points)"
             for name in names]
    if len(names) == 2:
        kept = sum(drops[name] < 0.01 for name in names)
        return (" while " if kept == 1 else " and ").join(parts)
    return _join(parts)


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


def describe_sweep(sweep, result, names=None):
    """What a sweep's numbers show: a list of paragraphs (each a few generated sentences)."""
    levels = result["levels"]
    at = {level: i for i, level in enumerate(levels)}
    base_index = at[sweep.identity]
    sentences = []
    for variant, data in result["variants"].items():
        acc = data["accuracy"]
        names = list(acc) if names is None else names
        where = f" (rows blanked at the {variant})" if variant else ""
        base = {name: acc[name][base_index] for name in names}
        if not variant or variant == next(iter(result["variants"])):
            sentences.append(["Unperturbed, the subset is classified with " + _join(
                f"{pct(base[name])} ({title_of(name)})" for name in names) + " accuracy."])
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
                sentence = _reach_words(sweep, arm, reach[names[0]], f"{_all(names)} lose") + "."
            else:
                groups = {}   # models with the same reach share one clause, in order of first mention
                for name in names:
                    groups.setdefault(reach[name], []).append(name)
                sentence = "; ".join(
                    _reach_words(sweep, arm, level, _join(f"the {title_of(name)}" for name in group)
                                 + (" loses" if len(group) == 1 else " lose"))
                    for level, group in groups.items()) + "."
            if variant:
                sentence = f"with the {variant} rows blanked, {sentence}"
            sentences[-1].append(sentence[0].upper() + sentence[1:])
        # Which model loses more, level by level.
        others = [i for i in range(len(levels)) if i != base_index]
        if not others:
            continue
        mean = {name: float(np.mean([acc[name][i] for i in others])) for name in names}
        if len(names) == 2:
            a, b = names
            drop = {name: [base[name] - acc[name][i] for i in others] for name in names}
            a_more = sum(da > db for da, db in zip(drop[a], drop[b]))
            b_more = sum(db > da for da, db in zip(drop[a], drop[b]))
            if a_more == b_more:
                who = (f"the {title_of(a)} and the {title_of(b)} each lose more accuracy at "
                       f"{a_more} of them")
            else:
                worse, better = (a, b) if a_more > b_more else (b, a)
                who = (f"the {title_of(worse)} loses more accuracy than the {title_of(better)} at "
                       f"{max(a_more, b_more)} of them")
            sentences.append([
                f"Over the {len(others)} perturbed levels{where} {who}; averaged over those levels "
                f"the {title_of(a)} scores {pct(mean[a])} and the {title_of(b)} {pct(mean[b])}."])
        elif len(names) > 2:
            order = sorted(names, key=lambda name: -mean[name])
            sentences.append([
                f"Averaged over the {len(others)} perturbed levels{where}: " + ", ".join(
                    f"{title_of(name)} {pct(mean[name])}" for name in order)
                + f"; the {title_of(order[0])} holds up best and the {title_of(order[-1])} worst."])
    return [" ".join(paragraph) for paragraph in sentences]


def describe_summary(evaluations, facts):
    e = evaluations
    names = list(e)
    n = e[names[0]].n_images
    errors = {name: e[name].n_images - int(e[name].correct.sum()) for name in names}
    text = [f"On the {n:,} test images " + _join(
        f"the {title_of(name)} is right {pct(e[name].accuracy, 2)} of the time ({errors[name]:,} errors)"
        if i == 0 else f"the {title_of(name)} {pct(e[name].accuracy, 2)} ({errors[name]:,})"
        for i, name in enumerate(names)) + "."]
    order = sorted(names, key=lambda name: errors[name])
    fewest, most = order[0], order[-1]
    if errors[most] > errors[fewest] > 0:
        text.append(f"The {title_of(most)} makes {_ratio_words(errors[most], errors[fewest])} as many "
                    f"errors as the {title_of(fewest)}.")
    p, f = facts["parameters"], facts["flops"]
    by_size = sorted(names, key=lambda name: p[name])
    by_flops = sorted(names, key=lambda name: f[name])
    text.append(f"The {title_of(by_size[-1])} has the most parameters ({p[by_size[-1]]:,}), "
                f"{_ratio_words(p[by_size[-1]], p[by_size[0]])} as many as the "
                f"{title_of(by_size[0])} ({p[by_size[0]]:,}); the {title_of(by_flops[-1])} needs the "
                f"most FLOPs per image ({f[by_flops[-1]] / 1e6:.2f} MFLOPs), "
                f"{_ratio_words(f[by_flops[-1]], f[by_flops[0]])} those of the {title_of(by_flops[0])} "
                f"({f[by_flops[0]] / 1e6:.2f} MFLOPs).")
    lat = facts["latency"]
    text.append("One image takes " + _join(f"{_fmt_seconds(lat[name])} to classify with the {title_of(name)}"
                                           if i == 0 else f"{_fmt_seconds(lat[name])} with the {title_of(name)}"
                                           for i, name in enumerate(names))
                + f" (median of {facts['latency_calls']} calls on this machine).")
    speed = {name: facts["training_speed"][name]["images_per_second"] for name in names}
    fast = sorted(names, key=lambda name: -speed[name])
    text.append(f"Measured in this run, the {title_of(fast[0])} trains fastest ({speed[fast[0]]:,.0f} "
                f"images/s) and the {title_of(fast[-1])} slowest ({speed[fast[-1]]:,.0f} images/s, "
                f"{_ratio_words(speed[fast[0]], speed[fast[-1]])} slower); at that speed an epoch of "
                f"48,000 training images would take {48_000 / speed[fast[0]]:,.0f} s and "
                f"{48_000 / speed[fast[-1]]:,.0f} s.")
    return text


def describe_training(training):
    text = []
    for name, t in training.items():
        if not t:
            text.append(f"No training history was found for the {title_of(name)}.")
            continue
        gap = t["final_train_accuracy"] - t["final_val_accuracy"]
        text.append(f"The {title_of(name)} reached its best validation accuracy, {pct(t['best_val_accuracy'], 2)}, "
                    f"at epoch {t['best_epoch']} of {t['epochs']}; in its last epoch training accuracy "
                    f"was {pct(t['final_train_accuracy'], 2)} and validation {pct(t['final_val_accuracy'], 2)} "
                    f"({'a gap of ' + format(100 * abs(gap), '.2f') + ' points' if abs(gap) >= 0.0005 else 'no gap'}"
                    f"{', validation above training' if gap < -0.0005 else ''}).")
    return text


def describe_per_class(evaluations):
    rows = {name: e.per_class for name, e in evaluations.items()}
    names = list(rows)
    text = []
    for name in names:
        weakest = min(rows[name], key=lambda r: (r["f1"], r["digit"]))
        text.append(f"The {title_of(name)}'s weakest digit is {weakest['digit']} "
                    f"(F1 {pct(weakest['f1'], 2)}).")
    digits = range(len(rows[names[0]]))
    if len(names) == 2:
        a, b = names
        gaps = [(rows[a][k]["f1"] - rows[b][k]["f1"], k) for k in digits]
        a_higher = sum(g > 0 for g, _ in gaps)
        b_higher = sum(g < 0 for g, _ in gaps)
        gap, digit = max(gaps, key=lambda g: (abs(g[0]), -g[1]))
        text.append(f"The {title_of(a)}'s F1 is higher for {a_higher} of the {len(gaps)} digits and the "
                    f"{title_of(b)}'s for {b_higher}; the largest difference is for digit {digit} "
                    f"({100 * abs(gap):.2f} points in favour of the {title_of(a if gap > 0 else b)}).")
    else:
        best = {name: 0 for name in names}
        spreads = []
        for k in digits:
            f1 = {name: rows[name][k]["f1"] for name in names}
            top = max(f1.values())
            winners = [name for name in names if f1[name] == top]
            if len(winners) == 1:
                best[winners[0]] += 1
            low = min(names, key=lambda name: f1[name])
            high = max(names, key=lambda name: f1[name])
            spreads.append((f1[high] - f1[low], k, high, low))
        ranked = sorted((name for name in names if best[name]), key=lambda name: -best[name])
        counted = sum(best.values())
        ties = f"{len(digits) - counted} tie{'s' if len(digits) - counted != 1 else ''}"
        if ranked:
            text.append("The highest F1 per digit belongs to " + _join(
                f"the {title_of(name)} for {best[name]} digit{'s' if best[name] != 1 else ''}"
                for name in ranked) + (f" ({ties})" if counted < len(digits) else "") + ".")
        else:
            text.append(f"No model has the highest F1 alone for any digit ({ties}).")
        spread, digit, high, low = max(spreads, key=lambda s: (s[0], -s[1]))
        text.append(f"The models differ most on digit {digit}: F1 {pct(rows[high][digit]['f1'], 2)} for the "
                    f"{title_of(high)} against {pct(rows[low][digit]['f1'], 2)} for the {title_of(low)} "
                    f"({100 * spread:.2f} points).")
    return text


def describe_confusions(evaluations):
    text = []
    for name, e in evaluations.items():
        mistakes = metrics.top_confusions(e.confusion, 3)
        if mistakes:
            text.append(f"The {title_of(name)}'s most frequent mistakes: " + ", ".join(
                f"{t} read as {p} ({n}x)" for t, p, n in mistakes) + ".")
        else:
            text.append(f"The {title_of(name)} makes no mistakes on these images.")
    return text


def describe_overlap(evaluations, overlap):
    names = list(evaluations)
    n = evaluations[names[0]].n_images
    text = [f"Of the {n:,} images, {_all(names)} miss {overlap['all_wrong']:,} "
            f"({overlap['all_wrong_same_answer']:,} of those with the same wrong answer from every model)."]
    if len(names) > 2:
        text.append("Images only one model gets wrong: " + ", ".join(
            f"{title_of(name)} {overlap['only_wrong'][name]:,}" for name in names)
            + "; images only one model gets right: " + ", ".join(
            f"{title_of(name)} {overlap['only_right'][name]:,}" for name in names) + ".")
    return text


def describe_disagreements(evaluations, groups, pair):
    a, b = pair
    n = evaluations[a].n_images
    both = groups[f"{a}_{b}_both_wrong"]
    same = int((evaluations[a].predictions[both] == evaluations[b].predictions[both]).sum())
    return [f"Of the {n:,} images, the {title_of(a)} gets {len(groups[f'{a}_right_{b}_wrong']):,} right "
            f"that the {title_of(b)} gets wrong, the {title_of(b)} gets "
            f"{len(groups[f'{b}_right_{a}_wrong']):,} right that the {title_of(a)} gets wrong, and both "
            f"miss {len(both):,} ({same:,} of those with the same wrong answer)."]


# --- figures ---

def _caption_pair(evaluations, pair, i):
    a, b = pair
    return (f"{title_of(a)} {evaluations[a].predictions[i]}  {title_of(b)} {evaluations[b].predictions[i]}\n"
            f"true {evaluations[a].labels[i]}")


def _order_by_confidence(evaluation_list, index):
    """Most confident wrong answers first: the largest probability among the wrong models."""
    if len(index) == 0:
        return index
    confidence = np.zeros(len(index))
    for e in evaluation_list:
        wrong = ~e.correct[index]
        confidence = np.maximum(confidence, np.where(wrong, e.probabilities[index, e.predictions[index]], 0))
    return index[np.argsort(-confidence, kind="stable")]


def _pair_groups(pair):
    """(key, title, index into the pair of the models that are wrong) of the three grids."""
    a, b = pair
    return [(f"{a}_right_{b}_wrong", f"{title_of(a)} right, {title_of(b)} wrong", (b,)),
            (f"{b}_right_{a}_wrong", f"{title_of(b)} right, {title_of(a)} wrong", (a,)),
            (f"{a}_{b}_both_wrong", f"{title_of(a)} and {title_of(b)} both wrong", (a, b))]


def write_figures(out, images, evaluations, groups, pair, histories, sweep_results, memory_result, log):
    """All PNG figures; returns {figure id: file name} (relative to ``out``)."""
    from models.analysis import plots

    figures = {}
    names = list(evaluations)
    color = {name: plots.model_color(i) for i, name in enumerate(names)}
    present = {title_of(name): histories[name] for name in names
               if histories[name] and histories[name].get("epochs")}
    if present:
        plots.plot_training_curves(present, out / "training_curves.png")
        figures["training_curves"] = "training_curves.png"
    plots.plot_per_class({title_of(name): evaluations[name].per_class for name in names}, out / "per_class.png")
    figures["per_class"] = "per_class.png"
    plots.plot_confusion_matrices({f"{title_of(name)} ({evaluations[name].n_images:,} test images)":
                                   evaluations[name].confusion for name in names}, out / "confusion.png")
    figures["confusion"] = "confusion.png"
    for key, title, wrong in _pair_groups(pair):
        index = _order_by_confidence([evaluations[name] for name in wrong], groups[key])
        if len(index) == 0:
            continue  # the report says "None." instead of showing an empty grid
        shown = index[:GRID_IMAGES]
        plots.plot_digit_grid(images[shown], [_caption_pair(evaluations, pair, i) for i in shown],
                              out / f"{key}.png",
                              f"{title}: {len(shown)} of {len(index):,}, most confident mistakes first",
                              colors=["black"] * len(shown))
        figures[key] = f"{key}.png"
    for sweep in SWEEPS:
        result = sweep_results[sweep.key]
        series, examples = [], []
        for variant, data in result["variants"].items():
            for name in names:
                series.append({"label": title_of(name) + (f", {variant} rows" if variant else ""),
                               "accuracy": data["accuracy"][name], "color": color[name],
                               "linestyle": sweep.styles.get(variant, "-")})
            examples.append((f"{variant} rows" if variant else "example", data["example"]))
        file = f"robustness_{sweep.key}.png"
        plots.plot_sweep(out / file, f"{sweep.title}: accuracy on the robustness subset", sweep.xlabel,
                         result["levels"], series, examples, level_format=_number)
        figures[sweep.key] = file
    if memory_result["models"]:
        series = []
        for name in memory_result["models"]:
            g = memory_result["gradients"][name]
            series.append({"label": f"{title_of(name)} trained", "values": g["trained"],
                           "color": color[name], "linestyle": "-"})
            series.append({"label": f"{title_of(name)} at initialisation", "values": g["initial"],
                           "color": color[name], "linestyle": ":"})
        plots.plot_gradient_norms(out / "memory_gradients.png",
                                  f"Gradient reaching the state after each row (mean over "
                                  f"{memory_result['gradient_images']:,} test images)",
                                  list(range(1, memory_result["steps"] + 1)), series)
        figures["memory_gradients"] = "memory_gradients.png"
        blank = memory_result["blank_rows"]
        example = images[example_index(evaluations[names[0]].labels)]
        plots.plot_sweep(out / "memory_blank_rows.png", "Accuracy with k blank rows after the digit",
                         "k, blank rows appended below the 28 rows of the digit", blank["counts"],
                         [{"label": title_of(name), "accuracy": blank["accuracy"][name],
                           "color": color[name]} for name in memory_result["models"]],
                         [("input", [memory.append_blank_rows(example[None], k)[0] for k in blank["counts"]])],
                         level_format=_number)
        figures["memory_blank_rows"] = "memory_blank_rows.png"
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


def memory_section(facts, memory_result, figures):
    """The lines of "Does the LSTM remember longer?"."""
    names = memory_result["models"]
    lines = ["## Does the LSTM remember longer?", "",
             "The original app's README says the LSTM \"solves the problem of long-term dependency\" "
             "that a standard recurrent network has. Two measurements, made with the kit's own "
             "backward pass and the same recurrent layers that trained the models, test that claim "
             "on MNIST read row by row.", ""]
    if not names:
        return lines + ["None of the compared models is recurrent, so there is nothing to measure "
                        "here; add `rnn`, `lstm` or `gru` to `--models`.", ""]
    steps = memory_result["steps"]
    lines += [f"Recurrent models compared: {_join(title_of(name) for name in names)}.", "",
              "### How much gradient reaches the early rows", "",
              f"For each row t = 1..{steps}, the length of dL/dh_t, the gradient of an image's loss "
              f"with respect to the hidden state after reading row t, averaged over the first "
              f"{memory_result['gradient_images']:,} images of the robustness subset (inference mode, "
              f"each image's own loss). It is what the backward pass computes on its way from the "
              f"answer back to the first row: training can only learn from row t what this "
              f"gradient carries back to it. A vanishing gradient is a curve that falls by many "
              f"orders of magnitude from the right (row {steps}, where the answer is read) to the left. "
              f"Dotted: the same model freshly initialised with the seed it was trained from; solid: "
              f"the shipped weights. (The top rows of an MNIST digit are mostly empty, so a trained "
              f"model may also have learned that they do not matter.)", "",
              _figure_link(figures, "memory_gradients", "gradient norm per timestep, log scale")]
    header = ["t"] + [f"{title_of(name)} {kind}" for name in names for kind in ("initial", "trained")]
    shown = sorted({1, 2, 4, 7, 10, 14, 18, 21, 24, 26, 27, steps} & set(range(1, steps + 1)))
    rows = [[t] + [f"{memory_result['gradients'][name][kind][t - 1]:.2e}" for name in names
                   for kind in ("initial", "trained")] for t in shown]
    lines += [_table(header, rows), "",
              "Selected rows; every value is in `report.json` (`memory.gradients`).", ""]
    lines += _bullets(memory.describe_gradients(memory_result, {name: title_of(name) for name in names}))
    blank = memory_result["blank_rows"]
    lines += ["### How long the digit is held", "",
              f"What this measures: each recurrent model reads the {steps} rows of the digit, then k "
              f"more rows of black pixels, and only then answers. The blank rows carry no information, "
              f"so the digit survives only in the model's state, and the accuracy after k blank rows "
              f"says how long the model can hold the digit in its state while reading rows that say "
              f"nothing. The models never saw such input in training (they always answered after row "
              f"{steps}), so this tests how stable their memory is, not something they were taught. "
              f"Measured on the {memory_result['images']:,} images of the robustness subset; the row "
              f"of pictures shows one input at each k.", "",
              _figure_link(figures, "memory_blank_rows", "accuracy against blank rows appended")]
    rows = [[k] + [pct(blank["accuracy"][name][i]) for name in names] for i, k in enumerate(blank["counts"])]
    lines += [_table(["blank rows k"] + [title_of(name) for name in names], rows), ""]
    lines += _bullets(memory.describe_blank_rows(memory_result, {name: title_of(name) for name in names}))
    return lines


def build_report(facts, evaluations, groups, pair, training, sweep_results, memory_result, figures,
                 figure_note):
    e = evaluations
    names = list(e)
    n_images = e[names[0]].n_images
    lines = [f"# {_join(title_of(name) for name in names)} on MNIST", "",
             f"Generated by `{facts['command']}` from " + _join(
                 f"`{facts['weights'][name]}` (SHA-256 {facts['weights_sha256'][name][:12]}...)" for name in names)
             + f" on {n_images:,} test images (`{facts['data']}`). Every sentence below is generated from "
             f"the numbers next to it; seeds are fixed, so a rerun gives the same report except for "
             f"the timings.", ""]
    if figure_note:
        lines += [f"> {figure_note}", ""]
    lines += ["## The models", ""]
    lines += [f"- **{title_of(name)}** (`{name}`, {facts['parameters'][name]:,} parameters): "
              f"{facts['descriptions'][name]}" for name in names] + [""]
    lines += ["## At a glance", ""]
    rows = []
    for name in names:
        rows.append([title_of(name), pct(e[name].accuracy, 2),
                     f"{e[name].n_images - int(e[name].correct.sum()):,}",
                     f"{facts['parameters'][name]:,}", f"{facts['flops'][name] / 1e6:.2f}",
                     f"{facts['training_speed'][name]['images_per_second']:,.0f}",
                     _fmt_seconds(facts["latency"][name])])
    lines += [_table(["model", "test accuracy", "errors", "parameters", "MFLOPs / image",
                      "training images / s", "1-image latency"], rows), ""]
    lines += _bullets(describe_summary(e, facts))
    speed = next(iter(facts["training_speed"].values()))
    lines += [f"Machine: {facts['machine']}. Training speed is measured in this run, not taken from "
              f"the training logs: for each model a fresh copy trains on batches of "
              f"{speed['batch_size']} (forward in training mode, backward, an Adam step; no "
              f"augmentation) for {facts['speed_seconds']:g} s after {SPEED_WARMUP} untimed steps, and "
              f"the rate is the batch size over the median step time, "
              + (f"with {facts['threads']} thread{'s' if facts['threads'] != 1 else ''} for BLAS and Numba "
                 f"(`--threads {facts['threads']}`)" if facts["threads_flag"] else
                 f"with {facts['threads']} Numba thread{'s' if facts['threads'] != 1 else ''}")
              + f" on {facts['cores']} CPU core{'s' if facts['cores'] != 1 else ''}; the load average was "
              f"{facts['load_average']:.1f} when the run started, and other work on the machine slows "
              f"these numbers down. For the kit's speed side by side with PyTorch in one run, see "
              f"`bench/bench.py`. Latency is the median of {facts['latency_calls']} calls of "
              f"`predict_proba` on one image after {LATENCY_WARMUP} warm-up calls.", ""]

    lines += ["## Training curves", "", _figure_link(figures, "training_curves", "training curves of every model")]
    lines += _bullets(describe_training(training))

    lines += ["## Per class", "", "F1 per digit: the harmonic mean of precision (of the images a model "
              "called *k*, the share that are *k*) and recall (of the images of *k*, the share it called "
              "*k*). The figure shows all three; `report.json` has every number.", ""]
    first = e[names[0]]
    rows = [[k] + [pct(e[m].per_class[k]["f1"], 2) for m in names] + [f"{first.per_class[k]['support']:,}"]
            for k in range(len(first.per_class))]
    rows.append(["macro"] + [pct(e[m].macro["f1"], 2) for m in names] + [f"{first.macro['support']:,}"])
    lines += [_table(["digit"] + [f"{title_of(m)} F1" for m in names] + ["support"], rows), "",
              _figure_link(figures, "per_class", "per-class precision, recall and F1")]
    lines += _bullets(describe_per_class(e))

    lines += ["## Confusion matrices", "", "Rows: true digit; columns: predicted digit.", "",
              _figure_link(figures, "confusion", "confusion matrices")]
    for name in names:
        lines += [f"{title_of(name)}:", "", "```", metrics.format_confusion(e[name].confusion), "```", ""]
    lines += _bullets(describe_confusions(e))

    lines += ["## Where they disagree", "",
              "Images the row's model gets right and the column's model gets wrong:", ""]
    matrix = facts["right_where_wrong"]
    rows = [[f"{title_of(a)} right"] + ["-" if a == b else f"{matrix[a][b]:,}" for b in names] for a in names]
    lines += [_table(["", *[f"{title_of(b)} wrong" for b in names]], rows), ""]
    lines += _bullets(describe_overlap(e, facts["error_overlap"]))
    a, b = pair
    lines += [f"### {title_of(a)} and {title_of(b)}", "",
              f"The pair chosen with `--pair {a},{b}` (default: the first two models), image by image.", ""]
    lines += _bullets(describe_disagreements(e, groups, pair))
    for key, title, _ in _pair_groups(pair):
        count = len(groups[key])
        lines += [f"#### {title} ({count:,})", "",
                  (f"Showing the {min(count, GRID_IMAGES)} most confident mistakes; each digit is "
                   f"captioned with both models' answers and the true label." if count else "None."), ""]
        if count:
            lines += [_figure_link(figures, key, title)]

    lines += ["## Robustness", "",
              f"Accuracy as the test digits are perturbed, on a fixed random subset of "
              f"{facts['sweep_images']:,} of the {n_images:,} test images (seed {SEED}), "
              f"so the unperturbed accuracies below are those of the subset. The row of digits under "
              f"each curve shows the same test image at each level.", ""]
    for sweep in SWEEPS:
        result = sweep_results[sweep.key]
        lines += [f"### {sweep.title}", "", f"What changes: {sweep.what}.", "",
                  _figure_link(figures, sweep.key, f"accuracy under {sweep.title.lower()}")]
        header = [sweep.xlabel]
        for variant in result["variants"]:
            header += [f"{title_of(m)}{' ' + variant if variant else ''}" for m in names]
        rows = []
        for i, level in enumerate(result["levels"]):
            row = [_number(level)]
            for data in result["variants"].values():
                row += [pct(data["accuracy"][m][i]) for m in names]
            rows.append(row)
        lines += [_table(header, rows), ""]
        lines += _bullets(describe_sweep(sweep, result, names))

    lines += memory_section(facts, memory_result, figures)

    lines += ["## Reproduce", "", "```", facts["command"], "```", "",
              "The MNIST files are read from `--data DIR`, else `$MNIST_DIR`, else `./data/mnist`; "
              "`python -m models.compare --help` lists the options.", "",
              f"The whole run took {facts['elapsed_seconds']:.0f} s on this machine "
              f"({facts['machine']}).", ""]
    return "\n".join(lines)


def console_summary(evaluations, facts):
    header = (f"{'model':<8}{'accuracy':>10}{'errors':>8}{'parameters':>12}{'MFLOPs':>8}"
              f"{'train img/s':>13}{'latency':>10}")
    lines = [header]
    for name, e in evaluations.items():
        lines.append(f"{title_of(name):<8}{100 * e.accuracy:>9.2f}%{e.n_images - int(e.correct.sum()):>8,}"
                     f"{facts['parameters'][name]:>12,}{facts['flops'][name] / 1e6:>8.2f}"
                     f"{facts['training_speed'][name]['images_per_second']:>13,.0f}"
                     f"{facts['latency'][name] * 1000:>8.2f}ms")
    return "\n".join(lines)


def _json_ready(sweep_results):
    return {key: {"levels": r["levels"],
                  "variants": {v: {"accuracy": d["accuracy"]} for v, d in r["variants"].items()}}
            for key, r in sweep_results.items()}


def make_parser():
    parser = CommandLineParser(
        prog="python -m models.compare",
        description="Compare trained models on the MNIST test images and write a Markdown report "
                    "with figures.")
    add = parser.add_argument
    add("--models", metavar="LIST",
        help="comma-separated model names (their shipped weights) or weights files, at least two "
             "(default: every shipped model: " + ", ".join(registry.shipped()) + ")")
    add("--model-file", metavar="PATH", action="append", default=[],
        help="a Python file defining MODEL = ModelSpec(...), for weights of a model defined outside "
             "the kit (may be repeated)")
    add("--pair", metavar="A,B", help="the two models whose disagreements are shown digit by digit "
                                      "(default: the first two)")
    add("--data", metavar="DIR", help="folder with the MNIST IDX files (default: $MNIST_DIR, else ./data/mnist)")
    add("--out", metavar="DIR", default="reports/compare", help="folder for report.md, report.json and the PNGs "
                                                                "(default: reports/compare)")
    add("--limit", type=positive_int, metavar="N", help="use only the first N test images")
    add("--sweep-images", type=positive_int, metavar="N", default=SWEEP_IMAGES,
        help=f"test images in the robustness and memory measurements, a fixed random subset "
             f"(default: {SWEEP_IMAGES})")
    add("--latency-calls", type=positive_int, metavar="N", default=LATENCY_CALLS,
        help=f"single-image predictions timed per model (default: {LATENCY_CALLS})")
    add("--speed-seconds", type=float, metavar="S", default=SPEED_SECONDS,
        help=f"seconds of timed training steps per model (default: {SPEED_SECONDS:g})")
    add("--threads", type=positive_int, metavar="N", help="CPU threads for BLAS and Numba (default: all cores)")
    add("--quiet", action="store_true", help="print only the summary table")
    return parser


def _shown_path(path):
    """``path`` relative to the current folder when it is inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_models(models_arg, pair_arg):
    """{name: Model} in the order given, their weights paths, and the pair; one line if wrong."""
    items = [item.strip() for item in models_arg.split(",")] if models_arg else registry.shipped()
    if any(not item for item in items):
        raise UserError(f"--models {models_arg!r}: an empty name in the list")
    models, paths = {}, {}
    for item in items:
        path = resolve_weights(item)
        model = load_model(path)
        if model.name in models:
            raise UserError(f"--models: two weights files of the model {model.name!r} "
                            f"({paths[model.name]} and {path}); name each model once")
        models[model.name], paths[model.name] = model, path
    if len(models) < 2:
        raise UserError(f"--models: a comparison needs at least two models, got {', '.join(models)}")
    pair = tuple(list(models)[:2])
    if pair_arg:
        pair = tuple(part.strip() for part in pair_arg.split(","))
        if len(pair) != 2 or pair[0] == pair[1] or not all(name in models for name in pair):
            raise UserError(f"--pair {pair_arg}: name two different models of the comparison "
                            f"({', '.join(models)})")
    return models, paths, pair


@exit_on_user_error
def main(argv=None):
    started = time.perf_counter()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = make_parser().parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if not (args.speed_seconds > 0 and math.isfinite(args.speed_seconds)):
        raise UserError(f"--speed-seconds {args.speed_seconds:g}: must be a positive number of seconds")
    if args.threads:
        from nn.threads import limit_threads
        limit_threads(args.threads)
    for path in args.model_file:
        registry.load_model_file(path)
    models, paths, pair = load_models(args.models, args.pair)
    names = list(models)
    images, labels, data_dir = load_test_set(args.data, args.limit)
    for name, model in models.items():
        if images.shape[1:] != model.image_shape:
            raise UserError(f"{data_dir}: its images are {images.shape[1:]}, the "
                            f"{model.title} reads {model.image_shape}")
    from models.analysis import plots
    have_plots = plots.matplotlib_available()
    load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    log(f"evaluating {len(models)} models on {len(images):,} test images")
    evaluations = {name: evaluate(models[name], images, labels) for name in names}
    histories = {name: read_history(paths[name])[0] for name in names}
    training = {name: training_summary(histories[name]) for name in names}
    log(f"timing training steps ({args.speed_seconds:g} s per model, batch {SPEED_BATCH})")
    speed = {name: training_speed(models[name], images, labels, seconds=args.speed_seconds) for name in names}
    log(f"timing single-image predictions ({args.latency_calls} calls per model)")
    latency = {name: single_image_latency(models[name], images[0], args.latency_calls) for name in names}
    subset = sweep_subset(len(images), args.sweep_images)
    log(f"robustness sweeps on {len(subset):,} images")
    sweep_results = run_sweeps(models, images[subset], labels[subset], log=log)
    log("memory: hidden-state gradients and blank rows")
    memory_result = memory.measure(models, images[subset], labels[subset], log=log)
    groups = disagreements(evaluations, pair)

    command = "python -m models.compare " + " ".join(argv) if argv else "python -m models.compare"
    facts = {"command": command.strip(), "data": str(data_dir), "models": names, "pair": list(pair),
             "weights": {name: _shown_path(paths[name]) for name in names},
             "weights_sha256": {name: hashlib.sha256(Path(paths[name]).read_bytes()).hexdigest() for name in names},
             "descriptions": {name: models[name].spec.description for name in names},
             "parameters": {name: int(models[name].num_parameters()) for name in names},
             "flops": {name: int(models[name].flops()) for name in names},
             "latency": latency, "latency_calls": args.latency_calls, "sweep_images": len(subset),
             "training_speed": speed, "speed_seconds": args.speed_seconds,
             "threads": numba_threads(), "threads_flag": args.threads, "cores": os.cpu_count(), "load_average": load_average,
             "right_where_wrong": right_where_wrong(evaluations),
             "error_overlap": error_overlap(evaluations),
             "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
                        f"Python {platform.python_version()}, NumPy {np.__version__}"}

    try:
        out.mkdir(parents=True, exist_ok=True)
        figures, figure_note = {}, None
        if have_plots:
            figures = write_figures(out, images, evaluations, groups, pair, histories, sweep_results,
                                    memory_result, log)
        else:
            figure_note = (f"Figures skipped: matplotlib is not installed (install the plot extra: "
                           f"{plots.PLOT_EXTRA}); the tables hold the same numbers.")
        facts["elapsed_seconds"] = time.perf_counter() - started
        report = build_report(facts, evaluations, groups, pair, training, sweep_results, memory_result,
                              figures, figure_note)
        atomic_write_text(out / "report.md", report)
        atomic_write_text(out / "report.json", json.dumps({
            **facts, "training": training, "seed": SEED,
            "evaluations": {name: evaluations[name].summary() for name in names},
            "disagreements": {key: len(value) for key, value in groups.items()},
            "robustness": _json_ready(sweep_results), "memory": memory_result,
            "figures": figures}, indent=1) + "\n")
    except OSError as error:
        raise UserError(f"cannot write the report into {out}: {error.strerror or error}") from None

    print(console_summary(evaluations, facts))
    print(f"report: {out / 'report.md'}" + (f" with {len(figures)} figures" if figures else "")
          + f"; {time.perf_counter() - started:.0f} s")
    if figure_note:
        print(f"note: figures skipped - matplotlib is not installed (install the plot extra: {plots.PLOT_EXTRA})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
