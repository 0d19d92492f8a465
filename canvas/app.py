"""The drawing app's state and behaviour: :class:`DrawApp`.

The main loop is three calls, kept apart so tests can drive the app with posted pygame events:

    while app.running:
        app.step()      # handle the pending events (mouse, keys, window), live prediction, animation
        app.render()    # draw the window from the state, if anything changed
        clock.tick(60)

The app shows every model it is given (draw.py gives it every shipped model): a table of their
answers and the bars of the selected one (Tab).  A drawing of several digits side by side is
read as a whole number (:mod:`kit.images.segment`); the study views (F, R, W) and teaching (T) work
on one digit of it, chosen with Left/Right.  P also asks the reader (:mod:`models.reading`), which
reads the whole line without cutting it: its answer has a row of its own, and where the split
finds a piece too wide for one digit (touching digits) the window says to trust the reader.
Ink too small to be a digit (a click) is said to be so, not read.

Everything runs on the main thread: Numba's default threading layer aborts when parallel
kernels are entered from two Python threads, and one prediction takes a few milliseconds anyway.
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import pygame

from canvas import views
from models.analysis.study import (feature_maps, has_conv_layers, reads_rows, row_by_row,
                                   why_not_row_by_row)
from models.analysis.saliency import explain
from models.reading import read_number_image
from kit.images.segment import read_number, segment, wide_pieces
from nn.errors import UserError
from nn.threads import one_numba_thread

WINDOW_SIZE = (1080, 540)
CANVAS_RECT = pygame.Rect(20, 50, 600, 400)     # the black drawing box: room for a 5-digit number
PANEL_RECT = pygame.Rect(640, 50, 420, 400)     # predictions, or a study view
BRUSH = 15                                       # px, like the original's 400 px box

HELP = ("Mouse: draw   P: predict   C: clear   L: live   Tab: next model   Left/Right: digit   "
        "F: feature maps   R: row by row   W: why   T+digit: teach   X: shipped weights   "
        "S: screenshot   Q: quit")
EMPTY_MESSAGE = "The canvas is empty: draw a digit first."
READER = "reader"         # the reader P asks: the shipped one (a name or a weights file)
READER_TITLE = "Reader"
DIGIT_BRUSHES = 2         # ink under this many pen widths tall and wide is too small to be a digit
NOT_FINITE = "no answer (its outputs are not finite numbers: its weights are damaged)"
LIVE_INTERVAL = 0.15     # s between live predictions while drawing
ROW_INTERVAL = 0.06      # s per row when the row-by-row view animates its reading
DIGIT_KEYS = {getattr(pygame, f"K_{d}"): d for d in range(10)}
DIGIT_KEYS.update({getattr(pygame, f"K_KP{d}"): d for d in range(10)})


def format_answer(label, probabilities):
    """'CNN: 7 (99.2 %)': the argmax of the raw probabilities (never rounded before the argmax).

    ``probabilities``: (10,) for one digit, or (K, 10) for a whole number, which reads
    'CNN: 2026 (97.1 %)' with the product of the digits' probabilities.
    """
    probabilities = np.asarray(probabilities)
    if not np.isfinite(probabilities).all():
        return f"{label}: {NOT_FINITE}"
    answer, probability = read_number(probabilities.reshape(-1, probabilities.shape[-1]))
    return f"{label}: {answer} ({100 * probability:.1f} %)"


def format_reading(reading):
    """'Reader: 2026 (97.1 %)' for the reader's (number, probability), or why it has no answer."""
    if isinstance(reading, str):
        return f"{READER_TITLE}: no answer ({reading})"
    number, probability = reading
    return f"{READER_TITLE}: {number or 'no digit'} ({100 * probability:.1f} %)"


def counted(count, noun):
    """'1 example', '3 examples'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class DrawApp:
    """A canvas to draw digits on, and what every model makes of them.

    Parameters
    ----------
    models : list of models.Model, or dict name -> models.Model
        The models to ask, in display order.
    screen : pygame.Surface, optional
        The window surface; by default ``pygame.display.get_surface()``.
    brush : int
        Stroke width in pixels.
    live : bool
        Start with live prediction (predict while drawing) switched on.
    screenshot_path : str or Path
        Where the S key saves the window as PNG.
    teacher : models.training.teaching.Teacher, optional
        Enables T (teach); its ``models`` must be this app's ``models`` dict.
    load_shipped : callable, optional
        name -> models.Model with the shipped weights; enables X (back to the shipped weights).
    reader : str or None
        The reader of whole numbers P also asks (a name or a weights file for
        :func:`models.reading.read_number_image`); None: no reader row.
    """

    def __init__(self, models, screen=None, brush=BRUSH, live=False, screenshot_path="draw.png",
                 teacher=None, load_shipped=None, reader=READER):
        if not isinstance(models, dict):
            models = {model.name: model for model in models}
        if not models:
            raise ValueError("DrawApp needs at least one model")
        self.models = models
        self.teacher = teacher
        if teacher is not None:
            teacher.models = self.models
        self.load_shipped = load_shipped
        self.selected = next(iter(models))  # the model whose bars (and study views) are shown
        self.screen = screen if screen is not None else pygame.display.get_surface()
        self.fonts = views.Fonts()
        self.canvas = pygame.Surface(CANVAS_RECT.size)
        self.canvas.fill((0, 0, 0))
        self.brush = brush
        self.live = live
        self.screenshot_path = Path(screenshot_path)
        self.running = True
        self.view = "predictions"        # or "features", "rows", "why"
        self.pen = None                  # last pen position on the canvas while the button is down
        self.version = 0                 # bumped by every change to the drawing or the models
        self.predicted_version = -1      # the version that self.pieces/results describe
        self.pieces = []                 # kit.images.segment.Piece per digit, left to right
        self.results = {}                # model name -> (K, 10) probabilities, one row per digit
        self.reader = reader
        self.reading = None              # the reader's (number, probability), or why it has none
        self.touching = []               # indexes of the pieces too wide for one digit
        self.advice = ""                 # which answer to trust, when digits touch
        self.focus = 0                   # the digit the bars, study views and T are about
        self.study = {}                  # view -> (key, data) for the study views
        self.teaching = False            # T pressed: the next digit key is the right answer
        self.rows_read = 28              # row view: rows shown so far
        self.animating = False
        self.last_tick = 0.0
        self.last_live = 0.0
        self.message = ""
        self.dirty = True                # the window needs drawing

    # ----------------------------------------------------------------------------- the drawing
    @property
    def images(self):
        """(K, 28, 28) float32: the digits as the models see them, or None (nothing predicted)."""
        return np.stack([piece.image for piece in self.pieces]) if self.pieces else None

    @property
    def image(self):
        """The focused digit as the models see it, float32 (28, 28), or None."""
        return self.pieces[self.focus].image if self.pieces else None

    def canvas_array(self):
        """The canvas as a (row, column, RGB) uint8 array (surfarray is (x, y): transposed here)."""
        return pygame.surfarray.array3d(self.canvas).swapaxes(0, 1)

    def canvas_grey(self):
        """The canvas as (row, column) uint8 grey levels: the ink is white (R = G = B), so the
        red channel is the grey level - a third of the work of averaging RGB."""
        return pygame.surfarray.array_red(self.canvas).T

    def _to_canvas(self, position):
        return position[0] - CANVAS_RECT.x, position[1] - CANVAS_RECT.y

    def pen_down(self, position):
        """The button pressed at ``position`` (window pixels), inside the box or not: a stroke
        that starts outside draws from where it enters."""
        self.pen = self._to_canvas(position)
        self._stroke(self.pen, self.pen)

    def pen_move(self, position):
        point = self._to_canvas(position)
        self._stroke(self.pen, point)
        self.pen = point

    def _stroke(self, start, end):
        """Draw the part of the stroke inside the box (pygame clips to the canvas surface); a
        stroke that stays outside changes nothing."""
        reach = self.brush // 2 + 1
        left, top = min(start[0], end[0]) - reach, min(start[1], end[1]) - reach
        bounds = pygame.Rect(left, top, abs(end[0] - start[0]) + 2 * reach, abs(end[1] - start[1]) + 2 * reach)
        if bounds.colliderect(self.canvas.get_rect()):
            views.draw_stroke(self.canvas, start, end, self.brush)
            self._changed()

    def clear(self):
        self.canvas.fill((0, 0, 0))
        self.pen = None
        self._changed()
        self.pieces, self.results, self.predicted_version, self.focus = [], {}, self.version, 0
        self.reading, self.touching, self.advice = None, [], ""
        self.message = "Cleared."

    def _changed(self):
        self.version += 1
        self.dirty = True

    # ----------------------------------------------------------------------------- predicting
    def title(self, name):
        return self.models[name].title

    def predict(self, announce=True):
        """Split the canvas into digits, preprocess each, and ask every model and the reader;
        print the answers (one line per model, then the reader's) if ``announce``.

        Returns the results dict (model name -> (K, 10) probabilities), empty for an empty canvas
        or ink too small to be a digit.
        """
        grey = self.canvas_grey()
        pieces = segment(grey)
        smallest = DIGIT_BRUSHES * self.brush
        small = [p for p in pieces if max(p.box[1] - p.box[0], p.box[3] - p.box[2]) < smallest]
        self.pieces = [p for p in pieces if all(p is not q for q in small)]
        self.predicted_version = self.version
        self.focus = min(self.focus, max(0, len(self.pieces) - 1))
        self.touching, self.advice, self.reading = wide_pieces(self.pieces), "", None
        self.dirty = True
        notes = [self.small_note(small, smallest, alone=not self.pieces)] if small else []
        if not self.pieces:
            self.results = {}
            self.message = notes[0] if notes else EMPTY_MESSAGE
            if announce:
                print(self.message, flush=True)
            return self.results
        batch = self.images                                            # (K, 28, 28)
        with one_numba_thread():
            self.results = {name: model.predict_proba(batch) for name, model in self.models.items()}
        answers = [format_answer(self.title(name), p) for name, p in self.results.items()]
        if self.reader is not None:
            if small:                             # the reader sees the whole canvas: not the dots
                grey = grey.copy()
                for top, bottom, left, right in (piece.box for piece in small):
                    grey[top:bottom, left:right] = 0
            self.reading = self.read_whole(grey)
            answers.append(format_reading(self.reading))
            self.advice = self.touching_advice()
        self.message = "   ".join(answers + notes)
        if announce:
            print("\n".join(answers + [line for line in [self.advice] + notes if line]), flush=True)
        return self.results

    def read_whole(self, grey):
        """The reader's (number, probability) for the drawing (uint8 (H, W)), or a phrase saying
        why it has none (no reader weights, a damaged file): the per-digit models still answer."""
        try:
            with one_numba_thread():
                return read_number_image(grey, reader=self.reader)
        except (UserError, ValueError, OSError) as error:
            return str(error).splitlines()[0] if str(error) else type(error).__name__

    def touching_advice(self):
        """Where the split found a piece too wide for one digit: say that the reader, which needs
        no split, is the one to trust ('' when no piece is, or the reader has no answer)."""
        if not self.touching or isinstance(self.reading, str) or self.reading is None:
            return ""
        numbers = [str(k + 1) for k in self.touching]
        which = (f"Piece {numbers[0]} is" if len(numbers) == 1 else
                 f"Pieces {', '.join(numbers[:-1])} and {numbers[-1]} are")
        return (f"{which} too wide for one digit - touching digits? Splitting cannot part them: "
                f"trust the reader's {self.reading[0]}.")

    @staticmethod
    def small_note(small, smallest, alone):
        """What P says of ink too small to be a digit (a click, a dot); ``alone``: nothing else
        was drawn."""
        top, bottom, left, right = small[0].box
        size = f"{right - left} x {bottom - top} px"
        if alone:
            return (f"Too small to be a digit ({size}): draw it at least {smallest} px tall." if len(small) == 1
                    else f"Too small to be digits (each under {smallest} px): draw them larger.")
        if len(small) == 1:
            return f"Left out a mark too small to be a digit ({size})."
        return f"Left out {len(small)} marks too small to be digits (under {smallest} px)."

    def _current(self):
        """Bring the digits and answers up to date with the drawing, keeping the message line."""
        if self.predicted_version != self.version:
            message = self.message
            self.predict(announce=False)
            self.message = message or self.message

    def study_model(self, view):
        """The model a study view shows: the selected one if it fits, else the first that does."""
        fits = {"features": has_conv_layers, "rows": reads_rows}.get(view, lambda model: True)
        names = [self.selected] + [name for name in self.models if name != self.selected]
        return next((name for name in names if fits(self.models[name])), None)

    def study_data(self, view):
        """The focused digit's data for a study view: 'features' (feature maps of a conv model),
        'rows' (a recurrent model's row-by-row answers) or 'why' ([(title, explanation)] for
        every model).  None when nothing is drawn or no model fits the view."""
        self._current()
        name = self.study_model(view)
        key = (self.version, self.focus, name)
        cached = self.study.get(view)
        if cached is not None and cached[0] == key:
            return cached[1]
        data = None
        if self.image is not None and name is not None:
            with one_numba_thread():
                if view == "features":
                    data = feature_maps(self.models[name], self.image)
                elif view == "rows":
                    data = row_by_row(self.models[name], self.image)
                else:
                    data = [(model.title, explain(model, self.image)) for model in self.models.values()]
        self.study[view] = (key, data)
        return data

    def no_model_for(self, view):
        """Why no model can be shown in the F or R view."""
        if view == "features":
            return "No model here has convolution layers."
        reasons = [why_not_row_by_row(model) for model in self.models.values() if model.spec.recurrent]
        return ("No model here can be shown reading row by row" + (f": {reasons[0]}." if reasons else "."))

    # ----------------------------------------------------------------------------- teaching
    def teach(self, digit):
        """T then ``digit``: add the focused drawing to the personal set, fine-tune every model,
        and show what they say now."""
        self.teaching = False
        self._current()
        if self.teacher is None:
            self.message = "Teaching is off (no personal folder)."
            return
        if self.image is None:
            self.message = EMPTY_MESSAGE
            return
        print(f"Teaching {digit} ...", flush=True)
        try:
            with one_numba_thread():
                result = self.teacher.teach(self.image, digit)
        except (UserError, OSError) as error:
            # The personal set cannot take it (damaged, not a folder, read-only, disk full): say
            # what is wrong and what to do, and keep the window and the drawing.
            line = str(error) if isinstance(error, UserError) else f"cannot teach: {error}"
            self.message = line
            print(f"error: {line}", file=sys.stderr, flush=True)
            return
        self.version += 1                       # the models changed: recompute every view
        self.predict(announce=False)
        note = "" if result["replay"] else "; MNIST not found: fine-tuned on your examples alone"
        said = "   ".join(format_answer(self.title(n), p) for n, p in self.results.items())
        examples = counted(result["count"], "example")
        self.message = f"Taught {digit} ({examples} of yours, {result['seconds']:.2f} s{note}). Now: {said}"
        print(f"Taught {digit}: {examples} in {self.teacher.data.folder}, "
              f"fine-tuned in {result['seconds']:.2f} s{note}", flush=True)
        print("\n".join(format_answer(self.title(n), p) for n, p in self.results.items()), flush=True)

    def use_shipped_weights(self):
        """X: every model back to its shipped weights; the personal weights files are removed
        (the personal examples stay, and teaching starts again from the shipped weights)."""
        if self.load_shipped is None:
            self.message = "No shipped weights to go back to."
            return
        kept = []
        for name in list(self.models):
            try:
                self.models[name] = self.load_shipped(name)
            except UserError:                # a model of one's own (--model-file): none shipped
                kept.append(self.title(name))
        removed = self.teacher.forget_weights() if self.teacher is not None else []
        self.version += 1
        if self.pieces:
            self.predict(announce=False)
        self.message = ("Back to the shipped weights" +
                        (f"; removed {len(removed)} personal weights file(s)" if removed else "") +
                        (f"; {', '.join(kept)} kept {'its' if len(kept) == 1 else 'their'} own (none shipped)"
                         if kept else "") + ".")
        print(self.message, flush=True)

    # ----------------------------------------------------------------------------- events
    def handle_event(self, event):
        """Update the state for one pygame event."""
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            self.pen_down(event.pos)         # outside the box too: the stroke may enter it
        elif event.type == pygame.MOUSEMOTION and self.pen is not None:
            if getattr(event, "buttons", (1,))[0]:
                self.pen_move(event.pos)
            else:                        # released outside the window: the stroke has ended
                self.pen = None
        elif event.type == pygame.MOUSEBUTTONUP and event.button == 1:
            self.pen = None
        elif event.type == pygame.KEYDOWN:
            self.handle_key(event.key)
        elif event.type in (pygame.WINDOWEXPOSED, pygame.VIDEOEXPOSE):
            self.dirty = True

    def handle_key(self, key):
        self.dirty = True
        if self.teaching:
            if key in DIGIT_KEYS:
                self.teach(DIGIT_KEYS[key])
                return
            self.teaching = False
            self.message = "Teaching cancelled."
            if key == pygame.K_ESCAPE:
                return
        if key == pygame.K_q:
            self.running = False
        elif key == pygame.K_ESCAPE:
            if self.view == "predictions":
                self.running = False
            else:
                self.view = "predictions"
        elif key == pygame.K_c:
            self.clear()
        elif key == pygame.K_p:
            self.predict(announce=True)
        elif key == pygame.K_l:
            self.live = not self.live
            self.message = f"Live prediction {'on' if self.live else 'off'}."
        elif key == pygame.K_TAB:
            names = list(self.models)
            self.selected = names[(names.index(self.selected) + 1) % len(names)]
            if self.view == "rows":
                self.rows_read, self.animating = 0, True
        elif key in (pygame.K_LEFT, pygame.K_RIGHT):
            if self.pieces:
                step = 1 if key == pygame.K_RIGHT else -1
                self.focus = int(np.clip(self.focus + step, 0, len(self.pieces) - 1))
        elif key in (pygame.K_f, pygame.K_r, pygame.K_w):
            view = {pygame.K_f: "features", pygame.K_r: "rows", pygame.K_w: "why"}[key]
            self.view = "predictions" if self.view == view else view
            if self.view == "rows":
                self.rows_read, self.animating = 0, True
            if self.view != "predictions" and self.study_model(view) is None:
                self.message = self.no_model_for(view)
        elif key == pygame.K_t:
            self._current()
            if self.image is None:
                self.message = EMPTY_MESSAGE
            else:
                self.teaching = True
                which = f" digit {self.focus + 1} of {len(self.pieces)}" if len(self.pieces) > 1 else ""
                self.message = f"Teach: press the right digit (0-9) for the drawing{which}; Esc cancels."
        elif key == pygame.K_x:
            self.use_shipped_weights()
        elif key == pygame.K_s:
            try:
                self.save_screenshot()
            except UserError as error:      # say so and keep drawing
                self.message = str(error)
                print(f"error: {error}", file=sys.stderr, flush=True)
        elif self.view == "rows" and key in (pygame.K_UP, pygame.K_DOWN, pygame.K_SPACE):
            if key == pygame.K_SPACE:
                self.rows_read, self.animating = 0, True
            else:
                self.animating = False
                self.rows_read = int(np.clip(self.rows_read + (1 if key == pygame.K_DOWN else -1), 0, 28))

    def step(self):
        """Handle every pending event, then the time-driven work.  Returns ``self.running``."""
        for event in pygame.event.get():
            self.handle_event(event)
        now = time.perf_counter()
        if (self.live and self.version != self.predicted_version
                and now - self.last_live >= LIVE_INTERVAL):
            self.predict(announce=False)
            self.last_live = now
        if self.animating and now - self.last_tick >= ROW_INTERVAL:
            self.rows_read = min(28, self.rows_read + 1)
            self.animating = self.rows_read < 28
            self.last_tick = now
            self.dirty = True
        return self.running

    # ----------------------------------------------------------------------------- drawing the window
    def readings(self):
        """[(title, answer text, probability, (K, 10) probabilities)] per model, for the table."""
        rows = []
        for name, probabilities in self.results.items():
            if not np.isfinite(probabilities).all():    # damaged weights: no bars, no answer
                rows.append((self.title(name), "?", 0.0, np.zeros_like(probabilities)))
                continue
            answer, probability = read_number(probabilities)
            rows.append((self.title(name), answer, probability, probabilities))
        return rows

    def reader_row(self):
        """The reader's row of the table: (title, answer or why none, probability or None)."""
        if self.reading is None or not self.results:
            return None
        if isinstance(self.reading, str):
            return READER_TITLE, f"no answer: {self.reading}", None
        number, probability = self.reading
        return READER_TITLE, number or "no digit", probability

    def render_boxes(self, screen):
        """A frame around each digit found on the canvas, with the selected model's answer."""
        if self.predicted_version != self.version or not self.results:
            return
        probabilities = self.results[self.selected]
        if not np.isfinite(probabilities).all():
            return
        digits = probabilities.argmax(axis=1)
        for k, (piece, digit) in enumerate(zip(self.pieces, digits)):
            top, bottom, left, right = piece.box
            box = pygame.Rect(CANVAS_RECT.x + left - 4, CANVAS_RECT.y + top - 4,
                              right - left + 8, bottom - top + 8).clip(CANVAS_RECT)
            focused = len(self.pieces) > 1 and k == self.focus
            pygame.draw.rect(screen, views.TOP_BAR if focused else views.BAR, box, 2)
            if box.y - CANVAS_RECT.y >= 28:          # the answer above the box, else inside it
                views.text(screen, str(int(digit)), (box.x, box.y - 2), self.fonts.large, views.TOP_BAR,
                           "bottomleft")
            else:
                views.text(screen, str(int(digit)), (box.x + 3, box.y + 2), self.fonts.large, views.TOP_BAR)

    def render(self, flip=True):
        """Draw the whole window from the state (if anything changed) and show it."""
        if not self.dirty:
            return
        screen, fonts = self.screen, self.fonts
        screen.fill(views.BACKGROUND)
        live = views.text(screen, f"live prediction: {'on' if self.live else 'off'} (L)",
                          (screen.get_width() - 20, 20), fonts.normal, views.MUTED, "topright")
        views.text(screen, "Draw a digit or a whole number - " + ", ".join(m.title for m in self.models.values()),
                   (CANVAS_RECT.x, 14), fonts.large, width=live.left - 20 - CANVAS_RECT.x)
        screen.blit(self.canvas, CANVAS_RECT)
        pygame.draw.rect(screen, views.MUTED, CANVAS_RECT.inflate(2, 2), 1)
        if self.view != "predictions":
            self._current()                   # the digits first: the views below show self.image
        self.render_boxes(screen)
        if self.view in ("features", "rows") and self.study_model(self.view) is None:
            views.paragraph(screen, self.no_model_for(self.view), PANEL_RECT.topleft, fonts.normal,
                            PANEL_RECT.width, views.MUTED)
        elif self.view == "features":
            name = self.study_model("features")
            views.render_feature_maps(screen, PANEL_RECT, fonts, self.study_data("features"),
                                      self.title(name) if name else "convolutional model")
        elif self.view == "rows":
            name = self.study_model("rows")
            views.render_rows(screen, PANEL_RECT, fonts, self.image, self.study_data("rows"),
                              self.rows_read, self.title(name) if name else "recurrent model")
        elif self.view == "why":
            views.render_why(screen, PANEL_RECT, fonts, self.image, self.study_data("why"))
        else:
            names = list(self.results)
            selected = names.index(self.selected) if self.selected in names else 0
            views.render_predictions(screen, PANEL_RECT, fonts, self.images, self.readings(),
                                     selected, self.focus, self.reader_row(), self.advice)
        width = screen.get_width() - 2 * CANVAS_RECT.x
        views.paragraph(screen, self.message, (CANVAS_RECT.x, CANVAS_RECT.bottom + 8), fonts.normal,
                        width, max_lines=2)
        keys = HELP.split("   ")
        half = (len(keys) + 1) // 2
        for row, line in enumerate(("   ".join(keys[:half]), "   ".join(keys[half:]))):
            views.text(screen, line, (CANVAS_RECT.x, screen.get_height() - 26 + 14 * row), fonts.small,
                       views.MUTED, "bottomleft", width=width)
        if flip:
            pygame.display.flip()
        self.dirty = False

    def save_screenshot(self, path=None):
        """Save the window as PNG (to ``path`` or the app's screenshot path).

        Raises :class:`UserError` naming the file if it cannot be written.
        """
        path = Path(path or self.screenshot_path)
        self.dirty = True
        self.render(flip=False)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")   # same format
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(self.screen, str(temporary))
            os.replace(temporary, path)                 # atomic: never half a picture
        except (OSError, pygame.error) as error:
            raise UserError(f"{path}: cannot save the screenshot ({error})") from None
        finally:
            if temporary.exists():
                temporary.unlink()
        self.message = f"Saved the window to {path}."
        print(self.message, flush=True)
        return path

    def post(self, events):
        """Queue events as if they came from the mouse and keyboard (demo, tests, benchmark)."""
        for event in events:
            pygame.event.post(event)
