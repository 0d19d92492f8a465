"""``python -m models.compare``: kept at this name for the README's commands; the program is
:mod:`models.commands.compare` (the report itself: :mod:`models.analysis.compare`)."""
import sys

from models.commands.compare import main

if __name__ == "__main__":
    sys.exit(main())
