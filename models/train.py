"""``python -m models.train``: kept at this name for the README's commands; the program is
:mod:`models.commands.train` (the run itself: :mod:`models.training.trainer`)."""
import sys

if __name__ == "__main__":
    import nn
    from nn.threads import threads_from_argv

    nn.configure_threads(threads_from_argv(sys.argv[1:]))  # before NumPy loads BLAS
    from models.commands.train import run

    sys.exit(run())
