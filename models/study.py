"""``python -m models.study``: the study runner's command line, :mod:`models.commands.study`
(the grid on Dask and its statistics: :mod:`models.analysis.studies`)."""
import sys

if __name__ == "__main__":
    import nn

    nn.configure_threads()  # before NumPy loads BLAS
    from models.commands.study import main

    sys.exit(main())
