"""How sure the comparison report is (models.analysis.compare.intervals and the sections that use
it): the tests behind its verdicts against values computed here another way (brute-force
enumeration of every swap, closed forms, the beta quantiles of the Clopper-Pearson interval), the
numbers with their intervals, and the generated sentences: "not distinguishable" when a difference
is not significant, "single run" without a study, the study's seeds with one.
"""
import itertools
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import beta

from models.analysis.compare import sweeps
from models.analysis.compare.intervals import (accuracy_cell, binomial_text, certainty, compare, decide,
                                               seeds_text, verdict)
from models.analysis.compare.sections import memory as memory_section
from models.analysis.compare.sections.glance import describe_summary
from models.analysis.compare.sections.per_class import DigitTests, describe_per_class
from models.analysis.compare.sections.robustness import SweepCertainty, describe_sweep
from models.analysis.evaluate import Evaluation
from models.analysis.studies.stats import (f1_statistic, f1_values, log_ratio_statistic, mann_whitney,
                                           paired_permutation)

T_975_DF2 = 4.302652729749462     # the 97.5 % point of Student's t with 2 degrees of freedom (tables)


def two_sided_by_enumeration(statistic, rows_a, rows_b):
    """The exact two-sided permutation p-value: every one of the 2^N ways to swap images' rows
    between the models, 2 * min(share <= observed, share >= observed), capped at 1."""
    rows_a, rows_b = np.asarray(rows_a, dtype=float), np.asarray(rows_b, dtype=float)
    observed = statistic(rows_a) - statistic(rows_b)
    values = []
    for swaps in itertools.product([False, True], repeat=len(rows_a)):
        mask = np.array(swaps)[:, None] if rows_a.ndim == 2 else np.array(swaps)
        values.append(statistic(np.where(mask, rows_b, rows_a)) - statistic(np.where(mask, rows_a, rows_b)))
    values = np.array(values)
    tolerance = 1e-9
    return min(1.0, 2 * min(np.mean(values <= observed + tolerance), np.mean(values >= observed - tolerance)))


# ---------------------------------------------------------------- the tests, against known values
def test_permutation_test_of_right_or_wrong_is_mcnemars_exact_test():
    """6 images only A reads right, 1 only B: 2 P(X <= 1), X ~ Bin(7, 1/2) = 2 (1 + 7) / 128."""
    a = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 1, 1])
    b = np.array([0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1])
    result = paired_permutation(a, b)
    assert result["p"] == pytest.approx(16 / 128, rel=1e-12)
    assert result["difference"] == pytest.approx(5 / 12) and result["swapped"] == 7
    single = compare(None, (a, b, None, True))
    assert single["test"] == "McNemar's exact test" and single["p"] == pytest.approx(16 / 128, rel=1e-12)


def test_f1_permutation_test_matches_every_swap_counted_by_hand():
    labels = np.array([0, 1, 2, 1, 1, 2, 0, 1, 2, 1, 0, 1])
    model_a = np.array([0, 1, 2, 1, 1, 1, 0, 1, 2, 1, 0, 1])
    model_b = np.array([0, 2, 2, 0, 1, 2, 2, 0, 2, 2, 0, 1])

    def f1_of_ones(predictions):                   # F1 of digit 1, counted directly
        predictions = predictions.astype(int)
        tp = sum(p == 1 and t == 1 for p, t in zip(predictions, labels))
        fp = sum(p == 1 and t != 1 for p, t in zip(predictions, labels))
        fn = sum(p != 1 and t == 1 for p, t in zip(predictions, labels))
        return 2 * tp / (2 * tp + fp + fn)

    expected = two_sided_by_enumeration(f1_of_ones, model_a, model_b)
    result = paired_permutation(f1_values(model_a, labels, 1), f1_values(model_b, labels, 1), f1_statistic(labels, 1))
    assert result["difference"] == pytest.approx(f1_of_ones(model_a) - f1_of_ones(model_b))
    assert result["p"] == pytest.approx(expected, rel=1e-12)
    assert 0.05 < expected < 1     # not a trivial case


def test_gradient_ratio_permutation_test_matches_every_swap():
    """log(mean g_T / mean g_1) per model, four images with both norms."""
    a = np.array([[1.0, 8.0], [2.0, 9.0], [1.5, 7.0], [0.5, 6.0]])
    b = np.array([[1.0, 2.0], [3.0, 2.5], [2.0, 3.0], [1.0, 1.5]])

    def log_ratio(rows):
        return math.log(rows[:, 1].mean() / rows[:, 0].mean())

    result = paired_permutation(a, b, log_ratio_statistic)
    assert result["difference"] == pytest.approx(log_ratio(a) - log_ratio(b))
    assert result["p"] == pytest.approx(two_sided_by_enumeration(log_ratio, a, b), rel=1e-12)
    assert result["p"] == pytest.approx(2 / 16)    # only the observed split and its mirror are as extreme


def test_mann_whitney_exact_values():
    """Three against three, fully separated: 2 of the C(6, 3) = 20 splits are as extreme; four
    against four: 2 of 70."""
    assert mann_whitney([1, 2, 3], [4, 5, 6])["p"] == pytest.approx(2 / 20)
    assert mann_whitney([5, 6, 7, 8], [1, 2, 3, 4])["p"] == pytest.approx(2 / 70)


def test_numbers_carry_their_intervals():
    low, high = beta.ppf(0.025, 97, 4), beta.ppf(0.975, 98, 3)     # Clopper-Pearson, 97 of 100
    assert binomial_text(0.97, 100) == f"97.0 % (single run: {100 * low:.1f}-{100 * high:.1f})"
    assert accuracy_cell(0.97, 100) == f"97.0 ({100 * low:.1f}-{100 * high:.1f})"
    half = T_975_DF2 * 0.01 / math.sqrt(3)                          # sd of 0.95, 0.96, 0.94 is 0.01
    assert seeds_text([0.95, 0.96, 0.94], 2) == f"the study's 3 seeds: 95.00 ± {100 * half:.2f} %"
    assert accuracy_cell(0.97, 100, [0.95, 0.96, 0.94], 2) == f"97.00 (95.00 ± {100 * half:.2f})"


def test_verdicts_say_not_distinguishable_and_holm_adjust():
    tests = decide([{"test": "paired t-test over 3 seeds", "scope": "over seeds", "p": 0.02},
                    {"test": "paired t-test over 3 seeds", "scope": "over seeds", "p": 0.04}])
    # Holm: 0.02 * 2 = 0.04, then max(0.04, 0.04 * 1)
    assert [t["p_holm"] for t in tests] == pytest.approx([0.04, 0.04])
    assert verdict(tests[0]) == ("significant at 5 % (paired t-test over 3 seeds, Holm-adjusted p = 0.04 "
                                 "over 2 tests)")
    alone = decide([{"test": "McNemar's exact test", "scope": "single run", "p": 0.3}])[0]
    assert verdict(alone) == "not distinguishable at 5 % (McNemar's exact test, single run, p = 0.3)"


# ---------------------------------------------------------------- the sentences
def six_images():
    labels = np.array([0, 1, 2, 3, 4, 5])
    return {"cnn": Evaluation(labels, np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 4, 9]]),
            "lstm": Evaluation(labels, np.eye(10, dtype=np.float32)[[0, 1, 2, 3, 9, 9]]),
            "rnn": Evaluation(labels, np.eye(10, dtype=np.float32)[[0, 7, 2, 3, 9, 9]])}


def test_single_run_summary_labels_its_intervals_and_tests_the_comparison():
    evaluations = six_images()
    context = SimpleNamespace(evaluations=evaluations, names=list(evaluations), study=None, log=lambda m: None)
    facts = {"parameters": {"cnn": 1000, "lstm": 100, "rnn": 50}, "flops": {"cnn": 8e6, "lstm": 2e6, "rnn": 1e6},
             "latency": {"cnn": 0.002, "lstm": 0.001, "rnn": 0.0005}, "latency_calls": 7,
             "training_speed": {"cnn": {"images_per_second": 800.0, "step_seconds": [0.08, 0.081, 0.079]},
                                "lstm": {"images_per_second": 2400.0, "step_seconds": [0.03, 0.02, 0.027]},
                                "rnn": {"images_per_second": 4800.0, "step_seconds": [0.013, 0.014, 0.012]}}}
    text = describe_summary(evaluations, facts, certainty(context))
    low, high = beta.ppf(0.025, 5, 2), beta.ppf(0.975, 6, 1)        # 5 of 6
    assert text[0].startswith(f"On the 6 test images the CNN is right 83.33 % (single-run 95 % interval "
                              f"{100 * low:.2f} %-{100 * high:.2f} %) of the time (1 errors)")
    # RNN against CNN: 2 images only the CNN reads right, none only the RNN: p = 2 / 4; Holm over
    # the 3 pairs (0.5, 1, 1): 1.5 capped at 1
    assert text[1] == ("The RNN makes 3.0x as many errors as the CNN: not distinguishable at 5 % "
                       "(McNemar's exact test, single run, Holm-adjusted p = 1 over 3 tests).")
    # three steps against three, fully separated: the smallest two-sided p of that size, 2 / 20
    assert text[-1].endswith("the two rates are not distinguishable at 5 % (Mann-Whitney U test on the 3 and 3 "
                             "timed steps, p = 0.1).")


def test_sweep_sentences_with_intervals_single_run_and_over_seeds():
    sweep = next(s for s in sweeps.SWEEPS if s.key == "blur")         # levels 0, 0.5, 1, 1.5, 2
    images = 40
    right_a = np.ones((5, images), dtype=bool)
    right_b = right_a.copy()
    right_b[4, :2] = False                                              # B misses 2 images at sigma 2
    right_a[4, 2] = False                                               # A misses another one
    accuracy = {"cnn": right_a.mean(axis=1).tolist(), "lstm": right_b.mean(axis=1).tolist()}
    result = {"levels": sweep.levels, "variants": {"": {"accuracy": accuracy,
                                                        "correct": {"cnn": right_a, "lstm": right_b}}}}
    text = " ".join(describe_sweep(sweep, result, ["cnn", "lstm"], SweepCertainty(result, {}, images)))
    low, high = beta.ppf(0.025, 39, 2), beta.ppf(0.975, 40, 1)          # 39 of 40
    assert f"the CNN drops to 97.5 % (single run: {100 * low:.1f}-{100 * high:.1f}) (-2.5 points)" in text
    # 3 images differ: 2 for A, 1 for B; of the 8 swaps 6 are as extreme (|difference| >= 1/160)
    assert ("the difference of the averages is not distinguishable at 5 % (paired permutation test over "
            "the images, single run, p = 1).") in text
    # Over three seeds the CNN's average over the 4 perturbed levels is ahead by (0.93 - 0.9) / 4,
    # (0.95 - 0.9) / 4 and (0.94 - 0.9) / 4: mean 0.01, sd 0.0025, t = 0.01 / (0.0025 / sqrt 3) with
    # 2 degrees of freedom, whose two-sided p is 1 - t / sqrt(2 + t^2)
    seeds = {"": {"cnn": {seed: [0.99, 0.9, 0.9, 0.9, last] for seed, last in enumerate([0.93, 0.95, 0.94])},
                  "lstm": {seed: [0.99, 0.9, 0.9, 0.9, 0.9] for seed in range(3)}}}
    text = " ".join(describe_sweep(sweep, result, ["cnn", "lstm"], SweepCertainty(result, seeds, images)))
    t = 0.01 / (0.0025 / math.sqrt(3))
    p = 1 - t / math.sqrt(2 + t * t)
    assert f"the difference of the averages is significant at 5 % (paired t-test over 3 seeds, p = {p:.3g})." in text
    half = T_975_DF2 * 0.01 / math.sqrt(3)                              # the CNN at sigma 2: 0.93, 0.95, 0.94
    assert f"the CNN drops to 97.5 % (the study's 3 seeds: 94.0 ± {100 * half:.1f} %) (-2.5 points)" in text


def test_blank_row_sentence_not_distinguishable_and_single_run_cells():
    correct = {"rnn": np.array([[1, 1, 1, 1], [1, 1, 0, 1], [1, 0, 0, 1]], dtype=bool),
               "lstm": np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=bool)}
    result = {"models": ["rnn", "lstm"], "images": 4,
              "blank_rows": {"counts": [0, 4, 8], "accuracy": {n: c.mean(axis=1).tolist() for n, c in correct.items()}},
              "per_image": {n: {"blank_rows": c} for n, c in correct.items()}}
    sure = memory_section.MemoryCertainty(result, {})
    text = memory_section.describe_blank_rows(result, {"rnn": "RNN", "lstm": "LSTM"}, sure=sure)
    # per image, the mean over k = 4, 8: RNN 1, 0.5, 0, 1 and LSTM 1, 1, 1, 0; three images differ,
    # so the exact p-value is counted over their 2^3 swaps
    rnn_rows, lstm_rows = correct["rnn"][1:].mean(axis=0), correct["lstm"][1:].mean(axis=0)
    expected = two_sided_by_enumeration(np.mean, lstm_rows, rnn_rows)
    assert text[-1] == ("Averaged over k = 4..8: LSTM 75.0 %, RNN 62.5 %; the LSTM holds the digit best "
                        "and the RNN worst: not distinguishable at 5 % (paired permutation test over the "
                        f"images, single run, p = {expected:.3g}).")
    assert expected > 0.05
    low, high = beta.ppf(0.025, 3, 2), beta.ppf(0.975, 4, 1)           # 3 of 4 right after 4 blank rows
    assert sure.cell("rnn", 1) == f"75.0 ({100 * low:.1f}-{100 * high:.1f})"


def test_per_class_sentence_says_not_distinguishable_for_one_image():
    labels = np.arange(30) % 10
    right = np.eye(10, dtype=np.float32)[labels]
    other = right.copy()
    other[3] = np.eye(10, dtype=np.float32)[5]                          # B reads one 3 as a 5
    evaluations = {"cnn": Evaluation(labels, right), "lstm": Evaluation(labels, other)}
    context = SimpleNamespace(evaluations=evaluations, names=["cnn", "lstm"], study=None, seed=0,
                              log=lambda m: None)
    text = describe_per_class(evaluations, DigitTests(context))
    # digit 3: the CNN's F1 is 1, the LSTM's 2 * 2 / (2 + 3) = 0.8; one image differs, so p = 1
    assert ("the largest difference is for digit 3 (20.00 points in favour of the CNN): not distinguishable at "
            "5 % (paired permutation test over the images, single run, Holm-adjusted p = 1 over 10 tests). "
            "Digit by digit, the difference is significant at 5 % for none of the 10 digits and not "
            "distinguishable for the others.") in text[-1]


# ---------------------------------------------------------------- the report with a tiny real study
@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, mnist_dir):
    """2 models x 2 seeds, one epoch on 200 images: each cell an ordinary run of the trainer
    (run_cell, what a Dask worker runs), written as the study folder keeps it."""
    from models.analysis.studies import folder
    from models.analysis.studies.cell import run_cell
    from models.commands.study import build_plan, make_parser
    study = tmp_path_factory.mktemp("tiny") / "study"
    args = make_parser().parse_args(["run", str(study), "--models", "mlp,rnn", "--seeds", "2", "--epochs", "1",
                                     "--limit", "200"])
    for cell, config in build_plan(args, "study"):
        folder.write_cell(study, cell, run_cell(cell, config, str(mnist_dir)))
    return study


@pytest.mark.slow
def test_compare_with_a_tiny_study_shows_intervals_and_bands(tiny_study, mnist_dir, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import json

    from models.analysis import memory, plots
    from models.analysis.evaluate import load_test_set
    from models.base import load_model
    from models.commands import compare as cli
    drawn = {}
    real_curves, real_sweep = plots.plot_training_curves, plots.plot_sweep
    monkeypatch.setattr(plots, "plot_training_curves", lambda histories, path, bands=None: drawn.update(
        curves=bands) or real_curves(histories, path, bands=bands))
    monkeypatch.setattr(plots, "plot_sweep", lambda path, *a, **k: drawn.update({path.name: a[3]}) or real_sweep(path, *a, **k))
    out = tmp_path / "report"
    assert cli.main(["--models", "mlp,rnn", "--data", mnist_dir, "--out", out, "--limit", 200, "--sweep-images", 40,
                     "--latency-calls", 3, "--speed-seconds", 0.05, "--quiet", "--study", tiny_study]) == 0
    report = (out / "report.md").read_text()
    numbers = json.loads((out / "report.json").read_text())
    cells = {(r["model"], r["seed"]): r for r in
             (json.loads(p.read_text()) for p in tiny_study.glob("*/result.json"))}
    assert sorted(cells) == [("mlp", 0), ("mlp", 1), ("rnn", 0), ("rnn", 1)]
    t_975_df1 = 12.706204736174707      # the 97.5 % point of Student's t with 1 degree of freedom (tables)

    def mean_and_half(values):
        return np.mean(values), t_975_df1 * np.std(values, ddof=1) / math.sqrt(2)

    # every test accuracy carries its interval over the seeds: the glance table's column
    for name, title in (("mlp", "MLP"), ("rnn", "RNN")):
        mean, half = mean_and_half([cells[(name, seed)]["test_accuracy"] for seed in (0, 1)])
        shipped = numbers["evaluations"][name]["accuracy"]
        assert f"| {title} | {100 * shipped:.2f} % |" in report
        assert f"| {100 * mean:.2f} ± {100 * half:.2f} (2) |" in report
    # the training curves: a band over the two seeds of each model, from their own histories
    histories = {title: [json.loads((tiny_study / f"{name}-seed{seed}" / "model.history.json").read_text())["epochs"]
                         for seed in (0, 1)] for name, title in (("mlp", "MLP"), ("rnn", "RNN"))}
    assert drawn["curves"] == histories
    assert "The shaded bands are the study's runs" in report
    assert "Over the study's 2 seeds of the RNN (1 epoch each; mean ± the half-width" in report
    # the blank-row curves: a band from the lowest to the highest seed, measured here again
    images, labels, _ = load_test_set(str(mnist_dir), 200)
    subset = sweeps.sweep_subset(200, 40)
    per_seed = [memory.blank_row_accuracy(load_model(tiny_study / f"rnn-seed{seed}" / "model.npz"),
                                          images[subset], labels[subset]) for seed in (0, 1)]
    series, = drawn["memory_blank_rows.png"]
    np.testing.assert_allclose(series["band"][0], np.min(per_seed, axis=0))
    np.testing.assert_allclose(series["band"][1], np.max(per_seed, axis=0))
    mean, half = mean_and_half([run[0] for run in per_seed])
    shipped = numbers["memory"]["blank_rows"]["accuracy"]["rnn"][0]
    assert f"| 0 | {100 * shipped:.1f} ({100 * mean:.1f} ± {100 * half:.1f}) |" in report
    # robustness: every cell over the seeds too
    assert sorted(numbers["robustness_over_seeds"]["blur"][""]) == ["mlp", "rnn"]
    assert "in brackets the mean over the study's seeds ± the half-width of its 95 % t interval" in report
    # every sentence that compares the two models gives its verdict
    comparing = [line for line in report.splitlines() if line.startswith("- ") and (
        "as many errors as" in line or "loses more accuracy than" in line or "each lose more accuracy" in line
        or "F1 is higher for" in line or "keeps the most gradient" in line or "holds the digit best" in line
        or "gets wrong, the" in line)]
    assert len(comparing) >= 10
    for line in comparing:
        assert re.search(r"(significant|not distinguishable) at 5 % \((paired t-test over 2 seeds|McNemar|paired "
                         r"permutation|Mann)", line), line
    assert "over the study's seeds" in report


def test_per_image_gradient_norms_average_to_the_reported_ones():
    """The single-run test of two gradient ratios reads each image's norms; their mean over the
    images is the curve the report draws."""
    from models.analysis import memory
    from models.base import build_model
    model = build_model("rnn", np.random.default_rng(3))
    images = np.random.default_rng(4).random((12, 28, 28), dtype=np.float32)
    labels = np.arange(12) % 10
    rows = memory.hidden_gradient_norms(model, images, labels, batch_size=5, per_image=True)
    assert rows.shape == (12, 28) and (rows > 0).all()
    np.testing.assert_allclose(rows.mean(axis=0), memory.hidden_gradient_norms(model, images, labels), rtol=1e-5)   # float32 batches of 5 and 12
    one = memory.hidden_gradient_norms(model, images[7:8], labels[7:8])
    np.testing.assert_allclose(rows[7], one, rtol=1e-6)
