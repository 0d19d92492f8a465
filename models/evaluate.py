"""``python -m models.evaluate``: kept at this name for the README's commands; the program is
:mod:`models.analysis.evaluate`."""
import sys

import nn  # noqa: F401  (first: OpenBLAS's load-time settings, see nn; the thread count is --threads)
from models.analysis.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
