"""The drawing app's state and behaviour: :class:`DrawApp`.

The main loop is three calls, kept apart so tests can drive the app with posted pygame events:

    while app.running:
        app.step()      # handle the pending events (mouse, keys, window), live prediction, animation
        app.render()    # draw the window from the state, if anything changed
        clock.tick(60)

The app shows every model it is given (draw.py gives it every shipped model): a table of their
answers and the bars of the selected one (Tab).  A drawing of several digits side by side is
read as a whole number (:mod:`kit.images.segment`); the study views (F, R, W) and teaching (T) work
on one digit of it, chosen with Left/Right.

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
from models.analysis.study import feature_maps, has_conv_layers, reads_rows, row_by_row
from models.analysis.saliency import explain
from kit.images.segment import read_number, segment
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
    """

    def __init__(self, models, screen=None, brush=BRUSH, live=False, screenshot_path="draw.png",
                 teacher=None, load_shipped=None):
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
        self.pen = self._to_canvas(position)
        views.draw_stroke(self.canvas, self.pen, self.pen, self.brush)
        self._changed()

    def pen_move(self, position):
        point = self._to_canvas(position)
        views.draw_stroke(self.canvas, self.pen, point, self.brush)
        self.pen = point
        self._changed()

    def clear(self):
        self.canvas.fill((0, 0, 0))
        self.pen = None
        self._changed()
        self.pieces, self.results, self.predicted_version, self.focus = [], {}, self.version, 0
        self.message = "Cleared."

    def _changed(self):
        self.version += 1
        self.dirty = True

    # ----------------------------------------------------------------------------- predicting
    def title(self, name):
        return self.models[name].title

    def predict(self, announce=True):
        """Split the canvas into digits, preprocess each, and ask every model; print the answers
        (one line per model) if ``announce``.

        Returns the results dict (model name -> (K, 10) probabilities), empty for an empty canvas.
        """
        self.pieces = segment(self.canvas_grey())
        self.predicted_version = self.version
        self.focus = min(self.focus, max(0, len(self.pieces) - 1))
        self.dirty = True
        if not self.pieces:
            self.results = {}
            self.message = EMPTY_MESSAGE
            if announce:
                print(EMPTY_MESSAGE, flush=True)
            return self.results
        batch = self.images                                            # (K, 28, 28)
        with one_numba_thread():
            self.results = {name: model.predict_proba(batch) for name, model in self.models.items()}
        answers = [format_answer(self.title(name), p) for name, p in self.results.items()]
        self.message = "   ".join(answers)
        if announce:
            print("\n".join(answers), flush=True)
        return self.results

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
        self.message = f"Taught {digit} ({result['count']} of your examples, {result['seconds']:.2f} s{note}). Now: {said}"
        print(f"Taught {digit}: {result['count']} examples in {self.teacher.data.folder}, "
              f"fine-tuned in {result['seconds']:.2f} s{note}", flush=True)
        print("\n".join(format_answer(self.title(n), p) for n, p in self.results.items()), flush=True)

    def use_shipped_weights(self):
        """X: every model back to its shipped weights; the personal weights files are removed
        (the personal examples stay, and teaching starts again from the shipped weights)."""
        if self.load_shipped is None:
            self.message = "No shipped weights to go back to."
            return
        for name in list(self.models):
            self.models[name] = self.load_shipped(name)
        removed = self.teacher.forget_weights() if self.teacher is not None else []
        self.version += 1
        if self.pieces:
            self.predict(announce=False)
        self.message = ("Back to the shipped weights" +
                        (f"; removed {len(removed)} personal weights file(s)" if removed else "") + ".")
        print(self.message, flush=True)

    # ----------------------------------------------------------------------------- events
    def handle_event(self, event):
        """Update the state for one pygame event."""
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1:
            if CANVAS_RECT.collidepoint(event.pos):
                self.pen_down(event.pos)
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
                self.message = {"features": "No model here has convolution layers.",
                                "rows": "No model here reads the image row by row."}[view]
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
        views.text(screen, "Draw a digit or a whole number - " + ", ".join(m.title for m in self.models.values()),
                   (CANVAS_RECT.x, 14), fonts.large)
        views.text(screen, f"live prediction: {'on' if self.live else 'off'} (L)",
                   (screen.get_width() - 20, 20), fonts.normal, views.MUTED, "topright")
        screen.blit(self.canvas, CANVAS_RECT)
        pygame.draw.rect(screen, views.MUTED, CANVAS_RECT.inflate(2, 2), 1)
        if self.view != "predictions":
            self._current()                   # the digits first: the views below show self.image
        self.render_boxes(screen)
        if self.view == "features":
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
                                     selected, self.focus)
        views.text(screen, self.message, (CANVAS_RECT.x, CANVAS_RECT.bottom + 12), fonts.normal)
        keys = HELP.split("   ")
        half = (len(keys) + 1) // 2
        for row, line in enumerate(("   ".join(keys[:half]), "   ".join(keys[half:]))):
            views.text(screen, line, (CANVAS_RECT.x, screen.get_height() - 26 + 14 * row), fonts.small,
                       views.MUTED, "bottomleft")
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
