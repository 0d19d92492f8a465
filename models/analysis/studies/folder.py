"""The study folder: one subfolder per cell, each file written atomically, ``result.json`` last.

    DIR/study.json                 the grid (models, seeds, settings, recipe changes), for the report
    DIR/<cell>/model.npz           the best weights of the run
    DIR/<cell>/model.history.json  its history (per-epoch records, best epoch, test pass)
    DIR/<cell>/predictions.npz     test-set predictions and labels (for McNemar's test)
    DIR/<cell>/result.json         test accuracy, best epoch, seconds, the cell's recipe

A cell is done when its ``result.json`` exists: it is written after the other files, so a study
stopped anywhere (Ctrl-C, a crash, a full disk) leaves only whole cells behind.  A finished cell
whose recipe differs from the one asked for now is refused (it belongs to another study).
"""
import json
from pathlib import Path

import numpy as np

from nn.errors import UserError
from nn.serialize import atomic_savez, atomic_write_bytes, atomic_write_text

from .cell import RESULT_VERSION

RESULT = "result.json"
MANIFEST = "study.json"


def cell_folder(study, cell):
    return Path(study) / cell.name


def finished(study, cell, config):
    """True if ``cell`` is done in ``study`` with the recipe ``config``; a done cell with another
    recipe is a UserError (rerun a study in its own folder, or start a new one)."""
    path = cell_folder(study, cell) / RESULT
    if not path.exists():
        return False
    result = read_json(path)
    if result.get("config") != config.to_json():
        raise UserError(f"{path}: this cell was trained with another recipe than the one asked for "
                        "now; a study folder holds one study (give another folder)")
    return True


def write_cell(study, cell, payload):
    """Write a finished cell's files (``payload`` from :func:`.cell.run_cell`), result last."""
    folder = cell_folder(study, cell)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "model.npz", [payload["weights"]])
    atomic_write_text(folder / "model.history.json", payload["history"])
    atomic_savez(folder / "predictions.npz", {"predictions": payload["predictions"],
                                              "labels": payload["labels"]})
    atomic_write_text(folder / RESULT, json.dumps(payload["result"], indent=2) + "\n")
    (folder / "error.txt").unlink(missing_ok=True)


def write_failure(study, cell, message):
    """Keep the last error of a failed cell beside it (``error.txt``); a success removes it."""
    folder = cell_folder(study, cell)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "error.txt", message + "\n")


def write_manifest(study, manifest):
    Path(study).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(study) / MANIFEST, json.dumps(manifest, indent=2) + "\n")


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot be read as JSON ({error})") from None


def load_results(study):
    """Every finished cell of ``study``: a list of dicts (the result, plus ``history`` - the
    per-epoch records - and ``predictions``/``labels`` arrays), sorted by cell name."""
    study = Path(study)
    if not study.is_dir():
        raise UserError(f"{study}: no such study folder")
    results = []
    for path in sorted(study.glob(f"*/{RESULT}")):
        result = read_json(path)
        if result.get("version") != RESULT_VERSION:
            raise UserError(f"{path}: result version {result.get('version')!r} is not one this kit "
                            f"reads ({RESULT_VERSION})")
        history = read_json(path.parent / "model.history.json")
        with np.load(path.parent / "predictions.npz", allow_pickle=False) as arrays:
            result["predictions"], result["labels"] = arrays["predictions"], arrays["labels"]
        result["history"] = history.get("epochs", [])
        results.append(result)
    if not results:
        raise UserError(f"{study}: holds no finished cell (no */{RESULT}); run the study first")
    return results
