"""Where the kit keeps a user's files: one per-user data folder shared by every command.

    <user data>/mnist/       the MNIST files, when neither --data nor $MNIST_DIR says otherwise
    <user data>/runs/        weights written by the trainer when no --out is given
    <user data>/personal/    the canvas's personal training set and fine-tuned weights

<user data> is $CNN_VS_LSTM_HOME if set, else the platform's per-user data folder:
$XDG_DATA_HOME/cnn-vs-lstm-numpy (default ~/.local/share/cnn-vs-lstm-numpy) on Linux,
~/Library/Application Support/cnn-vs-lstm-numpy on macOS, %LOCALAPPDATA%\\cnn-vs-lstm-numpy on
Windows.
"""
import os
import sys
import time
from pathlib import Path

APP_NAME = "cnn-vs-lstm-numpy"


def user_data_dir() -> Path:
    override = os.environ.get("CNN_VS_LSTM_HOME")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base).expanduser() / APP_NAME


def user_mnist_dir() -> Path:
    return user_data_dir() / "mnist"


def personal_dir() -> Path:
    return user_data_dir() / "personal"


def new_run_path(model_name) -> Path:
    """A fresh weights path for a training run with no --out: never an existing file."""
    runs = user_data_dir() / "runs"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = runs / f"{model_name}-{stamp}" / f"{model_name}.npz"
    counter = 2
    while candidate.parent.exists():
        candidate = runs / f"{model_name}-{stamp}-{counter}" / f"{model_name}.npz"
        counter += 1
    return candidate
