"""``python -m models.analysis.compare``: the same program as ``python -m models.compare``."""
import sys

import nn
from nn.threads import threads_from_argv

nn.configure_threads(threads_from_argv(sys.argv[1:]))  # before NumPy loads BLAS
from models.analysis.compare.cli import main  # noqa: E402

sys.exit(main())
