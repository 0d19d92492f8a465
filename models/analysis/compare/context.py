"""What every section of the comparison report reads: the models, the test images, the seed.

The command line (:mod:`models.analysis.compare.cli`) builds one :class:`Context` per run; the
sections compute from it.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from models.base import shipped_weights

SEED = 20240611   # the sweep subset and the noise are drawn from generators seeded here


@dataclass
class Context:
    """One run's inputs, shared by every section (which reads them and changes nothing but
    ``elapsed_seconds``, set by the report once the figures are drawn)."""
    models: dict                   # name -> Model, in the order of the report
    paths: dict                    # name -> the weights file it was loaded from
    pair: tuple                    # the two models whose disagreements are shown image by image
    images: np.ndarray             # (N, 28, 28) float32 test images in [0, 1]
    labels: np.ndarray             # (N,) their digits
    data: str                      # the data folder as the report shows it
    subset: np.ndarray             # sorted indices of the robustness and memory subset
    evaluations: dict              # name -> Evaluation on all N images
    histories: dict                # name -> the training history beside the weights, or None
    command: str                   # the command line that made the report
    machine: str                   # system, CPU cores, Python and NumPy versions
    latency_calls: int             # single-image predictions timed per model
    speed_seconds: float           # seconds of timed training steps per model
    threads_flag: Optional[int]    # --threads, if given
    load_average: float            # one-minute load average when the run started
    seed: int = SEED
    log: Callable = field(default=lambda message: None)
    elapsed_seconds: Optional[float] = None  # set once the figures are drawn

    @property
    def names(self):
        return list(self.models)


def shown_path(path):
    """``path`` relative to the current folder when it is inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def shown_weights(name, path):
    """A weights file as a shared report may show it: relative to the current folder when inside
    it, ``weights/<name>.npz`` (its place in the repository) for a model's shipped weights
    wherever the package is installed, else as given."""
    shown = shown_path(path)
    if Path(shown).is_absolute() and Path(path).resolve() == shipped_weights(name).resolve():
        return f"weights/{name}.npz"
    return shown


def shown_data_folder(folder, data_flag):
    """The MNIST folder as a shared report may show it, without the machine's absolute path
    where it can: relative to the current folder when inside it, else '~/...' inside the home
    folder, else ``$MNIST_DIR`` when it came from that variable, else as given with ``--data``."""
    shown = shown_path(folder)
    if not Path(shown).is_absolute():
        return shown
    home = Path.home().resolve()
    resolved = Path(folder).resolve()
    if resolved.is_relative_to(home):
        return str(Path("~") / resolved.relative_to(home))
    if not data_flag and os.environ.get("MNIST_DIR"):
        return "$MNIST_DIR"
    return str(folder)
