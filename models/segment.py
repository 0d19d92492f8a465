"""Splitting a drawing of a whole number ("2026") into its digits, NumPy only.

1. ink = grey > ``INK_THRESHOLD`` (as :mod:`models.preprocess` counts ink);
2. connected components of the ink, 8-connected, found on horizontal runs: each row's runs of
   ink pixels are the nodes, a run touches a run of the next row when their column ranges
   overlap or meet diagonally (``start_b <= end_a + 1`` and ``start_a <= end_b + 1``, ends
   inclusive), and a union-find joins touching runs.  A 600 x 400 canvas has a few thousand
   runs, so this is milliseconds where pixel-by-pixel label propagation would need one NumPy
   pass per pixel of the longest stroke;
3. pieces whose column ranges overlap are merged (a 4 or a 5 drawn in two strokes that do not
   touch, the dot-like end of a broken stroke above its digit), repeatedly, until no two
   overlap;
4. specks - pieces with less than ``MIN_FRACTION`` of the largest piece's ink - are dropped;
5. the pieces, ordered left to right, are each preprocessed MNIST-style on their own
   (:func:`models.preprocess.preprocess_canvas` of the canvas with every other piece's ink
   removed): crop, 20 px box, centre of mass at (14, 14).

One piece gives exactly what ``preprocess_canvas(canvas)`` gives for the whole canvas: a single
digit is read as before.  Digits that touch each other form one piece and are read as one
(wrongly); the bench (``bench/segment_numbers.py``) measures how often.
"""
from typing import NamedTuple

import numpy as np

from models.preprocess import INK_THRESHOLD, preprocess_canvas, to_grey

MIN_FRACTION = 0.02      # pieces with less ink than this share of the largest piece's are specks


class Piece(NamedTuple):
    """One digit of the drawing.

    box   : (top, bottom, left, right) in canvas pixels, bottom/right exclusive
    image : float32 (28, 28) in [0, 1], the piece preprocessed MNIST-style
    """
    box: tuple
    image: np.ndarray


def ink_runs(ink):
    """Every horizontal run of True in a (H, W) bool array.

    Returns
    -------
    rows, starts, ends : numpy.ndarray
        int64 (R,) each: run r covers columns starts[r]..ends[r] (inclusive) of row rows[r],
        ordered by row, then column.
    """
    padded = np.zeros((ink.shape[0], ink.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = ink
    edges = np.diff(padded, axis=1)                       # (H, W + 1): +1 run starts, -1 ends
    start_rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)                     # same order: row-major, one per start
    return start_rows.astype(np.int64), starts.astype(np.int64), ends.astype(np.int64) - 1


def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]                     # path halving
        i = parent[i]
    return i


def connected_components(ink):
    """Label the 8-connected components of a (H, W) bool array.

    Returns
    -------
    rows, starts, ends, labels : numpy.ndarray
        The runs of :func:`ink_runs` and, (R,) int64, each run's component number 0..K-1.
    """
    rows, starts, ends = ink_runs(ink)
    count = len(rows)
    parent = list(range(count))
    if count:
        # Runs of row y are rows_index[y]:rows_index[y + 1].
        rows_index = np.searchsorted(rows, np.arange(ink.shape[0] + 1))
        for y in range(ink.shape[0] - 1):
            a0, a1 = rows_index[y], rows_index[y + 1]
            b0, b1 = rows_index[y + 1], rows_index[y + 2]
            if a0 == a1 or b0 == b1:
                continue
            touch = ((starts[b0:b1][None, :] <= ends[a0:a1][:, None] + 1)
                     & (starts[a0:a1][:, None] <= ends[b0:b1][None, :] + 1))   # (A, B)
            for i, j in zip(*np.nonzero(touch)):
                root_a, root_b = _find(parent, a0 + i), _find(parent, b0 + j)
                if root_a != root_b:
                    parent[max(root_a, root_b)] = min(root_a, root_b)
    roots = np.array([_find(parent, i) for i in range(count)], dtype=np.int64)
    _, labels = np.unique(roots, return_inverse=True)
    return rows, starts, ends, labels.reshape(-1).astype(np.int64)


def merge_overlapping_columns(spans):
    """Groups of (left, right) column spans (right exclusive) whose ranges overlap, transitively.

    Returns a list of index lists, ordered by their leftmost column.
    """
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    groups, right = [], None
    for i in order:
        left, end = spans[i]
        if groups and left < right:
            groups[-1].append(i)
            right = max(right, end)
        else:
            groups.append([i])
            right = end
    return groups


def segment(canvas, threshold=INK_THRESHOLD, min_fraction=MIN_FRACTION):
    """The digits of a drawing, left to right.

    Parameters
    ----------
    canvas : array_like
        (H, W) grey or (H, W, 3) RGB, uint8 0..255 or float 0..1, white ink on black.
    threshold : float
        Grey level above which a pixel is ink.
    min_fraction : float
        Pieces with less ink (summed grey) than this share of the largest piece's are dropped.

    Returns
    -------
    list of Piece
        Empty for an empty canvas.
    """
    grey = to_grey(canvas)                                # (H, W) float32
    ink = grey > threshold
    rows, starts, ends, labels = connected_components(ink)
    if len(rows) == 0:
        return []
    count = int(labels.max()) + 1
    lefts = np.full(count, np.iinfo(np.int64).max)
    rights = np.zeros(count, dtype=np.int64)
    np.minimum.at(lefts, labels, starts)
    np.maximum.at(rights, labels, ends + 1)
    groups = merge_overlapping_columns(list(zip(lefts.tolist(), rights.tolist())))
    if len(groups) == 1:                                  # one digit: exactly as before
        image = preprocess_canvas(grey, threshold)
        if image is None:
            return []
        top, bottom = int(rows.min()), int(rows.max()) + 1
        return [Piece((top, bottom, int(lefts.min()), int(rights.max())), image)]
    groups = join_fragments(groups, lefts, rights, rows, labels, grey, ink)
    result = []
    for members in groups:
        mine = np.flatnonzero(np.isin(labels, members))
        top, bottom = int(rows[mine].min()), int(rows[mine].max()) + 1
        left, right = int(starts[mine].min()), int(ends[mine].max()) + 1
        own = np.zeros((bottom - top, right - left), dtype=bool)   # this piece's ink in its box
        for r in mine:
            own[rows[r] - top, starts[r] - left:ends[r] + 1 - left] = True
        crop = np.where(own, grey[top:bottom, left:right], np.float32(0))
        result.append(((top, bottom, left, right), crop, float(crop.sum(dtype=np.float64))))
    largest = max(mass for _, _, mass in result)
    pieces = []
    for box, crop, mass in result:
        if mass < min_fraction * largest:
            continue
        image = preprocess_canvas(crop, threshold)
        if image is not None:
            pieces.append(Piece(box, image))
    return pieces


def join_fragments(groups, lefts, rights, rows, labels, grey, ink):
    """Join each fragment to its nearer neighbour: the broken-off bits of a digit whose columns
    do not overlap the rest of it (the flag of a 5 beside its body, a 1 split lengthwise).

    A fragment is a group less than half as tall as the median group, or thinner than a tenth
    of the median height (a real stroke is wider than that); it joins the neighbour with the
    smaller horizontal gap if that gap is under ``0.35 x`` the median height.  Returns the new
    list of groups (lists of component numbers), still ordered left to right.
    """
    def extent(members):
        mine = np.isin(labels, members)
        return (int(rows[mine].min()), int(rows[mine].max()) + 1,
                int(lefts[members].min()), int(rights[members].max()))
    groups = [list(g) for g in groups]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        boxes = [extent(g) for g in groups]
        heights = np.array([b[1] - b[0] for b in boxes], dtype=np.float64)
        median = float(np.median(heights))
        for k, (top, bottom, left, right) in enumerate(boxes):
            fragment = (bottom - top) < 0.5 * median or (right - left) < 0.1 * median
            if not fragment:
                continue
            gaps = []
            if k > 0:
                gaps.append((left - boxes[k - 1][3], k - 1))
            if k + 1 < len(groups):
                gaps.append((boxes[k + 1][2] - right, k + 1))
            gap, other = min(gaps)
            if gap < 0.35 * median:
                first, second = sorted((k, other))
                groups[first] = groups[first] + groups[second]
                del groups[second]
                changed = True
                break
    return groups


def read_number(probabilities):
    """A whole number's reading from its digits' probabilities.

    Parameters
    ----------
    probabilities : numpy.ndarray
        (K, C): each digit's class probabilities, left to right.

    Returns
    -------
    text : str
        The K argmax digits, e.g. '2026'.
    probability : float
        The product of the K chosen digits' probabilities: the model's probability of the whole
        number if the digits are read independently.
    """
    probabilities = np.asarray(probabilities)
    digits = probabilities.argmax(axis=1)
    chosen = probabilities[np.arange(len(digits)), digits].astype(np.float64)
    return "".join(str(int(d)) for d in digits), float(np.prod(chosen))
