"""Synthetic whole numbers: MNIST digits side by side on a wide canvas, as a person writes them.

Used by ``bench/segment_numbers.py`` and the tests to measure :mod:`kit.images.segment`: each digit
is cropped to its ink, enlarged by a random factor (area resampling, so its grey edges stay
grey), dropped at a random height (a hand that wanders up and down), and placed after the previous one
with a random gap between their ink (``gap > 0``: the digits do not touch; ``gap <= 0``: their
boxes meet or overlap).
"""
import numpy as np

from kit.images.preprocess import ink_bounding_box, resize_area


def enlarge(digit, scale):
    """A (28, 28) digit cropped to its ink and resized by ``scale`` -> float32 (h, w) in [0, 1]."""
    top, bottom, left, right = ink_bounding_box(digit)
    crop = digit[top:bottom, left:right]
    height = max(1, int(round(crop.shape[0] * scale)))
    width = max(1, int(round(crop.shape[1] * scale)))
    return np.clip(resize_area(crop, height, width), 0.0, 1.0)


def synthetic_number(images, labels, rng, count, height=300, scale=(2.5, 5.0), size_jitter=0.15,
                     gap=(0.1, 0.6), margin=20, baseline_jitter=None):
    """One number of ``count`` random digits on a black float32 canvas.

    Parameters
    ----------
    images : numpy.ndarray
        float32 (N, 28, 28) in [0, 1], the digits to draw from (e.g. MNIST's test set).
    labels : numpy.ndarray
        (N,) their labels.
    rng : numpy.random.Generator
    count : int
        Digits in the number.
    height : int
        Canvas height in pixels; the width follows from the digits and gaps.
    scale : (float, float)
        Range of the number's enlargement factor s of MNIST's 28 px digits (their ink is about
        20 px tall, so 2.5 to 5 writes digits about 50 to 100 px tall).
    size_jitter : float
        Each digit's own factor is s * U(1 - jitter, 1 + jitter): one hand, not quite even.
    gap : (float, float)
        Range of the horizontal distance between neighbouring digits' ink, in units of the
        number's digit height (20 s px); never under 2 px unless the range is <= 0, which makes
        the digits touch (0) or overlap (< 0).
    baseline_jitter : float or None
        None: each digit at a random height anywhere on the canvas.  A number j: the digits
        stand on one line, as people write, each digit's bottom U(-j, j) digit heights off it
        (digits at very different heights do not touch, however small the gap).

    Returns
    -------
    canvas : numpy.ndarray
        float32 (height, W) in [0, 1].
    text : str
        The number, e.g. '2026' (leading zeros kept: it is a string of digits).
    """
    chosen = rng.integers(0, len(images), size=count)
    base = rng.uniform(*scale)
    pieces = [enlarge(images[i], base * rng.uniform(1 - size_jitter, 1 + size_jitter))
              for i in chosen]
    gaps = np.round(rng.uniform(*gap, size=max(0, count - 1)) * 20 * base).astype(int)
    if gap[0] > 0:
        gaps = np.maximum(gaps, 2)
    width = 2 * margin + sum(p.shape[1] for p in pieces) + int(gaps.sum())
    canvas = np.zeros((height, max(width, 2 * margin + 1)), dtype=np.float32)
    x = margin
    tallest = max(p.shape[0] for p in pieces)
    line = rng.uniform(tallest, height) if baseline_jitter is not None else None
    for k, piece in enumerate(pieces):
        h, w = piece.shape
        if line is None:
            y = int(rng.integers(0, max(1, height - h)))
        else:
            bottom = line + rng.uniform(-baseline_jitter, baseline_jitter) * 20 * base
            y = int(np.clip(round(bottom) - h, 0, max(0, height - h)))
        region = canvas[y:y + h, x:x + w]
        np.maximum(region, piece[:region.shape[0], :region.shape[1]], out=region)
        x += w + (int(gaps[k]) if k < count - 1 else 0)
    return canvas, "".join(str(int(labels[i])) for i in chosen)
