"""One trainer for any model (issue 9): the seed's scripts are it, a model of one's own needs no
edit of the kit, and the classes and image size come from the data."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nn.idx import write_idx

REPO = Path(__file__).resolve().parent.parent
FLAGS = ["--limit", 200, "--epochs", 1, "--batch-size", 32, "--threads", 1, "--quiet", "--seed", 4]


def run(*args, cwd=REPO, home=None):
    env = {**os.environ, **({"CNN_VS_LSTM_HOME": str(home)} if home else {})}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def weights_of(path):
    with np.load(path, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("state/")}


@pytest.mark.slow
@pytest.mark.parametrize("script, model", [("train_cnn.py", "cnn"), ("train_lstm.py", "lstm")])
def test_the_seed_scripts_are_the_trainer(tmp_path, mnist_dir, script, model):
    flags = [*FLAGS, "--data", mnist_dir]
    by_script = run(script, *flags, "--out", tmp_path / "script" / "m.npz")
    by_trainer = run("-m", "models.train", "--model", model, *flags, "--out", tmp_path / "trainer" / "m.npz")
    assert by_script.returncode == 0, by_script.stderr
    assert by_trainer.returncode == 0, by_trainer.stderr
    a, b = weights_of(tmp_path / "script" / "m.npz"), weights_of(tmp_path / "trainer" / "m.npz")
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


MODEL_FILE = '''"""A tiny MLP defined outside the kit."""
from models.inputs import image_pixels
from models.registry import ModelSpec, Recipe
from nn.layers import Dense, ReLU, Sequential


def build(rng, image_shape=(28, 28), num_classes=10, hidden=32):
    pixels = image_shape[0] * image_shape[1]
    return Sequential([Dense(pixels, hidden, rng=rng), ReLU(), Dense(hidden, num_classes, rng=rng)])


MODEL = ModelSpec(name="tiny_mlp_outside", title="Tiny MLP", description="784-32-10, for a test.",
                  build=build, to_input=image_pixels, options={"hidden": 32},
                  recipe=Recipe(lr=3e-3, epochs=1), shipped=False)
'''


def project_state():
    """What git sees of the project tree: any edit or new file would change it."""
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                            capture_output=True, text=True)
    if status.returncode != 0:
        pytest.skip("not a git checkout")
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    return status.stdout, diff


@pytest.mark.slow
def test_a_model_from_a_file_outside_the_kit_trains_saves_loads_evaluates_and_compares(tmp_path, mnist_dir):
    before = project_state()
    model_file = tmp_path / "elsewhere" / "tiny.py"
    model_file.parent.mkdir()
    model_file.write_text(MODEL_FILE)
    weights = tmp_path / "out" / "tiny.npz"

    trained = run("-m", "models.train", "--model-file", model_file, *FLAGS, "--data", mnist_dir,
                  "--hidden", 24, "--limit", 1000, "--epochs", 3, "--out", weights, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "Tiny MLP: 19,090 parameters" in trained.stderr   # 784*24 + 24 + 24*10 + 10

    from kit.mnist import load_dataset
    from models import load_model, registry
    registry.load_model_file(model_file)
    model = load_model(weights)
    assert model.name == "tiny_mlp_outside" and model.options == {"hidden": 24}
    images, labels, _ = load_dataset(mnist_dir, "test")
    predicted = model.predict(images[:1000])

    evaluated = run("-m", "models.evaluate", "--model-file", model_file, "--weights", weights,
                    "--data", mnist_dir, "--limit", 1000, "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["n_correct"] == int((predicted == labels[:1000]).sum())
    history = json.loads(weights.with_name("tiny.history.json").read_text())
    assert history["test"]["accuracy"] == report["accuracy"]
    assert report["accuracy"] > 0.6   # 800 images, 3 epochs: far above chance (0.1)

    compared = run("-m", "models.compare", "--model-file", model_file, "--models", f"mlp,{weights}",
                   "--data", mnist_dir, "--limit", 1000, "--sweep-images", 100, "--latency-calls", 3,
                   "--speed-seconds", 0.2, "--threads", 1, "--out", tmp_path / "report", "--quiet",
                   cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    comparison = json.loads((tmp_path / "report" / "report.json").read_text())
    assert comparison["models"] == ["mlp", "tiny_mlp_outside"]
    assert comparison["evaluations"]["tiny_mlp_outside"]["n_correct"] == report["n_correct"]
    assert "Tiny MLP" in (tmp_path / "report" / "report.md").read_text()
    assert project_state() == before


def write_letters(folder, rng, count, classes=26):
    """An IDX set of 28 x 28 'letters': class k is a bar at row k, with noise."""
    labels = np.arange(count) % classes
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    images[np.arange(count), labels + 1, 2:26] = 255
    return images, labels.astype(np.uint8)


def test_a_26_class_data_set_trains_with_no_code_change(tmp_path):
    data = tmp_path / "letters"
    data.mkdir()
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 520), ("t10k", 104)):
        images, labels = write_letters(data, rng, count)
        write_idx(data / f"{prefix}-images-idx3-ubyte", images)
        write_idx(data / f"{prefix}-labels-idx1-ubyte", labels)
    out = tmp_path / "out" / "lstm.npz"
    result = run("-m", "models.train", "--model", "lstm", "--data", data, "--epochs", 8, "--batch-size", 32,
                 "--lr", 1e-2, "--threads", 1, "--quiet", "--no-augment", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "26 classes" in result.stderr

    from models import load_model
    model = load_model(out)
    assert model.num_classes == 26
    assert model.network.layers[-1].params["weight"].shape == (26, 64)
    images, labels = write_letters(data, np.random.default_rng(1), 52)
    probabilities = model.predict_proba(images / 255)
    assert probabilities.shape == (52, 26)
    history = json.loads(out.with_name("lstm.history.json").read_text())
    assert history["test"]["accuracy"] > 0.5   # the bars are easy; chance is 1/26
