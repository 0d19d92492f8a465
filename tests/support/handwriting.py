"""A scripted "person": pen strokes with a consistent personal style, rendered without pygame.

Used to test teaching (issue 11: a person whose handwriting the shipped models misread teaches
them on the spot) and usable for any experiment that needs drawings rather than MNIST scans.
Strokes are polylines in a unit box, (x, y) with y downwards, like :mod:`canvas.demo`'s; each
drawing is jittered (position, size, slant, every point) so no two are alike.
"""
import numpy as np

# The style, as written in much of Europe: 1s with a long flag (which the shipped models read as
# 7s: measured 100 % of the CNN's and the LSTM's answers on 20 such 1s) and, to tell them
# apart, 7s with a bar through the stem (read right).  Both are rare in MNIST's American hands.
STYLE_STROKES = {
    1: [[(0.02, 0.4), (0.62, 0.05), (0.62, 0.94)]],
    7: [[(0.2, 0.12), (0.8, 0.12), (0.42, 0.92)], [(0.38, 0.52), (0.82, 0.52)]],
}


def render_strokes(strokes, size=(400, 400), brush=15.0):
    """Polylines in pixel coordinates -> a uint8 (H, W) canvas, white capsules of ``brush`` px.

    Pixel (x, y) - its integer coordinates, as pygame's drawing uses - is ink when its distance
    to some segment is at most brush / 2.
    """
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ink = np.zeros((height, width), dtype=bool)
    radius = brush / 2
    for stroke in strokes:
        points = np.asarray(stroke, dtype=np.float32)
        if len(points) == 1:
            points = np.vstack([points, points])
        for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
            left, right = int(max(0, min(x0, x1) - radius - 1)), int(min(width, max(x0, x1) + radius + 2))
            top, bottom = int(max(0, min(y0, y1) - radius - 1)), int(min(height, max(y0, y1) + radius + 2))
            if left >= right or top >= bottom:
                continue
            px, py = xs[top:bottom, left:right], ys[top:bottom, left:right]
            dx, dy = x1 - x0, y1 - y0
            length2 = dx * dx + dy * dy
            t = np.zeros_like(px) if length2 == 0 else np.clip(((px - x0) * dx + (py - y0) * dy) / length2, 0, 1)
            distance2 = (px - x0 - t * dx) ** 2 + (py - y0 - t * dy) ** 2
            ink[top:bottom, left:right] |= distance2 <= radius * radius
    return (ink * np.uint8(255)).astype(np.uint8)


def styled_strokes(digit, rng, size=(400, 400), styles=STYLE_STROKES):
    """The strokes of one jittered drawing of ``digit`` in pixels of a ``size`` canvas.

    Jitter: box height 150-330 px, width 0.55-0.8 of it, anywhere on the canvas; a slant of
    -0.15..0.15; each point moved by up to 3 % of the box.
    """
    height, width = size
    box_h = rng.uniform(150, min(330, height - 20))
    box_w = box_h * rng.uniform(0.55, 0.8)
    top = rng.uniform(10, height - box_h - 10)
    left = rng.uniform(10, width - box_w - 10)
    slant = rng.uniform(-0.15, 0.15)
    strokes = []
    for stroke in styles[digit]:
        points = np.asarray(stroke, dtype=np.float64) + rng.uniform(-0.03, 0.03, (len(stroke), 2))
        x = left + box_w * (points[:, 0] + slant * (0.5 - points[:, 1]))
        y = top + box_h * points[:, 1]
        strokes.append(list(zip(x.tolist(), y.tolist())))
    return strokes


def styled_drawing(digit, rng, size=(400, 400), brush=15.0, styles=STYLE_STROKES):
    """A uint8 (H, W) canvas with one jittered drawing of ``digit`` in the person's style."""
    return render_strokes(styled_strokes(digit, rng, size, styles), size, brush)
