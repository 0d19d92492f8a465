#!/usr/bin/env python
"""Train the reference CNN on the MNIST IDX files: `python -m models.train --model cnn` under the
original app's script name.  `python train_cnn.py --help` lists the flags."""
import sys

from models.commands.train import run

if __name__ == "__main__":

    sys.exit(run(sys.argv[1:], model="cnn", prog="train_cnn.py"))
