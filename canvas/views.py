"""Drawing on pygame surfaces: strokes, images, bar charts, tile grids, and the three panels.

Every function draws into a given ``pygame.Rect`` of a surface and keeps no state, so the app
decides what goes where.  Images come in as NumPy (row, column) arrays; pygame's surfarray wants
(x, y), hence the transposes in :func:`grey_surface`.
"""
import math

import numpy as np
import pygame

from canvas.study import normalise_tiles

BACKGROUND = (28, 30, 34)
PANEL = (40, 43, 48)
TEXT = (225, 225, 225)
MUTED = (150, 155, 160)
BAR = (80, 130, 190)
TOP_BAR = (255, 170, 40)
WRONG = (230, 90, 80)
INK = (255, 255, 255)


class Fonts:
    """The three text sizes the window uses (pygame's default font: no files needed)."""

    def __init__(self):
        pygame.font.init()                        # idempotent
        self.large = pygame.font.Font(None, 34)
        self.normal = pygame.font.Font(None, 22)
        self.small = pygame.font.Font(None, 17)


def text(surface, string, position, font, color=TEXT, anchor="topleft"):
    """Draw ``string`` with its ``anchor`` point (a pygame.Rect attribute) at ``position``."""
    rendered = font.render(string, True, color)
    box = rendered.get_rect(**{anchor: position})
    surface.blit(rendered, box)
    return box


def draw_stroke(surface, start, end, width, color=INK):
    """A straight stroke of ``width`` px from ``start`` to ``end`` with round ends (a capsule).

    Mouse events arrive tens of pixels apart on a fast stroke; joining consecutive positions with
    capsules gives a smooth, gap-free line whatever the speed.
    """
    radius = width / 2
    (x0, y0), (x1, y1) = start, end
    pygame.draw.circle(surface, color, (x0, y0), radius)
    length = math.hypot(x1 - x0, y1 - y0)
    if length > 0:
        nx, ny = -(y1 - y0) / length * radius, (x1 - x0) / length * radius   # the normal
        pygame.draw.polygon(surface, color, [(x0 + nx, y0 + ny), (x1 + nx, y1 + ny),
                                             (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)])
        pygame.draw.circle(surface, color, (x1, y1), radius)


def grey_surface(image, size, tint=(255, 255, 255)):
    """(H, W) values in [0, 1] -> a pygame Surface of ``size`` (w, h), each pixel a crisp block."""
    levels = np.clip(np.asarray(image, dtype=np.float32), 0, 1)
    rgb = (levels.T[:, :, None] * np.asarray(tint, np.float32)).astype(np.uint8)   # (W, H, 3)
    return pygame.transform.scale(pygame.surfarray.make_surface(rgb), size)


def bar_chart(surface, rect, probabilities, title, fonts, truth=None):
    """Ten bars, one per digit, the most likely one highlighted and its percentage written."""
    pygame.draw.rect(surface, PANEL, rect, border_radius=6)
    text(surface, title, (rect.x + 10, rect.y + 8), fonts.normal)
    top = int(np.argmax(probabilities))
    base = rect.bottom - 24                       # bars stand on this line, labels below it
    height = rect.height - 64                     # room for the title and the percentage
    pitch = (rect.width - 20) / 10
    for digit, p in enumerate(probabilities):
        x = rect.x + 10 + digit * pitch
        bar_height = max(1, int(round(float(p) * height)))
        color = TOP_BAR if digit == top else BAR
        pygame.draw.rect(surface, color, (int(x + 3), base - bar_height, int(pitch - 6), bar_height))
        label_color = TEXT if digit == top else MUTED
        text(surface, str(digit), (int(x + pitch / 2), base + 4), fonts.normal, label_color, "midtop")
        if digit == top:
            text(surface, f"{100 * float(p):.1f} %", (int(x + pitch / 2), base - bar_height - 3),
                 fonts.small, TOP_BAR, "midbottom")


def render_predictions(surface, rect, fonts, image, results):
    """The default panel: the 28x28 input enlarged, each model's answer, and both bar charts.

    ``results`` maps a model label ('CNN', 'LSTM') to its (10,) probabilities; ``image`` is the
    preprocessed (28, 28) input, or None before the first prediction / for an empty canvas.
    """
    side = 140
    text(surface, "What the models see (28 x 28)", (rect.x, rect.y), fonts.normal, MUTED)
    frame = pygame.Rect(rect.x, rect.y + 22, side, side)
    if image is None:
        pygame.draw.rect(surface, (0, 0, 0), frame)
    else:
        surface.blit(grey_surface(image, frame.size), frame)
    pygame.draw.rect(surface, MUTED, frame.inflate(2, 2), 1)
    x = frame.right + 24
    if not results:
        text(surface, "Draw a digit, then press P.", (x, frame.y + 10), fonts.large, MUTED)
        return
    for row, (label, probabilities) in enumerate(results.items()):
        digit = int(np.argmax(probabilities))
        confidence = 100 * float(probabilities[digit])
        text(surface, f"{label}: {digit}", (x, frame.y + 6 + 46 * row), fonts.large)
        text(surface, f"{confidence:.1f} % sure", (x + 120, frame.y + 12 + 46 * row), fonts.normal, MUTED)
    answers = {int(np.argmax(p)) for p in results.values()}
    verdict = "The models agree." if len(answers) == 1 else "The models disagree!"
    text(surface, verdict, (x, frame.y + 104), fonts.normal, TEXT if len(answers) == 1 else WRONG)
    top = frame.bottom + 20
    width = (rect.width - 20) // 2
    for column, (label, probabilities) in enumerate(results.items()):
        chart = pygame.Rect(rect.x + column * (width + 20), top, width, rect.bottom - top)
        bar_chart(surface, chart, probabilities, f"{label}: probability per digit", fonts)


def tile_grid(surface, origin, maps, tile, columns, gap=2):
    """Channels (C, H, W) as ``tile`` x ``tile`` grey squares, ``columns`` per row.

    Each channel is min-max normalised on its own (bright = most active).  Returns the height used.
    """
    tiles = normalise_tiles(maps)
    for index, channel in enumerate(tiles):
        row, column = divmod(index, columns)
        position = (origin[0] + column * (tile + gap), origin[1] + row * (tile + gap))
        surface.blit(grey_surface(channel, (tile, tile)), position)
    rows = -(-len(tiles) // columns)
    return rows * (tile + gap)


def feature_grid_layout(shapes, width, height, label_height, gap=2):
    """Tile sizes (one per layer) that fill ``width`` x ``height`` with every layer's channels.

    Layers with bigger maps get bigger tiles: tile_l = scale * sqrt(map side_l), the largest
    ``scale`` for which all rows fit.  Returns [(tile, columns)] per layer.
    """
    best = [(4, max(1, width // 6))] * len(shapes)
    for scale in np.arange(1.0, 12.0, 0.1):
        layout, used = [], 0
        for channels, side, _ in shapes:
            tile = int(scale * math.sqrt(side))
            columns = max(1, (width + gap) // (tile + gap))
            layout.append((tile, columns))
            used += label_height + -(-channels // columns) * (tile + gap)
        if used > height:
            break
        best = layout
    return best


def render_feature_maps(surface, rect, fonts, maps):
    """The F view: each conv layer's channels after its activation, as a grid of grey tiles."""
    if not maps:
        text(surface, "Nothing drawn yet: draw a digit to see the CNN's feature maps.",
             (rect.x, rect.y), fonts.normal, MUTED)
        return
    text(surface, "CNN feature maps (each tile scaled to its own range; F or Esc: back)",
         (rect.x, rect.y), fonts.normal, MUTED)
    top = rect.y + 24
    label_height = 20
    shapes = [m.shape for _, m in maps]
    layout = feature_grid_layout(shapes, rect.width, rect.bottom - top, label_height)
    for (label, channels), (tile, columns) in zip(maps, layout):
        c, h, w = channels.shape
        text(surface, f"{label}: {c} maps of {h} x {w}", (rect.x, top + 2), fonts.small, TEXT)
        top += label_height
        top += tile_grid(surface, (rect.x, top), channels, tile, columns)


def render_lstm_rows(surface, rect, fonts, image, row_probabilities, rows_read):
    """The R view: the digit row by row, and beside each row the LSTM's answer after reading it.

    Rows beyond ``rows_read`` are dimmed and their answers hidden (the view animates reading).
    """
    if image is None or row_probabilities is None:
        text(surface, "Nothing drawn yet: draw a digit to watch the LSTM read it.",
             (rect.x, rect.y), fonts.normal, MUTED)
        return
    text(surface, "LSTM reading row by row (Up/Down: step, Space: replay, R or Esc: back)",
         (rect.x, rect.y), fonts.normal, MUTED)
    top = rect.y + 24
    pitch = max(6, (rect.bottom - top) // 28)     # height of one image row on screen
    side = pitch * 28
    shown = np.array(image, dtype=np.float32)
    shown[rows_read:] *= 0.25                      # not read yet
    surface.blit(grey_surface(shown, (side, side)), (rect.x, top))
    pygame.draw.rect(surface, MUTED, (rect.x - 1, top - 1, side + 2, side + 2), 1)
    if 0 < rows_read:
        y = top + rows_read * pitch
        pygame.draw.line(surface, TOP_BAR, (rect.x, y), (rect.x + side, y), 1)
    final = int(np.argmax(row_probabilities[-1]))
    x = rect.x + side + 12
    bar_width = max(20, rect.right - x - 110)
    for t in range(min(rows_read, 28)):
        probabilities = row_probabilities[t]
        digit = int(np.argmax(probabilities))
        confidence = float(probabilities[digit])
        y = top + t * pitch
        color = TEXT if digit == final else MUTED
        text(surface, f"row {t + 1:2d}: {digit}", (x, y + pitch // 2), fonts.small, color, "midleft")
        bar_x = x + 62
        pygame.draw.rect(surface, PANEL, (bar_x, y + 2, bar_width, pitch - 3))
        pygame.draw.rect(surface, TOP_BAR if digit == final else BAR,
                         (bar_x, y + 2, max(1, int(confidence * bar_width)), pitch - 3))
        text(surface, f"{100 * confidence:5.1f} %", (bar_x + bar_width + 6, y + pitch // 2),
             fonts.small, color, "midleft")
