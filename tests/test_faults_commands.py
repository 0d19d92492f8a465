"""The command-side faults of issue 20 (evaluate, compare, export, data, loading weights and model
files): each test names its item.

Commands run in a process of their own where what the person sees (one line, the exit status)
is the point; the loaders are called in this process.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import registry
from models.base import build_model, load_model
from nn.errors import UserError, WeightsError
from nn.serialize import save_weights
from tests.test_faults_training import SHORT, error_line, interrupted_run, rewrite_checkpoint, train  # noqa: F401
from tests.test_faults_training import data_read_once, numba_threads_restored, user_data_folder  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
LIMIT = 100


def command(module, *args, cwd=REPO, env_extra=None):
    """``python -m MODULE ARGS`` in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def one_line_error(result, status=2):
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ------------------------------------------------------------------ item 7: NaN and infinite weights
def weights_with(path, value, name="mlp", key_index=0):
    """Weights of an untrained ``name`` with one value of its first array set to ``value``, saved
    with a valid checksum (as a diverged run would write them)."""
    model = build_model(name, np.random.default_rng(0))
    state = {key: array.copy() for key, array in model.network.state().items()}
    key = sorted(state)[key_index]
    state[key].flat[3] = value
    save_weights(path, state, model.header())
    return key


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_item_7_non_finite_weights_are_refused_when_loaded(tmp_path, value):
    path = tmp_path / "diverged.npz"
    key = weights_with(path, value)
    with pytest.raises(WeightsError) as error:
        load_model(path)
    assert str(error.value).startswith(f"{path}: array '{key}' holds 1 NaN or infinite value")


def test_item_7_non_finite_safetensors_are_refused_when_loaded(tmp_path):
    from models.base import HEADER_KEY
    from nn.safetensors import save_file
    from nn.serialize import weights_header
    model = build_model("mlp", np.random.default_rng(0))
    state = {key: array.copy() for key, array in model.network.state().items()}
    state[sorted(state)[1]][:] = np.nan
    path = tmp_path / "diverged.safetensors"
    save_file(state, path, {"model": "mlp", HEADER_KEY: json.dumps(weights_header(state, model.header()))})
    with pytest.raises(WeightsError, match=rf"^{path}: array '{sorted(state)[1]}' holds"):
        load_model(path)


def test_item_7_evaluate_export_and_compare_refuse_nan_weights(tmp_path, mnist_dir):
    path = tmp_path / "diverged.npz"
    key = weights_with(path, np.nan)
    evaluated = command("models.evaluate", "--weights", path, "--data", mnist_dir, "--limit", LIMIT, "--json")
    assert evaluated.stdout == ""
    assert f"{path}: array '{key}' holds 1 NaN" in one_line_error(evaluated)
    out = tmp_path / "out.safetensors"
    exported = command("models.export", "--weights", path, "--out", out)
    assert f"array '{key}'" in one_line_error(exported) and not out.exists()
    good = tmp_path / "cnn.npz"
    build_model("cnn", np.random.default_rng(1)).save(good)
    compared = command("models.compare", "--models", f"{good},{path}", "--data", mnist_dir, "--limit", LIMIT,
                       "--out", tmp_path / "report", "--quiet")
    assert f"array '{key}'" in one_line_error(compared) and not (tmp_path / "report").exists()


def test_item_7_evaluate_json_never_prints_nan(tmp_path, mnist_dir):
    # Finite weights so large that the outputs overflow to infinity, and the loss is NaN.
    model = build_model("mlp", np.random.default_rng(0))
    state = {key: array * np.float32(1e37) if array.dtype.kind == "f" else array
             for key, array in model.network.state().items()}
    path = tmp_path / "huge.npz"
    save_weights(path, state, model.header())
    result = command("models.evaluate", "--weights", path, "--data", mnist_dir, "--limit", LIMIT, "--json")
    assert result.stdout == "" and "NaN" not in result.stdout
    assert "NaN or infinite" in one_line_error(result)


def test_item_7_a_nan_checkpoint_is_refused_on_resume(tmp_path, mnist_dir):
    _, checkpoint = interrupted_run(tmp_path, mnist_dir, model="mlp")

    def poison(arrays):
        key = sorted(name for name in arrays if name.startswith("model/"))[0]
        arrays[key] = np.full_like(arrays[key], np.nan)
    rewrite_checkpoint(checkpoint, array_change=poison)
    result = train("--resume", checkpoint, "--threads", 1, "--quiet")
    assert result.returncode == 2, result.stderr
    assert error_line(result).startswith(f"error: {checkpoint}: array 'model/") and "NaN" in error_line(result)


# ------------------------------------------------------------------ item 13: histories without validation
@pytest.fixture
def trained_without_validation(tmp_path, mnist_dir):
    """A real short MLP run with --val-fraction 0: its history holds null validation numbers."""
    out = tmp_path / "noval" / "mlp.npz"
    result = train("--model", "mlp", *SHORT, "--val-fraction", 0, "--data", mnist_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    history = json.loads(out.with_name("mlp.history.json").read_text())
    assert history["epochs"] and all(e["val_accuracy"] is None for e in history["epochs"])
    return out


def test_item_13_evaluate_reads_a_history_without_validation(tmp_path, mnist_dir, trained_without_validation):
    pytest.importorskip("matplotlib")
    from models.analysis.evaluate import read_history
    history, where = read_history(trained_without_validation)
    assert history is not None, where
    plots = tmp_path / "plots"
    result = command("models.evaluate", "--weights", trained_without_validation, "--data", mnist_dir,
                     "--limit", LIMIT, "--plots", plots)
    assert result.returncode == 0, result.stderr
    assert (plots / "mlp_training_curves.png").is_file() and "skipped" not in result.stderr, result.stderr


def test_item_13_compare_reads_a_history_without_validation(tmp_path, mnist_dir, trained_without_validation):
    other = tmp_path / "cnn.npz"
    build_model("cnn", np.random.default_rng(1)).save(other)
    out = tmp_path / "report"
    result = command("models.compare", "--models", f"{other},{trained_without_validation}", "--data", mnist_dir,
                     "--out", out, "--limit", LIMIT, "--sweep-images", 20, "--latency-calls", 3,
                     "--speed-seconds", 0.05, "--quiet")
    assert result.returncode == 0, result.stderr
    training = json.loads((out / "report.json").read_text())["training"]
    assert training["mlp"]["epochs"] == 2 and training["mlp"]["final_val_accuracy"] is None
    assert "MLP was trained 2 epochs without a validation set" in (out / "report.md").read_text()


# ------------------------------------------------------------------ item 16: compare --download
def small_weights(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed, name in enumerate(names):
        paths.append(folder / f"{name}.npz")
        build_model(name, np.random.default_rng(seed)).save(paths[-1])
    return paths


QUICK = ["--limit", LIMIT, "--sweep-images", 20, "--latency-calls", 3, "--speed-seconds", 0.05, "--quiet"]


def test_item_16_compare_takes_download(tmp_path, mnist_dir, monkeypatch):
    from models.commands import compare
    assert compare.make_parser().parse_args(["--download"]).download is True
    asked = []
    import models.analysis.evaluate as evaluation
    real = evaluation.ensure_mnist
    monkeypatch.setattr(evaluation, "ensure_mnist",
                        lambda folder, download_if_missing=False: asked.append(download_if_missing) or real(folder))
    cnn, mlp = small_weights(tmp_path / "w", "cnn", "mlp")
    assert compare.main(["--models", f"{cnn},{mlp}", "--data", mnist_dir, "--download", "--out", tmp_path / "r",
                         *QUICK]) == 0
    assert asked == [True] and (tmp_path / "r" / "report.md").is_file()


# ------------------------------------------------------------------ item 10: a model file named like a kit model
CLASHING_MODEL = '''
from models.inputs import image_pixels
from models.registry import ModelSpec, Recipe
from nn.layers import Dense, Sequential


def build(rng, image_shape=(28, 28), num_classes=10):
    return Sequential([Dense(image_shape[0] * image_shape[1], num_classes, rng=rng)])


MODEL = ModelSpec(name="cnn", title="My net", description="mine", build=build, to_input=image_pixels,
                  recipe=Recipe(epochs=1), shipped=False)
'''


def test_item_10_a_model_file_named_like_a_kit_model_is_refused_naming_both_files(tmp_path, mnist_dir):
    model_file = tmp_path / "my_net.py"
    model_file.write_text(CLASHING_MODEL)
    kits = registry.PACKAGE_DIR / "cnn.py"
    with pytest.raises(UserError) as error:
        registry.load_model_file(model_file)
    assert str(error.value).startswith(f"{model_file}: its model is named 'cnn'") and str(kits) in str(error.value)
    out = tmp_path / "o" / "m.npz"
    result = command("models.train", "--model-file", model_file, "--limit", 300, "--epochs", 1, "--threads", 1,
                     "--quiet", "--data", mnist_dir, "--out", out)
    line = one_line_error(result)
    assert str(model_file) in line and str(kits) in line, line
    assert not out.parent.exists()


def test_item_10_the_kits_own_file_given_as_a_model_file_still_loads():
    assert registry.load_model_file(registry.PACKAGE_DIR / "mlp.py").name == "mlp"


# ------------------------------------------------------------------ item 11: compare --model-file adds the model
OWN_MODEL = '''
from models.inputs import image_pixels
from models.registry import ModelSpec
from nn.layers import Dense, ReLU, Sequential


def build(rng, image_shape=(28, 28), num_classes=10, hidden=8):
    return Sequential([Dense(image_shape[0] * image_shape[1], hidden, rng=rng), ReLU(),
                       Dense(hidden, num_classes, rng=rng)])


MODEL = ModelSpec(name="{name}", title="Tiny", description="an 8-unit MLP of my own", build=build,
                  to_input=image_pixels, options={{"hidden": 8}}, shipped=False)
'''


def own_model(tmp_path, name):
    model_file = tmp_path / f"{name}.py"
    model_file.write_text(OWN_MODEL.format(name=name))
    spec = registry.load_model_file(model_file)
    weights = tmp_path / f"{name}.npz"
    build_model(name, np.random.default_rng(4)).save(weights)
    return model_file, spec, weights


def shipped_or_skip():
    from models.base import shipped_weights
    if len(registry.shipped()) < 2 or not all(shipped_weights(n).is_file() for n in registry.shipped()):
        pytest.skip("shipped weights not present")
    return registry.shipped()


def test_item_11_without_models_a_model_file_joins_the_shipped_models(tmp_path):
    from models.commands.compare import load_models
    shipped = shipped_or_skip()
    model_file, spec, weights = own_model(tmp_path, "tiny_eleven")
    models, paths, pair = load_models(None, None, [str(weights)], {model_file: spec})
    assert list(models) == [*shipped, "tiny_eleven"] and paths["tiny_eleven"] == weights
    assert pair == tuple(shipped[:2])
    # --weights of a shipped model replaces its shipped weights, in its place
    mine = tmp_path / "my_mlp.npz"
    build_model("mlp", np.random.default_rng(9)).save(mine)
    models, paths, _ = load_models(None, None, [str(mine)], {})
    assert list(models) == shipped and paths["mlp"] == mine
    with pytest.raises(UserError, match="--model-file .*tiny_eleven.py: no weights of its model 'tiny_eleven'"):
        load_models(None, None, [], {model_file: spec})
    with pytest.raises(UserError, match="with --models, list every weights file there"):
        load_models("cnn,mlp", None, [str(weights)], {model_file: spec})


def test_item_11_a_model_file_without_weights_is_refused_in_one_line(tmp_path, mnist_dir):
    shipped_or_skip()
    model_file = tmp_path / "tiny_alone.py"
    model_file.write_text(OWN_MODEL.format(name="tiny_alone"))
    out = tmp_path / "report"
    result = command("models.compare", "--model-file", model_file, "--data", mnist_dir, "--out", out, *QUICK)
    line = one_line_error(result)
    assert f"--model-file {model_file}: no weights of its model 'tiny_alone'" in line and "--weights" in line
    assert not out.exists()


def test_item_11_compare_model_file_and_weights_reports_it_with_the_shipped_models(tmp_path, mnist_dir):
    shipped = shipped_or_skip()
    model_file, _, weights = own_model(tmp_path, "tiny_added")
    out = tmp_path / "report"
    result = command("models.compare", "--model-file", model_file, "--weights", weights, "--data", mnist_dir,
                     "--out", out, *QUICK)
    assert result.returncode == 0, result.stderr
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["models"] == [*shipped, "tiny_added"]
    assert "(`tiny_added`, 6,370 parameters): an 8-unit MLP of my own" in (out / "report.md").read_text()


# ------------------------------------------------------------------ item 4: a broken model file, at evaluate/compare/export
from tests.support.model_files import GOOD_BUILD, GOOD_INPUT, MODEL_FILE, TO_INPUT_SIZE  # noqa: E402

BROKEN = [
    ("raises", "return helper(pixels)\n\n\ndef helper(pixels):\n    raise RuntimeError('my bug')", GOOD_INPUT,
     "build() raised RuntimeError: my bug", "in helper"),
    ("none", "Sequential([Dense(pixels, hidden, rng=rng), ReLU(), Dense(hidden, num_classes, rng=rng)])",
     GOOD_INPUT, "build() returned NoneType, not a network", None),
    ("outputs", "return Sequential([Dense(pixels, hidden, rng=rng), ReLU(), Dense(hidden, 7, rng=rng)])",
     GOOD_INPUT, "outputs of shape (2, 7) for 2 images, not (2, 10)", None),
    ("input_size", "return Sequential([Dense(100, hidden, rng=rng), ReLU(), Dense(hidden, num_classes, rng=rng)])",
     GOOD_INPUT, "does it expect another input size?", None),
    ("to_input_shape", GOOD_BUILD, "return images.reshape(1, -1)",
     "to_input() turned 2 images of 28 x 28 into (1, 1568)", None),
    TO_INPUT_SIZE,
]


@pytest.mark.parametrize("case, body, to_input, expected, own_frame", BROKEN, ids=[row[0] for row in BROKEN])
def test_item_4_a_model_file_broken_after_training_is_named_by_evaluate_compare_export(
        tmp_path, mnist_dir, case, body, to_input, expected, own_frame):
    name = f"edited_{case}"
    model_file = tmp_path / f"{name}.py"
    model_file.write_text(MODEL_FILE.format(body=GOOD_BUILD, to_input=GOOD_INPUT, name=name))
    registry.load_model_file(model_file)
    weights = tmp_path / f"{name}.npz"
    build_model(name, np.random.default_rng(0)).save(weights)
    model_file.write_text(MODEL_FILE.format(body=body, to_input=to_input, name=name))   # edited since
    other = tmp_path / "cnn.npz"
    build_model("cnn", np.random.default_rng(1)).save(other)
    runs = {
        "evaluate": ("models.evaluate", "--model-file", model_file, "--weights", weights, "--data", mnist_dir,
                     "--limit", LIMIT),
        "compare": ("models.compare", "--model-file", model_file, "--models", f"{other},{weights}",
                    "--data", mnist_dir, "--out", tmp_path / "report", *QUICK),
        "export": ("models.export", "--model-file", model_file, "--weights", weights, "--out", tmp_path / "x.npz"),
    }
    for what, (module, *args) in runs.items():
        result = command(module, *args)
        assert result.returncode == 2 and result.stdout == "", (what, result.stderr)
        assert "Traceback" not in result.stderr, (what, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert lines[0].startswith(f"error: {model_file.resolve()}: ") and expected in lines[0], (what, lines[0])
        if own_frame is None:
            assert lines[1:] == [], (what, result.stderr)
        else:   # the person's own frames follow, and only theirs
            assert any(own_frame in text for text in lines[1:]) and str(model_file.resolve()) in lines[1]
            assert not any("models/" in text and str(model_file.resolve()) not in text
                           for text in lines[1:] if text.startswith("  File")), result.stderr
    assert not (tmp_path / "report").exists() and not (tmp_path / "x.npz").exists()


# ------------------------------------------------------------------ item 17: advice in the terms of the program typed
def installed(*args, capsys):
    """``cnn-vs-lstm ARGS`` (the installed command's dispatcher) in this process: (status, out, err)."""
    from canvas.main import main
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("what", ["evaluate", "compare", "train"])
def test_item_17_missing_data_advice_names_the_installed_command_download_and_data(tmp_path, capsys, what):
    cnn, mlp = small_weights(tmp_path / "w", "cnn", "mlp")
    empty = tmp_path / "empty"
    empty.mkdir()
    args = {"evaluate": ["--weights", mlp], "compare": ["--models", f"{cnn},{mlp}", "--out", tmp_path / "r"],
            "train": ["--model", "mlp", "--out", tmp_path / "t" / "m.npz", "--epochs", 1]}[what]
    status, out, err = installed(what, *args, "--data", empty, capsys=capsys)
    assert status == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"cnn-vs-lstm data download --dir {empty}" in lines[0], lines[0]
    assert "python -m" not in lines[0] and "--download" in lines[0] and "--data DIR" in lines[0], lines[0]


def test_item_17_the_module_form_still_names_the_module(tmp_path, capsys):
    from models.commands.evaluate import main
    _, mlp = small_weights(tmp_path / "w", "cnn", "mlp")
    with pytest.raises(SystemExit):
        main(["--weights", str(mlp), "--data", str(tmp_path / "absent")])
    line = capsys.readouterr().err.strip()
    assert f"python -m kit.data download --dir {tmp_path / 'absent'}" in line and "--download" in line, line


def test_item_17_data_takes_data_as_well_as_dir(tmp_path, capsys, mnist_dir):
    status, out, err = installed("data", "verify", "--data", mnist_dir, capsys=capsys)
    assert status == 0, err
    assert out.count("SHA-256 verified") == 4
    status, out, err = installed("data", "verify", "--dir", mnist_dir, capsys=capsys)
    assert status == 0 and out.count("SHA-256 verified") == 4, err
    absent = tmp_path / "absent"
    status, out, err = installed("data", "verify", "--data", absent, capsys=capsys)
    assert status == 2 and f"cnn-vs-lstm data download --dir {absent}" in err and "python -m" not in err, err


def test_item_17_a_failed_download_names_the_folder_and_what_to_do(tmp_path, capsys):
    folder = tmp_path / "mnist"
    status, out, err = installed("data", "download", "--data", folder, "--mirror", (tmp_path / "nowhere").as_uri(),
                                 "--timeout", 1, capsys=capsys)
    assert status == 2, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: could not download train-images-idx3-ubyte.gz") and "Traceback" not in err
    assert f"copy the four MNIST files" in line and f"into {folder} by hand" in line, line


def test_item_17_data_help_names_the_command_and_the_real_user_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CNN_VS_LSTM_HOME", str(tmp_path / "home"))
    status, out, _ = installed("data", "--help", capsys=capsys)
    assert status == 0 and out.startswith("usage: cnn-vs-lstm data")
    assert str(tmp_path / "home" / "mnist") in " ".join(out.split())
    status, out, _ = installed("data", "verify", "--help", capsys=capsys)
    assert status == 0 and "--data DIR, --dir DIR" in out
