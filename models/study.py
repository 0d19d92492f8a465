"""``python -m models.study``: kept beside the other entry modules for the README's commands; the
program is :mod:`models.commands.study` (the grid on Dask and its statistics:
:mod:`models.analysis.studies`)."""
import sys

from models.commands.study import main

if __name__ == "__main__":
    sys.exit(main())
