"""Draw a digit with the mouse; the CNN and the LSTM say what it is.

    python draw.py                          # weights/cnn.npz and weights/lstm.npz
    python draw.py --cnn runs/cnn/cnn.npz --lstm runs/lstm/lstm.npz --live
    SDL_VIDEODRIVER=dummy python draw.py --demo 7 --screenshot docs/draw.png   # headless picture

Keys: left mouse draws, P predicts (answers printed and shown as bars), C clears, L toggles live
prediction, F shows the CNN's feature maps, R shows the LSTM reading row by row, S saves a
screenshot, Q / Esc / closing the window quits.

The drawing is turned into an MNIST-style 28x28 image (crop, scale to 20 px, centre by mass:
models/preprocess.py) before either model sees it.  The app itself lives in canvas/.
"""
import argparse
import json
import os
import sys
import time

_STARTED = time.perf_counter()

import nn  # noqa: E402  (first: nn.configure_threads below runs before NumPy loads)
from kit.cli import CommandLineParser, positive_int  # noqa: E402
from nn.errors import UserError, WeightsError  # noqa: E402
from kit.cli import exit_on_user_error  # noqa: E402

if __name__ == "__main__":
    # One image at a time gains nothing from threads, and waking Numba's and BLAS's workers costs
    # ~10 ms per parallel kernel on a busy machine (measured: a P took 126 ms with 2 threads while
    # training ran, 4 ms with 1).  Must happen before NumPy and Numba load.
    nn.configure_threads(1)

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pygame  # noqa: E402

from canvas.app import BRUSH, HELP, WINDOW_SIZE, DrawApp  # noqa: E402
from canvas.demo import digit_events, key_event  # noqa: E402
from canvas.study import cnn_feature_maps, lstm_row_by_row  # noqa: E402
from models import load_model  # noqa: E402

HERE = Path(__file__).resolve().parent
NO_DISPLAY = "no display available (set DISPLAY, or SDL_VIDEODRIVER=dummy for a headless run)"
DEMO_BOX = pygame.Rect(115, 80, 230, 330)    # where --demo draws its digit on the window
VIEW_KEYS = {"predictions": [], "features": [pygame.K_f], "rows": [pygame.K_r]}


KEYS = """keys:
  left mouse   draw (white strokes on the black box)
  P            predict: both answers in the console and as bars in the window
  C            clear the box
  L            live prediction while drawing, on/off
  F            the CNN's feature maps for the drawing (F or Esc: back)
  R            the LSTM reading the digit row by row (Up/Down: step, Space: replay)
  S            save the window as PNG (--screenshot)
  Q, Esc       quit"""


def make_parser():
    parser = CommandLineParser(prog="draw.py", description="Draw a digit; the CNN and the LSTM say what it is.",
                               epilog=KEYS, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--cnn", metavar="PATH", default=str(HERE / "weights" / "cnn.npz"),
        help="CNN weights file (default: weights/cnn.npz beside draw.py)")
    add("--lstm", metavar="PATH", default=str(HERE / "weights" / "lstm.npz"),
        help="LSTM weights file (default: weights/lstm.npz beside draw.py)")
    add("--brush", type=positive_int, default=BRUSH, metavar="PX",
        help=f"stroke width in pixels on the 400 px box (default: {BRUSH})")
    add("--live", action="store_true", help="start with live prediction while drawing (key L)")
    add("--screenshot", metavar="PATH",
        help="PNG the S key saves the window to (default: draw.png); with --demo, the window is "
             "saved there after the demo, which then quits")
    add("--demo", type=int, choices=range(10), metavar="DIGIT",
        help="draw this digit (0-9) with scripted mouse events and press P, as a person would")
    add("--view", choices=tuple(VIEW_KEYS), default="predictions",
        help="with --demo: the panel to show after predicting (default: predictions)")
    # For bench/draw_latency.py: draw a digit, time N presses of P, print JSON, quit.
    add("--benchmark", type=positive_int, metavar="N", help=argparse.SUPPRESS)
    return parser


def load_models(args):
    """Both models, or a one-line error naming the file and how to get a good one."""
    models = {}
    for name, path in (("cnn", args.cnn), ("lstm", args.lstm)):
        try:
            models[name] = load_model(path, expect=name)
        except WeightsError as error:
            raise UserError(f"{error} - train one with 'python train_{name}.py' "
                            f"or point --{name} at a weights file") from None
    return models["cnn"], models["lstm"]


def warm_up(cnn, lstm):
    """Compile (or load from Numba's cache) every kernel the app uses, before the window shows."""
    blank = np.zeros((1, 28, 28), dtype=np.float32)
    cnn.predict_proba(blank)
    lstm.predict_proba(blank)
    cnn_feature_maps(cnn, blank[0])
    lstm_row_by_row(lstm, blank[0])


def open_window():
    """The window, or a one-line error when there is no display to open it on."""
    if sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")):
        raise UserError(NO_DISPLAY)
    try:
        pygame.display.init()
        pygame.font.init()
        screen = pygame.display.set_mode(WINDOW_SIZE)
    except pygame.error:
        raise UserError(NO_DISPLAY) from None
    pygame.display.set_caption("Draw a digit - CNN vs LSTM")
    return screen


def run(app, fps=60):
    """The main loop: events, then drawing, until Q / Esc / the window closes."""
    clock = pygame.time.Clock()
    while app.step():
        app.render()
        clock.tick(fps)


def settle(app):
    """Handle everything queued (one step takes the whole queue) and draw the result at once,
    the LSTM view showing every row rather than animating."""
    app.step()
    app.rows_read, app.animating, app.dirty = 28, False, True
    app.render()


def run_demo(app, args):
    """--demo: draw the digit with mouse events, press P (and the --view key), like a person."""
    app.post(digit_events(args.demo, DEMO_BOX))
    app.post([key_event(pygame.K_p)] + [key_event(k) for k in VIEW_KEYS[args.view]])
    settle(app)


def run_benchmark(app, presses):
    """Time ``presses`` presses of P on a drawn digit: event handled, models run, window drawn."""
    app.post(digit_events(3, DEMO_BOX))
    settle(app)
    timings = []
    for _ in range(presses):
        pygame.event.post(key_event(pygame.K_p))
        start = time.perf_counter()
        app.step()
        app.render()
        timings.append(1000 * (time.perf_counter() - start))
    print(json.dumps({"p_latency_ms": timings}), flush=True)


@exit_on_user_error
def main(argv=None):
    args = make_parser().parse_args(argv)
    cnn, lstm = load_models(args)
    warm_up(cnn, lstm)
    screen = open_window()
    app = DrawApp(cnn, lstm, screen, brush=args.brush, live=args.live,
                  screenshot_path=args.screenshot or "draw.png")
    app.render()
    if args.benchmark:
        print(f"first frame after {time.perf_counter() - _STARTED:.3f} s", flush=True)
        run_benchmark(app, args.benchmark)
        return 0
    print("Draw a digit in the black box with the left mouse button.\nKeys: " + HELP, flush=True)
    if args.demo is not None:
        run_demo(app, args)
        if args.screenshot:
            app.save_screenshot()
            return 0
    run(app)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:        # Ctrl-C in the console: leave quietly
        sys.exit(130)
    finally:
        pygame.quit()
