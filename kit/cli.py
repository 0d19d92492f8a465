"""Command-line helpers shared by the commands: one-line errors, argument value checks, and the
one definition of each flag several commands have.

    parser = CommandLineParser(prog="python -m models.evaluate", description="...")
    add_model_flag(parser, registry.names())      # --model NAME
    add_model_file_flag(parser)                   # --model-file PATH
    add_weights_flag(parser)                      # --weights PATH
    add_data_flag(parser)                         # --data DIR
    add_threads_flag(parser)                      # --threads N
    ...
    args = parser.parse_args(argv)
    nn.set_threads(args.threads)                  # at run time: NumPy may be loaded already

A flag shared by commands is spelled, typed and explained here once, so ``--threads`` means the
same to every command that has it.  This module is the application's bottom layer (it imports
``nn`` only), so the lists that come from the model registry are passed in.
"""
import argparse
import functools
import math
import os
import sys

from nn.errors import UserError


class CommandLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage dump) and exits with status 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), not {text}")
    return value


DATA_HELP = "folder with the IDX files (default: $MNIST_DIR, else ./data/mnist, else the user data folder)"
THREADS_HELP = "CPU threads for BLAS and Numba (default: {default})"


def add_model_flag(parser, model_names, help=None):
    """``--model NAME``: a registered model (its shipped weights unless --weights is given)."""
    parser.add_argument("--model", metavar="NAME", help=help or (
        "a model: " + ", ".join(model_names) + " (its shipped weights unless --weights is given)"))


def add_model_file_flag(parser, help="a Python file defining MODEL = ModelSpec(...)"):
    """``--model-file PATH``: a model defined outside the kit, registered before it is used."""
    parser.add_argument("--model-file", metavar="PATH", help=help)


def add_weights_flag(parser, help="weights file (default: the model's shipped weights)"):
    """``--weights PATH``: a weights file (.npz, or .safetensors written by this kit)."""
    parser.add_argument("--weights", metavar="PATH", help=help)


def add_data_flag(parser, *aliases):
    """``--data DIR`` (``--dir DIR`` too for ``python -m kit.data``, its older name): the MNIST
    folder as ``args.data``, read by :func:`kit.data.resolve_data_dir`."""
    parser.add_argument("--data", *aliases, dest="data", metavar="DIR", help=DATA_HELP)


def add_download_flag(parser):
    """``--download``: consent to fetch MNIST when the data folder lacks it."""
    parser.add_argument("--download", action="store_true",
                        help="fetch MNIST into the data folder if it is missing")


def add_json_flag(parser):
    """``--json``: the results as one JSON object on standard output, nothing else."""
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")


def add_threads_flag(parser, default=None, why=""):
    """``--threads N``: pass ``args.threads`` to :func:`nn.set_threads` (None changes nothing).

    ``default`` is the count a command uses without the flag (None: all cores); ``why`` says
    why it differs, for the help.
    """
    shown = "all cores" if default is None else f"{default}{why}"
    parser.add_argument("--threads", type=positive_int, metavar="N", default=default,
                        help=THREADS_HELP.format(default=shown))


def exit_on_user_error(main):
    """Decorate a ``main()`` so a :class:`UserError` becomes ``error: ...`` and exit status 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        except BrokenPipeError:
            # The reader went away (`... | head`): stop quietly, as other command-line tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(1) from None

    return wrapper
