"""The canvas program: ``python draw.py`` and ``cnn-vs-lstm draw`` both run :func:`main`.

Draw a digit or a whole number with the mouse; every shipped model says what it is.

    python draw.py                          # every shipped model (weights/*.npz), or your taught ones
    python draw.py --models cnn,gru --live
    python draw.py --weights cnn=runs/cnn/cnn.npz --lstm runs/lstm/lstm.npz
    python draw.py --model-file my_net.py --weights my_net=runs/my_net.npz   # your own model too
    SDL_VIDEODRIVER=dummy python draw.py --demo 2026 --screenshot docs/draw.png   # headless picture
    SDL_VIDEODRIVER=dummy python draw.py --demo 2026 --touching --screenshot docs/touching.png

Keys: left mouse draws, P predicts (answers printed and shown, the reader's too), C clears, L toggles live
prediction, Tab selects the model whose bars are shown, Left/Right the digit of a number, F shows
a convolutional model's feature maps, R a recurrent model reading row by row, W why (saliency and
occlusion), T then a digit teaches the models your handwriting, X goes back to the shipped
weights, S saves a screenshot, Q / Esc / closing the window quits.

Each digit is turned into an MNIST-style 28x28 image (crop, scale to 20 px, centre by mass:
kit/images/preprocess.py; several digits are split apart first: kit/images/segment.py) before any model
sees it.  The app itself lives in canvas/.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pygame

import nn
from canvas import views
from canvas.app import BRUSH, CANVAS_RECT, HELP, READER, WINDOW_SIZE, DrawApp
from canvas.demo import digit_events, key_event, number_events
from canvas.display import HEADLESS_DRIVERS, display_problem
from canvas.startup import start_kernels, warm_up
from kit.cli import (CommandLineParser, add_model_file_flag, add_threads_flag, exit_on_user_error,
                     positive_int)
from kit.data import resolve_data_dir
from kit.paths import personal_dir
from models import load_model, registry, shipped_weights
from models.probe import check_model_spec
from models.training.teaching import Teacher, personal_weights
from nn.compiling import compile_notice
from nn.errors import UserError, WeightsError

REPOSITORY = Path(__file__).resolve().parent.parent   # where train_cnn.py lives, in a checkout
NO_DISPLAY = "no display available (set DISPLAY, or SDL_VIDEODRIVER=dummy for a headless run)"
DEMO_BOX = pygame.Rect(115, 80, 230, 330)    # where --demo draws a single digit on the window
DEMO_AREA = CANVAS_RECT.inflate(-20, -60)    # where --demo writes a number
VIEW_KEYS = {"predictions": [], "features": [pygame.K_f], "rows": [pygame.K_r], "why": [pygame.K_w]}


KEYS = """keys:
  left mouse   draw (white strokes on the black box); several digits side by side make a number
  P            predict: one line per model in the console ('CNN: 2026 (97.1 %)'), a table of
               every model's answer and the selected model's bars in the window, a box around
               each digit; the reader's answer for the whole line on its own row, and where
               digits touch (a piece too wide for one digit) the advice to trust it
  C            clear the box
  L            live prediction while drawing, on/off
  Tab          select the next model (its bars, and its F / R views)
  Left, Right  select the digit of a number (bars, F, R, W and T are about that digit)
  F            a convolutional model's feature maps for the drawing (F or Esc: back)
  R            a recurrent model reading the digit row by row (Up/Down: step, Space: replay)
  W            why: each model's saliency (gradient of log p(answer) per pixel) and occlusion
               sensitivity (drop in p(answer) when a 4x4 patch is blanked)
  T, then 0-9  teach: the drawing and the right digit join your personal data set and every
               model fine-tunes on it (with MNIST replay); kept for the next start
  X            back to the shipped weights (removes the personal weights, keeps your examples)
  S            save the window as PNG (--screenshot)
  Q, Esc       quit"""


def make_parser(prog="draw.py"):
    parser = CommandLineParser(prog=prog, description="Draw a digit or a number; every shipped model says what it is.",
                               epilog=KEYS, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--models", metavar="NAMES",
        help=f"comma-separated models to show (default: every shipped model with weights: "
             f"{', '.join(registry.shipped())})")
    add("--weights", metavar="NAME=PATH", action="append", default=[],
        help="use this weights file for model NAME (repeatable); adds NAME to the models shown")
    add("--shipped", action="store_true",
        help="use the shipped weights even if you have taught the models (personal weights in "
             "the user data folder, see T)")
    add("--brush", type=positive_int, default=BRUSH, metavar="PX",
        help=f"stroke width in pixels (default: {BRUSH})")
    add("--live", action="store_true", help="start with live prediction while drawing (key L)")
    add("--screenshot", metavar="PATH",
        help="PNG the S key saves the window to (default: draw.png); with --demo, the window is "
             "saved there after the demo, which then quits")
    add("--demo", type=demo_number, metavar="NUMBER",
        help="write this digit or number (1-6 digits, e.g. 7 or 2026) with scripted mouse events "
             "and press P, as a person would; with a headless SDL_VIDEODRIVER (dummy) it needs "
             "--screenshot, since no window would show it and nothing could end it")
    add("--touching", action="store_true",
        help="with --demo: write the number's digits touching each other (the reader reads them "
             "whole; splitting them fails)")
    add("--view", choices=tuple(VIEW_KEYS), default="predictions",
        help="with --demo: the panel to show after predicting (default: predictions)")
    add_model_file_flag(parser, help="a Python file defining MODEL = ModelSpec(...) (docs/extending.md): "
                                     "its model is shown too, with --weights NAME=PATH")
    # One image at a time gains nothing from threads, and waking Numba's and BLAS's workers costs
    # ~10 ms per parallel kernel on a busy machine (measured: a P took 126 ms with 2 threads
    # while training ran, 4 ms with 1).
    add_threads_flag(parser, default=1, why=": one drawing at a time gains nothing from more")
    taken = {option for action in parser._actions for option in action.option_strings}
    for name in registry.names():        # --cnn PATH, --lstm PATH (the original app's flags), ...
        if f"--{name}" not in taken:
            add(f"--{name}", metavar="PATH", default=None, dest=f"weights_of_{name}",
                help=f"same as --weights {name}=PATH")
    return parser


def demo_number(text):
    if not (text.isdigit() and text.isascii() and 1 <= len(text) <= 6):
        raise argparse.ArgumentTypeError(f"expected a number of 1 to 6 digits, got {text!r}")
    return text


def chosen_models(args):
    """[(name, weights path or None for the default)], in display order; one-line errors."""
    given = {}
    for item in args.weights:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--weights expects NAME=PATH, got {item!r}")
        registry.get(name)                          # an unknown name: one line listing the known
        given[name] = (path, f"--weights {name}=PATH")
    for name in registry.names():
        path = getattr(args, f"weights_of_{name}", None)
        if path is not None:
            given[name] = (path, f"--{name}")
    if args.models:
        names = [name.strip() for name in args.models.split(",") if name.strip()]
        if not names:
            raise UserError("--models needs at least one model name")
        for name in names:
            registry.get(name)
    else:
        names = [name for name in registry.shipped() if shipped_weights(name).is_file()]
    names += [name for name in given if name not in names]
    model_file = getattr(args, "model_file_name", None)
    if model_file is not None and model_file not in names:
        names.append(model_file)
    if not names:
        raise UserError("no trained models found: train one with 'python -m models.train --model NAME' "
                        "or name a weights file with --weights NAME=PATH")
    return [(name, given.get(name)) for name in dict.fromkeys(names)]


def load_model_file(path):
    """Register the model of ``--model-file`` and probe it with one small batch of 28 x 28 images
    (what the canvas gives it) before any weights are read: a model file that cannot read a
    drawing is one line saying what is wrong with it.  Returns the model's name."""
    try:
        spec = registry.load_model_file(path)
    except UserError:
        raise
    except Exception as error:       # raised while importing the person's file
        text = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"{path}: importing it raised {type(error).__name__}"
                        + (f": {text}" if text else "")) from None
    check_model_spec(spec, dict(spec.options), image_shape=(28, 28), num_classes=10)
    return spec.name


def finite_weights(model, path):
    """``model``, or a WeightsError naming ``path`` if any weight is NaN or infinite (a valid
    checksum says only that the file is as written, not that what was written is numbers)."""
    for key, array in model.network.state().items():
        array = np.asarray(array)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            raise WeightsError(f"{path}: the weights are not finite numbers (NaN or infinity in "
                               f"{key}); the file is damaged")
    return model


def load_checked(path, name):
    """The model in weights file ``path`` (of model ``name``), its weights all finite numbers.
    An error inside a model file's own code while rebuilding it is one line, as for the probe."""
    try:
        return finite_weights(load_model(path, expect=name), path)
    except UserError:
        raise
    except Exception as error:
        spec = registry.get(name)
        if not spec.from_model_file:
            raise
        text = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"{spec.source}: building the network for {path} raised "
                        f"{type(error).__name__}" + (f": {text}" if text else "")) from None


def train_command(name):
    script = REPOSITORY / f"train_{name}.py"
    return f"python {script.name}" if script.is_file() else registry.get(name).train_command


def with_reader(models, sources):
    """``models`` and the number reader P also asks (its shipped weights, added to ``sources``),
    for the start-up's compile; without its weights, ``models`` alone (its row says why)."""
    path = shipped_weights(READER)
    try:
        reader = load_model(path, expect=READER)
    except UserError:
        return models
    sources[READER] = path
    return {**models, READER: reader}


def load_models(args, sources=None):
    """Every chosen model: the given file, else your personal weights (unless --shipped), else
    the shipped ones.  A one-line error naming the file and how to get a good one.
    ``sources``, a dict if given, receives each model's weights file (name -> path)."""
    models = {}
    sources = {} if sources is None else sources
    for name, given in chosen_models(args):
        if given is not None:
            path, flag = given
        else:
            taught = None if args.shipped else personal_weights(name)
            path, flag = (taught or shipped_weights(name)), f"--weights {name}=PATH"
        try:
            models[name] = load_checked(path, name)
            sources[name] = path
        except UserError as error:           # WeightsError, or another one-line refusal
            if given is None and path != shipped_weights(name):   # a damaged personal file
                print(f"warning: {error}; using the shipped weights", file=sys.stderr, flush=True)
                try:
                    models[name] = load_checked(shipped_weights(name), name)
                    sources[name] = shipped_weights(name)
                except UserError as shipped_error:
                    raise UserError(f"{shipped_error} - reinstall the kit or train one with "
                                    f"'{train_command(name)}'") from None
                continue
            raise UserError(f"{error} - train one with '{train_command(name)}' "
                            f"or point {flag} at a weights file") from None
        if given is None and path != shipped_weights(name):
            print(f"{models[name].title}: your taught weights ({path}); --shipped or X for the "
                  "shipped ones", flush=True)
    return models


class WindowClosed(Exception):
    """The window was closed while the app waited for its kernels."""


class StartingApp(DrawApp):
    """The app on a first start, while its kernels compile in ``background``
    (a :class:`canvas.startup.BackgroundCompile`): drawing works at once; the first thing that
    asks a model (P, live prediction, the F / R / W views, T) waits for the workers, with a note
    in the window, then loads what they compiled.  Later, teaching's first T compiles the
    training kernels and says so."""

    def __init__(self, *args, background=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.background, self.predictions_loaded = None, True
        self.first_frame_time = None     # time.time() when run_app drew the first frame
        if background is not None:
            self.compile_in_background(background)

    def compile_in_background(self, background):
        """From now on the models' kernels come from ``background``: say so in the window."""
        self.background, self.predictions_loaded = background, False
        self.message = (f"Compiling kernels for this machine, first start only (~{background.remaining()} s): "
                        "draw meanwhile.")
        self.dirty = True

    def note(self, text):
        """Show ``text`` on the message line now, while the app is busy (no full redraw: the
        study views would ask the models)."""
        self.message = text
        line = pygame.Rect(0, CANVAS_RECT.bottom + 8, self.screen.get_width(), 24)
        self.screen.fill(views.BACKGROUND, line)
        views.text(self.screen, text, (CANVAS_RECT.x, CANVAS_RECT.bottom + 12), self.fonts.normal)
        pygame.display.flip()
        self.dirty = True

    def kernels_ready(self, with_views=False):
        """Wait for the background compile (the predictions' kernels, or with ``with_views`` the
        study views' too), then load what it compiled from the cache."""
        background = self.background
        if background is None or (self.predictions_loaded and not with_views):
            return
        shown = []

        def closed():
            left = background.remaining()
            if shown != [left]:
                self.note(f"Compiling kernels for this machine, first start only: ~{left} s left ...")
                shown[:] = [left]
            return pygame.event.peek(pygame.QUIT)

        try:
            if not background.wait(interrupted=closed, views=with_views):
                raise WindowClosed()
        except BaseException:
            background.stop()
            raise
        if with_views:
            self.background = None
            failures = background.failures()
            background.stop()
            for failure in failures:          # that worker's models compile here instead
                print(f"warning: a kernel compiling process failed ({failure}); compiling here",
                      file=sys.stderr, flush=True)
        with compile_notice("compiling the rest of the kernels here ..."):
            warm_up(self.models, views=with_views)
        if not self.predictions_loaded:
            self.predictions_loaded = True
            self.message = f"Kernels compiled in {time.perf_counter() - background.started:.0f} s (first start only)."

    def predict(self, announce=True):
        self.kernels_ready()
        return super().predict(announce)

    def first_time(self, what):
        """A block that, if it compiles any kernel, says so on the console and in the window
        when the first compile starts (the window cannot redraw until they are done)."""
        def announce():
            self.note(f"Compiling kernels for this machine ({what}), first time only ...")
            return f"compiling kernels for this machine ({what}), first time only"
        return compile_notice(announce)

    def study_data(self, view):
        self.kernels_ready(with_views=True)
        with self.first_time({"why": "the W view"}.get(view, "the F and R views")):
            return super().study_data(view)

    def teach(self, digit):
        self.kernels_ready(with_views=True)
        with self.first_time("teaching"):
            return super().teach(digit)


def open_window():
    """The window, or a one-line error when there is no display to open it on."""
    if sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")):
        raise UserError(NO_DISPLAY)
    check_display()
    try:
        pygame.display.init()
        pygame.font.init()
        screen = pygame.display.set_mode(WINDOW_SIZE)
    except pygame.error:
        raise UserError(NO_DISPLAY) from None
    requested = os.environ.get("SDL_VIDEODRIVER", "")
    if pygame.display.get_driver() in HEADLESS_DRIVERS and requested not in HEADLESS_DRIVERS:
        # SDL fell back to an invisible window (no usable display): nothing could ever end it.
        raise UserError(f"no display available (SDL found none and would open an invisible "
                        f"window{display_shown()}; set DISPLAY, or SDL_VIDEODRIVER=dummy for a "
                        "headless run)")
    pygame.display.set_caption("Draw a digit or a number")
    return screen


def display_shown():
    display = os.environ.get("DISPLAY")
    return f", DISPLAY={display}" if display else ""


def check_demo(args):
    """--demo on a headless driver without --screenshot: nobody could see it or end it."""
    if (args.demo is not None and not args.screenshot
            and os.environ.get("SDL_VIDEODRIVER", "") in HEADLESS_DRIVERS):
        raise UserError(f"--demo with SDL_VIDEODRIVER={os.environ['SDL_VIDEODRIVER']} shows no window "
                        "and would never end: add --screenshot PATH to save the result (the demo "
                        "then quits), or run it on a display")


def check_display():
    """A one-line error, before any work, when DISPLAY names an X server that is not there
    (SDL would otherwise fall back to an invisible window and wait forever)."""
    problem = display_problem()
    if problem is not None:
        raise UserError(f"no display available ({problem}; set DISPLAY, or SDL_VIDEODRIVER=dummy "
                        "for a headless run)")


def run(app, fps=60):
    """The main loop: events, then drawing, until Q / Esc / the window closes."""
    clock = pygame.time.Clock()
    while app.step():
        app.render()
        clock.tick(fps)


def settle(app):
    """Handle everything queued (one step takes the whole queue) and draw the result at once,
    the row-by-row view showing every row rather than animating."""
    app.step()
    app.rows_read, app.animating, app.dirty = 28, False, True
    app.render()


def demo_events(text, touching=False):
    """Mouse events writing ``text``: one digit large in DEMO_BOX, a number across the canvas
    (its digits ``touching`` or apart)."""
    if len(text) == 1:
        return digit_events(int(text), DEMO_BOX)
    return number_events(text, DEMO_AREA, touching=touching)


def run_demo(app, args):
    """--demo: write the digit or number with mouse events, press P (and the --view key)."""
    app.post(demo_events(args.demo, args.touching))
    app.post([key_event(pygame.K_p)] + [key_event(k) for k in VIEW_KEYS[args.view]])
    settle(app)


@exit_on_user_error
def main(argv=None, prog="draw.py", session=None):
    """The canvas until the window closes; returns the exit status.

    ``session``, for benchmarks and tests: a function of the :class:`DrawApp` called once its
    first frame is drawn and its kernels loaded (or compiling beside it), instead of the
    interactive loop; what it returns is the exit status.
    """
    args = make_parser(prog).parse_args(argv)
    with nn.set_threads(args.threads):      # restored on return, for a caller in the same process
        return run_app(args, session)


def run_app(args, session=None):
    """The canvas with parsed flags (see :func:`main`)."""
    check_display()                      # before loading anything: fail in well under a second
    check_demo(args)
    if args.model_file is not None:
        args.model_file_name = load_model_file(args.model_file)
    sources = {}
    models = load_models(args, sources)
    background = None
    try:
        screen = open_window()
        teacher = Teacher(models, folder=personal_dir(), mnist_dir=resolve_data_dir(None))
        app = StartingApp(models, screen, brush=args.brush, live=args.live,
                          screenshot_path=args.screenshot or "draw.png", teacher=teacher,
                          load_shipped=lambda name: load_model(shipped_weights(name), expect=name))
        app.render()                     # the window first, then the kernels (~0.2 s from the cache)
        app.first_frame_time = time.time()
        background = start_kernels(with_reader(models, sources), sources)   # None: all were cached
        if background is not None:
            app.compile_in_background(background)
            app.render()
        if session is not None:
            return session(app)
        print("Draw a digit or a number in the black box with the left mouse button.\nKeys: " + HELP,
              flush=True)
        if args.demo is not None:
            run_demo(app, args)
            if args.screenshot:
                app.save_screenshot()
                return 0
        run(app)
        return 0
    except WindowClosed:
        return 0
    finally:
        if background is not None:
            background.stop()


def run_main(argv=None, prog="draw.py", session=None):
    """:func:`main` as a program: Ctrl-C leaves quietly, pygame is always shut down."""
    try:
        return main(argv, prog, session)
    except KeyboardInterrupt:        # Ctrl-C in the console: leave quietly
        return 130
    finally:
        pygame.quit()


if __name__ == "__main__":
    sys.exit(run_main())
