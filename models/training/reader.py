"""``python -m models.training.reader``: kept at this name for the README's and docs/reader.md's
commands; the reader trains with the kit's one trainer, and this is ``python -m models.train
--model reader`` with the flags it always had (:mod:`models.commands.reader` maps them)."""
import sys

from models.commands.reader import main

if __name__ == "__main__":
    sys.exit(main())
