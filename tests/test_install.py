"""The installed package: shipped weights as package data, the console command, the user folder."""
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kit import paths
from kit.data import ensure_mnist
from models import registry
from models.base import load_model, shipped_weights
from nn.errors import DataError

REPO = Path(__file__).resolve().parent.parent


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # setuptools reuses build/ (git-ignored) in place: stale copies there would enter the wheel
    shutil.rmtree(REPO / "build", ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "-q", "-w", str(out), str(REPO)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"pip wheel failed: {result.stderr[-2000:]}")
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_carries_exactly_the_repository_weights(wheel):
    """One source: every weights/*.npz and history of a shipped model, byte for byte."""
    with zipfile.ZipFile(wheel) as archive:
        inside = {Path(name).name: sha256(archive.read(name)) for name in archive.namelist()
                  if name.startswith("models/weights/") and not name.endswith(".py")}
        names = archive.namelist()
    committed = {path.name: sha256(path.read_bytes()) for path in (REPO / "weights").iterdir()
                 if path.suffix == ".npz" and not path.name.endswith(".checkpoint.npz")
                 or path.name.endswith(".history.json")}
    assert inside == committed
    for name in registry.shipped():
        assert f"{name}.npz" in inside, f"shipped model {name} has no weights in the wheel"
    # tests, docs and benchmarks stay out of it
    assert not [n for n in names if n.split("/")[0] in ("tests", "docs", "bench", "weights")]


def test_shipped_model_loads_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = load_model("cnn")
    assert model.name == "cnn" and model.num_parameters() == 356_234
    assert shipped_weights("cnn").resolve() == (REPO / "weights" / "cnn.npz").resolve()


def test_user_data_folder_follows_xdg_and_the_override(monkeypatch, tmp_path):
    monkeypatch.delenv("CNN_VS_LSTM_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert paths.user_data_dir() == tmp_path / "xdg" / "cnn-vs-lstm-numpy"
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "home"))
    assert paths.user_data_dir() == tmp_path / "home"
    assert paths.user_mnist_dir() == tmp_path / "home" / "mnist"
    first, second = paths.new_run_path("cnn"), None
    first.parent.mkdir(parents=True)
    second = paths.new_run_path("cnn")
    assert first != second and not second.parent.exists() and second.name == "cnn.npz"


def test_missing_data_is_never_downloaded_without_consent(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("kit.data.download", lambda *a, **k: calls.append(a))
    with pytest.raises(DataError, match="get the files with: python -m kit.data download --dir"):
        ensure_mnist(tmp_path / "absent", download_if_missing=False, ask=False)
    assert calls == []
    monkeypatch.setattr("builtins.input", lambda: "n")
    with pytest.raises(DataError):
        ensure_mnist(tmp_path / "absent", ask=True)
    assert calls == []


def test_consent_downloads_into_the_folder(tmp_path, monkeypatch, mnist_dir):
    """With --download (or a yes) the verified downloader fills the folder, then it is used."""
    target = tmp_path / "mnist"

    def fake_download(directory, progress=True):
        Path(directory).mkdir(parents=True)
        for f in Path(mnist_dir).glob("*ubyte*"):
            shutil.copy(f, Path(directory) / f.name)
        return []

    monkeypatch.setattr("kit.data.download", fake_download)
    found = ensure_mnist(target, download_if_missing=True)
    assert sorted(found) == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
                             "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]


def run_command(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "canvas.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=600)


def test_console_command_lists_models_and_refuses_unknown(tmp_path):
    listed = run_command("models", cwd=tmp_path)
    assert listed.returncode == 0
    # a fresh process knows the package's model files (this one may have loaded others)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["cnn", "gru", "lstm", "mlp", "rnn"]
    unknown = run_command("paint", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: unknown command 'paint'; choose one of draw, train, evaluate, compare, export, data, "
        "models (see cnn-vs-lstm --help)"]


def test_the_wheel_requires_what_the_code_imports(wheel):
    """threadpoolctl sets the BLAS thread count at run time (nn.set_threads); SciPy's BLAS is the
    one Numba's compiled np.dot calls."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        text = archive.read(metadata).decode()
    required = {line.split(":", 1)[1].strip().split(">")[0].split("=")[0].strip()
                for line in text.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line}
    assert {"numpy", "numba", "pygame", "scipy", "threadpoolctl"} <= required, required


def test_the_console_command_exports_with_threads(tmp_path):
    from models.base import build_model
    import numpy as np
    weights = tmp_path / "mlp.npz"
    build_model("mlp", np.random.default_rng(0)).save(weights)
    done = run_command("export", "--weights", weights, "--out", tmp_path / "mlp.safetensors", "--threads", 1,
                       cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_model(tmp_path / "mlp.safetensors").name == "mlp"


def test_train_without_out_writes_to_the_user_folder_and_says_where(tmp_path, mnist_dir):
    home = tmp_path / "home"
    result = run_command("train", "--model", "mlp", "--data", mnist_dir, "--limit", "300",
                         "--epochs", "1", "--quiet", cwd=tmp_path, env={"CNN_VS_LSTM_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    (written,) = home.glob("runs/mlp-*/mlp.npz")
    assert f"written to {written}" in result.stdout + result.stderr
    assert load_model(written).name == "mlp"
    assert not list(tmp_path.glob("*.npz")) and not (tmp_path / "weights").exists()


def test_console_command_into_a_closed_pipe_ends_quietly(tmp_path):
    """`cnn-vs-lstm models | head -1`: the reader goes away; no BrokenPipeError traceback."""
    process = subprocess.Popen([sys.executable, "-m", "canvas.main", "models"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()              # the reader is gone before anything is written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 1
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_num_classes_fixes_the_count_of_a_set_that_lacks_the_top_labels(tmp_path, mnist_dir):
    out = tmp_path / "mlp.npz"
    result = run_command("train", "--model", "mlp", "--data", mnist_dir, "--limit", "200",
                         "--epochs", "1", "--quiet", "--num-classes", "12", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_model(out).num_classes == 12
    refused = run_command("train", "--model", "mlp", "--data", mnist_dir, "--limit", "200",
                          "--epochs", "1", "--num-classes", "5", "--out", tmp_path / "b.npz", cwd=tmp_path)
    assert refused.returncode == 2 and not (tmp_path / "b.npz").exists()
    assert refused.stderr.strip().splitlines()[-1].endswith("is outside 0..4 (29404 such labels)")  # labels 5-9 of all 60,000
