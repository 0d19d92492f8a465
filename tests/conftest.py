"""Shared fixtures: where the repository and the real MNIST files are."""
import nn

nn.configure_threads()  # first, as every entry point does: BLAS threads set before NumPy loads
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder (where ``nn/`` lives)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder: ``$MNIST_DIR``, else ``<repo>/../shared/data/mnist``.

    Skips the test when it is absent; the project never commits the data.
    """
    directory = Path(os.environ.get("MNIST_DIR") or REPO_ROOT.parent / "shared" / "data" / "mnist")
    if not directory.is_dir():
        pytest.skip(f"MNIST data not found at {directory} (set MNIST_DIR to the folder holding "
                    f"the IDX files, or run: python -m kit.data download --dir {directory})")
    return directory
