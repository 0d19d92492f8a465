"""Shared fixtures: where the repository and the real MNIST files are; and, under CI, a skip for
want of MNIST or the test extra (torch, safetensors) counted as the failure it is there.
"""
import nn

nn.configure_threads()  # first, as every entry point does: BLAS threads set before NumPy loads
import os
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# What a CI run (.ci/run exports CI=1) must have (Dask: the study extra): a test skipped for want of one of these would
# make CI green while testing nothing, so there the skip becomes a failure.
REQUIRED_IN_CI = re.compile(r"MNIST|\btorch\b|PyTorch|safetensors|Dask")


def in_ci() -> bool:
    """True when the CI variable is set to anything but '', 0, false or no."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:   # (path, line, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def _fail_required_skip(report):
    """Under CI, turn a skip whose reason names MNIST, torch or safetensors into a failure."""
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if REQUIRED_IN_CI.search(reason):
        report.outcome = "failed"
        report.longrepr = f"CI is set, so this is a failure, not a skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Tests that skip (a fixture or importorskip inside a test)."""
    outcome = yield
    _fail_required_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Modules that skip as a whole (``importorskip`` at the top): a collection error in CI."""
    outcome = yield
    _fail_required_skip(outcome.get_result())


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


@pytest.fixture(scope="module", autouse=True)
def model_files_forgotten_after_each_module():
    """Model files a test module registers (``--model-file`` in-process) are forgotten when the
    module ends: another module's "every model" loops (the benchmark's, say) must see the kit's
    models only, whatever order the modules run in."""
    from models import registry
    before = dict(registry._specs)
    yield
    registry._specs.clear()
    registry._specs.update(before)


@pytest.fixture()
def screen():
    """A pygame window of draw.py's size (headless under SDL_VIDEODRIVER=dummy), closed after."""
    import pygame
    from canvas.app import WINDOW_SIZE
    pygame.display.init()
    pygame.font.init()
    surface = pygame.display.set_mode(WINDOW_SIZE)
    pygame.event.clear()
    yield surface
    pygame.display.quit()
