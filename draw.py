#!/usr/bin/env python
"""Draw a digit or a whole number with the mouse; every shipped model says what it is.

    python draw.py                          # every shipped model, or the ones you taught
    python draw.py --models cnn,gru --live
    SDL_VIDEODRIVER=dummy python draw.py --demo 2026 --screenshot docs/draw.png   # headless picture
    python draw.py --help                   # every flag and key

The original app's entry point; the program is canvas/cli.py (also ``cnn-vs-lstm draw``).
"""
import sys

import nn  # noqa: F401  (first: OpenBLAS's load-time settings, see nn; threads: --threads, default 1)
from canvas.cli import run_main

if __name__ == "__main__":
    sys.exit(run_main())
