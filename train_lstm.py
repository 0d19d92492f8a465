#!/usr/bin/env python
"""Train the reference LSTM on the MNIST IDX files; `python train_lstm.py --help` lists the flags."""
import sys

from nn.threads import limit_threads, threads_from_argv

if __name__ == "__main__":
    limit_threads(threads_from_argv(sys.argv[1:]))  # before NumPy loads BLAS
    from models.training import run

    sys.exit(run("lstm"))
