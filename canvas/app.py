"""The drawing app's state and behaviour: :class:`DrawApp`.

The main loop is three calls, kept apart so tests can drive the app with posted pygame events:

    while app.running:
        app.step()      # handle the pending events (mouse, keys, window), live prediction, animation
        app.render()    # draw the window from the state, if anything changed
        clock.tick(60)

Everything runs on the main thread: Numba's default threading layer aborts when parallel
kernels are entered from two Python threads, and one prediction takes a few milliseconds anyway.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pygame

from canvas import views
from canvas.study import cnn_feature_maps, lstm_row_by_row
from models.preprocess import preprocess_canvas
from nn.threads import one_numba_thread
from nn.errors import UserError

WINDOW_SIZE = (1080, 540)
CANVAS_RECT = pygame.Rect(20, 50, 400, 400)     # the black drawing box, as in the original app
PANEL_RECT = pygame.Rect(450, 50, 610, 400)     # predictions, or a study view
BRUSH = 15                                       # px on the 400 px box, like the original

HELP = ("Left mouse: draw   P: predict   C: clear   L: live on/off   F: CNN feature maps   "
        "R: LSTM row by row   S: screenshot   Q/Esc: quit")
EMPTY_MESSAGE = "The canvas is empty: draw a digit first."
LIVE_INTERVAL = 0.15     # s between live predictions while drawing
ROW_INTERVAL = 0.06      # s per row when the LSTM view animates its reading


def format_answer(label, probabilities):
    """'CNN: 7 (99.2 %)': the argmax of the raw probabilities (never rounded before the argmax)."""
    digit = int(np.argmax(probabilities))
    return f"{label}: {digit} ({100 * float(probabilities[digit]):.1f} %)"


class DrawApp:
    """A canvas to draw a digit on, and what the CNN and the LSTM make of it.

    Parameters
    ----------
    cnn, lstm : models.Model
        The loaded models (``load_model(..., expect='cnn')`` and ``expect='lstm'``).
    screen : pygame.Surface, optional
        The window surface; by default ``pygame.display.get_surface()``.
    brush : int
        Stroke width in pixels.
    live : bool
        Start with live prediction (predict while drawing) switched on.
    screenshot_path : str or Path
        Where the S key saves the window as PNG.
    """

    def __init__(self, cnn, lstm, screen=None, brush=BRUSH, live=False, screenshot_path="draw.png"):
        self.models = {"CNN": cnn, "LSTM": lstm}
        self.screen = screen if screen is not None else pygame.display.get_surface()
        self.fonts = views.Fonts()
        self.canvas = pygame.Surface(CANVAS_RECT.size)
        self.canvas.fill((0, 0, 0))
        self.brush = brush
        self.live = live
        self.screenshot_path = Path(screenshot_path)
        self.running = True
        self.view = "predictions"        # or "features", "rows"
        self.pen = None                  # last pen position on the canvas while the button is down
        self.version = 0                 # bumped by every change to the drawing
        self.predicted_version = -1      # the drawing version that self.image/results describe
        self.image = None                # what the models saw: float32 (28, 28), or None if empty
        self.results = {}                # 'CNN' / 'LSTM' -> (10,) probabilities
        self.study = {}                  # view name -> (drawing version, data) for the study views
        self.rows_read = 28              # LSTM view: rows shown so far
        self.animating = False
        self.last_tick = 0.0
        self.last_live = 0.0
        self.message = ""
        self.dirty = True                # the window needs drawing

    # ----------------------------------------------------------------------------- the drawing
    def canvas_array(self):
        """The canvas as a (row, column, RGB) uint8 array (surfarray is (x, y): transposed here)."""
        return pygame.surfarray.array3d(self.canvas).swapaxes(0, 1)

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
        self.image, self.results, self.predicted_version = None, {}, self.version
        self.message = "Cleared."

    def _changed(self):
        self.version += 1
        self.dirty = True

    # ----------------------------------------------------------------------------- predicting
    def predict(self, announce=True):
        """Preprocess the canvas and ask both models; print the answers if ``announce``.

        Returns the results dict ('CNN'/'LSTM' -> probabilities), empty for an empty canvas.
        """
        self.image = preprocess_canvas(self.canvas_array())
        self.predicted_version = self.version
        self.dirty = True
        if self.image is None:
            self.results = {}
            self.message = EMPTY_MESSAGE
            if announce:
                print(EMPTY_MESSAGE, flush=True)
            return self.results
        batch = self.image[None]                                    # (1, 28, 28)
        with one_numba_thread():
            self.results = {label: model.predict_proba(batch)[0] for label, model in self.models.items()}
        answers = [format_answer(label, p) for label, p in self.results.items()]
        self.message = "   ".join(answers)
        if announce:
            print("\n".join(answers), flush=True)
        return self.results

    def study_data(self, view):
        """The current drawing's feature maps ('features') or row-by-row answers ('rows')."""
        if self.predicted_version != self.version:
            self.predict(announce=False)
        cached = self.study.get(view)
        if cached is not None and cached[0] == self.version:
            return cached[1]
        data = None
        if self.image is not None:
            with one_numba_thread():
                data = (cnn_feature_maps(self.models["CNN"], self.image) if view == "features"
                        else lstm_row_by_row(self.models["LSTM"], self.image))
        self.study[view] = (self.version, data)
        return data


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
        elif key == pygame.K_f:
            self.view = "predictions" if self.view == "features" else "features"
        elif key == pygame.K_r:
            self.view = "predictions" if self.view == "rows" else "rows"
            if self.view == "rows":
                self.rows_read, self.animating = 0, True
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
        self.dirty = True

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
    def render(self, flip=True):
        """Draw the whole window from the state (if anything changed) and show it."""
        if not self.dirty:
            return
        screen, fonts = self.screen, self.fonts
        screen.fill(views.BACKGROUND)
        views.text(screen, "Draw a digit - CNN vs LSTM", (CANVAS_RECT.x, 14), fonts.large)
        views.text(screen, f"live prediction: {'on' if self.live else 'off'} (L)",
                   (screen.get_width() - 20, 20), fonts.normal, views.MUTED, "topright")
        screen.blit(self.canvas, CANVAS_RECT)
        pygame.draw.rect(screen, views.MUTED, CANVAS_RECT.inflate(2, 2), 1)
        if self.view == "features":
            views.render_feature_maps(screen, PANEL_RECT, fonts, self.study_data("features"))
        elif self.view == "rows":
            views.render_lstm_rows(screen, PANEL_RECT, fonts, self.image, self.study_data("rows"),
                                   self.rows_read)
        else:
            views.render_predictions(screen, PANEL_RECT, fonts, self.image, self.results)
        views.text(screen, self.message, (CANVAS_RECT.x, CANVAS_RECT.bottom + 14), fonts.normal)
        views.text(screen, HELP, (CANVAS_RECT.x, screen.get_height() - 12), fonts.small,
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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(self.screen, str(path))
        except (OSError, pygame.error) as error:
            raise UserError(f"{path}: cannot save the screenshot ({error})") from None
        self.message = f"Saved the window to {path}."
        print(self.message, flush=True)
        return path

    def post(self, events):
        """Queue events as if they came from the mouse and keyboard (demo, tests, benchmark)."""
        for event in events:
            pygame.event.post(event)
