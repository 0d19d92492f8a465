"""``cnn-vs-lstm``: one command on the PATH for everything the kit does.

    cnn-vs-lstm draw [flags]        the canvas (python draw.py)
    cnn-vs-lstm train [flags]       train any model (python -m models.train)
    cnn-vs-lstm evaluate [flags]    test accuracy, per class, confusion (python -m models.evaluate)
    cnn-vs-lstm compare [flags]     the comparison report (python -m models.compare)
    cnn-vs-lstm export [flags]      weights as safetensors or .npz (python -m models.export)
    cnn-vs-lstm data download|verify [flags]   MNIST into the user data folder (python -m kit.data)
    cnn-vs-lstm models              the registered models, one line each

Each subcommand is the same program as the module named beside it, with the same flags
(``cnn-vs-lstm train --help``), each of which sets its own thread count (``--threads``).
Installed by ``pip install .`` as a console entry point.

Every command is a function of (argv, prog) that imports its program when it runs, so
``cnn-vs-lstm models`` does not pay for loading the trainer.  This is the application's top
layer: it may import ``canvas``, ``models``, ``kit`` and ``nn``.
"""
import sys

from kit.cli import exit_on_user_error

USAGE = __doc__.split("\n\n")[1]


def draw(argv, prog):
    from canvas.cli import run_main
    return run_main(argv, prog)


def train(argv, prog):
    from models.commands.train import run
    return run(argv, prog=prog)


def evaluate(argv, prog):
    from models.commands.evaluate import main
    return main(argv, prog)


def compare(argv, prog):
    from models.commands.compare import main
    return main(argv, prog)


def export(argv, prog):
    from models.commands.export import main
    return main(argv, prog)


def data(argv, prog):
    from kit.data import main
    return main(argv, prog)


@exit_on_user_error   # also: a closed pipe (| head) ends quietly
def list_models(argv, prog):
    from kit.cli import CommandLineParser
    from models import registry
    CommandLineParser(prog=prog, description="The registered models, one line each.").parse_args(argv)
    for name in registry.names():
        spec = registry.get(name)
        print(f"{name:<6} {spec.title:<6} {spec.description}")
    return 0


COMMANDS = {"draw": draw, "train": train, "evaluate": evaluate, "compare": compare,
            "export": export, "data": data}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: cnn-vs-lstm COMMAND [flags]\n\n" + USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "models":
        return list_models(rest, f"cnn-vs-lstm {command}")
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}, models "
              "(see cnn-vs-lstm --help)", file=sys.stderr)
        return 2
    return COMMANDS[command](rest, f"cnn-vs-lstm {command}")


if __name__ == "__main__":
    sys.exit(main())
