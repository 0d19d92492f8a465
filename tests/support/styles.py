"""Handwriting styles the shipped models misread, for the teaching study (bench/teach_study.py).

Each style is a person's way of writing one or two digits that is rare in MNIST's (mostly
American) hands.  A style lists, per digit, several *variants* - the same habit drawn a little
differently (where the bar crosses, how far a flag reaches) - and every drawing picks one and is
jittered like :func:`tests.support.handwriting.styled_strokes` (position, size, slant, every
point), so no two drawings are alike.  Drawings are made on a canvas of the drawing window's size
and brush and turned into 28 x 28 images by :func:`kit.images.segment.segment`, the function the
window calls on a real drawing.

Strokes are polylines in a unit box, (x, y) with y downwards.  The person's *other* digits are
the window's demo strokes (:data:`canvas.demo.DIGIT_STROKES`), which every shipped model reads
right; after teaching, those must still be read right.

None of these styles is the one tests/test_personal.py teaches (a 1 with a long flag and no base,
and a 7 with a bar through the stem).
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.images.segment import segment
from tests.support.handwriting import render_strokes, styled_strokes

CANVAS_SIZE = (400, 600)     # the drawing window's box: (rows, columns), canvas/app.py CANVAS_RECT
BRUSH = 15.0                 # its pen, canvas/app.py BRUSH


def arc(cx, cy, rx, ry, start_degrees, end_degrees, steps=24):
    """Points of an elliptic arc; angles clockwise from 12 o'clock (y points down)."""
    angles = np.radians(np.linspace(start_degrees, end_degrees, steps + 1))
    return [(cx + rx * math.sin(a), cy - ry * math.cos(a)) for a in angles]


@dataclass(frozen=True)
class Style:
    """A handwriting habit: ``variants[digit]`` is a list of stroke lists, one per variant."""
    name: str
    description: str
    variants: dict

    @property
    def digits(self):
        return sorted(self.variants)


STYLES = {style.name: style for style in [
    # Read as 8: a slash long enough to leave the oval makes the two loops of an 8.
    Style("slashed-zero", "0 with a slash through it, as programmers and Scandinavians write it", {
        0: [[arc(0.5, 0.5, 0.26, 0.42, 0, 360), [(0.1, 1.0), (0.9, 0.0)]],
            [arc(0.5, 0.5, 0.3, 0.42, 0, 360), [(0.12, 1.02), (0.86, -0.02)]],
            [arc(0.5, 0.5, 0.28, 0.44, 0, 360), [(0.12, 0.9), (0.88, 0.1)]]],
    }),
    # Read as 8: the tail's loop closes a second bowl under the first.
    Style("looped-nine", "9 whose tail loops back up, like a handwritten g", {
        9: [[arc(0.5, 0.28, 0.28, 0.24, 90, 450),
             [(0.78, 0.28), (0.76, 0.75), (0.6, 0.95), (0.35, 0.92), (0.3, 0.78), (0.5, 0.7), (0.78, 0.72)]],
            [arc(0.5, 0.26, 0.26, 0.22, 90, 450),
             [(0.76, 0.26), (0.76, 0.7), (0.55, 0.96), (0.3, 0.9), (0.32, 0.74), (0.55, 0.68), (0.8, 0.74)]]],
    }),
    # Read as 5: with square corners a 6 is a 5 whose lower bowl is closed on the left.
    Style("block-six", "6 in straight strokes with square corners, like a display digit", {
        6: [[[(0.8, 0.06), (0.2, 0.06), (0.2, 0.94), (0.8, 0.94), (0.8, 0.5), (0.2, 0.5)]],
            [[(0.75, 0.06), (0.25, 0.06), (0.2, 0.5), (0.2, 0.94), (0.8, 0.94), (0.8, 0.52), (0.2, 0.5)]]],
    }),
    # Read as 9: a closed, rounded top over a stem is what a 9 looks like in MNIST.
    Style("round-top-four", "4 with a rounded closed top and the crossbar running past the stem", {
        4: [[[(0.7, 0.6), (0.3, 0.6), (0.2, 0.45), (0.3, 0.2), (0.55, 0.06), (0.7, 0.06), (0.7, 0.95)],
             [(0.7, 0.6), (0.9, 0.6)]],
            [[(0.68, 0.56), (0.36, 0.58), (0.22, 0.48), (0.22, 0.28), (0.36, 0.1), (0.56, 0.04), (0.68, 0.1),
              (0.7, 0.96)], [(0.68, 0.56), (0.9, 0.54)]]],
    }),
    # Read as 3: the curl at the foot of the stem looks like a 3's lower bowl.
    Style("curled-seven", "7 whose stem curls back to the left at the bottom", {
        7: [[[(0.2, 0.08), (0.8, 0.08), (0.54, 0.56), (0.44, 0.88), (0.3, 0.97), (0.16, 0.9), (0.2, 0.78)]],
            [[(0.16, 0.1), (0.84, 0.08), (0.56, 0.5), (0.46, 0.86), (0.34, 0.96), (0.18, 0.9), (0.2, 0.8)]]],
    }),
]}


@dataclass(frozen=True)
class TypesetStyle:
    """Digits set in a typeface instead of drawn from strokes: the cross-check's second generator.

    Each drawing is the font's glyph at a random size (200-300 px, as tall as a drawn digit) and
    turn (+-10 degrees) at a random place on the canvas, ink thresholded to white.  Its stroke
    width is the font's, not the pen's.  ``font`` is a file path, or None for pygame's bundled
    font (freesansbold.ttf, so the style exists wherever pygame installs)."""
    name: str
    description: str
    digits: tuple
    font: str = None

    def available(self):
        return self.font is None or Path(self.font).is_file()

    def draw(self, digit, rng):
        import pygame
        pygame.font.init()
        font = pygame.font.Font(self.font or pygame.font.get_default_font(), int(rng.integers(200, 301)))
        glyph = font.render(str(digit), True, (255, 255, 255), (0, 0, 0))
        glyph = pygame.transform.rotozoom(glyph, float(rng.uniform(-10, 10)), 1.0)
        ink = pygame.surfarray.array3d(glyph)[:, :, 0].T[:CANVAS_SIZE[0], :CANVAS_SIZE[1]]   # (h, w)
        canvas = np.zeros(CANVAS_SIZE, np.uint8)
        top = int(rng.integers(0, CANVAS_SIZE[0] - ink.shape[0] + 1))
        left = int(rng.integers(0, CANVAS_SIZE[1] - ink.shape[1] + 1))
        canvas[top:top + ink.shape[0], left:left + ink.shape[1]] = np.where(ink > 127, 255, 0)
        return canvas


# The typeset digits the shipped models misread, of every digit in pygame's font and five DejaVu
# faces (12 drawings each, 2026-12-06): only these two fooled any model half the time or more.
TYPESET_STYLES = {style.name: style for style in [
    TypesetStyle("sans-bold-one", "1 in pygame's bold sans font: a long flag and no base", (1,)),
    TypesetStyle("serif-bold-four", "4 in DejaVu Serif Bold: a closed top and serifs", (4,),
                 "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf"),
]}


def style_drawing(style, digit, rng, variant=None):
    """A uint8 canvas (CANVAS_SIZE) with one jittered drawing of ``digit`` in ``style``
    (a random variant unless ``variant`` is given)."""
    if isinstance(style, TypesetStyle):
        return style.draw(digit, rng)
    choices = style.variants[digit]
    strokes = choices[rng.integers(len(choices)) if variant is None else variant]
    return render_strokes(styled_strokes(digit, rng, CANVAS_SIZE, {digit: strokes}), CANVAS_SIZE, BRUSH)


def as_the_window_sees_it(canvas):
    """The one digit of ``canvas`` as the drawing window reads it: float32 (28, 28); None when the
    window would not see exactly one digit."""
    pieces = segment(canvas)
    return pieces[0].image if len(pieces) == 1 else None


def style_images(style, rng, count, digits=None):
    """``count`` drawings in ``style``, cycling over its digits: (float32 (count, 28, 28), (count,)).

    A drawing the window would split into several digits is drawn again (its rng moves on).
    """
    digits = style.digits if digits is None else digits
    images, labels = [], []
    while len(images) < count:
        digit = digits[len(images) % len(digits)]
        image = as_the_window_sees_it(style_drawing(style, digit, rng))
        if image is not None:
            images.append(image)
            labels.append(digit)
    return np.stack(images), np.array(labels, dtype=np.int64)


def plain_images(rng, per_digit, exclude=()):
    """The person's other digits, drawn with the window's demo strokes (read right by every shipped
    model), ``per_digit`` of each digit not in ``exclude``: (float32 (N, 28, 28), (N,))."""
    from canvas.demo import DIGIT_STROKES
    images, labels = [], []
    for digit in sorted(set(DIGIT_STROKES) - set(exclude)):
        made = 0
        while made < per_digit:
            canvas = render_strokes(styled_strokes(digit, rng, CANVAS_SIZE, DIGIT_STROKES), CANVAS_SIZE, BRUSH)
            image = as_the_window_sees_it(canvas)
            if image is not None:
                images.append(image)
                labels.append(digit)
                made += 1
    return np.stack(images), np.array(labels, dtype=np.int64)
