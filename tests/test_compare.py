"""The comparison report (:mod:`models.analysis.compare`): perturbations, generated sentences,
the memory measurements, the timing, the section interface, and ``python -m models.compare``.

The memory measurements are checked against direct computations on a tiny RNN (central
differences on the hidden state, a float64 NumPy forward).  The end-to-end tests build the
report for three models (untrained weights made here) on a few hundred real test images and
check its numbers against evaluations, predictions and measurements made in the test.
"""
import hashlib
import json
import math
import os
import re

import numpy as np
import pytest
from scipy.stats import beta

from models.analysis import memory
from models.analysis.compare import perturbations, sweeps, timing
from models.commands import compare as cli
from models.analysis.compare.context import shown_data_folder, shown_weights
from models.analysis.compare.report import check_sections
from models.analysis.compare.section import Section
from models.analysis.compare.sections import default_sections
from models.analysis.compare.sections import memory as memory_section
from models.analysis.compare.sections.disagreement import describe_overlap, error_overlap, right_where_wrong
from models.analysis.compare.sections.glance import describe_summary
from models.analysis.compare.sections.robustness import describe_sweep
from models.base import build_model, load_model
from nn.step import TrainingStep
from models.analysis.evaluate import Evaluation, evaluate, load_test_set
from test_evaluate import assert_one_line_error, run_module, without_matplotlib

# --- perturbations ---

def test_gaussian_blur_matches_direct_2d_convolution():
    rng = np.random.default_rng(0)
    images = rng.random((3, 12, 15))
    sigma = 1.3
    g = perturbations.gaussian_kernel(sigma)
    radius = len(g) // 2
    assert len(g) == 2 * int(np.ceil(3 * sigma)) + 1 and g.sum() == pytest.approx(1)
    kernel = np.outer(g, g)  # the 2-D Gaussian is the outer product of two 1-D ones
    padded = np.pad(images, ((0, 0), (radius, radius), (radius, radius)))
    expected = np.zeros_like(images)
    for r in range(images.shape[1]):
        for c in range(images.shape[2]):
            expected[:, r, c] = (padded[:, r:r + 2 * radius + 1, c:c + 2 * radius + 1] * kernel).sum(axis=(1, 2))
    np.testing.assert_allclose(perturbations.gaussian_blur(images, sigma), expected, rtol=1e-12, atol=1e-14)


def test_blur_keeps_dtype_and_mass_of_a_centred_dot():
    images = np.zeros((1, 28, 28), np.float32)
    images[0, 14, 14] = 1
    blurred = perturbations.gaussian_blur(images, 2.0)
    assert blurred.dtype == np.float32
    assert blurred.sum() == pytest.approx(1, rel=1e-5)
    assert blurred[0, 14, 14] == blurred.max()
    np.testing.assert_allclose(blurred[0], blurred[0].T, atol=1e-7)  # isotropic
    assert perturbations.gaussian_blur(images, 0) is images


def test_integer_shift_moves_pixels_and_fills_black():
    images = np.random.default_rng(1).random((2, 28, 28)).astype(np.float32)
    right = perturbations.shift(images, cols=3)
    np.testing.assert_allclose(right[:, :, 3:], images[:, :, :-3], atol=1e-6)
    assert not right[:, :, :3].any()
    down = perturbations.shift(images, rows=-2)  # negative rows: up
    np.testing.assert_allclose(down[:, :-2, :], images[:, 2:, :], atol=1e-6)
    assert not down[:, -2:, :].any()
    assert perturbations.shift(images) is images and perturbations.rotate(images, 0) is images
    assert perturbations.rescale(images, 1.0) is images


def test_rotation_and_scale_about_the_centre():
    images = np.zeros((1, 28, 28), np.float32)
    images[0, 13:15, 13:15] = 1  # a dot at the centre stays there
    assert perturbations.rotate(images, 90)[0, 13:15, 13:15].min() == pytest.approx(1, abs=1e-5)
    line = np.zeros((1, 28, 28), np.float32)
    line[0, 4:24, 13] = 1  # a vertical bar of 20 px, 1 px wide
    half = perturbations.rescale(line, 0.5)
    # Halved about the centre (13.5, 13.5): rows 8.75..18.25, sampled bilinearly half-way between
    # columns 13 and 14 -> 10 pixels of 0.5 in column 13 (area scales by 0.5^2: 20 / 4 = 5).
    assert half[0].sum() == 5.0
    assert np.count_nonzero(half[0]) == 10 and set(np.unique(half[0])) == {0.0, 0.5}
    assert not half[0, :7].any() and not half[0, 21:].any()


def clipped_noise_std(mean, std):
    """Standard deviation of clip(mean + N(0, std^2), 0, 1) for mean = 0.5, by the formula:
    P(clipped at each end) = Phi(-a), a = 0.5 / std, and E[Z^2; |Z| < 0.5] = std^2 (Phi(a) - Phi(-a)
    - 2 a phi(a)), so Var = 2 Phi(-a) 0.25 + std^2 (Phi(a) - Phi(-a) - 2 a phi(a))."""
    assert mean == 0.5
    a = 0.5 / std
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    pdf = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    return math.sqrt(2 * cdf(-a) * 0.25 + std ** 2 * (cdf(a) - cdf(-a) - 2 * a * pdf))


def test_noise_is_reproducible_clipped_and_has_the_clipped_spread():
    images = np.full((4, 28, 28), 0.5, np.float32)
    a = perturbations.add_noise(images, 0.5, np.random.default_rng(3))
    b = perturbations.add_noise(images, 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() == 0 and a.max() == 1
    assert clipped_noise_std(0.5, 0.5) == pytest.approx(0.359186, abs=1e-6)  # clipping trims 0.5
    big = perturbations.add_noise(np.full((1000, 1000), 0.5, np.float32), 0.5, np.random.default_rng(4))
    # a million pixels: the sample std is within about 3e-4 of the true one
    assert big.std() == pytest.approx(clipped_noise_std(0.5, 0.5), abs=1e-3)
    assert (big == 0).mean() == pytest.approx(0.5 * (1 + math.erf(-1 / math.sqrt(2))), abs=2e-3)


def test_blank_rows_top_and_bottom():
    images = np.ones((2, 28, 28), np.float32)
    top = perturbations.blank_rows(images, 5, "top")
    assert not top[:, :5].any() and top[:, 5:].all()
    bottom = perturbations.blank_rows(images, 5, "bottom")
    assert not bottom[:, 23:].any() and bottom[:, :23].all()
    assert images.all()  # the input is untouched
    assert perturbations.blank_rows(images, 0, "top") is images


def test_sweep_subset_is_fixed():
    a, b = sweeps.sweep_subset(10_000, 2000), sweeps.sweep_subset(10_000, 2000)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 2000 and (np.diff(a) > 0).all()
    np.testing.assert_array_equal(sweeps.sweep_subset(300, 2000), np.arange(300))


# --- sentences generated from the numbers ---

def test_sweep_sentences_state_the_numbers():
    sweep = next(s for s in sweeps.SWEEPS if s.key == "shift_x")
    levels = sweep.levels  # -4 .. 4
    cnn = [0.990, 0.990, 0.991, 0.992, 0.993, 0.992, 0.985, 0.976, 0.971]
    lstm = [0.70, 0.80, 0.90, 0.97, 0.985, 0.97, 0.90, 0.75, 0.613]
    result = {"levels": levels, "variants": {"": {"accuracy": {"cnn": cnn, "lstm": lstm}}}}
    text = " ".join(describe_sweep(sweep, result))
    assert "Unperturbed, the subset is classified with 99.3 % (CNN) and 98.5 % (LSTM) accuracy." in text
    assert ("At a 4 px shift right the CNN drops to 97.1 % (-2.2 points) and the LSTM drops to "
            "61.3 % (-37.2 points).") in text
    assert "At a 4 px shift left the CNN keeps 99.0 % while the LSTM drops to 70.0 % (-28.5 points)." in text
    assert ("The CNN loses at most 1 point up to a 2 px shift right; the LSTM loses more than 1 point "
            "already at a 1 px shift right.") in text
    assert "the LSTM loses more accuracy than the CNN at 8 of them" in text
    # both within a point: no "keeps" against "drops to" for the same number
    result["variants"][""]["accuracy"] = {"cnn": [0.99] * 9, "lstm": [0.985] * 4 + [0.99] + [0.985] * 4}
    text = " ".join(describe_sweep(sweep, result))
    assert ("At a 4 px shift right both models stay within 1 point: the CNN scores 99.0 %, the LSTM "
            "scores 98.5 %.") in text


def test_sweep_sentences_for_three_models():
    sweep = next(s for s in sweeps.SWEEPS if s.key == "blur")  # levels 0, 0.5, 1, 1.5, 2
    accuracy = {"cnn": [0.99, 0.99, 0.985, 0.95, 0.70], "lstm": [0.98, 0.98, 0.95, 0.70, 0.35],
                "rnn": [0.96, 0.955, 0.90, 0.60, 0.30]}
    result = {"levels": sweep.levels, "variants": {"": {"accuracy": accuracy}}}
    text = describe_sweep(sweep, result)
    assert text[0] == ("Unperturbed, the subset is classified with 99.0 % (CNN), 98.0 % (LSTM) and "
                       "96.0 % (RNN) accuracy.")
    assert text[1] == ("At a blur of sigma 2 px the CNN drops to 70.0 % (-29.0 points), the LSTM drops to "
                       "35.0 % (-63.0 points) and the RNN drops to 30.0 % (-66.0 points). The CNN loses at "
                       "most 1 point up to a blur of sigma 1 px; the LSTM and the RNN lose at most 1 point up to a "
                       "blur of sigma 0.5 px.")
    # means over the 4 perturbed levels: CNN 90.625, LSTM 74.5, RNN 68.875
    assert text[2] == ("Averaged over the 4 perturbed levels: CNN 90.6 %, LSTM 74.5 %, RNN 68.9 %; the CNN "
                       "holds up best and the RNN worst.")


def test_summary_and_overlap_sentences_for_three_models():
    labels = np.array([0, 1, 2, 3, 4, 5])
    evaluations = {"cnn": Evaluation(labels, np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 4, 9]]),
                   "lstm": Evaluation(labels, np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 9, 9]]),
                   "rnn": Evaluation(labels, np.eye(10, dtype=np.float32)[[0, 7, 2, 3, 9, 9]])}
    matrix = right_where_wrong(evaluations)
    assert matrix == {"cnn": {"lstm": 1, "rnn": 2}, "lstm": {"cnn": 0, "rnn": 1}, "rnn": {"cnn": 0, "lstm": 0}}
    overlap = error_overlap(evaluations)
    assert overlap == {"all_wrong": 1, "all_wrong_same_answer": 1,
                       "only_wrong": {"cnn": 0, "lstm": 0, "rnn": 1},
                       "only_right": {"cnn": 1, "lstm": 0, "rnn": 0}}
    text = describe_overlap(evaluations, overlap)
    assert text == ["Of the 6 images, all 3 models miss 1 (1 of those with the same wrong answer from every model).",
                    "Images only one model gets wrong: CNN 0, LSTM 0, RNN 1; images only one model gets "
                    "right: CNN 1, LSTM 0, RNN 0."]
    facts = {"parameters": {"cnn": 1000, "lstm": 100, "rnn": 50}, "flops": {"cnn": 8e6, "lstm": 2e6, "rnn": 1e6},
             "latency": {"cnn": 0.002, "lstm": 0.001, "rnn": 0.0005}, "latency_calls": 7,
             "training_speed": {"cnn": {"images_per_second": 800.0}, "lstm": {"images_per_second": 2400.0},
                                "rnn": {"images_per_second": 4800.0}}}
    text = describe_summary(evaluations, facts)
    assert text == [
        "On the 6 test images the CNN is right 83.33 % of the time (1 errors), the LSTM 66.67 % (2) and "
        "the RNN 50.00 % (3).",
        "The RNN makes 3.0x as many errors as the CNN.",
        "The CNN has the most parameters (1,000), 20.0x as many as the RNN (50); the CNN needs the most "
        "FLOPs per image (8.00 MFLOPs), 8.0x those of the RNN (1.00 MFLOPs).",
        "One image takes 2.00 ms to classify with the CNN, 1.00 ms with the LSTM and 0.50 ms with the RNN "
        "(median of 7 calls on this machine).",
        "Measured in this run, the RNN trains fastest (4,800 images/s) and the CNN slowest (800 images/s, "
        "6.0x slower); at that speed an epoch of 48,000 training images would take 10 s and 60 s."]


def test_memory_sentences_state_the_numbers():
    steps = 28
    result = {"models": ["rnn", "lstm"], "steps": steps,
              "gradients": {"rnn": {"trained": [2e-6] + [1e-3] * 26 + [0.5], "initial": [1e-8] + [1e-3] * 26 + [1.0],
                                    "seed": 1},
                            "lstm": {"trained": [0.01] + [0.02] * 26 + [0.05], "initial": [0.2] + [0.1] * 26 + [0.1],
                                     "seed": 1}},
              "blank_rows": {"counts": [0, 4, 8, 12],
                             "accuracy": {"rnn": [0.97, 0.93, 0.85, 0.40], "lstm": [0.99, 0.99, 0.95, 0.92]}}}
    titles = {"rnn": "RNN", "lstm": "LSTM"}
    text = memory_section.describe_gradients(result, titles)
    assert text[0] == ("RNN: after training, the gradient reaching the state after row 1 is 250,000x smaller "
                       "than at row 28 (mean ||dL/dh_1|| = 2.00e-06, ||dL/dh_28|| = 5.00e-01); freshly "
                       "initialised (seed 1) it was 100,000,000x smaller (1.00e-08 vs 1.00e+00).")
    assert text[1] == ("LSTM: after training, the gradient reaching the state after row 1 is 5.0x smaller "
                       "than at row 28 (mean ||dL/dh_1|| = 1.00e-02, ||dL/dh_28|| = 5.00e-02); freshly "
                       "initialised (seed 1) it was 2.0x larger (2.00e-01 vs 1.00e-01).")
    assert text[2] == ("Of the trained models, the LSTM keeps the most gradient over the 28 steps and the RNN "
                       "the least: the RNN's ratio is 50,000x the LSTM's.")
    assert text[3] == ("Freshly initialised, the RNN loses the most gradient between row 28 and row 1 "
                       "(100,000,000x) and the LSTM the least (0.5x).")
    text = memory_section.describe_blank_rows(result, titles)
    assert text[0] == ("The RNN scores 97.0 % with no blank rows and 93.0 % after 4, then falls below 90 % at "
                       "8 blank rows (85.0 %); after 12 it scores 40.0 %.")
    assert text[1] == ("The LSTM stays at or above 90 % all the way to 12 blank rows (99.0 % with none, "
                       "92.0 % with 12).")
    # means over k = 4, 8, 12: RNN (93 + 85 + 40) / 3 = 72.67, LSTM (99 + 95 + 92) / 3 = 95.33
    assert text[2] == ("Averaged over k = 4..12: LSTM 95.3 %, RNN 72.7 %; the LSTM holds the digit best "
                       "and the RNN worst.")
    result["blank_rows"]["accuracy"]["rnn"] = [0.97, 0.85, 0.80, 0.40]
    assert memory_section.describe_blank_rows(result, titles)[0] == (
        "The RNN scores 97.0 % with no blank rows and falls below 90 % already at 4 (85.0 %); after 12 "
        "it scores 40.0 %.")
    result["gradients"]["rnn"]["trained"][0] = 0.48  # within 10 % of the last row's 0.5
    assert "row 1 is about as large as at row 28 (mean" in memory_section.describe_gradients(result, titles)[0]


# --- the memory measurements, against direct computations ---

def tiny_rnn(seed=5, hidden=5, rows=6, width=4):
    """A small SimpleRNN model with non-trivial BatchNorm statistics and biases."""
    rng = np.random.default_rng(seed)
    model = build_model("rnn", rng, num_classes=3, image_shape=(rows, width), hidden=hidden)
    rnn, norm, dense = model.network.layers
    rnn.params["w_hh"][...] = rng.normal(0, 0.6, rnn.params["w_hh"].shape)
    rnn.params["b"][...] = rng.normal(0, 0.3, hidden)
    norm.buffers["running_mean"][...] = rng.normal(0, 0.2, hidden)
    norm.buffers["running_var"][...] = rng.uniform(0.5, 2.0, hidden)
    norm.params["gamma"][...] = rng.uniform(0.5, 1.5, hidden)
    norm.params["beta"][...] = rng.normal(0, 0.1, hidden)
    dense.params["bias"][...] = rng.normal(0, 0.1, 3)
    return model


def reference_logits(model, sequences, h_start=None, start=0):
    """float64 NumPy forward of the tiny RNN model, from h_start after step ``start`` (0: h_0 = 0)."""
    rnn, norm, dense = model.network.layers
    p = {k: v.astype(np.float64) for k, v in rnn.params.items()}
    x = np.asarray(sequences, np.float64)
    h = np.zeros((len(x), p["w_hh"].shape[0])) if h_start is None else h_start
    for t in range(start, x.shape[1]):
        h = np.tanh(x[:, t] @ p["w_ih"].T + h @ p["w_hh"].T + p["b"])
    y = ((h - norm.buffers["running_mean"]) / np.sqrt(norm.buffers["running_var"].astype(np.float64) + norm.eps)
         * norm.params["gamma"] + norm.params["beta"])
    return y @ dense.params["weight"].T.astype(np.float64) + dense.params["bias"]


def cross_entropy(logits, labels):
    """Per-image cross-entropy, float64, (N,)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(labels)), labels]


def test_hidden_gradient_norms_match_central_differences():
    model = tiny_rnn()
    rng = np.random.default_rng(6)
    images = rng.random((3, 6, 4)).astype(np.float32)
    labels = np.array([0, 2, 1])
    attributes = dict(vars(model.network.layers[0]))
    got = memory.hidden_gradient_norms(model, images, labels)
    assert got.shape == (6,)
    # dL_n/dh_t by central differences on the state h_t itself, continuing the recurrence from it
    p = {k: v.astype(np.float64) for k, v in model.network.layers[0].params.items()}
    x = images.astype(np.float64)
    expected = np.empty(6)
    h = np.zeros((3, 5))
    eps = 1e-6
    for t in range(6):
        h = np.tanh(x[:, t] @ p["w_ih"].T + h @ p["w_hh"].T + p["b"])      # h_t, after row t + 1
        grad = np.empty_like(h)
        for j in range(5):
            step = np.zeros_like(h)
            step[:, j] = eps
            grad[:, j] = (cross_entropy(reference_logits(model, x, h + step, t + 1), labels)
                          - cross_entropy(reference_logits(model, x, h - step, t + 1), labels)) / (2 * eps)
        expected[t] = np.linalg.norm(grad, axis=1).mean()
    np.testing.assert_allclose(got, expected, rtol=2e-4)
    assert expected[0] < expected[-1] / 2  # the test is not of a flat curve
    changed = {name for name, value in vars(model.network.layers[0]).items()
               if name not in attributes or value is not attributes[name]}
    assert changed <= {"cache", "steps", "sequence_output"}  # what any forward pass sets


def test_blank_row_accuracy_matches_a_direct_forward_and_the_plain_accuracy_at_zero():
    model = tiny_rnn(seed=8)
    rng = np.random.default_rng(9)
    images = rng.random((40, 6, 4)).astype(np.float32)
    labels = reference_logits(model, images).argmax(axis=1)           # right on every image at k = 0
    labels[:10] = (labels[:10] + 1) % 3                                # and wrong on the first ten
    counts = [0, 1, 3, 8]
    got = memory.blank_row_accuracy(model, images, labels, counts, batch_size=16)
    assert got[0] == float((model.predict(images) == labels).mean()) == 0.75
    for k, accuracy in zip(counts, got):
        padded = np.concatenate([images, np.zeros((40, k, 4), np.float32)], axis=1)
        assert accuracy == float((reference_logits(model, padded).argmax(axis=1) == labels).mean())
    assert len(set(got)) > 1  # blank rows do change the answers of this model
    padded = memory.append_blank_rows(images, 3)
    assert padded.shape == (40, 9, 4) and not padded[:, 6:].any()
    np.testing.assert_array_equal(padded[:, :6], images)


def test_initial_model_is_the_trainers_start():
    trained = tiny_rnn(seed=3)
    trained.extra = {"seed": 7}
    fresh = memory.initial_model(trained)
    expected = build_model("rnn", np.random.default_rng([7, 1]), num_classes=3, image_shape=(6, 4), hidden=5)
    for key, value in expected.network.state().items():
        np.testing.assert_array_equal(fresh.network.state()[key], value)
    assert not np.array_equal(fresh.network.state()["0.w_hh"], trained.network.state()["0.w_hh"])


# --- the training-speed timing ---

def test_training_speed_times_the_kits_one_training_step(monkeypatch):
    """Every timed and warm-up step is nn.step.TrainingStep on one batch, cycling through the images."""
    batches = []

    class CountingStep(TrainingStep):
        def __call__(self, x, labels, **kwargs):
            batches.append((x.copy(), labels.copy()))
            return super().__call__(x, labels, **kwargs)

    monkeypatch.setattr(timing, "TrainingStep", CountingStep)
    model = tiny_rnn(seed=2)
    rng = np.random.default_rng(3)
    images, labels = rng.random((40, 6, 4)).astype(np.float32), rng.integers(0, 3, 40)
    result = timing.training_speed(model, images, labels, batch_size=16, seconds=0.01, warmup=2)
    assert result["steps"] >= 5 and len(batches) == 2 + result["steps"]
    assert result["batch_size"] == 16 and result["images_per_second"] > 0
    index = np.arange(16, 32)                       # the second batch: images 16..31
    np.testing.assert_array_equal(batches[1][0], model.to_network_input(images[index]))
    np.testing.assert_array_equal(batches[1][1], labels[index])
    index = np.arange(32, 48) % 40                  # the third wraps around to the first images
    np.testing.assert_array_equal(batches[2][1], labels[index])


# --- the sections ---

def test_sections_need_distinct_keys():
    class One(Section):
        key, title = "one", "One"

    class Again(Section):
        key, title = "one", "One again"

    check_sections([One(), *default_sections()])
    with pytest.raises(ValueError, match="'one'"):
        check_sections([One(), Again()])
    keys = [section.key for section in default_sections()]
    assert keys == ["models", "glance", "certainty", "training", "per_class", "confusion", "disagreement", "robustness",
                    "memory", "reproduce"]


def test_the_data_folder_is_shown_without_the_machines_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    assert shown_data_folder(tmp_path / "data" / "mnist", None) == "data/mnist"
    elsewhere = tmp_path.parent / "elsewhere" / "mnist"
    home = tmp_path.parent / f"{tmp_path.name}_home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MNIST_DIR", str(elsewhere))
    assert shown_data_folder(elsewhere, None) == "$MNIST_DIR"
    assert shown_data_folder(home / "mnist", None) == "~/mnist"
    assert shown_data_folder(elsewhere, str(elsewhere)) == str(elsewhere)   # typed by the user


def test_shipped_weights_are_shown_as_the_repositorys_file_wherever_they_are_installed(tmp_path, monkeypatch):
    from models.base import shipped_weights
    monkeypatch.chdir(tmp_path)
    assert shown_weights("cnn", shipped_weights("cnn")) == "weights/cnn.npz"
    (tmp_path / "runs").mkdir()
    assert shown_weights("cnn", tmp_path / "runs" / "cnn.npz") == "runs/cnn.npz"
    other = tmp_path.parent / "cnn.npz"
    assert shown_weights("cnn", other) == str(other)


# --- the command, end to end ---

LIMIT = 200
SWEEP_IMAGES = 40
THREE = ("cnn", "lstm", "rnn")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Untrained weights for three models, each with a made-up training history beside it."""
    folder = tmp_path_factory.mktemp("compare_weights")
    paths = {}
    for seed, name in enumerate(THREE):
        paths[name] = folder / f"{name}.npz"
        build_model(name, np.random.default_rng(seed)).save(paths[name], extra={"seed": 10 + seed})
        epochs = [dict(epoch=e, train_loss=1.0 / e, train_accuracy=0.9 + e / 100, val_loss=1.1 / e,
                       val_accuracy=0.92 + e / 100 + seed / 1000, lr=1e-3, seconds=12.5, images_per_second=3840)
                  for e in (1, 2, 3, 4)]
        (folder / f"{name}.history.json").write_text(json.dumps(
            {"model": name, "epochs": epochs, "best_epoch": 4, "best_val_accuracy": 0.96 + seed / 1000}))
    return paths


def run_compare(repo_root, mnist_dir, weights, out, *extra, names=THREE, **kwargs):
    return run_module(repo_root, "models.compare", "--models", ",".join(str(weights[n]) for n in names),
                      "--data", mnist_dir, "--out", out, *extra, **kwargs)


@pytest.mark.slow
def test_three_model_report_states_measured_values_and_links_every_figure(repo_root, mnist_dir, weights, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    result = run_compare(repo_root, mnist_dir, weights, out, "--limit", LIMIT, "--sweep-images", SWEEP_IMAGES,
                         "--latency-calls", 10, "--speed-seconds", 0.2, "--pair", "rnn,cnn", "--quiet")
    assert result.returncode == 0, result.stderr
    report = (out / "report.md").read_text()
    numbers = json.loads((out / "report.json").read_text())
    images, labels, _ = load_test_set(str(mnist_dir), LIMIT)
    assert numbers["models"] == list(THREE) and numbers["pair"] == ["rnn", "cnn"]
    assert report.startswith("# CNN, LSTM and RNN on MNIST")
    for name in THREE:
        digest = hashlib.sha256(weights[name].read_bytes()).hexdigest()
        assert numbers["weights_sha256"][name] == digest and f"(SHA-256 {digest[:12]}...)" in report

    evaluations = {}
    for name in THREE:
        model = load_model(weights[name])
        evaluations[name] = evaluate(model, images, labels)
        expected = json.loads(json.dumps(evaluations[name].summary()))
        got = numbers["evaluations"][name]
        assert got["n_images"] == LIMIT
        assert got["accuracy"] == expected["accuracy"] == float((model.predict(images) == labels).mean())
        assert got["per_class"] == expected["per_class"]
        assert got["confusion_matrix"] == expected["confusion_matrix"]
        title = model.title
        k = expected["n_correct"]   # the single-run interval: Clopper-Pearson, from the beta quantiles
        low = beta.ppf(0.025, k, LIMIT - k + 1) if k else 0.0
        high = beta.ppf(0.975, k + 1, LIMIT - k) if k < LIMIT else 1.0
        row = (f"| {title} | {100 * expected['accuracy']:.2f} % | {100 * low:.2f} % - {100 * high:.2f} % | "
               f"{LIMIT - k:,} |")
        assert row in report
        assert re.search(rf"^{title}\s+{100 * expected['accuracy']:.2f}%", result.stdout, re.M)
        assert f"- **{title}** (`{name}`, {model.num_parameters():,} parameters): {model.spec.description}" in report
        speed = numbers["training_speed"][name]
        assert speed["batch_size"] == 64 and speed["steps"] >= 5 and speed["seconds"] >= 0.2
        assert speed["images_per_second"] >= speed["mean_images_per_second"] * 0.5 > 0
        assert f"| {speed['images_per_second']:,.0f} |" in report
    assert numbers["parameters"] == {"cnn": 356_234, "lstm": 24_586, "rnn": 6_730}
    assert numbers["cores"] == os.cpu_count() and numbers["threads"] >= 1
    assert f"on {os.cpu_count()} CPU cores" in report and "`bench/bench.py`" in report

    # disagreements: every pair's count, and the chosen pair's groups
    for a in THREE:
        for b in THREE:
            if a != b:
                count = int((evaluations[a].correct & ~evaluations[b].correct).sum())
                assert numbers["right_where_wrong"][a][b] == count
    rnn_ok, cnn_ok = evaluations["rnn"].correct, evaluations["cnn"].correct
    assert numbers["disagreements"] == {"rnn_right_cnn_wrong": int((rnn_ok & ~cnn_ok).sum()),
                                        "cnn_right_rnn_wrong": int((cnn_ok & ~rnn_ok).sum()),
                                        "rnn_cnn_both_wrong": int((~rnn_ok & ~cnn_ok).sum())}
    assert min(numbers["disagreements"].values()) > 0  # untrained models: all three grids have digits

    # robustness: a column per model, the identity level is the subset's plain accuracy
    subset = sweeps.sweep_subset(LIMIT, SWEEP_IMAGES)
    assert numbers["sweep_images"] == SWEEP_IMAGES
    for sweep in sweeps.SWEEPS:
        assert f"### {sweep.title}" in report
        for variant in numbers["robustness"][sweep.key]["variants"].values():
            for name in THREE:
                clean = float(evaluations[name].correct[subset].mean())
                assert variant["accuracy"][name][sweep.levels.index(sweep.identity)] == clean

    # memory: the recurrent models only, blank rows k = 0 is the plain accuracy of the subset
    result_memory = numbers["memory"]
    assert result_memory["models"] == ["lstm", "rnn"] and result_memory["steps"] == 28
    assert result_memory["blank_rows"]["counts"] == list(range(0, 57, 4))
    for name in ("lstm", "rnn"):
        blank = result_memory["blank_rows"]["accuracy"][name]
        assert len(blank) == 15 and blank[0] == float(evaluations[name].correct[subset].mean())
        model = load_model(weights[name])
        trained = memory.hidden_gradient_norms(model, images[subset], labels[subset])
        np.testing.assert_allclose(result_memory["gradients"][name]["trained"], trained, rtol=1e-6)
        initial = memory.hidden_gradient_norms(memory.initial_model(model), images[subset], labels[subset])
        np.testing.assert_allclose(result_memory["gradients"][name]["initial"], initial, rtol=1e-6)
        assert result_memory["gradients"][name]["seed"] == 10 + THREE.index(name)
    assert "## Does the LSTM remember longer?" in report and "What this measures:" in report
    assert "Recurrent models compared: LSTM and RNN." in report

    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    expected_figures = ({"training_curves.png", "per_class.png", "confusion.png", "rnn_right_cnn_wrong.png",
                         "cnn_right_rnn_wrong.png", "rnn_cnn_both_wrong.png", "memory_gradients.png",
                         "memory_blank_rows.png"} | {f"robustness_{s.key}.png" for s in sweeps.SWEEPS})
    assert sorted(links) == sorted(expected_figures)  # every figure, each linked once
    for link in links:
        data = (out / link).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) < 300_000, link
    assert sorted(numbers["figures"].values()) == sorted(p.name for p in out.glob("*.png"))


def test_report_without_matplotlib_skips_figures(repo_root, mnist_dir, weights, tmp_path):
    out = tmp_path / "report"
    result = run_compare(repo_root, mnist_dir, weights, out, "--limit", 100, "--sweep-images", 20,
                         "--latency-calls", 5, "--speed-seconds", 0.1, "--quiet", names=("cnn", "lstm"),
                         pythonpath_first=without_matplotlib(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "figures skipped" in result.stdout and "pip install -e '.[plot]'" in result.stdout
    report = (out / "report.md").read_text()
    assert "Figures skipped: matplotlib is not installed" in report
    assert "![" not in report and not list(out.glob("*.png"))
    assert "| CNN |" in report and "### Blanked rows" in report and "### CNN and LSTM" in report
    assert "Recurrent models compared: LSTM." in report
    # no study: the intervals and the tests are the single run's, and say so
    assert "| model | test accuracy | 95 % interval (single run) | errors |" in report
    assert "No study was given (`--study DIR`): comparisons below are decided on this single run" in report
    assert re.search(r"The difference between the two is (significant|not distinguishable) at 5 % \(McNemar's "
                     r"exact test, single run, p = [0-9.e-]+\)\.", report)
    assert "Each cell: the accuracy in %, and in brackets its exact 95 % interval over the 20 images (single run" in report
    assert "(single run: " in report and "study's" not in report


@pytest.mark.slow
def test_bad_model_lists_give_one_line_and_write_nothing(repo_root, mnist_dir, weights, tmp_path):
    out = tmp_path / "report"
    cases = [(("--models", "cnn,nosuchmodel"), "unknown model 'nosuchmodel'"),
             (("--models", f"{weights['cnn']},{weights['cnn']}"), "two weights files of the model 'cnn'"),
             (("--models", str(weights["cnn"])), "at least two models"),
             (("--models", f"{weights['cnn']},{weights['lstm']}", "--pair", "cnn,rnn"), "--pair cnn,rnn"),
             (("--models", f"{weights['cnn']},{tmp_path / 'missing.npz'}"), "missing.npz")]
    for arguments, expected in cases:
        line = assert_one_line_error(run_module(repo_root, "models.compare", *arguments, "--data", mnist_dir,
                                                "--out", out))
        assert expected in line, line
        assert not out.exists()
    line = assert_one_line_error(run_compare(repo_root, tmp_path / "no_data", weights, out))
    assert str(tmp_path / "no_data") in line
    assert not out.exists()


OUT_OF_TREE_MODEL = '''
from models.inputs import image_rows
from models.registry import ModelSpec
from nn.layers import GRU, Dense, Sequential


def build(rng, image_shape=(28, 28), num_classes=10, hidden=8):
    return Sequential([GRU(image_shape[1], hidden, need_input_grad=False, rng=rng),
                       Dense(hidden, num_classes, rng=rng)])


MODEL = ModelSpec(name="tinygru", title="TinyGRU", description="An 8-unit GRU defined outside the kit.",
                  build=build, to_input=image_rows, options={"hidden": 8}, recurrent=True, shipped=False)
'''


def test_a_model_defined_outside_the_kit_is_compared_and_measured(repo_root, mnist_dir, weights, tmp_path):
    from models import registry
    model_file = tmp_path / "tinygru.py"
    model_file.write_text(OUT_OF_TREE_MODEL)
    registry.load_model_file(model_file)
    tiny_weights = tmp_path / "tinygru.npz"
    build_model("tinygru", np.random.default_rng(4)).save(tiny_weights)
    out = tmp_path / "report"
    result = run_module(repo_root, "models.compare", "--model-file", model_file, "--models",
                        f"{weights['rnn']},{tiny_weights}", "--data", mnist_dir, "--out", out, "--limit", 100,
                        "--sweep-images", 20, "--latency-calls", 3, "--speed-seconds", 0.05, "--quiet",
                        pythonpath_first=without_matplotlib(tmp_path))
    assert result.returncode == 0, result.stderr
    numbers = json.loads((out / "report.json").read_text())
    report = (out / "report.md").read_text()
    assert numbers["models"] == ["rnn", "tinygru"] and numbers["pair"] == ["rnn", "tinygru"]
    # GRU: w_ih 24 x 28, w_hh 24 x 8, b_ih and b_hh 24 each = 912; dense 8 x 10 + 10 = 90
    assert "- **TinyGRU** (`tinygru`, 1,002 parameters): An 8-unit GRU defined outside the kit." in report
    images, labels, _ = load_test_set(str(mnist_dir), 100)
    tiny = load_model(tiny_weights)
    assert numbers["evaluations"]["tinygru"]["accuracy"] == float((tiny.predict(images) == labels).mean())
    assert numbers["memory"]["models"] == ["rnn", "tinygru"]
    subset = sweeps.sweep_subset(100, 20)
    assert numbers["memory"]["blank_rows"]["accuracy"]["tinygru"][0] == float(
        (tiny.predict(images[subset]) == labels[subset]).mean())


def test_default_is_every_shipped_model_in_registry_order():
    from models import registry
    from models.base import shipped_weights
    missing = [name for name in registry.shipped() if not shipped_weights(name).is_file()]
    if missing:
        pytest.skip(f"shipped weights not present yet: {', '.join(missing)}")
    models, paths, pair = cli.load_models(None, None)
    assert list(models) == registry.shipped() and len(models) >= 2
    assert pair == tuple(registry.shipped()[:2])
    assert all(paths[name] == shipped_weights(name) for name in models)
    _, _, pair = cli.load_models(",".join(registry.shipped()), ",".join(registry.shipped()[:0:-1][:2]))
    assert pair == tuple(registry.shipped()[:0:-1][:2])


@pytest.mark.slow
def test_a_section_defined_in_one_new_module_reaches_the_markdown_and_the_json(mnist_dir, weights, tmp_path,
                                                                               capsys):
    """tests/support/confidence_section.py is the only file the new section needs: added to the list,
    its heading, table and sentence are in report.md, its numbers in report.json, and every other
    section is still there."""
    from tests.support.confidence_section import ConfidenceSection
    sections = default_sections()
    sections.insert(2, ConfidenceSection())   # before "How sure are we?"
    out = tmp_path / "report"
    code = cli.main(["--models", f"{weights['lstm']},{weights['rnn']}", "--data", mnist_dir, "--out", out,
                     "--limit", 100, "--sweep-images", 20, "--latency-calls", 3, "--speed-seconds", 0.05,
                     "--quiet"], sections=sections)
    assert code == 0
    report = (out / "report.md").read_text()
    numbers = json.loads((out / "report.json").read_text())
    assert re.findall(r"^## (.+)$", report, re.M) == [
        "The models", "At a glance", "How sure is each model?", "How sure are we?", "Training curves", "Per class",
        "Confusion matrices", "Where they disagree", "Robustness", "Does the LSTM remember longer?", "Reproduce"]
    images, labels, _ = load_test_set(str(mnist_dir), 100)
    means = {}
    for name, title in (("lstm", "LSTM"), ("rnn", "RNN")):
        probabilities = load_model(weights[name]).predict_proba(images)
        answers = probabilities.argmax(axis=1)
        chosen = probabilities[np.arange(100), answers]
        wrong = answers != labels
        assert wrong.any()   # untrained weights: there are mistakes to average over
        means[name] = float(chosen.mean())
        assert numbers["confidence"][name]["mean"] == pytest.approx(means[name], rel=1e-6)
        assert numbers["confidence"][name]["mean_when_wrong"] == pytest.approx(float(chosen[wrong].mean()), rel=1e-6)
        assert f"| {title} | {100 * means[name]:.1f} % | {100 * chosen[wrong].mean():.1f} % |" in report
    surest = max(means, key=means.get)
    assert (f"- The {surest.upper()} is the surest of its answers ({100 * means[surest]:.1f} % on average)."
            in report)
    for key in ("descriptions", "training_speed", "training", "disagreements", "robustness", "memory",
                "evaluations", "figures"):
        assert key in numbers
    assert "LSTM" in capsys.readouterr().out   # the summary table is still printed
