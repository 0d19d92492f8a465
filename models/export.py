"""``python -m models.export``: kept at this name for the README's commands; the program is
:mod:`models.commands.export`."""
import sys

if __name__ == "__main__":
    import nn
    from nn.threads import threads_from_argv

    nn.configure_threads(threads_from_argv(sys.argv[1:]))  # before NumPy loads BLAS
    from models.commands.export import main

    sys.exit(main())
