"""Scripted drawing: digits as pen strokes, and the mouse events that would draw them.

Used by ``draw.py --demo``, the latency benchmark and the tests, so that a headless run draws
through exactly the same event handling as a person with a mouse.
"""
import math

import pygame


def _ellipse(cx, cy, rx, ry, steps=32):
    return [(cx + rx * math.sin(2 * math.pi * k / steps), cy - ry * math.cos(2 * math.pi * k / steps))
            for k in range(steps + 1)]


# Each digit: a list of strokes; each stroke a polyline in a unit box, (x, y) with y downwards.
DIGIT_STROKES = {
    0: [_ellipse(0.5, 0.5, 0.28, 0.42)],
    1: [[(0.56, 0.08), (0.46, 0.92)]],
    2: [[(0.25, 0.28), (0.33, 0.14), (0.5, 0.08), (0.68, 0.14), (0.74, 0.3), (0.66, 0.46),
         (0.45, 0.66), (0.24, 0.9), (0.8, 0.9)]],
    3: [[(0.26, 0.16), (0.48, 0.08), (0.7, 0.16), (0.72, 0.32), (0.5, 0.46), (0.72, 0.58),
         (0.76, 0.76), (0.55, 0.92), (0.26, 0.86)]],
    4: [[(0.32, 0.08), (0.24, 0.56), (0.8, 0.56)], [(0.66, 0.1), (0.64, 0.92)]],
    5: [[(0.74, 0.1), (0.34, 0.1), (0.3, 0.44), (0.52, 0.4), (0.7, 0.5), (0.75, 0.7),
         (0.62, 0.88), (0.42, 0.92), (0.25, 0.84)]],
    6: [[(0.68, 0.08), (0.46, 0.24), (0.32, 0.48), (0.28, 0.72), (0.4, 0.9), (0.6, 0.9),
         (0.72, 0.74), (0.66, 0.56), (0.48, 0.5), (0.3, 0.62)]],
    7: [[(0.22, 0.1), (0.78, 0.1), (0.44, 0.92)]],
    8: [[(0.5, 0.08), (0.3, 0.18), (0.33, 0.36), (0.5, 0.48), (0.7, 0.6), (0.72, 0.8),
         (0.5, 0.92), (0.28, 0.8), (0.3, 0.6), (0.5, 0.48), (0.67, 0.36), (0.7, 0.18), (0.5, 0.08)]],
    9: [[(0.7, 0.24), (0.55, 0.09), (0.35, 0.12), (0.28, 0.3), (0.4, 0.45), (0.6, 0.42),
         (0.7, 0.24), (0.68, 0.55), (0.62, 0.92)]],
}


def stroke_events(strokes, box, step=12.0):
    """Mouse events (button down, motions, button up) that draw ``strokes`` inside ``box``.

    Parameters
    ----------
    strokes : list of list of (x, y)
        Polylines in window pixels, or in a unit box if ``box`` is given.
    box : pygame.Rect or None
        Where the unit box goes on the window.
    step : float
        Distance in pixels between consecutive motion events, like a moving mouse.
    """
    events = []
    for stroke in strokes:
        points = [(box.x + x * box.width, box.y + y * box.height) if box else (x, y)
                  for x, y in stroke]
        path = [points[0]]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            count = max(1, int(math.hypot(x1 - x0, y1 - y0) // step))
            path += [(x0 + (x1 - x0) * k / count, y0 + (y1 - y0) * k / count) for k in range(1, count + 1)]
        path = [(int(round(x)), int(round(y))) for x, y in path]
        events.append(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=path[0], button=1))
        for previous, position in zip(path, path[1:]):
            events.append(pygame.event.Event(pygame.MOUSEMOTION, pos=position, buttons=(1, 0, 0),
                                             rel=(position[0] - previous[0], position[1] - previous[1])))
        events.append(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=path[-1], button=1))
    return events


def digit_events(digit, box):
    """The mouse events that draw the built-in ``digit`` (0-9) inside ``box``."""
    return stroke_events(DIGIT_STROKES[digit], box)


def number_boxes(text, area):
    """Where each digit of ``text`` goes when written across ``area`` (pygame.Rect): one slot per
    digit, the digit 3/4 of the slot wide and 1.5 times as tall as wide (at most 80 % of the
    area's height), centred in it, so neighbours never touch."""
    slot = area.width / len(text)
    width = 0.75 * slot
    height = min(0.8 * area.height, 1.5 * width)
    width = height / 1.5
    top = area.y + (area.height - height) / 2
    return [pygame.Rect(int(area.x + k * slot + (slot - width) / 2), int(top), int(width), int(height))
            for k in range(len(text))]


def ink_extent(digit):
    """(left, right) of the built-in ``digit``'s strokes in its unit box (pen width not included)."""
    xs = [x for stroke in DIGIT_STROKES[digit] for x, _ in stroke]
    return min(xs), max(xs)


def touching_boxes(text, area, brush=15, overlap=0.05):
    """Where each digit of ``text`` goes so that neighbours touch: each digit's ink (its strokes
    and half the ``brush`` either side) starts ``overlap`` box widths before the previous one's
    ends, so their columns overlap and their strokes meet - as people write in a hurry.  The
    digits are 1.5 times as tall as wide, as large as ``area`` allows (at most 80 % of its
    height), and centred in it."""
    extents = [ink_extent(int(d)) for d in text]
    spans = sum(right - left for left, right in extents) - overlap * (len(text) - 1)  # in widths
    width = min((area.width - len(text) * brush) / spans, 0.8 * area.height / 1.5)
    total = spans * width + len(text) * brush
    x = area.x + (area.width - total) / 2            # where the first digit's ink starts
    top = area.y + (area.height - 1.5 * width) / 2
    boxes = []
    for left, right in extents:
        box_x = x + brush / 2 - left * width
        boxes.append(pygame.Rect(int(round(box_x)), int(top), int(width), int(1.5 * width)))
        x = box_x + right * width + brush / 2 - overlap * width
    return boxes


def number_events(text, area, touching=False, overlap=0.05):
    """The mouse events that write the number ``text`` (e.g. '2026') across ``area``: the digits
    apart (:func:`number_boxes`), or touching their neighbours (:func:`touching_boxes`)."""
    boxes = touching_boxes(text, area, overlap=overlap) if touching else number_boxes(text, area)
    events = []
    for digit, box in zip(text, boxes):
        events += digit_events(int(digit), box)
    return events


def key_event(key):
    """A KEYDOWN event for a pygame key constant, e.g. ``pygame.K_p``."""
    return pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0)
