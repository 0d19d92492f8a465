"""One cell of a study: a training run through the one trainer, returned as its files.

    payload = run_cell(Cell("cnn", 0, {"lr": 0.001}), config)

The function runs wherever Dask sends it (a worker process, often on another machine): it trains
into a temporary folder with :func:`models.training.trainer.train`, predicts the test images with
the best weights, and returns everything the study keeps as plain values (bytes, arrays, text).
Nothing is written to the study folder here; :mod:`.folder` does that on the machine that runs
the study.  The data folder is the worker's own (``$MNIST_DIR`` or the kit's default) unless the
study was given ``--data``.
"""
import contextlib
import io
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import nn
from kit.data import resolve_data_dir
from kit.mnist import load_dataset
from models import registry
from models.base import load_model
from models.training.checkpoint import sibling_paths
from models.training.config import TrainingConfig
from models.training.trainer import RunPlace, train

RESULT_VERSION = 1


class CellFailed(RuntimeError):
    """A cell whose run did not finish (a non-zero exit status or an error): the message names it."""


@dataclass(frozen=True)
class Cell:
    """A point of the grid: which model, which seed, which settings (flag name -> value)."""
    model: str
    seed: int
    settings: dict = field(default_factory=dict)

    @property
    def name(self):
        """The folder name, e.g. ``cnn-lr=0.003-seed1``: settings sorted, so it is stable."""
        parts = [self.model] + [f"{key}={value}" for key, value in sorted(self.settings.items())]
        return "-".join(parts + [f"seed{self.seed}"])

    @property
    def setting_label(self):
        """The settings as text, ``lr=0.003 batch_size=32``, or ``default``."""
        return " ".join(f"{key}={value}" for key, value in sorted(self.settings.items())) or "default"

    def __hash__(self):
        return hash(self.name)


def run_cell(cell: Cell, config: TrainingConfig, data=None, threads=1):
    """Train ``cell`` with ``config`` on ``threads`` CPU threads and return its files.

    Returns
    -------
    dict
        ``result`` (JSON-ready: the cell, its test accuracy, best epoch, seconds), ``weights``
        (the .npz file's bytes), ``history`` (the history JSON text), ``predictions`` and
        ``labels`` (int64 (N_test,) arrays) and ``log`` (what the trainer printed).

    Raises
    ------
    CellFailed
        The trainer exited with a non-zero status or raised; the message has its last line.
    """
    started = time.perf_counter()
    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="study-cell-") as folder:
        out = Path(folder) / f"{cell.model}.npz"
        place = RunPlace(out=out, data=data, quiet=True, prog=f"study cell {cell.name}")
        try:
            # One thread per worker process by default (the workers share the cores); Numba's
            # setting is per calling thread, and this is the thread that trains.
            with nn.set_threads(threads), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                status = train(registry.get(cell.model), config, place)
        except Exception as error:   # UserError (data missing...), or a bug: reported, never dropped
            raise CellFailed(f"{cell.name}: {type(error).__name__}: {error}") from None
        if status != 0:
            lines = [line for line in log.getvalue().splitlines() if line.strip()]
            raise CellFailed(f"{cell.name}: the trainer exited with status {status}"
                             + (f": {lines[-1]}" if lines else ""))
        history_path, _ = sibling_paths(out)
        history_text = history_path.read_text()
        weights = out.read_bytes()
        model = load_model(out, expect=cell.model)
        images, labels, _ = load_dataset(resolve_data_dir(data), "test", config.num_classes)
        if config.limit:
            images, labels = images[:config.limit], labels[:config.limit]
        predictions = model.predict(images)
    history = json.loads(history_text)
    accuracy = float(np.mean(predictions == labels))
    result = {"version": RESULT_VERSION, "cell": cell.name, "model": cell.model, "seed": cell.seed,
              "settings": dict(cell.settings), "test_accuracy": accuracy,
              "test_images": int(len(labels)), "best_epoch": history.get("best_epoch"),
              "seconds": time.perf_counter() - started, "config": config.to_json()}
    return {"result": result, "weights": weights, "history": history_text,
            "predictions": np.asarray(predictions, dtype=np.int64),
            "labels": np.asarray(labels, dtype=np.int64), "log": log.getvalue()}
