"""``python -m models.evaluate``: kept at this name for the README's commands; the program is
:mod:`models.commands.evaluate` (the evaluation itself: :mod:`models.analysis.evaluate`)."""
import sys

from models.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
