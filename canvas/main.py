"""``cnn-vs-lstm``: one command on the PATH for everything the kit does.

    cnn-vs-lstm draw [flags]        the canvas (python draw.py)
    cnn-vs-lstm train [flags]       train any model (python -m models.train)
    cnn-vs-lstm evaluate [flags]    test accuracy, per class, confusion (python -m models.evaluate)
    cnn-vs-lstm compare [flags]     the comparison report (python -m models.compare)
    cnn-vs-lstm data download|verify [flags]   MNIST into the user data folder (python -m kit.data)
    cnn-vs-lstm models              the registered models, one line each

Each subcommand is the same program as the module named beside it, with the same flags
(``cnn-vs-lstm train --help``).  Installed by ``pip install .`` as a console entry point.
"""
import sys

import nn
from kit.cli import exit_on_user_error

USAGE = __doc__.split("\n\n")[1]
# command -> (module, function, threads): draw answers one image at a time, on one thread.
COMMANDS = {
    "draw": ("canvas.cli", "run_main", 1),
    "train": ("models.training.trainer", "run", None),
    "evaluate": ("models.analysis.evaluate", "main", None),
    "compare": ("models.analysis.compare", "main", None),
    "data": ("kit.data", "main", None),
}


@exit_on_user_error   # also: a closed pipe (| head) ends quietly
def list_models():
    from models import registry
    for name in registry.names():
        spec = registry.get(name)
        print(f"{name:<6} {spec.title:<6} {spec.description}")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: cnn-vs-lstm COMMAND [flags]\n\n" + USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "models":
        return list_models()
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}, models "
              "(see cnn-vs-lstm --help)", file=sys.stderr)
        return 2
    module_name, function, threads = COMMANDS[command]
    from nn.threads import threads_from_argv
    nn.configure_threads(threads_from_argv(rest) or threads)  # before NumPy loads BLAS
    import importlib
    module = importlib.import_module(module_name)
    entry = getattr(module, function)
    prog = f"cnn-vs-lstm {command}"
    if command == "train":
        return entry(rest, prog=prog)
    try:
        return entry(rest, prog=prog)
    except TypeError as error:
        if "prog" not in str(error):
            raise
        return entry(rest)


if __name__ == "__main__":
    sys.exit(main())
