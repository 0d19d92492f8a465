#!/usr/bin/env python
"""Train the reference LSTM on the MNIST IDX files: `python -m models.train --model lstm` under the
original app's script name.  `python train_lstm.py --help` lists the flags."""
import sys

from models.commands.train import run

if __name__ == "__main__":

    sys.exit(run(sys.argv[1:], model="lstm", prog="train_lstm.py"))
