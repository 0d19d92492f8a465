"""models.analysis.metrics against hand-computed examples, and the ``python -m models.evaluate`` command.

The command-line tests run the real module in a subprocess on the real MNIST test images
(``--limit`` keeps them quick) with small untrained weights written by the test itself, so they
never depend on the shipped weights.
"""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.analysis import metrics
from models.base import build_model, load_model
from kit.mnist import load_mnist_float

LIMIT = 300


# --- metrics, by hand ---

def test_confusion_matrix_counts_true_rows_predicted_columns():
    true = [0, 0, 1, 2, 2, 2]
    pred = [0, 1, 1, 2, 0, 2]
    confusion = metrics.confusion_matrix(true, pred, num_classes=3)
    np.testing.assert_array_equal(confusion, [[1, 1, 0],
                                              [0, 1, 0],
                                              [1, 0, 2]])
    assert confusion.dtype == np.int64
    assert metrics.accuracy(confusion) == pytest.approx(4 / 6)


def test_precision_recall_f1_by_hand():
    confusion = metrics.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], num_classes=3)
    precision, recall, f1, support = metrics.precision_recall_f1(confusion)
    # columns sum to (2, 2, 2): precision = diag / 2
    np.testing.assert_allclose(precision, [1 / 2, 1 / 2, 2 / 2])
    # rows sum to (2, 1, 3)
    np.testing.assert_allclose(recall, [1 / 2, 1 / 1, 2 / 3])
    # F1 = 2PR / (P + R)
    np.testing.assert_allclose(f1, [0.5, 2 * 0.5 * 1 / 1.5, 2 * 1 * (2 / 3) / (1 + 2 / 3)])
    np.testing.assert_array_equal(support, [2, 1, 3])
    rows = metrics.per_class_report(confusion)
    assert rows[2] == dict(digit=2, precision=1.0, recall=pytest.approx(2 / 3), f1=pytest.approx(0.8), support=3)
    macro = metrics.macro_average(rows)
    assert macro["recall"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert macro["support"] == 6


def test_never_predicted_or_absent_class_gives_zero_not_nan():
    # class 1 is never predicted (precision 0/0), class 2 never occurs (recall 0/0)
    confusion = metrics.confusion_matrix([0, 1, 1], [0, 0, 0], num_classes=3)
    precision, recall, f1, support = metrics.precision_recall_f1(confusion)
    np.testing.assert_allclose(precision, [1 / 3, 0, 0])
    np.testing.assert_allclose(recall, [1, 0, 0])
    np.testing.assert_allclose(f1, [2 * (1 / 3) / (4 / 3), 0, 0])
    assert np.isfinite(f1).all()
    json.dumps(metrics.per_class_report(confusion), allow_nan=False)  # valid JSON
    assert metrics.accuracy(np.zeros((10, 10), np.int64)) == 0.0


def test_bad_labels_are_refused():
    with pytest.raises(ValueError, match="0..9"):
        metrics.confusion_matrix([0, 10], [0, 1])
    with pytest.raises(ValueError, match="0..2"):
        metrics.confusion_matrix([0, 1], [0, -1], num_classes=3)
    with pytest.raises(ValueError, match="2 true labels but 3"):
        metrics.confusion_matrix([0, 1], [0, 1, 2])


def test_top_confusions_most_frequent_first_ties_in_class_order():
    confusion = np.zeros((10, 10), np.int64)
    confusion[9, 4] = 5
    confusion[4, 9] = 2
    confusion[3, 5] = 5
    confusion[7, 7] = 100  # correct answers are never mistakes
    assert metrics.top_confusions(confusion, 3) == [(3, 5, 5), (9, 4, 5), (4, 9, 2)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=200))
def test_metrics_identities(pairs):
    true, pred = np.array(pairs).T
    confusion = metrics.confusion_matrix(true, pred)
    assert confusion.sum() == len(true)
    assert metrics.accuracy(confusion) == pytest.approx(np.mean(true == pred))
    _, recall, f1, support = metrics.precision_recall_f1(confusion)
    # recall weighted by support is exactly the accuracy
    assert np.sum(recall * support) / support.sum() == pytest.approx(np.mean(true == pred))
    assert ((0 <= f1) & (f1 <= 1)).all()


def test_text_tables_are_aligned():
    rng = np.random.default_rng(0)
    confusion = metrics.confusion_matrix(rng.integers(0, 10, 5000), rng.integers(0, 10, 5000))
    for text in (metrics.format_confusion(confusion),
                 metrics.format_per_class(metrics.per_class_report(confusion),
                                          metrics.macro_average(metrics.per_class_report(confusion)))):
        lengths = {len(line) for line in text.splitlines()}
        assert len(lengths) == 1, text
    lines = metrics.format_confusion(confusion).splitlines()
    assert lines[0].split()[1:11] == [str(k) for k in range(10)]
    assert lines[-1].split()[-1] == "5,000"


# --- the command ---

@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Small untrained weights files for both models (and nothing beside them)."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for seed, name in enumerate(("cnn", "lstm")):
        paths[name] = folder / f"{name}.npz"
        build_model(name, np.random.default_rng(seed)).save(paths[name], extra={"epoch": 3, "val_accuracy": 0.5})
    return paths


def run_module(repo_root, module, *args, pythonpath_first=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (pythonpath_first, repo_root) if p)
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=600)


def run_evaluate(repo_root, *args, **kwargs):
    return run_module(repo_root, "models.evaluate", *args, **kwargs)


def without_matplotlib(tmp_path):
    """A folder that, put first on PYTHONPATH, makes ``import matplotlib`` fail."""
    fake = tmp_path / "no_matplotlib"
    (fake / "matplotlib").mkdir(parents=True)
    (fake / "matplotlib" / "__init__.py").write_text("raise ImportError('matplotlib hidden by a test')\n")
    return fake


def assert_one_line_error(result):
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_json_matches_model_predict(repo_root, mnist_dir, weights):
    result = run_evaluate(repo_root, "--model", "cnn", "--weights", weights["cnn"], "--data", mnist_dir,
                          "--limit", LIMIT, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object, nothing else on stdout
    images, labels = load_mnist_float(mnist_dir, "test")
    predictions = load_model(weights["cnn"]).predict(images[:LIMIT])
    assert report["model"] == "cnn" and report["weights"] == str(weights["cnn"])
    assert report["n_images"] == LIMIT
    assert report["n_correct"] == int((predictions == labels[:LIMIT]).sum())
    assert report["accuracy"] == pytest.approx(np.mean(predictions == labels[:LIMIT]), abs=1e-12)
    confusion = np.array(report["confusion_matrix"])
    np.testing.assert_array_equal(confusion, metrics.confusion_matrix(labels[:LIMIT], predictions))
    assert [row["digit"] for row in report["per_class"]] == list(range(10))
    assert sum(row["support"] for row in report["per_class"]) == LIMIT
    # Per class, counted from the predictions themselves, not from the report's own matrix.
    truth = labels[:LIMIT]
    for row in report["per_class"]:
        k = row["digit"]
        hits = int(((predictions == k) & (truth == k)).sum())
        answered, present = int((predictions == k).sum()), int((truth == k).sum())
        precision = hits / answered if answered else 0.0
        recall = hits / present if present else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert row["support"] == present
        assert row["precision"] == pytest.approx(precision, abs=1e-12)
        assert row["recall"] == pytest.approx(recall, abs=1e-12)
        assert row["f1"] == pytest.approx(f1, abs=1e-12)
    assert np.isfinite(report["loss"])


def test_threads_flag_gives_the_same_numbers(repo_root, mnist_dir, weights):
    """--threads (which evaluate lacked) through the README's module name: one thread and two
    give the same report; a bad count is a one-line error."""
    reports = []
    for count in (1, 2):
        result = run_module(repo_root, "models.evaluate", "--weights", weights["lstm"], "--data", mnist_dir,
                            "--limit", LIMIT, "--json", "--threads", count)
        assert result.returncode == 0, result.stderr
        reports.append(json.loads(result.stdout))
    assert reports[0]["confusion_matrix"] == reports[1]["confusion_matrix"]
    assert reports[0]["loss"] == pytest.approx(reports[1]["loss"], rel=1e-6)
    line = assert_one_line_error(run_module(repo_root, "models.evaluate", "--model", "cnn", "--threads", "0"))
    assert line == ("error: argument --threads: must be a positive integer, not 0 "
                    "(see python -m models.evaluate --help)")


def test_text_report(repo_root, mnist_dir, weights):
    result = run_evaluate(repo_root, "--model", "lstm", "--weights", weights["lstm"], "--data", mnist_dir,
                          "--limit", 100)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"LSTM {weights['lstm']} (epoch 3, validation accuracy 50.00%)")
    assert "test images: 100 from" in out
    assert "per-class report" in out and "confusion matrix (rows: true digit, columns: predicted digit)" in out
    matrix = out.split("confusion matrix (rows: true digit, columns: predicted digit)\n")[1].split("\n\n")[0]
    assert len({len(line) for line in matrix.splitlines()}) == 1  # aligned
    assert matrix.splitlines()[-1].split()[-1] == "100"


def test_weights_of_the_other_model_are_refused(repo_root, mnist_dir, weights, tmp_path):
    plots = tmp_path / "plots"
    # with --plots too, when the plot extra is installed (without it, that is the first error)
    with_plots = ["--plots", plots] if importlib.util.find_spec("matplotlib") else []
    result = run_evaluate(repo_root, "--model", "lstm", "--weights", weights["cnn"], "--data", mnist_dir,
                          *with_plots)
    line = assert_one_line_error(result)
    assert str(weights["cnn"]) in line and "CNN" in line and "LSTM" in line
    assert not plots.exists()


def test_missing_weights_and_data_are_named(repo_root, mnist_dir, weights, tmp_path):
    missing = tmp_path / "nowhere" / "mnist"
    line = assert_one_line_error(run_evaluate(repo_root, "--model", "cnn", "--weights", weights["cnn"],
                                              "--data", missing))
    assert str(missing) in line and "does not exist" in line
    line = assert_one_line_error(run_evaluate(repo_root, "--model", "cnn", "--weights", tmp_path / "no.npz",
                                              "--data", mnist_dir))
    assert str(tmp_path / "no.npz") in line
    line = assert_one_line_error(run_evaluate(repo_root, "--model", "cnn", "--limit", "0"))
    assert "--limit" in line


def test_plots_are_written(repo_root, mnist_dir, weights, tmp_path):
    pytest.importorskip("matplotlib")
    # A history beside the weights, as the training scripts write it.
    weights_path = tmp_path / "cnn.npz"
    weights_path.write_bytes(weights["cnn"].read_bytes())
    epochs = [dict(epoch=e, train_loss=1.0 / e, train_accuracy=0.9 + e / 100, val_loss=1.2 / e,
                   val_accuracy=0.91 + e / 100, lr=1e-3, seconds=10.0, images_per_second=4800.0)
              for e in (1, 2, 3)]
    (tmp_path / "cnn.history.json").write_text(json.dumps({"model": "cnn", "epochs": epochs}))
    plots = tmp_path / "plots"
    result = run_evaluate(repo_root, "--model", "cnn", "--weights", weights_path, "--data", mnist_dir,
                          "--limit", 200, "--plots", plots, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    names = ["cnn_training_curves.png", "cnn_confusion.png", "cnn_correct.png", "cnn_wrong.png"]
    assert sorted(report["plots"]) == sorted(str(plots / name) for name in names)
    for name in names:
        data = (plots / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 300_000, name


def test_plots_without_matplotlib_name_the_extra(repo_root, mnist_dir, weights, tmp_path):
    plots = tmp_path / "plots"
    result = run_evaluate(repo_root, "--model", "cnn", "--weights", weights["cnn"], "--data", mnist_dir,
                          "--plots", plots, pythonpath_first=without_matplotlib(tmp_path))
    line = assert_one_line_error(result)
    assert "matplotlib" in line and "pip install -e '.[plot]'" in line
    assert not plots.exists()
