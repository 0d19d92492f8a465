"""The weights shipped in weights/ meet SPEC's accuracy bars on the 10,000 MNIST test images."""
import json
from pathlib import Path

import pytest

import models
from kit.mnist import load_mnist_float

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
# SPEC's bars; the RNN's is the accuracy its shipped recipe reached (SPEC: "as high as the recipe
# allows"), so a retrained file cannot silently get worse.
BARS = {"cnn": 0.994, "lstm": 0.988, "gru": 0.993, "mlp": 0.986, "rnn": 0.985}


@pytest.fixture(scope="module")
def test_set(mnist_dir):
    return load_mnist_float(mnist_dir, "test")


def test_every_shipped_model_has_a_bar():
    assert sorted(models.registry.shipped()) == sorted(BARS)


@pytest.mark.parametrize("name", sorted(BARS))
def test_shipped_weights_meet_the_accuracy_bar(name, test_set):
    images, labels = test_set
    assert len(images) == 10_000
    model = models.load_model(WEIGHTS / f"{name}.npz", expect=name)
    accuracy = float((model.predict(images) == labels).mean())
    assert accuracy >= BARS[name], f"{name}: {accuracy:.4f} < {BARS[name]}"
    # The history beside the weights records the same test accuracy the training run measured.
    history = json.loads((WEIGHTS / f"{name}.history.json").read_text())
    assert history["test"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    if name in ("lstm", "gru", "rnn"):
        assert model.options["hidden"] == 64  # the bars are for SPEC's 64-unit recurrent layers
