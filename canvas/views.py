"""Drawing on pygame surfaces: strokes, images, bar charts, tile grids, heat maps, and the panels.

Every function draws into a given ``pygame.Rect`` of a surface and keeps no state, so the app
decides what goes where.  Images come in as NumPy (row, column) arrays; pygame's surfarray wants
(x, y), hence the transposes in :func:`grey_surface`.
"""
import math

import numpy as np
import pygame

from models.analysis.study import normalise_tiles

BACKGROUND = (28, 30, 34)
PANEL = (40, 43, 48)
TEXT = (225, 225, 225)
MUTED = (150, 155, 160)
BAR = (80, 130, 190)
TOP_BAR = (255, 170, 40)
WRONG = (230, 90, 80)
HOT = (255, 70, 40)       # saliency / occlusion: supports the answer
COLD = (60, 140, 255)     # argues against it
INK = (255, 255, 255)


class Fonts:
    """The three text sizes the window uses (pygame's default font: no files needed)."""

    def __init__(self):
        pygame.font.init()                        # idempotent
        self.large = pygame.font.Font(None, 34)
        self.normal = pygame.font.Font(None, 22)
        self.small = pygame.font.Font(None, 17)


def fit(font, string, width):
    """``string``, or as much of it as fits ``width`` px in ``font`` with '...' after it."""
    if width is None or font.size(string)[0] <= width:
        return string
    low, high = 0, len(string)            # the longest prefix that fits with the dots
    while low < high:
        middle = (low + high + 1) // 2
        if font.size(string[:middle].rstrip() + "...")[0] <= width:
            low = middle
        else:
            high = middle - 1
    return string[:low].rstrip() + "..."


def wrap(font, string, width, max_lines=None):
    """``string`` broken between words into lines of at most ``width`` px in ``font``; with
    ``max_lines``, the last line kept ends in '...' if words were left over."""
    lines = []
    for word in string.split(" "):       # "a   b": words "a", "", "", "b" - the spacing is kept
        if lines and font.size(f"{lines[-1]} {word}")[0] <= width:
            lines[-1] = f"{lines[-1]} {word}"
        elif word or not lines:          # no line starts with the spaces between two answers
            lines.append(word)
    lines = [fit(font, line.rstrip(), width) for line in lines]   # a single word too long
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [fit(font, " ".join(lines[max_lines - 1:]) + " ...", width)]
    return lines


def paragraph(surface, string, position, font, width, color=TEXT, max_lines=None):
    """``string`` wrapped to ``width`` px from ``position`` (top left) down; returns the bottom."""
    x, y = position
    for line in wrap(font, string, width, max_lines):
        y = text(surface, line, (x, y), font, color).bottom
    return y


def text(surface, string, position, font, color=TEXT, anchor="topleft", width=None):
    """Draw ``string`` with its ``anchor`` point (a pygame.Rect attribute) at ``position``,
    shortened with '...' to ``width`` px if given."""
    rendered = font.render(fit(font, string, width), True, color)
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


def finite(value):
    """``value`` as a float, 0.0 if it is NaN or infinite (damaged weights): a bar's length must
    be a number of pixels, and a NaN one stops the window."""
    value = float(value)
    return value if math.isfinite(value) else 0.0


def bar_chart(surface, rect, probabilities, title, fonts, truth=None):
    """Ten bars, one per digit, the most likely one highlighted and its percentage written."""
    pygame.draw.rect(surface, PANEL, rect, border_radius=6)
    text(surface, title, (rect.x + 10, rect.y + 8), fonts.normal, width=rect.width - 20)
    top = int(np.argmax(probabilities))
    base = rect.bottom - 24                       # bars stand on this line, labels below it
    height = rect.height - 64                     # room for the title and the percentage
    pitch = (rect.width - 20) / 10
    for digit, p in enumerate(probabilities):
        x = rect.x + 10 + digit * pitch
        bar_height = max(1, int(round(finite(p) * height)))
        color = TOP_BAR if digit == top else BAR
        pygame.draw.rect(surface, color, (int(x + 3), base - bar_height, int(pitch - 6), bar_height))
        label_color = TEXT if digit == top else MUTED
        text(surface, str(digit), (int(x + pitch / 2), base + 4), fonts.normal, label_color, "midtop")
        if digit == top:
            text(surface, f"{100 * float(p):.1f} %", (int(x + pitch / 2), base - bar_height - 3),
                 fonts.small, TOP_BAR, "midbottom")


def image_strip(surface, rect, images, focus):
    """The K preprocessed (28, 28) inputs as crisp squares filling ``rect``, the focused one framed.

    One image fills the square of side min(width, height); several are laid out in a grid.
    Returns the list of squares (pygame.Rect) drawn.
    """
    count = len(images)
    columns = 1 if count == 1 else min(count, 3)
    rows = -(-count // columns)
    side = min((rect.width - 6 * (columns - 1)) // columns, (rect.height - 6 * (rows - 1)) // rows)
    squares = []
    for k, image in enumerate(images):
        row, column = divmod(k, columns)
        square = pygame.Rect(rect.x + column * (side + 6), rect.y + row * (side + 6), side, side)
        surface.blit(grey_surface(image, square.size), square)
        frame = TOP_BAR if count > 1 and k == focus else MUTED
        pygame.draw.rect(surface, frame, square.inflate(2, 2), 1)
        squares.append(square)
    return squares


def render_predictions(surface, rect, fonts, images, readings, selected, focus=0, reader=None,
                       advice=""):
    """The default panel: what the models see, a table of every model's answer, the reader's
    answer on a row of its own, and the bars of the selected model.

    Parameters
    ----------
    images : numpy.ndarray or None
        (K, 28, 28) preprocessed digits, left to right; None before the first prediction.
    readings : list of (title, text, probability, probabilities)
        One per model: its title ('CNN'), its answer ('7' or '2026'), the answer's probability
        (the product over the digits) and its (K, 10) per-digit probabilities.
    selected : int
        Index into ``readings`` of the model whose bars are shown (Tab changes it).
    focus : int
        The digit (0..K-1) whose bars are shown.
    reader : (str, str, float or None) or None
        The reader of the whole line: its title, its answer (or why there is none) and the
        answer's probability (None with no answer); None: no reader row.
    advice : str
        A line under the table (which answer to trust where digits touch), '' for none.
    """
    text(surface, "What the models see (28 x 28)", (rect.x, rect.y), fonts.normal, MUTED)
    area = pygame.Rect(rect.x, rect.y + 22, 140, 112)
    if images is None:
        pygame.draw.rect(surface, (0, 0, 0), (area.x, area.y, 112, 112))
        pygame.draw.rect(surface, MUTED, (area.x - 1, area.y - 1, 114, 114), 1)
    else:
        image_strip(surface, area, images, focus)
    x = area.right + 14
    if not readings:
        text(surface, "Draw a digit or a number,", (x, area.y + 10), fonts.large, MUTED)
        text(surface, "then press P.", (x, area.y + 42), fonts.large, MUTED)
        return
    pitch = min(28, 112 // len(readings))
    for row, (title, answer, probability, _) in enumerate(readings):
        y = area.y + row * pitch
        if row == selected:
            pygame.draw.rect(surface, PANEL, (x - 6, y - 1, rect.right - x + 6, pitch), border_radius=4)
        table_row(surface, fonts, (x, y + pitch // 2), rect.right, title, answer, probability,
                  TEXT if row == selected else MUTED)
    below = area.bottom + 4
    if reader is not None:                     # the whole line's reading, apart from the table
        pygame.draw.line(surface, MUTED, (x - 6, below), (rect.right, below), 1)
        title, answer, probability = reader
        table_row(surface, fonts, (x, below + 14), rect.right, title, answer, probability, TEXT)
        below += 30
    answers = {answer for _, answer, _, _ in readings}
    read = reader[1] if reader is not None and reader[2] is not None else None
    if len(readings) == 1:
        verdict, color = "", TEXT
    elif len(answers) == 1:
        verdict, color = f"All {len(readings)} models agree." if len(readings) > 2 else "The models agree.", TEXT
    else:
        verdict, color = "The models disagree!", WRONG
    if read is not None and answers == {read}:
        verdict = ("The model and the reader agree." if len(readings) == 1 else
                   verdict[:-1] + ", and the reader too.")
    elif read is not None and len(answers) == 1:
        plural = "s" if len(readings) > 1 else ""
        verdict, color = f"The reader reads {read}, the digit-by-digit model{plural} {answers.pop()}.", WRONG
    if advice:
        verdict, color = advice, TOP_BAR
    below = paragraph(surface, verdict, (rect.x, below + 2), fonts.normal, rect.width, color, max_lines=2)
    title, _, _, probabilities = readings[selected]
    focus = min(focus, len(probabilities) - 1)
    which = f", digit {focus + 1} of {len(probabilities)}" if len(probabilities) > 1 else ""
    chart = pygame.Rect(rect.x, below + 8, rect.width, rect.bottom - below - 8)
    bar_chart(surface, chart, probabilities[focus], f"{title}{which}  (Tab: model" + (", Left/Right: digit)" if which else ")"),
              fonts)


def table_row(surface, fonts, left_middle, right, title, answer, probability, color):
    """One row of the answers table: title, answer (large), probability; each cut to its room."""
    x, y = left_middle
    text(surface, title, (x, y), fonts.normal, color, "midleft", width=52)
    if probability is None:                       # no answer: the reason, small
        text(surface, answer, (x + 56, y), fonts.small, MUTED, "midleft", width=right - x - 56)
        return
    shown = text(surface, answer, (x + 56, y), fonts.large, TEXT, "midleft", width=right - x - 120)
    text(surface, f"{100 * probability:.1f} %", (max(shown.right + 12, x + 150), y),
         fonts.normal, color, "midleft")


def heat_surface(image, values, size):
    """A (H, W) image in grey with signed ``values`` (H, W) laid over it: red where positive,
    blue where negative, opaque at the largest magnitude, as a pygame Surface of ``size``."""
    grey = np.clip(np.asarray(image, dtype=np.float32), 0, 1)[:, :, None] * np.float32(0.55 * 255)
    values = np.asarray(values, dtype=np.float32)
    scale = float(np.abs(values).max())
    alpha = (np.abs(values) / scale if scale > 0 else np.zeros_like(values))[:, :, None]
    hue = np.where(values[:, :, None] >= 0, np.array(HOT, np.float32), np.array(COLD, np.float32))
    rgb = (grey * (1 - alpha) + hue * alpha).astype(np.uint8)             # (H, W, 3)
    return pygame.transform.scale(pygame.surfarray.make_surface(rgb.swapaxes(0, 1)), size)


def render_why(surface, rect, fonts, image, explanations):
    """The W view: for each model, its saliency and occlusion maps over the 28x28 input.

    ``explanations``: list of (title, dict from :func:`models.analysis.saliency.explain`).
    """
    if image is None or not explanations:
        paragraph(surface, "Nothing drawn yet: draw a digit to see why the models answer as they do.",
                  (rect.x, rect.y), fonts.normal, rect.width, MUTED)
        return
    text(surface, "Why: which pixels drove each answer (W or Esc: back)", (rect.x, rect.y),
         fonts.normal, MUTED, width=rect.width)
    count = len(explanations)
    gap = 10
    side = int(min(150, (rect.width - gap * (count - 1)) / count, (rect.height - 160) / 2))
    top = rect.y + 64
    for k, (title, result) in enumerate(explanations):
        x = rect.x + k * (side + gap)
        text(surface, title, (x, rect.y + 24), fonts.normal, width=side + gap)
        text(surface, f"says {result['target']} ({100 * result['probability']:.1f} %)",
             (x, rect.y + 42), fonts.small, MUTED, width=side + gap)
        for row, key in enumerate(("saliency", "occlusion")):
            y = top + row * (side + 26)
            surface.blit(heat_surface(image, result[key], (side, side)), (x, y))
            pygame.draw.rect(surface, MUTED, (x - 1, y - 1, side + 2, side + 2), 1)
    labels = ("gradient of log p(answer) per pixel", "drop in p(answer) when a 4x4 patch is blanked")
    for row, label in enumerate(labels):
        text(surface, label, (rect.x, top + row * (side + 26) + side + 4), fonts.small, MUTED)
    text(surface, "red: raises p(answer)   blue: lowers it",
         (rect.x, top + 2 * (side + 26) + 4), fonts.small, TEXT)


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


def render_feature_maps(surface, rect, fonts, maps, title):
    """The F view: each conv layer's channels after its activation, as a grid of grey tiles."""
    if not maps:
        paragraph(surface, f"Nothing drawn yet: draw a digit to see the {title}'s feature maps.",
                  (rect.x, rect.y), fonts.normal, rect.width, MUTED)
        return
    top = paragraph(surface, f"{title} feature maps, each tile scaled to its own range (F or Esc: back)",
                    (rect.x, rect.y), fonts.normal, rect.width, MUTED, max_lines=2) + 6
    label_height = 20
    shapes = [m.shape for _, m in maps]
    layout = feature_grid_layout(shapes, rect.width, rect.bottom - top, label_height)
    for (label, channels), (tile, columns) in zip(maps, layout):
        c, h, w = channels.shape
        text(surface, f"{label}: {c} maps of {h} x {w}", (rect.x, top + 2), fonts.small, TEXT)
        top += label_height
        top += tile_grid(surface, (rect.x, top), channels, tile, columns)


def render_rows(surface, rect, fonts, image, row_probabilities, rows_read, title):
    """The R view: the digit row by row, and beside each row the recurrent model's answer after
    reading it.  Rows beyond ``rows_read`` are dimmed and their answers hidden (the view animates
    reading).
    """
    if image is None or row_probabilities is None:
        paragraph(surface, f"Nothing drawn yet: draw a digit to watch the {title} read it.",
                  (rect.x, rect.y), fonts.normal, rect.width, MUTED)
        return
    top = paragraph(surface, f"{title} reading row by row (Up/Down: step, Space: replay, Tab: model, "
                    "R or Esc: back)", (rect.x, rect.y), fonts.normal, rect.width, MUTED, max_lines=2) + 6
    pitch = max(6, (rect.bottom - top) // 28)     # height of one row of the answer list
    image_pitch = max(4, min(pitch, (rect.width - 240) // 28))   # of one image row: room for bars
    side = image_pitch * 28
    shown = np.array(image, dtype=np.float32)
    shown[rows_read:] *= 0.25                      # not read yet
    surface.blit(grey_surface(shown, (side, side)), (rect.x, top))
    pygame.draw.rect(surface, MUTED, (rect.x - 1, top - 1, side + 2, side + 2), 1)
    if 0 < rows_read:
        y = top + rows_read * image_pitch
        pygame.draw.line(surface, TOP_BAR, (rect.x, y), (rect.x + side, y), 1)
    final = int(np.argmax(row_probabilities[-1]))
    x = rect.x + side + 12
    bar_width = max(20, rect.right - x - 110)
    for t in range(min(rows_read, 28)):
        probabilities = row_probabilities[t]
        digit = int(np.argmax(probabilities))
        confidence = finite(probabilities[digit])
        y = top + t * pitch
        color = TEXT if digit == final else MUTED
        text(surface, f"row {t + 1:2d}: {digit}", (x, y + pitch // 2), fonts.small, color, "midleft")
        bar_x = x + 62
        pygame.draw.rect(surface, PANEL, (bar_x, y + 2, bar_width, pitch - 3))
        pygame.draw.rect(surface, TOP_BAR if digit == final else BAR,
                         (bar_x, y + 2, max(1, int(confidence * bar_width)), pitch - 3))
        text(surface, f"{100 * confidence:5.1f} %", (bar_x + bar_width + 6, y + pitch // 2),
             fonts.small, color, "midleft")
