"""The trainer's faults (issue 12): nothing lost, nothing silent, resume exact at every point.

Most runs here are in-process (``models.train.run``): the same code as the command line without
the interpreter start-up, so a loop over many interrupt points stays fast.
"""
import io
import json
import os
import subprocess
import sys
from collections import namedtuple
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from models.train import run

REPO = Path(__file__).resolve().parent.parent
Result = namedtuple("Result", "returncode stdout stderr")

# 300 images, 60 of them for validation: 240 training images, 4 steps (64, 64, 64, 48) an epoch.
SHORT = ["--limit", 300, "--epochs", 2, "--batch-size", 64, "--threads", 1, "--quiet"]
_loaded = {}


@pytest.fixture(autouse=True)
def data_read_once(monkeypatch):
    """The IDX files are parsed once per test session (the runs here are many and short)."""
    import models.train

    original = models.train.load_dataset

    def cached(directory, split, num_classes=None):
        key = (str(directory), split, num_classes)
        if key not in _loaded:
            _loaded[key] = original(directory, split, num_classes)
        return _loaded[key]  # the trainer only reads them (slicing and fancy indexing)

    monkeypatch.setattr(models.train, "load_dataset", cached)


@pytest.fixture(autouse=True)
def user_data_folder(tmp_path, monkeypatch):
    """Default --out and runs go to a temporary user data folder, never the real one."""
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def train(*args):
    """``python -m models.train ARGS`` in this process: (returncode, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = run([str(arg) for arg in args])
        except SystemExit as stop:
            code = stop.code
    return Result(code, out.getvalue(), err.getvalue())


def run_command(*args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def weights_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("state/")}


def assert_same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def history_without_timing(path):
    history = json.loads(Path(path).read_text())
    del history["args"]  # --out and the test hooks differ
    for record in history["epochs"]:
        del record["seconds"], record["images_per_second"]
    return history


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


# ------------------------------------------------------------------ 1. resume exact at every point
def interrupt_points(steps):
    """Every step, the epoch boundaries, validation and the epoch-end save (2 epochs of steps / 2)."""
    return ([["--interrupt-after", step] for step in range(1, steps + 1)]
            + [["--interrupt-at-phase", phase] for phase in
               ("epoch-start:1", "epoch-start:2", "validation:1", "validation:2", "checkpoint:1",
                f"step:{steps - 2}")])


@pytest.mark.parametrize("model, extra, steps", [
    ("cnn", ["--limit", 200], 6),   # 160 training images: 3 steps an epoch (CNN steps are slow)
    ("lstm", ["--augment", "--schedule", "cosine"], 8)])
def test_resume_is_bit_identical_wherever_the_interrupt_lands(tmp_path, mnist_dir, model, extra, steps):
    common = ["--model", model, *SHORT, *extra, "--data", mnist_dir, "--seed", 3]
    straight = train(*common, "--out", tmp_path / "straight" / "m.npz")
    assert straight.returncode == 0, straight.stderr
    for n, point in enumerate(interrupt_points(steps)):
        out = tmp_path / f"run{n}" / "m.npz"
        checkpoint = out.with_name("m.checkpoint.npz")
        interrupted = train(*common, "--out", out, *point)
        assert interrupted.returncode == 130, (point, interrupted.stderr)
        assert f"--resume {checkpoint}" in interrupted.stderr, point
        resumed = train("--resume", checkpoint, "--threads", 1, "--quiet")
        assert resumed.returncode == 0, (point, resumed.stderr)
        assert_same_weights(tmp_path / "straight" / "m.npz", out)
        assert (history_without_timing(out.with_name("m.history.json"))
                == history_without_timing(tmp_path / "straight" / "m.history.json")), point
        assert not checkpoint.exists()
