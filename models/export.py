"""``python -m models.export``: kept at this name for the README's commands; the program is
:mod:`models.commands.export`."""
import sys

import nn  # noqa: F401  (first: OpenBLAS's load-time settings, see nn; the thread count is --threads)
from models.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
