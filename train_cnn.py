#!/usr/bin/env python
"""Train the reference CNN on the MNIST IDX files: `python -m models.train --model cnn` under the
original app's script name.  `python train_cnn.py --help` lists the flags."""
import sys

import nn
from nn.threads import threads_from_argv

if __name__ == "__main__":
    nn.configure_threads(threads_from_argv(sys.argv[1:]))  # before NumPy loads BLAS
    from models.commands.train import run

    sys.exit(run(sys.argv[1:], model="cnn", prog="train_cnn.py"))
