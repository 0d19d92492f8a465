"""Reading a whole number from a drawing with a reader model (:mod:`models.reader`), no cutting.

    number, probability = read_number_image(canvas)         # canvas: uint8 (H, W), ink white
    number, probability = read_number_image(canvas, reader="runs/reader.npz")

The drawing is put on one line first (:func:`level`): each group of ink columns between empty
columns (a digit standing apart, or digits that touch) is moved up or down so the groups' middles
line up, and gaps wider than half the tallest group are narrowed to that - a hand wanders more
than the numbers the reader was trained on (:mod:`kit.images.compose`).  Then the ink is
cropped, scaled to 20 px high, placed on a strip 28 px high with a 4 px margin left and right,
and read: the most probable class of every column (greedy CTC
decoding), and the probability the reader gives that whole number, p(number | image) summed over
every alignment by CTC's forward recursion - not just the best path's.
"""
from pathlib import Path

import numpy as np

from kit.images.preprocess import INK_THRESHOLD, ink_bounding_box, resize_area
from kit.images.segment import connected_components, merge_overlapping_columns
from models.base import ImageError, Model, load_model
from models.reader import BLANK, STRIDE, digits_of, frames_of
from nn.ctc import ctc_forward, greedy_decode
from nn.errors import UserError, WeightsError

STRIP_HEIGHT = 28
INK_HEIGHT = 20       # px: the number's ink height on the strip
MARGIN = 4            # px of black left and right of the ink
_loaded = {}          # weights path -> (modification time, model)


def column_groups(grey):
    """[(left, right, top, bottom)] of the ink's column groups, left to right: the connected
    components, merged where their columns overlap (the pieces of one broken digit; digits
    written over each other), so no two groups share a column."""
    rows, starts, ends, labels = connected_components(grey > INK_THRESHOLD)
    count = int(labels.max()) + 1
    lefts = np.full(count, grey.shape[1]); np.minimum.at(lefts, labels, starts)
    rights = np.zeros(count, np.int64); np.maximum.at(rights, labels, ends + 1)
    tops = np.full(count, grey.shape[0]); np.minimum.at(tops, labels, rows)
    bottoms = np.zeros(count, np.int64); np.maximum.at(bottoms, labels, rows + 1)
    spans = list(zip(lefts.tolist(), rights.tolist()))
    return [(int(lefts[g].min()), int(rights[g].max()), int(tops[g].min()), int(bottoms[g].max()))
            for g in map(np.array, merge_overlapping_columns(spans))]


def level(grey):
    """float (H, W) ink -> (h, w): the column groups centred on one line, wide gaps narrowed."""
    found = column_groups(grey)
    groups = [(left, right) for left, right, _, _ in found]
    extents = [(top, bottom) for _, _, top, bottom in found]
    height = max(bottom - top for top, bottom in extents)
    widest_gap = max(1, height // 2)
    gaps = [min(widest_gap, b[0] - a[1]) for a, b in zip(groups, groups[1:])] + [0]
    width = sum(right - left for left, right in groups) + sum(gaps)
    out = np.zeros((height, width), np.float32)
    x = 0
    for (left, right), (top, bottom), gap in zip(groups, extents, gaps):
        offset = (height - (bottom - top)) // 2
        out[offset:offset + bottom - top, x:x + right - left] = grey[top:bottom, left:right]
        x += right - left + gap
    return out


def to_strip(image):
    """A drawing (uint8 (H, W), white ink on black) -> float32 (28, W') in [0, 1], W' a
    multiple of 4, the ink levelled and scaled to 20 px high; None when there is no ink."""
    grey = image.astype(np.float32) / np.float32(255)
    box = ink_bounding_box(grey, INK_THRESHOLD)
    if box is None:
        return None
    ink = level(grey)
    scale = INK_HEIGHT / ink.shape[0]
    # A very flat drawing (a dash) is capped at 4 px per column of the network's input.
    width = max(1, int(round(ink.shape[1] * scale)))
    width = min(width, 4096)
    resized = np.clip(resize_area(ink, INK_HEIGHT, width), 0.0, 1.0)
    total = -(-(width + 2 * MARGIN) // STRIDE) * STRIDE
    strip = np.zeros((STRIP_HEIGHT, total), np.float32)
    row = (STRIP_HEIGHT - INK_HEIGHT) // 2
    strip[row:row + INK_HEIGHT, MARGIN:MARGIN + width] = resized
    return strip


def read_strips(network, images, widths):
    """A reader network on strips float32 (N, 28, W), ``widths`` (N,) their own widths ->
    (N numbers as strings, (N,) float64 probability of each number)."""
    logits = network.infer(images[:, None])                          # (N, T, 11)
    frames = frames_of(widths)
    read, _ = greedy_decode(logits, frames, BLANK)
    lengths = np.array([len(labelling) for labelling in read], np.int64)
    targets = np.zeros((len(read), max(1, int(lengths.max(initial=0)))), np.int64)
    for n, labelling in enumerate(read):
        targets[n, :len(labelling)] = labelling
    losses, _ = ctc_forward(logits.astype(np.float64), targets, frames, lengths, BLANK, "none")
    return [digits_of(labelling) for labelling in read], np.exp(-np.asarray(losses, np.float64))


def load_reader(reader):
    """The reader model named ``reader`` (shipped weights) or in the weights file ``reader``."""
    try:
        model = load_model(reader)
    except WeightsError as error:
        if "has no shipped weights" in str(error):
            raise WeightsError(f"the reader {reader!r} has no shipped weights yet; train one with "
                               "python -m models.train --model reader --out runs/reader.npz and pass "
                               "reader='runs/reader.npz'") from None
        raise
    if model.spec.kind != "sequence":
        raise UserError(f"{reader!r} is the {model.title} model, which reads one digit, not a "
                        "number; give a reader (kind 'sequence'), e.g. reader='reader'")
    return model


def _cached_reader(reader):
    if isinstance(reader, Model):        # already loaded (the canvas's start-up warms it so)
        if reader.spec.kind != "sequence":
            raise UserError(f"the {reader.title} model reads one digit, not a number")
        return reader
    path = Path(str(reader))
    key = str(path.resolve()) if path.exists() else str(reader)
    stamp = path.stat().st_mtime_ns if path.exists() else None
    cached = _loaded.get(key)
    if cached is None or cached[0] != stamp:
        cached = (stamp, load_reader(reader))
        _loaded[key] = cached
    return cached[1]


def read_number_image(image, reader="reader"):
    """Read the whole number drawn in ``image`` with a reader model.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 (H, W), 0 black background to 255 white ink: the canvas as draw.py holds it
        (transposed from pygame's (x, y)).  Any size; digits may touch or overlap.
    reader : str, os.PathLike or Model
        A reader's name ("reader": its shipped weights), a weights file written by
        ``python -m models.train --model reader`` (or ``python -m models.training.reader``), or
        a reader already loaded with :func:`models.load_model`.

    Returns
    -------
    number : str
        The digits read, left to right ('' if the reader sees none).
    probability : float
        p(number | image) the reader gives that exact string, in [0, 1].

    Raises
    ------
    ImageError (a ValueError)
        One line naming the problem: not an array, not uint8, not 2-D, empty, no ink.
    WeightsError, UserError
        No such reader, no weights, or a per-digit model named instead of a reader.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a uint8 array (H, W), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ImageError(f"expected uint8 pixels 0..255, got {image.dtype}")
    if image.ndim != 2:
        raise ImageError(f"expected one grey image (H, W), got shape {image.shape}")
    if image.size == 0:
        raise ImageError(f"the image is empty (shape {image.shape})")
    strip = to_strip(image)
    if strip is None:
        raise ImageError("nothing to read: the image has no ink")
    model = _cached_reader(reader)
    numbers, probabilities = read_strips(model.network, strip[None],
                                         np.array([strip.shape[1]], np.int64))
    return numbers[0], float(probabilities[0])
