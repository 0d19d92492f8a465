"""The comparison report: perturbations, generated sentences, and ``python -m models.compare``.

The end-to-end test builds the report on a few hundred real test images with small untrained
weights made here, and checks it against ``python -m models.evaluate --json`` for the same
weights and data.
"""
import json
import re

import numpy as np
import pytest

from models import compare
from models.base import build_model
from test_evaluate import assert_one_line_error, run_module, without_matplotlib

LIMIT = 300
SWEEP_IMAGES = 60


# --- perturbations ---

def test_gaussian_blur_matches_direct_2d_convolution():
    rng = np.random.default_rng(0)
    images = rng.random((3, 12, 15))
    sigma = 1.3
    g = compare.gaussian_kernel(sigma)
    radius = len(g) // 2
    assert len(g) == 2 * int(np.ceil(3 * sigma)) + 1 and g.sum() == pytest.approx(1)
    kernel = np.outer(g, g)  # the 2-D Gaussian is the outer product of two 1-D ones
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)))
    expected = np.zeros_like(images)
    for r in range(images.shape[1]):
        for c in range(images.shape[2]):
            expected[:, r, c] = (padded[:, r:r + 2 * radius + 1, c:c + 2 * radius + 1] * kernel).sum(axis=(1, 2))
    np.testing.assert_allclose(compare.gaussian_blur(images, sigma), expected, rtol=1e-12, atol=1e-14)


def test_blur_keeps_dtype_and_mass_of_a_centred_dot():
    images = np.zeros((1, 28, 28), np.float32)
    images[0, 14, 14] = 1
    blurred = compare.gaussian_blur(images, 2.0)
    assert blurred.dtype == np.float32
    assert blurred.sum() == pytest.approx(1, rel=1e-5)
    assert blurred[0, 14, 14] == blurred.max()
    np.testing.assert_allclose(blurred[0], blurred[0].T, atol=1e-7)  # isotropic
    assert compare.gaussian_blur(images, 0) is images


def test_integer_shift_moves_pixels_and_fills_black():
    images = np.random.default_rng(1).random((2, 28, 28)).astype(np.float32)
    right = compare.shift(images, cols=3)
    np.testing.assert_allclose(right[:, :, 3:], images[:, :, :-3], atol=1e-6)
    assert not right[:, :, :3].any()
    down = compare.shift(images, rows=-2)  # negative rows: up
    np.testing.assert_allclose(down[:, :-2, :], images[:, 2:, :], atol=1e-6)
    assert not down[:, -2:, :].any()
    assert compare.shift(images) is images and compare.rotate(images, 0) is images
    assert compare.rescale(images, 1.0) is images


def test_rotation_and_scale_about_the_centre():
    images = np.zeros((1, 28, 28), np.float32)
    images[0, 13:15, 13:15] = 1  # a dot at the centre stays there
    assert compare.rotate(images, 90)[0, 13:15, 13:15].min() == pytest.approx(1, abs=1e-5)
    line = np.zeros((1, 28, 28), np.float32)
    line[0, 4:24, 13] = 1  # a vertical bar of 20 px
    half = compare.rescale(line, 0.5)
    assert half[0].sum() == pytest.approx(line[0].sum() / 4, rel=0.3)  # area scales by 0.5^2
    assert not half[0, :7].any() and not half[0, 21:].any()


def test_noise_is_reproducible_and_clipped():
    images = np.full((4, 28, 28), 0.5, np.float32)
    a = compare.add_noise(images, 0.5, np.random.default_rng(3))
    b = compare.add_noise(images, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() == 0 and a.max() == 1
    assert a.std() == pytest.approx(0.4, abs=0.08)  # clipping trims the spread of std 0.5


def test_blank_rows_top_and_bottom():
    images = np.ones((2, 28, 28), np.float32)
    top = compare.blank_rows(images, 5, "top")
    assert not top[:, :5].any() and top[:, 5:].all()
    bottom = compare.blank_rows(images, 5, "bottom")
    assert not bottom[:, 23:].any() and bottom[:, :23].all()
    assert images.all()  # the input is untouched
    assert compare.blank_rows(images, 0, "top") is images


def test_sweep_subset_is_fixed():
    a, b = compare.sweep_subset(10_000, 2000), compare.sweep_subset(10_000, 2000)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 2000 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(compare.sweep_subset(300, 2000), np.arange(300))


# --- sentences generated from the numbers ---

def test_sweep_sentences_state_the_numbers():
    sweep = next(s for s in compare.SWEEPS if s.key == "shift_x")
    levels = sweep.levels  # -4 .. 4
    cnn = [0.990, 0.990, 0.991, 0.992, 0.993, 0.992, 0.985, 0.976, 0.971]
    lstm = [0.70, 0.80, 0.90, 0.97, 0.985, 0.97, 0.90, 0.75, 0.613]
    result = {"levels": levels, "variants": {"": {"accuracy": {"cnn": cnn, "lstm": lstm}}}}
    text = " ".join(compare.describe_sweep(sweep, result))
    assert "Unperturbed, the subset is classified with 99.3 % (CNN) and 98.5 % (LSTM) accuracy." in text
    assert ("At a 4 px shift right the CNN drops to 97.1 % (-2.2 points) and the LSTM drops to "
            "61.3 % (-37.2 points).") in text
    assert "At a 4 px shift left the CNN keeps 99.0 % while the LSTM drops to 70.0 % (-28.5 points)." in text
    assert ("The CNN loses at most 1 point up to a 2 px shift right; the LSTM loses more than 1 point "
            "already at a 1 px shift right.") in text
    assert "the LSTM loses more accuracy than the CNN at 8 of them" in text
    # both within a point: no "keeps" against "drops to" for the same number
    result["variants"][""]["accuracy"] = {"cnn": [0.99] * 9, "lstm": [0.985] * 4 + [0.99] + [0.985] * 4}
    text = " ".join(compare.describe_sweep(sweep, result))
    assert ("At a 4 px shift right both models stay within 1 point: the CNN scores 99.0 %, the LSTM "
            "scores 98.5 %.") in text


# --- the command, end to end ---

@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Untrained weights for both models, each with a made-up training history beside it."""
    folder = tmp_path_factory.mktemp("compare_weights")
    paths = {}
    for seed, (name, seconds) in enumerate((("cnn", 12.5), ("lstm", 30.0))):
        paths[name] = folder / f"{name}.npz"
        build_model(name, np.random.default_rng(seed)).save(paths[name])
        epochs = [dict(epoch=e, train_loss=1.0 / e, train_accuracy=0.9 + e / 100, val_loss=1.1 / e,
                       val_accuracy=0.92 + e / 100, lr=1e-3, seconds=seconds, images_per_second=48000 / seconds)
                  for e in (1, 2, 3, 4)]
        (folder / f"{name}.history.json").write_text(json.dumps(
            {"model": name, "epochs": epochs, "best_epoch": 4, "best_val_accuracy": 0.96}))
    return paths


def run_compare(repo_root, mnist_dir, weights, out, *extra, **kwargs):
    return run_module(repo_root, "models.compare", "--cnn", weights["cnn"], "--lstm", weights["lstm"],
                      "--data", mnist_dir, "--out", out, *extra, **kwargs)


def test_report_agrees_with_evaluate_and_links_existing_figures(repo_root, mnist_dir, weights, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    result = run_compare(repo_root, mnist_dir, weights, out, "--limit", LIMIT, "--sweep-images", SWEEP_IMAGES,
                         "--latency-calls", 10, "--quiet")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    numbers = json.loads((out / "report.json").read_text())

    for name in ("cnn", "lstm"):
        evaluated = run_module(repo_root, "models.evaluate", "--model", name, "--weights", weights[name],
                               "--data", mnist_dir, "--limit", LIMIT, "--json")
        assert evaluated.returncode == 0, evaluated.stderr
        expected = json.loads(evaluated.stdout)
        got = numbers["evaluations"][name]
        assert got["n_images"] == expected["n_images"] == LIMIT
        assert got["accuracy"] == expected["accuracy"]
        assert got["per_class"] == expected["per_class"]
        assert got["confusion_matrix"] == expected["confusion_matrix"]
        # the Markdown table and the console summary show the same accuracy
        row = f"| {name.upper()} | {100 * expected['accuracy']:.2f} % | {LIMIT - expected['n_correct']:,} |"
        assert row in report
        assert re.search(rf"^{name.upper()}\s+{100 * expected['accuracy']:.2f}%", result.stdout, re.M)

    # training time per epoch comes from the history files
    assert numbers["training"]["cnn"]["seconds_per_epoch"] == 12.5
    assert "| 12.5 s | 3,840 |" in report and "| 30.0 s | 1,600 |" in report
    assert numbers["parameters"] == {"cnn": 356_234, "lstm": 24_586}
    assert numbers["sweep_images"] == SWEEP_IMAGES
    assert f"subset of {SWEEP_IMAGES:,} of the {LIMIT:,} test images" in report

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    expected_figures = {"training_curves.png", "per_class.png", "confusion.png", "cnn_right_lstm_wrong.png",
                        "lstm_right_cnn_wrong.png", "both_wrong.png"} | {
                           f"robustness_{s.key}.png" for s in compare.SWEEPS}
    assert set(links) <= expected_figures and len(links) >= len(expected_figures) - 2  # empty grids are left out
    for link in links:
        data = (out / link).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 300_000, link
    assert sorted(numbers["figures"].values()) == sorted(p.name for p in out.glob("*.png"))
    for sweep in compare.SWEEPS:  # every sweep has its table and its generated sentences
        assert f"### {sweep.title}" in report
        accuracy = numbers["robustness"][sweep.key]["variants"]
        for variant in accuracy.values():
            assert len(variant["accuracy"]["cnn"]) == len(sweep.levels)


def test_report_without_matplotlib_skips_figures(repo_root, mnist_dir, weights, tmp_path):
    out = tmp_path / "report"
    result = run_compare(repo_root, mnist_dir, weights, out, "--limit", 100, "--sweep-images", 20,
                         "--latency-calls", 5, "--quiet", pythonpath_first=without_matplotlib(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "figures skipped" in result.stdout and "pip install -e '.[plot]'" in result.stdout
    report = (out / "report.md").read_text()
    assert "Figures skipped: matplotlib is not installed" in report
    assert "![" not in report and not list(out.glob("*.png"))
    assert "| CNN |" in report and "### Blanked rows" in report


def test_wrong_weights_give_one_line_and_write_nothing(repo_root, mnist_dir, weights, tmp_path):
    out = tmp_path / "report"
    swapped = {"cnn": weights["lstm"], "lstm": weights["cnn"]}
    line = assert_one_line_error(run_compare(repo_root, mnist_dir, swapped, out))
    assert str(weights["lstm"]) in line and "not the CNN" in line
    assert not out.exists()
    line = assert_one_line_error(run_compare(repo_root, tmp_path / "no_data", weights, out))
    assert str(tmp_path / "no_data") in line
    assert not out.exists()
