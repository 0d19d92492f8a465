"""``python -m models.train``: kept at this name for the README's commands; the program is
:mod:`models.commands.train` (the run itself: :mod:`models.training.trainer`)."""
import sys

from models.commands.train import run

if __name__ == "__main__":
    sys.exit(run())
