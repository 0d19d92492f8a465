#!/usr/bin/env python
"""Draw a digit or a whole number with the mouse; every shipped model says what it is.

    python draw.py                          # every shipped model, or the ones you taught
    python draw.py --models cnn,gru --live
    SDL_VIDEODRIVER=dummy python draw.py --demo 2026 --screenshot docs/draw.png   # headless picture
    python draw.py --help                   # every flag and key

The original app's entry point; the program is canvas/cli.py (also ``cnn-vs-lstm draw``).
"""
import sys

import nn

if __name__ == "__main__":
    # One image at a time gains nothing from threads, and waking Numba's and BLAS's workers costs
    # ~10 ms per parallel kernel on a busy machine.  Must happen before NumPy and Numba load.
    nn.configure_threads(1)
    from canvas.cli import run_main

    sys.exit(run_main())
