"""``python -m models.training.reader``: the number reader's command as it always read, run by the
kit's one trainer (``python -m models.train --model reader``, :mod:`models.commands.train`).

    python -m models.training.reader --out runs/reader.npz --epochs 30 --numbers 20000
    python -m models.training.reader --out runs/reader.npz --epochs 30 --numbers 20000 --resume
    python -m models.training.reader --resume runs/reader.checkpoint.npz      # the same
    python -m models.training.reader --evaluate runs/reader.npz --test-numbers 1000

Its flags map onto the trainer's: ``--out X --resume`` is ``--resume X``'s checkpoint,
``--until-epoch N`` stops (exit 0, the checkpoint kept) once N epochs are done, and every other
flag (--epochs, --numbers, --lr, --hidden, --val-fraction, --limit, --quiet ...) is the trainer's
own.  ``--evaluate`` only measures: the share of ``--test-numbers`` numbers of 2-6 digits
composed from MNIST's test digits, digits apart and touching, that a reader reads exactly.
"""
import sys

from kit.cli import CommandLineParser, add_data_flag, add_threads_flag, positive_float, positive_int
from kit.data import resolve_data_dir
from models import registry
from models.commands.train import run
from models.training.checkpoint import sibling_paths
from models.training.config import TrainerCallbacks
from models.training.reader_data import evaluate_reader
from models.training.trainer import EXIT_INTERRUPTED
from nn.errors import UserError
from nn.threads import set_threads

PROG = "python -m models.training.reader"
# The flags this command always had that the trainer takes as they are (None: not given).
TRAINER_FLAGS = {"epochs": positive_int, "numbers": positive_int, "batch_size": positive_int,
                 "hidden": positive_int, "test_numbers": positive_int, "seed": int, "lr": positive_float}


def make_parser():
    parser = CommandLineParser(
        prog=PROG, allow_abbrev=False,
        description="Train the number reader on numbers composed from MNIST's training digits, "
                    "with the kit's trainer (python -m models.train --model reader), or measure one.",
        epilog="Any other flag of python -m models.train --model reader (--val-fraction, --limit, "
               "--keep, --channels, --quiet, --download ...) is passed on to it.")
    parser.add_argument("--out", help="the weights file to write (.npz); history and checkpoint go beside it")
    parser.add_argument("--evaluate", metavar="WEIGHTS",
                        help="only measure a reader on --test-numbers test numbers per condition")
    parser.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT",
                        help="go on from --out's checkpoint (or the checkpoint file given)")
    add_data_flag(parser)
    for name, check in TRAINER_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=check, default=None,
                            help="as python -m models.train --model reader (default: the reader's recipe)")
    add_threads_flag(parser)
    parser.add_argument("--until-epoch", type=positive_int, default=None,
                        help="stop after this many epochs (--resume goes on later)")
    return parser


def trainer_arguments(flags, others):
    """The argv of ``python -m models.train --model reader`` that does what ``flags`` ask."""
    argv = ["--model", "reader"]
    if flags.resume is True:
        argv += ["--resume", str(sibling_paths(flags.out)[1])]
    elif flags.resume:
        argv += ["--resume", flags.resume]
    for name in ("out", "data", "threads", *TRAINER_FLAGS):
        value = getattr(flags, name)
        if value is not None:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return argv + others


def until_epoch(epochs_done):
    """(callbacks, stopped) that stop a run, as a Ctrl-C would, when ``epochs_done`` epochs are
    done; ``stopped()`` says whether they did."""
    reached = []

    def on_phase(name):
        if name == f"epoch-start:{epochs_done + 1}":
            reached.append(name)

    return TrainerCallbacks(on_phase=on_phase, stop_requested=lambda steps: bool(reached)), lambda: bool(reached)


def main(argv=None):
    """Run the command; returns the exit status (0, 2 for a problem with the input or files,
    3 diverged, 130 interrupted)."""
    parser = make_parser()
    flags, others = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    training = flags.out is not None or flags.resume is not None
    if training == (flags.evaluate is not None):
        parser.error("give --out WEIGHTS to train, or --evaluate WEIGHTS to measure")
    if flags.resume is True and flags.out is None:
        parser.error("--resume without a checkpoint needs --out (the run's weights file)")
    if flags.evaluate is not None:
        if others:
            parser.error(f"unrecognized arguments: {' '.join(others)}")
        try:
            with set_threads(flags.threads):
                evaluate_reader(flags.evaluate, resolve_data_dir(flags.data), 
                                flags.test_numbers or registry.get("reader").recipe.test_numbers)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        return 0
    callbacks, stopped = until_epoch(flags.until_epoch) if flags.until_epoch else (None, lambda: False)
    try:
        status = run(trainer_arguments(flags, others), model="reader", prog=PROG, callbacks=callbacks)
    except SystemExit as stop:    # the trainer's one-line errors and flag checks
        return stop.code
    if status == EXIT_INTERRUPTED and stopped():
        print(f"stopped after epoch {flags.until_epoch} as --until-epoch asked", file=sys.stderr)
        return 0
    return status


if __name__ == "__main__":
    sys.exit(main())
