"""Splitting a drawing of a whole number ("2026") into its digits, NumPy only.

1. ink = grey > ``INK_THRESHOLD`` (as :mod:`kit.images.preprocess` counts ink);
2. connected components of the ink, 8-connected, found on horizontal runs: each row's runs of
   ink pixels are the nodes, a run touches a run of the next row when their column ranges
   overlap or meet diagonally (``start_b <= end_a + 1`` and ``start_a <= end_b + 1``, ends
   inclusive), and vectorised hooking and pointer jumping joins touching runs.  A 600 x 400
   canvas has a few thousand runs, so this is about a millisecond where pixel-by-pixel label
   propagation would need one NumPy pass per pixel of the longest stroke;
3. pieces whose column ranges overlap are merged (a 4 or a 5 drawn in two strokes that do not
   touch, the dot-like end of a broken stroke above its digit), repeatedly, until no two
   overlap;
4. fragments - pieces less than half as tall as the median piece, or thinner than a tenth of
   its height - join the nearer neighbour when the gap is under 0.35 median heights (the flag
   of a 5 written beside its body, a 1 broken lengthwise: :func:`join_fragments`);
5. specks - pieces with less than ``MIN_FRACTION`` of the largest piece's ink - are dropped;
6. the pieces, ordered left to right, are each preprocessed MNIST-style on their own
   (:func:`kit.images.preprocess.preprocess_canvas` of the canvas with every other piece's ink
   removed): crop, 20 px box, centre of mass at (14, 14).

One piece gives exactly what ``preprocess_canvas(canvas)`` gives for the whole canvas: a single
digit is read as before.  Digits that touch each other form one piece and are read as one
(wrongly); the bench (``bench/segment_numbers.py``) measures how often.  :func:`wide_pieces`
says which pieces are too wide for one digit - touching digits, most likely - so a caller can
say that a reader of the whole line (:mod:`models.reading`) is the one to trust there.
"""
from typing import NamedTuple

import numpy as np

from kit.images.preprocess import INK_THRESHOLD, preprocess_canvas, to_grey

MIN_FRACTION = 0.02      # pieces with less ink than this share of the largest piece's are specks
# A piece wider than this many times its height is taken for several digits: 1.3 % of MNIST's
# test digits are (wide 2s and 7s; measured on their ink boxes), two touching digits side by
# side on one line are about 1.2-1.6.
WIDE_RATIO = 1.25


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


def touching_runs(rows, starts, ends, width):
    """Pairs (a, b) of runs, b in the row below a's, that touch (8-connectivity), found for all
    rows at once.

    Runs are ordered row-major, so with keys ``row * (width + 2) + column`` the runs of row y + 1
    whose end is >= start_a - 1 are a suffix of the sorted end keys and those whose start is
    <= end_a + 1 a prefix of the sorted start keys: each run's partners are one index range
    [lo, hi), found with two binary searches.

    Returns
    -------
    a, b : numpy.ndarray
        int64 (E,) each.
    """
    stride = width + 2
    start_key, end_key = rows * stride + starts, rows * stride + ends      # both sorted
    lo = np.searchsorted(end_key, (rows + 1) * stride + starts - 1, side="left")
    hi = np.searchsorted(start_key, (rows + 1) * stride + ends + 1, side="right")
    counts = np.maximum(hi - lo, 0)                                         # (R,)
    a = np.repeat(np.arange(len(rows)), counts)
    first = np.repeat(lo, counts)
    offsets = np.arange(len(a)) - np.repeat(np.cumsum(counts) - counts, counts)
    return a, first + offsets


def connected_components(ink):
    """Label the 8-connected components of a (H, W) bool array.

    The runs are joined by hooking and pointer jumping (Shiloach-Vishkin style, vectorised):
    each round points the larger of two touching runs' roots at the smaller, then flattens every
    path to its root, until every touching pair shares a root - a few rounds, each a handful of
    NumPy calls over all runs and pairs.

    Returns
    -------
    rows, starts, ends, labels : numpy.ndarray
        The runs of :func:`ink_runs` and, (R,) int64, each run's component number 0..K-1,
        numbered in order of each component's first run.
    """
    rows, starts, ends = ink_runs(ink)
    parent = np.arange(len(rows))
    if len(rows):
        a, b = touching_runs(rows, starts, ends, ink.shape[1])
        while True:
            root_a, root_b = parent[a], parent[b]
            differ = root_a != root_b
            if not differ.any():
                break
            np.minimum.at(parent, np.maximum(root_a[differ], root_b[differ]),
                          np.minimum(root_a[differ], root_b[differ]))
            while True:                                        # flatten: every run -> its root
                jumped = parent[parent]
                if np.array_equal(jumped, parent):
                    break
                parent = jumped
    _, labels = np.unique(parent, return_inverse=True)
    return rows, starts, ends, labels.reshape(-1).astype(np.int64)


def label_image(shape, rows, starts, ends, labels):
    """(H, W) int32 map: component number + 1 on each run's pixels, 0 elsewhere (painted by a
    cumulative sum of +label at each run's start and -label just after its end)."""
    marks = np.zeros((shape[0], shape[1] + 1), dtype=np.int32)
    np.add.at(marks, (rows, starts), labels + 1)
    np.add.at(marks, (rows, ends + 1), -(labels + 1))
    return np.cumsum(marks, axis=1, dtype=np.int32)[:, :-1]


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
    groups = join_fragments(groups, lefts, rights, rows, labels)
    painted = label_image(grey.shape, rows, starts, ends, labels)            # (H, W)
    result = []
    for members in groups:
        mine = np.isin(labels, members)
        top, bottom = int(rows[mine].min()), int(rows[mine].max()) + 1
        left, right = int(starts[mine].min()), int(ends[mine].max()) + 1
        own = np.isin(painted[top:bottom, left:right], np.asarray(members) + 1)   # its ink only
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


def wide_pieces(pieces, ratio=WIDE_RATIO):
    """Indexes of the pieces too wide for one digit: box width > ``ratio`` x box height.

    Such a piece is most likely digits that touch (or overlap), which splitting cannot
    separate.  Digits that touch at different heights make a taller piece and may pass
    unnoticed: the test is a hint, not a guarantee.
    """
    return [k for k, piece in enumerate(pieces)
            if piece.box[3] - piece.box[2] > ratio * (piece.box[1] - piece.box[0])]


def join_fragments(groups, lefts, rights, rows, labels):
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
