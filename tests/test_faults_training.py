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


LSTM_SHORT = ["--model", "lstm", *SHORT]


def interrupted_run(tmp_path, mnist_dir, *extra, model="lstm", after=2):
    """A short run stopped by Ctrl-C after ``after`` steps: (command, checkpoint path)."""
    command = ["--model", model, *SHORT, "--data", mnist_dir, "--out", tmp_path / "run" / "m.npz", *extra]
    result = train(*command, "--interrupt-after", after)
    assert result.returncode == 130, result.stderr
    return command, tmp_path / "run" / "m.checkpoint.npz"


# ------------------------------------------------------------------ 2. work is never lost
def test_rerunning_the_original_command_is_refused_with_the_resume_command(tmp_path, mnist_dir):
    command, checkpoint = interrupted_run(tmp_path, mnist_dir)
    before = checkpoint.read_bytes()
    again = train(*command)
    assert again.returncode == 2
    assert f"--resume {checkpoint}" in error_line(again) and "--force" in error_line(again)
    assert checkpoint.read_bytes() == before


def test_the_shipped_weights_are_never_replaced_by_default(tmp_path, mnist_dir, user_data_folder):
    shipped = {path: path.read_bytes() for path in (REPO / "weights").glob("*.npz")}
    assert shipped
    result = train("--model", "lstm", *SHORT, "--epochs", 1, "--data", mnist_dir)
    assert result.returncode == 0, result.stderr
    made = list((user_data_folder / "runs").glob("lstm-*/lstm.npz"))
    assert len(made) == 1 and str(made[0]) in result.stdout
    refused = train("--model", "lstm", *SHORT, "--data", mnist_dir, "--out", REPO / "weights" / "lstm.npz")
    assert refused.returncode == 2 and "already exists" in error_line(refused)
    assert {path: path.read_bytes() for path in shipped} == shipped


def test_force_replaces_an_existing_out_and_checkpoint(tmp_path, mnist_dir):
    command, checkpoint = interrupted_run(tmp_path, mnist_dir)
    out = checkpoint.with_name("m.npz")
    out.write_bytes(b"previous weights")
    result = train(*command, "--force")
    assert result.returncode == 0, result.stderr
    import models
    assert models.load_model(out).name == "lstm"
    assert not checkpoint.exists()


# ------------------------------------------------------------------ 3. --out checked before any work
def test_out_under_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = train("--model", "lstm", "--data", tmp_path / "no-data", "--out", blocker / "sub" / "m.npz")
    assert result.returncode == 2
    assert f"{blocker} is a file, not a folder" in error_line(result)


def test_out_that_is_a_folder_is_refused(tmp_path):
    result = train("--model", "lstm", "--data", tmp_path / "no-data", "--out", tmp_path)
    assert result.returncode == 2 and "is a folder" in error_line(result)


def test_out_in_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anywhere: make the check see what a user would
        import models.train
        monkeypatch.setattr(models.train.os, "access", lambda path, mode: Path(path) != folder)
    result = train("--model", "lstm", "--data", tmp_path / "no-data", "--out", folder / "m.npz")
    folder.chmod(0o755)
    assert result.returncode == 2
    assert f"the folder {folder} is not writable" in error_line(result)


def test_a_full_disk_gives_one_line_and_keeps_the_last_good_file(tmp_path, mnist_dir, monkeypatch):
    import errno

    real_savez, calls = np.savez, []

    def savez(handle, **arrays):  # the third .npz written: epoch 2's weights or checkpoint
        calls.append(1)
        if len(calls) >= 3:
            handle.write(b"half an archive")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_savez(handle, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    out = tmp_path / "run" / "m.npz"
    result = train(*LSTM_SHORT, "--data", mnist_dir, "--out", out)
    monkeypatch.undo()
    assert result.returncode == 2
    line = error_line(result)
    assert "No space left on device" in line and str(tmp_path / "run") in line
    import models
    assert models.load_model(out).extra["epoch"] == 1   # epoch 1's weights, whole
    assert not list(out.parent.glob(".*.tmp"))
