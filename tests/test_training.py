"""The training scripts end to end: determinism, Ctrl-C and --resume, divergence, bad input."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nn.idx import write_idx

REPO = Path(__file__).resolve().parent.parent


def run_script(script, *args, env_extra=None, timeout=300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def weights_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("state/")}


def assert_same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        np.testing.assert_array_equal(wa[key], wb[key], err_msg=key)


def error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


QUICK = ["--limit", 400, "--epochs", 2, "--batch-size", 32, "--threads", 1, "--quiet"]


@pytest.mark.parametrize("script, extra", [("train_lstm.py", ["--augment", "--schedule", "cosine"]),
                                           ("train_cnn.py", [])])
def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path, mnist_dir, script, extra):
    common = [*QUICK, *extra, "--data", mnist_dir, "--seed", 5]
    straight = run_script(script, *common, "--out", tmp_path / "a" / "model.npz")
    assert straight.returncode == 0, straight.stderr

    interrupted = run_script(script, *common, "--out", tmp_path / "b" / "model.npz",
                             "--interrupt-after", 13)  # mid-epoch: 10 steps per epoch
    assert interrupted.returncode == 130, interrupted.stderr
    checkpoint = tmp_path / "b" / "model.checkpoint.npz"
    assert checkpoint.is_file()
    assert f"--resume {checkpoint}" in interrupted.stderr

    resumed = run_script(script, "--resume", checkpoint, "--threads", 1, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(tmp_path / "a" / "model.npz", tmp_path / "b" / "model.npz")
    assert not checkpoint.exists()  # a finished run leaves nothing to resume
    assert "test accuracy" in resumed.stdout


def test_same_seed_same_weights_and_history(tmp_path, mnist_dir):
    args = [*QUICK, "--data", mnist_dir, "--seed", 2, "--augment"]
    for name in ("a", "b"):
        result = run_script("train_lstm.py", *args, "--out", tmp_path / name / "lstm.npz")
        assert result.returncode == 0, result.stderr
    assert_same_weights(tmp_path / "a" / "lstm.npz", tmp_path / "b" / "lstm.npz")
    import json
    history = json.loads((tmp_path / "a" / "lstm.history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= history["epochs"][0].keys()
    # The test accuracy the run reports is the one its saved weights give on the test images.
    import models
    from kit.mnist import load_dataset
    images, labels, _ = load_dataset(mnist_dir, "test")
    predicted = models.load_model(tmp_path / "a" / "lstm.npz").predict(images[:400])
    assert history["test"]["images"] == 400
    assert history["test"]["accuracy"] == np.mean(predicted == labels[:400])
    assert history["test"]["epoch"] == history["best_epoch"]


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path, mnist_dir):
    out = tmp_path / "lstm.npz"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "train_lstm.py"), "--data", str(mnist_dir), "--limit", "2000",
         "--epochs", "200", "--threads", "1", "--quiet", "--out", str(out)],
        cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:  # wait until the first epoch has finished
            if line.startswith("epoch 1/200:"):
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "checkpoint saved" in rest and "--resume" in rest
    assert (tmp_path / "lstm.checkpoint.npz").is_file()
    assert out.is_file()  # the best weights so far stay on disk
    import models
    models.load_model(out, expect="lstm")


def test_diverging_loss_stops_cleanly_and_leaves_existing_weights_alone(tmp_path, mnist_dir):
    out = tmp_path / "cnn.npz"
    out.write_bytes(b"previous weights")
    result = run_script("train_cnn.py", *QUICK, "--data", mnist_dir, "--lr", "1e30", "--out", out, "--force")
    assert result.returncode == 3
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the loss became nan") and "diverged" in last
    assert out.read_bytes() == b"previous weights"


@pytest.fixture
def broken_data(tmp_path, mnist_dir):
    """Make a data folder holding test files from the real set and a given training pair."""
    def make(images, labels, raw_images=None):
        folder = tmp_path / "data"
        folder.mkdir(exist_ok=True)
        for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
            (folder / name).write_bytes((Path(mnist_dir) / name).read_bytes())
        if raw_images is not None:
            (folder / "train-images-idx3-ubyte").write_bytes(raw_images)
        else:
            write_idx(folder / "train-images-idx3-ubyte", images)
        write_idx(folder / "train-labels-idx1-ubyte", labels)
        return folder
    return make


def valid_pair(count=50):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count, dtype=np.uint8))


@pytest.mark.parametrize("case, expected", [
    ("truncated", "train-images"),
    ("magic", "train-images"),
    ("counts", "train-labels"),
])
def test_bad_data_files_give_one_line_and_write_nothing(tmp_path, broken_data, case, expected):
    images, labels = valid_pair()
    if case == "truncated":
        folder = broken_data(images, labels)
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])
    elif case == "magic":
        folder = broken_data(images, labels)
        path = folder / "train-images-idx3-ubyte"
        path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])
    else:
        folder = broken_data(images, labels[:-1])
    out = tmp_path / "out" / "cnn.npz"
    result = run_script("train_cnn.py", "--data", folder, "--out", out, "--epochs", 1)
    assert result.returncode == 2
    assert expected in error_line(result)
    assert not (tmp_path / "out").exists()


def test_missing_data_folder_names_it_and_the_download_command(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_script("train_lstm.py", "--data", missing, "--out", tmp_path / "o" / "x.npz")
    assert result.returncode == 2
    line = error_line(result)
    assert str(missing) in line and "python -m kit.data download" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags", [["--epochs", "-3"], ["--batch-size", "0"], ["--lr", "nan"],
                                   ["--val-fraction", "1.5"], ["--optimizer", "rmsprop"], ["--bogus"]])
def test_bad_flags_give_one_line(flags, tmp_path):
    result = run_script("train_cnn.py", *flags, "--out", tmp_path / "o" / "x.npz")
    assert result.returncode == 2
    error_line(result)
    assert not (tmp_path / "o").exists()


def test_resume_refuses_a_checkpoint_of_the_other_model(tmp_path, mnist_dir):
    result = run_script("train_lstm.py", *QUICK, "--data", mnist_dir, "--out", tmp_path / "lstm.npz",
                        "--interrupt-after", 3)
    assert result.returncode == 130
    other = run_script("train_cnn.py", "--resume", tmp_path / "lstm.checkpoint.npz")
    assert other.returncode == 2
    assert "LSTM" in error_line(other)


def test_help_explains_every_flag():
    result = run_script("train_lstm.py", "--help")
    assert result.returncode == 0
    for flag in ("--data", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--val-fraction",
                 "--limit", "--out", "--resume", "--threads", "--hidden", "--augment", "--schedule"):
        assert flag in result.stdout
