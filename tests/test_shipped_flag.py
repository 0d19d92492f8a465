"""ModelSpec.shipped is found, not declared: True exactly when weights/<name>.npz is there
(through the lookup load_model uses); a model from --model-file is told how to train it from its
file, never by name."""
import os
import subprocess
import sys

import numpy as np
import pytest

from models import registry
from models.base import load_model, resolve_weights, shipped_weights
from nn.errors import WeightsError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MODEL_FILE = '''"""A tiny MLP defined outside the kit{note}."""
from models.inputs import image_pixels
from models.registry import ModelSpec
from nn.layers import Dense, ReLU, Sequential


def build(rng, image_shape=(28, 28), num_classes=10, hidden=8):
    pixels = image_shape[0] * image_shape[1]
    return Sequential([Dense(pixels, hidden, rng=rng), ReLU(), Dense(hidden, num_classes, rng=rng)])


MODEL = ModelSpec(name="{name}", title="Tiny", description="784-8-10, for a test.",
                  build=build, to_input=image_pixels, options={{"hidden": 8}}{extra})
'''


@pytest.fixture(autouse=True)
def registry_as_before():
    """The models these tests register leave the registry with them (this process's other tests
    list the shipped models)."""
    before = dict(registry._specs)
    yield
    registry._specs.clear()
    registry._specs.update(before)


def model_file(folder, name, extra="", note=""):
    path = folder / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MODEL_FILE.format(name=name, extra=extra, note=note))
    return path


def test_the_kits_models_are_shipped_because_their_weights_are_there():
    for name in registry.names():
        spec = registry.get(name)
        if spec.from_model_file:
            continue                      # another test of this process may have loaded one
        assert spec.shipped == shipped_weights(name).is_file()
    assert set(registry.shipped()) >= {"cnn", "lstm"}


def test_a_model_of_ones_own_without_weights_is_not_shipped(tmp_path):
    """On the old code ModelSpec.shipped defaulted to True, so this model was listed as shipped."""
    spec = registry.load_model_file(model_file(tmp_path / "elsewhere", "tiny_unshipped"))
    assert spec.shipped is False and spec.from_model_file
    assert "tiny_unshipped" in registry.names() and "tiny_unshipped" not in registry.shipped()


def test_shipped_follows_the_weights_file_through_the_shipped_weights_lookup(tmp_path, monkeypatch):
    """The same lookup load_model uses: with weights/<name>.npz present the model is shipped
    (and loads by name); a declared shipped=True does not make a missing file shipped, a declared
    shipped=False keeps a model out even with a file."""
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(registry, "REPOSITORY_WEIGHTS", weights)
    with_file = registry.load_model_file(model_file(tmp_path / "a", "tiny_with_weights"))
    assert with_file.shipped is False
    from models.base import build_model
    build_model("tiny_with_weights", np.random.default_rng(0)).save(weights / "tiny_with_weights.npz")
    again = registry.load_model_file(tmp_path / "a" / "tiny_with_weights.py")     # looked up afresh
    assert again.shipped is True and "tiny_with_weights" in registry.shipped()
    assert load_model("tiny_with_weights").name == "tiny_with_weights"
    claimed = registry.load_model_file(model_file(tmp_path / "b", "tiny_claims", ", shipped=True"))
    assert claimed.shipped is False
    build_model("tiny_claims", np.random.default_rng(0)).save(weights / "tiny_opts_out.npz")
    opted_out = registry.load_model_file(model_file(tmp_path / "c", "tiny_opts_out", ", shipped=False"))
    assert opted_out.shipped is False and "tiny_opts_out" not in registry.shipped()


def test_another_copy_of_the_kits_weights_is_not_this_ones(tmp_path, monkeypatch):
    """models.weights found elsewhere (an editable install of another checkout) is not used:
    the checkout's own weights/ is, and a model is shipped only by that folder."""
    elsewhere = tmp_path / "other-checkout" / "weights"
    elsewhere.mkdir(parents=True)
    (elsewhere / "cnn.npz").write_bytes(b"another copy")
    (elsewhere / "tiny_elsewhere.npz").write_bytes(b"another copy")
    monkeypatch.setattr(registry.resources, "files", lambda package: elsewhere)
    assert shipped_weights("cnn") == registry.REPOSITORY_WEIGHTS / "cnn.npz"
    spec = registry.load_model_file(model_file(tmp_path / "d", "tiny_elsewhere"))
    assert spec.shipped is False


def test_a_model_file_without_weights_is_told_the_model_file_form(tmp_path):
    path = model_file(tmp_path / "mine", "tiny_advice")
    registry.load_model_file(path)
    with pytest.raises(WeightsError) as error:
        resolve_weights("tiny_advice")
    message = str(error.value)
    assert f"python -m models.train --model-file {path.resolve()}" in message
    assert "--model tiny_advice" not in message
    assert str(path.resolve()) in message


def test_the_kits_own_model_is_still_told_to_train_by_name(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "REPOSITORY_WEIGHTS", tmp_path)       # as if weights/ were empty
    monkeypatch.setattr(registry.resources, "files", lambda package: tmp_path)
    with pytest.raises(WeightsError, match=r"train it with: python -m models.train --model gru$"):
        resolve_weights("gru")


@pytest.mark.parametrize("module", ["models.evaluate", "models.export"])
def test_the_commands_give_the_model_file_advice(module, tmp_path):
    """``python -m models.evaluate --model-file mine.py`` without weights: one line, exit 2, the
    command that trains it from its file (on the old code: '--model NAME', which fails)."""
    path = model_file(tmp_path / "my models", "tiny_command")
    extra = ["--out", str(tmp_path / "x.npz")] if module == "models.export" else []
    env = dict(os.environ, PYTHONPATH=REPO)
    result = subprocess.run([sys.executable, "-m", module, "--model-file", str(path), *extra], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'tiny_command'"), result.stderr
    assert lines[0].endswith(f"train it with: python -m models.train --model-file '{path.resolve()}'")
    assert not (tmp_path / "x.npz").exists()
