"""The trainer's command line with a test's interruption installed, in a process of its own.

    python tests/support/interrupted_training.py (--after N | --at-phase PHASE)
        [--fixed-model NAME --prog PROG] -- TRAINER FLAGS...

``--fixed-model cnn --prog train_cnn.py`` makes it train_cnn.py (as that script calls the trainer);
the interruption is :func:`tests.support.interruptions.interruption`.
"""
import argparse
import sys
from pathlib import Path

# The repository instead of this folder, whose numbers.py would hide the standard library's.
sys.path[0] = str(Path(__file__).resolve().parents[2])

import nn  # noqa: E402
from nn.threads import threads_from_argv  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--after", type=int)
    parser.add_argument("--at-phase")
    parser.add_argument("--fixed-model")
    parser.add_argument("--prog")
    parser.add_argument("trainer_flags", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    flags = args.trainer_flags[1:] if args.trainer_flags[:1] == ["--"] else args.trainer_flags
    nn.configure_threads(threads_from_argv(flags))  # before NumPy loads BLAS, as the entry points do
    from models.commands.train import run
    from tests.support.interruptions import interruption
    return run(flags, model=args.fixed_model, prog=args.prog,
               callbacks=interruption(after=args.after, at_phase=args.at_phase))


if __name__ == "__main__":
    sys.exit(main())
