"""Whole numbers made of MNIST digits on a strip 28 px high, for training and testing a reader.

A reader (a CNN whose columns feed a recurrent layer, trained with CTC) learns from images of
numbers as people write them: digits that stand apart, that touch, that overlap a little; one
hand, so one size per number with a little jitter per digit; a baseline that wanders; 1s drawn
straight (a bar, as the canvas's pen makes them) and slanted.  :func:`compose_numbers` makes a
batch of such numbers from a pool of 28x28 digits:

1. each digit is cropped to its ink and resized (area averaging) to the number's ink height
   h ~ U(height_range) times U(1 - size_jitter, 1 + size_jitter), never above 26 px;
2. a 1 is, with probability ``straight_ones``, replaced by a bar 2-4 px wide of the same height,
   slanted by U(-0.3, 0.3) px per row (0: upright) - MNIST's own 1s are mostly slanted;
3. it is dropped at the number's baseline plus U(-baseline_jitter, +baseline_jitter) px;
4. the next digit starts after a gap of g * u pixels between the two inks, g drawn per gap from
   the number's ``gap`` range, u = 0.6 h the width of a typical digit ("one digit width"):
   g < 0 overlaps (ink is combined by maximum), g = 0 touches, g > 0 stands apart.

Digits come from the pool given: MNIST's training digits to train (:func:`mnist_pool` with
"train"), its test digits to evaluate ("test"), never mixed.  Everything drawn comes from the
``rng`` passed, so a seed gives the same batch.  NumPy only.
"""
from typing import NamedTuple

import numpy as np

from kit.images.preprocess import ink_bounding_box, resize_area

HEIGHT = 28            # the strip's height, MNIST's
MAX_INK = 26           # tallest digit ink, px (a pixel of border above and below)
DIGIT_WIDTH = 0.6      # a typical digit's width as a fraction of its height: the unit of gaps
STRIDE = 4             # the reader's columns are 4 px wide: widths are padded to a multiple
APART = (0.1, 0.8)     # gap ranges, in digit widths
TOUCHING = (-0.1, 0.0)
OVERLAPPING = (-0.2, 0.0)
TRAINING_GAPS = ((-0.2, 0.0), (-0.05, 0.05), (0.0, 0.4), (0.1, 1.2))   # one drawn per number


class ComposedNumbers(NamedTuple):
    """A batch of composed numbers, padded on the right to the widest (black, like a margin)."""
    images: np.ndarray          # float32 (N, 28, W) in [0, 1], W a multiple of STRIDE
    widths: np.ndarray          # (N,) int64: image n's own width; columns beyond are padding
    targets: np.ndarray         # (N, 6) int64: the digits, left to right, padded with -1
    target_lengths: np.ndarray  # (N,) int64: how many digits number n has
    sources: np.ndarray         # (N, 6) int64: each digit's index in the pool (-1: a drawn bar)
    texts: list                 # N strings of digits, e.g. '2026'


def mnist_pool(directory, split):
    """(images float32 (M, 28, 28), labels int64 (M,)) of one MNIST split: "train" or "test"."""
    from kit.mnist import load_mnist_float   # the IDX reader, only when composing from MNIST
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return load_mnist_float(directory, split)


def crop_and_resize(digit, height):
    """A (28, 28) digit's ink box resized to ``height`` px, aspect kept -> float32 (height, w)."""
    box = ink_bounding_box(digit)
    if box is None:                       # a blank digit: a single dark pixel column
        return np.zeros((height, 1), np.float32)
    top, bottom, left, right = box
    crop = digit[top:bottom, left:right]
    width = max(1, int(round(crop.shape[1] * height / crop.shape[0])))
    return np.clip(resize_area(crop, height, width), 0.0, 1.0)


def straight_one(height, rng):
    """A 1 as a pen draws it: a bar 2-4 px wide with grey edges, slanted a little -> (height, w)."""
    thickness = rng.uniform(2.0, 4.0)
    slant = rng.uniform(-0.3, 0.3)                      # columns per row; 0 = upright
    drift = abs(slant) * (height - 1)
    width = int(np.ceil(thickness + drift)) + 2
    rows = np.arange(height, dtype=np.float64)[:, None]
    columns = np.arange(width, dtype=np.float64)[None, :] + 0.5
    # The bar's centre line: x = 1 + thickness / 2 + slant * (rows from the top or bottom).
    centre = 1.0 + thickness / 2 + (slant * rows if slant >= 0 else -slant * (height - 1 - rows))
    coverage = np.clip(thickness / 2 + 0.5 - np.abs(columns - centre), 0.0, 1.0)
    return coverage.astype(np.float32)


def _digit_piece(images, labels, index, height, straight_ones, rng):
    if labels[index] == 1 and rng.random() < straight_ones:
        return straight_one(height, rng), -1
    return crop_and_resize(images[index], height), int(index)


def compose_number(images, labels, rng, count, gap=APART, height_range=(15.0, 24.0),
                   size_jitter=0.1, baseline_jitter=1.5, straight_ones=0.3):
    """One number of ``count`` random digits -> (strip float32 (28, w), digits, pool indices).

    Parameters are those of :func:`compose_numbers` for one number; ``gap`` is its range.
    """
    chosen = rng.integers(0, len(images), size=count)
    base = rng.uniform(*height_range)
    pieces, sources = [], []
    for index in chosen:
        height = int(round(min(MAX_INK, base * rng.uniform(1 - size_jitter, 1 + size_jitter))))
        piece, source = _digit_piece(images, labels, index, max(height, 6), straight_ones, rng)
        pieces.append(piece)
        sources.append(source)
    unit = DIGIT_WIDTH * base
    gaps = [int(round(rng.uniform(*gap) * unit)) for _ in range(count - 1)] + [0]
    margins = rng.integers(1, 5, size=2)
    x = int(margins[0])
    placed = []
    for piece, step in zip(pieces, gaps):
        placed.append(x)
        # An overlap never reaches past a narrow digit's middle: the order stays left to right.
        x = max(x + piece.shape[1] + step, x + max(2, (piece.shape[1] + 1) // 2))
    width = max(x + int(margins[1]), max(p + piece.shape[1] for p, piece in zip(placed, pieces)))
    strip = np.zeros((HEIGHT, width), np.float32)
    centre = HEIGHT / 2 + rng.uniform(-2.0, 2.0)         # the number's line
    for piece, left in zip(pieces, placed):
        h, w = piece.shape
        top = int(round(centre - h / 2 + rng.uniform(-baseline_jitter, baseline_jitter)))
        top = min(max(top, 0), HEIGHT - h)
        region = strip[top:top + h, left:left + w]
        np.maximum(region, piece, out=region)            # overlapping ink: the brighter stroke
    return strip, labels[chosen].astype(np.int64), np.array(sources, np.int64)


def frames_needed(digits):
    """Columns a CTC reader needs for ``digits``: one each, plus a blank between equal ones."""
    return len(digits) + int(np.count_nonzero(digits[1:] == digits[:-1]))


def compose_numbers(images, labels, rng, n, digits=(1, 6), gap=None, height_range=(15.0, 24.0),
                    size_jitter=0.1, baseline_jitter=1.5, straight_ones=0.3):
    """A batch of ``n`` composed numbers.

    Parameters
    ----------
    images, labels : numpy.ndarray
        The pool: float32 (M, 28, 28) in [0, 1] and int (M,) 0..9 (:func:`mnist_pool`).
    rng : numpy.random.Generator
        The only source of randomness: a seed gives the same batch.
    n : int
        Numbers in the batch.
    digits : (int, int)
        Each number has U{digits[0]..digits[1]} digits.
    gap : (float, float) or None
        Gap range in digit widths (module docstring), e.g. ``APART``, ``TOUCHING``; None draws,
        per number, one of ``TRAINING_GAPS`` (overlapping to wide).
    height_range : (float, float)
        The number's ink height in px; each digit's is that times U(1 -+ size_jitter).
    baseline_jitter : float
        Each digit's vertical offset from the number's line, px.
    straight_ones : float
        Probability that a 1 is drawn as a bar instead of taken from the pool.

    Returns
    -------
    ComposedNumbers
        Each width is at least STRIDE * (frames needed + 1), widened by black on the right.
    """
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"expected a pool of (M, 28, 28) digits with M labels, got "
                         f"{images.shape} and {np.shape(labels)}")
    if not 1 <= digits[0] <= digits[1] <= 6:
        raise ValueError(f"digits must be a range within 1..6, got {digits}")
    strips, numbers, sources = [], [], []
    for _ in range(n):
        count = int(rng.integers(digits[0], digits[1] + 1))
        number_gap = gap if gap is not None else TRAINING_GAPS[rng.integers(len(TRAINING_GAPS))]
        strip, number, source = compose_number(images, labels, rng, count, number_gap,
                                               height_range, size_jitter, baseline_jitter,
                                               straight_ones)
        strips.append(strip)
        numbers.append(number)
        sources.append(source)
    widths = np.array([max(s.shape[1], STRIDE * (frames_needed(d) + 1))
                       for s, d in zip(strips, numbers)], np.int64)
    widest = int(-(-widths.max() // STRIDE) * STRIDE) if n else STRIDE
    batch = np.zeros((n, HEIGHT, widest), np.float32)
    targets = np.full((n, 6), -1, np.int64)
    placed_sources = np.full((n, 6), -1, np.int64)
    for k, (strip, number, source) in enumerate(zip(strips, numbers, sources)):
        batch[k, :, :strip.shape[1]] = strip
        targets[k, :len(number)] = number
        placed_sources[k, :len(source)] = source
    lengths = np.array([len(d) for d in numbers], np.int64)
    texts = ["".join(str(int(d)) for d in number) for number in numbers]
    return ComposedNumbers(batch, widths, targets, lengths, placed_sources, texts)
