"""Turning a drawing into an MNIST-style 28x28 image, the way MNIST itself was made.

LeCun, Cortes and Burges describe MNIST's preparation: the NIST digits "were size normalized to
fit in a 20x20 pixel box while preserving their aspect ratio.  The resulting images contain grey
levels as a result of the anti-aliasing technique used by the normalization algorithm.  The images
were centered in a 28x28 image by computing the center of mass of the pixels, and translating the
image so as to position this point at the center of the 28x28 field."

:func:`preprocess_canvas` does exactly that to a canvas of any size:

1. grey levels in [0, 1] (uint8 / 255; RGB averaged over its channels);
2. crop to the ink's bounding box (every pixel brighter than ``INK_THRESHOLD``);
3. resample the box so its longer side is 20 px and the shorter one keeps the aspect ratio,
   by exact area averaging (:func:`resize_area`): each output pixel is the mean of the input
   area it covers, fractional pixels weighted by their overlap - the anti-aliasing that gives
   MNIST its grey edges, and a constant region stays that constant;
4. paste into a black 28x28 field so that the intensity-weighted centre of mass, (row, column),
   lands on (14, 14), shifting by whole pixels (the rounded offset).  (14, 14) is where MNIST's
   own digits have it: 13.99 +- 0.29 rows and 14.01 +- 0.29 columns over the test set.  The shift
   is limited so that no ink leaves the field.

The 2-D arrays here are (row, column) = (y, x).  pygame's ``surfarray`` gives (x, y): transpose
before calling (draw.py does).  NumPy only, no pygame: importable without a window.
"""
import numpy as np

FIELD = 28          # side of the output image
BOX = 20            # the digit's longer side after size normalisation
CENTRE = 14.0       # where the centre of mass goes, in pixel-index coordinates (row and column)
INK_THRESHOLD = 0.5 / 255   # brighter than this counts as ink (uint8: any non-zero pixel)


def to_grey(canvas):
    """A canvas as float32 grey levels (H, W) in [0, 1].

    Parameters
    ----------
    canvas : array_like
        (H, W) grey or (H, W, 3) / (H, W, 4) colour; uint8 in 0..255, or float in [0, 1].
        Colour is averaged over R, G, B (alpha ignored).
    """
    array = np.asarray(canvas)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[:, :, :3]
    elif array.ndim != 2:
        raise ValueError(f"expected a 2-D grey or (H, W, 3) RGB canvas, got shape {array.shape}")
    if array.dtype == np.uint8:
        grey = array.astype(np.float32) / np.float32(255)
    elif array.dtype == np.bool_:
        grey = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"integer canvases must be uint8 (0..255), got {array.dtype}")
    else:
        grey = np.clip(np.asarray(array, dtype=np.float32), 0.0, 1.0)   # a new array
    if grey.ndim == 3:
        grey = grey.mean(axis=2, dtype=np.float32)
    return grey


def ink_bounding_box(grey, threshold=INK_THRESHOLD):
    """(top, bottom, left, right), bottom/right exclusive, of pixels > threshold; None if none."""
    ink = grey > threshold
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def area_weights(n_in, n_out):
    """The (n_out, n_in) matrix of exact area averaging along one axis.

    Output pixel i covers the input interval [i s, (i + 1) s), s = n_in / n_out; its value is
    the mean of the input over that interval, each input pixel k = [k, k + 1) weighted by its
    overlap:  A[i, k] = |[k, k+1) & [i s, (i+1) s)| / s.  Rows sum to 1.  Works both ways:
    shrinking averages several pixels, enlarging splits one pixel over several.
    """
    scale = n_in / n_out
    starts = np.arange(n_out)[:, None] * scale          # (n_out, 1)
    ends = starts + scale
    k = np.arange(n_in)[None, :]                         # (1, n_in)
    overlap = np.clip(np.minimum(ends, k + 1) - np.maximum(starts, k), 0.0, None)
    return overlap / scale                               # float64: exact weights


def resize_area(image, height, width):
    """Resample (H, W) to (height, width) by exact area averaging: A_rows @ image @ A_cols^T."""
    rows = area_weights(image.shape[0], height)          # (height, H)
    cols = area_weights(image.shape[1], width)           # (width, W)
    return (rows @ image.astype(np.float64) @ cols.T).astype(np.float32)


def fit_box(height, width, box=BOX):
    """The size of a height x width region scaled so its longer side is ``box``, keeping aspect."""
    scale = box / max(height, width)
    return max(1, min(box, int(round(height * scale)))), max(1, min(box, int(round(width * scale))))


def centre_of_mass(image):
    """Intensity-weighted centre (row, column) of a 2-D image with some non-zero pixel."""
    total = image.sum(dtype=np.float64)
    row = (image.sum(axis=1, dtype=np.float64) * np.arange(image.shape[0])).sum() / total
    col = (image.sum(axis=0, dtype=np.float64) * np.arange(image.shape[1])).sum() / total
    return row, col


def preprocess_canvas(canvas, threshold=INK_THRESHOLD):
    """A drawing (white ink on black, any size) -> the MNIST-style float32 (28, 28) in [0, 1].

    Parameters
    ----------
    canvas : array_like
        (H, W) grey or (H, W, 3) RGB, uint8 0..255 or float 0..1, indexed (row, column).
    threshold : float
        Grey level above which a pixel counts as ink when finding the bounding box.

    Returns
    -------
    numpy.ndarray or None
        float32 (28, 28): the digit's bounding box area-resampled to a longer side of 20 px,
        placed so its centre of mass is at (14, 14).  **None** when the canvas has no ink (an
        empty drawing has no digit to recognise; callers say so instead of predicting).
    """
    grey = to_grey(canvas)
    box = ink_bounding_box(grey, threshold)
    if box is None:
        return None
    top, bottom, left, right = box
    height, width = fit_box(bottom - top, right - left)
    digit = resize_area(grey[top:bottom, left:right], height, width)   # (height, width)
    digit = np.clip(digit, 0.0, 1.0)
    if digit.sum() <= 0:  # only possible for ink below float precision: treat as empty
        return None
    row, col = centre_of_mass(digit)
    # Top-left corner that puts the centre of mass on (14, 14), rounded to whole pixels and
    # kept inside the field.
    y0 = int(np.clip(np.round(CENTRE - row), 0, FIELD - height))
    x0 = int(np.clip(np.round(CENTRE - col), 0, FIELD - width))
    image = np.zeros((FIELD, FIELD), dtype=np.float32)
    image[y0:y0 + height, x0:x0 + width] = digit
    return image
