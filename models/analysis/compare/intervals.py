"""How sure the report is of each number: the intervals and tests every section uses.

Two sources of doubt, two modes:

- **single run** (always): the weights compared were trained once; what is measured is how much
  the *test images'* luck moves a number.  An accuracy k / n carries its exact (Clopper-Pearson)
  binomial 95 % interval; two models compared on the same images are tested image by image:
  McNemar's exact test for one 0/1 "right" per image, a paired permutation test for any other
  statistic (an accuracy averaged over perturbation levels, an F1, a ratio of gradient norms).
- **over seeds** (``--study DIR``, a study of :mod:`models.analysis.studies`): each model trained
  with several seeds; a number carries the mean over seeds +- the half-width of its 95 % t
  interval, and two models are compared by a paired t-test over the seeds both have.

A sentence that compares models says "significant at 5 %" or "not distinguishable at 5 %" with
the test that decided and its p-value, Holm-adjusted when the sentence rests on several tests.
With a study the verdict is the one over seeds (it sees the seed-to-seed spread the single run
cannot); a model the study lacks falls back to the single run, and the sentence says so.

The numbers are computed once per report (:func:`certainty`, kept on the context) and the
statistics come from :mod:`models.analysis.studies.stats` (SciPy's distributions).
"""
from itertools import combinations

import numpy as np

from models.analysis.compare.context import shown_path
from models.analysis.studies.analysis import analyse, setting_label
from models.analysis.studies.stats import (ALPHA, binomial_interval, holm, mcnemar_exact, paired_permutation,
                                           paired_t, summary)
from nn.errors import UserError

SINGLE = "single run"
SEEDS = "over seeds"


def certainty(context):
    """The report's :class:`Certainty`, made on first use and kept on ``context``."""
    made = getattr(context, "_certainty", None)
    if made is None or made.study_flag != getattr(context, "study", None):   # made for another --study
        made = Certainty(context)
        context._certainty = made
    return made


class Certainty:
    """Single-run intervals of the compared weights and, with ``context.study``, the study."""

    def __init__(self, context):
        self.context = context
        self.study_flag = getattr(context, "study", None)
        self.study = StudySeeds(context.study, context.names, context.log) if getattr(context, "study", None) else None
        self.accuracy = {}
        for name, evaluation in context.evaluations.items():
            correct = int((evaluation.predictions == evaluation.labels).sum())
            self.accuracy[name] = {"correct": correct, "images": evaluation.n_images,
                                   **binomial_interval(correct, evaluation.n_images)}
        self._pairs = None

    @property
    def seeds(self):
        """True when a study gives numbers over seeds."""
        return self.study is not None

    def mcnemar_pairs(self):
        """Every pair of compared models by McNemar's exact test on the test images, Holm across
        the pairs: [{a, b, difference, only_a, only_b, p, p_holm, significant}]."""
        if self._pairs is None:
            evaluations = self.context.evaluations
            pairs = []
            for a, b in combinations(list(evaluations), 2):
                test = mcnemar_exact(evaluations[a].predictions, evaluations[b].predictions, evaluations[a].labels)
                pairs.append({"a": a, "b": b, "difference": self.accuracy[a]["accuracy"] - self.accuracy[b]["accuracy"],
                              **test, "test": "McNemar's exact test", "scope": SINGLE})
            decide(pairs)
            self._pairs = pairs
        return self._pairs

    def accuracy_verdicts(self, a, b):
        """The verdict on A's and B's test accuracies: over the study's seeds when it has both
        (then this run's McNemar test too, as it may differ), else this single run's."""
        mcnemar = next(p for p in self.mcnemar_pairs() if {p["a"], p["b"]} == {a, b})
        test = self.accuracy_test(a, b)
        if test["scope"] == SEEDS:
            return f"over the study's seeds {verdict(test)}; on this run's images alone {verdict(mcnemar)}"
        return verdict(mcnemar)

    def accuracy_test(self, a, b):
        """The test of "A's test accuracy differs from B's": over seeds (the study's paired t-test,
        Holm across its pairs) when the study has both, else McNemar's (Holm across the pairs)."""
        if self.study is not None:
            pair = self.study.pair(a, b)
            if pair is not None and pair["paired_t"] is not None:
                family = sum(p["setting"] == pair["setting"] and p["paired_t"] is not None
                             for p in self.study.analysis["pairs"])
                return {"test": f"paired t-test over {len(pair['seeds'])} seeds", "scope": SEEDS,
                        "p": pair["paired_t"]["p"], "p_holm": pair["p_holm"], "family": family,
                        "significant": pair["significant"]}
        pair = next(p for p in self.mcnemar_pairs() if {p["a"], p["b"]} == {a, b})
        return {key: pair[key] for key in ("test", "scope", "p", "p_holm", "significant", "family")}


class StudySeeds:
    """The study's runs of the compared models: one setting, every seed.

    The setting is "default" when the study has it for a compared model, else the first the
    study lists (a study of several settings is shown whole in "How sure are we?")."""

    def __init__(self, folder, names, log=lambda message: None):
        from models.analysis.studies.folder import load_results
        log(f"reading the study in {folder}")
        self.path = folder
        self.folder = shown_path(folder)
        self.results = load_results(folder)
        self.analysis = analyse(self.results)
        settings = list(dict.fromkeys(setting_label(r["settings"]) for r in self.results if r["model"] in names))
        self.setting = "default" if "default" in settings else (settings[0] if settings else None)
        self.runs = {name: {} for name in names}           # name -> {seed: result}
        for result in self.results:
            if result["model"] in self.runs and setting_label(result["settings"]) == self.setting:
                self.runs[result["model"]][result["seed"]] = result
        self.runs = {name: dict(sorted(runs.items())) for name, runs in self.runs.items() if runs}
        self._models = {}

    def has(self, name):
        return name in self.runs

    def seeds(self, name):
        return list(self.runs.get(name, {}))

    def test_accuracies(self, name):
        """{seed: the run's test accuracy} (on the study's own test images)."""
        return {seed: result["test_accuracy"] for seed, result in self.runs.get(name, {}).items()}

    def test_images(self, name):
        runs = self.runs.get(name)
        return next(iter(runs.values()))["test_images"] if runs else None

    def pair(self, a, b):
        """The study's analysis of models a and b under the chosen setting (either order), or None."""
        for pair in self.analysis["pairs"]:
            if pair["setting"] == self.setting and {pair["a"], pair["b"]} == {a, b}:
                return pair
        return None

    def models(self, name):
        """{seed: Model}: the study's weights of ``name``, loaded on first use."""
        if name not in self._models:
            from pathlib import Path

            from models.base import load_model
            models = {}
            for seed, result in self.runs.get(name, {}).items():
                path = Path(self.path) / result["cell"] / "model.npz"
                try:
                    models[seed] = load_model(path, expect=name)
                except UserError as error:
                    raise UserError(f"--study {self.folder}: the weights of cell {result['cell']} cannot be "
                                    f"read ({error})") from None
            self._models[name] = models
        return self._models[name]


# ---------------------------------------------------------------- tests and their verdicts
def decide(tests):
    """Holm-adjust a family of tests (each a dict with ``p``) in place: sets ``p_holm``,
    ``family`` (how many tests) and ``significant`` (``p_holm`` <= 5 %).  Returns ``tests``."""
    for test, adjusted in zip(tests, holm([test["p"] for test in tests])):
        test["p_holm"], test["family"], test["significant"] = adjusted, len(tests), adjusted <= ALPHA
    return tests


def compare_over_seeds(values_a, values_b, minimum=2):
    """The paired t-test of two models' per-seed numbers ({seed: value}) over the seeds both
    have, or None with fewer than ``minimum`` shared seeds."""
    seeds = sorted(set(values_a) & set(values_b))
    if len(seeds) < minimum:
        return None
    test = paired_t([values_a[s] for s in seeds], [values_b[s] for s in seeds])
    return {"test": f"paired t-test over {len(seeds)} seeds", "scope": SEEDS, "p": test["p"],
            "difference": test["mean_difference"]}


def compare_single_run(values_a, values_b, statistic=None, seed=0, binary=False):
    """Two models on the same images: McNemar's exact test for 0/1 values (``binary``), else the
    paired permutation test of ``statistic`` (default: the mean)."""
    if binary:
        a, b = np.asarray(values_a, dtype=bool), np.asarray(values_b, dtype=bool)
        test = mcnemar_exact(a, b, np.ones(len(a), dtype=bool))
        return {"test": "McNemar's exact test", "scope": SINGLE, "p": test["p"],
                "difference": float(a.mean() - b.mean())}
    test = paired_permutation(values_a, values_b, statistic, seed=seed)
    return {"test": "paired permutation test over the images", "scope": SINGLE, "p": test["p"],
            "difference": test["difference"]}


def compare(seeds=None, single=None):
    """The test a sentence uses: over seeds when ``seeds`` = (values_a, values_b) has at least two
    shared seeds, else the single run ``single`` = (values_a, values_b[, statistic[, binary]])."""
    if seeds is not None:
        test = compare_over_seeds(*seeds)
        if test is not None:
            return test
    values_a, values_b, *rest = single
    statistic = rest[0] if rest else None
    binary = rest[1] if len(rest) > 1 else False
    return compare_single_run(values_a, values_b, statistic, binary=binary)


def verdict(test):
    """'significant at 5 % (paired t-test over 5 seeds, p = 0.003)' or 'not distinguishable at 5 %
    (McNemar's exact test, single run, Holm-adjusted p = 0.41 over 3 tests)'."""
    words = "significant at 5 %" if test["significant"] else "not distinguishable at 5 %"
    how = test["test"] + (", single run" if test["scope"] == SINGLE else "")
    family = test.get("family") or 1
    p = f"Holm-adjusted p = {test['p_holm']:.3g} over {family} tests" if family > 1 else f"p = {test['p_holm']:.3g}"
    return f"{words} ({how}, {p})"


# ---------------------------------------------------------------- numbers with their intervals
def binomial_text(value, images, digits=1):
    """'97.1 % (single run: 96.3-97.8)' for an accuracy ``value`` on ``images`` images: its exact
    binomial 95 % interval."""
    interval = binomial_interval(int(round(value * images)), images)
    return (f"{100 * value:.{digits}f} % (single run: {100 * interval['low']:.{digits}f}-"
            f"{100 * interval['high']:.{digits}f})")


def seeds_text(values, digits=1):
    """"the study's 5 seeds: 96.9 ± 0.4 %": the mean and the half-width of the 95 % t interval."""
    values = list(values)
    stats = summary(values)
    if stats["n"] < 2:
        return f"the study's 1 seed: {100 * stats['mean']:.{digits}f} %"
    return (f"the study's {stats['n']} seeds: {100 * stats['mean']:.{digits}f} ± "
            f"{100 * (stats['high'] - stats['mean']):.{digits}f} %")


def seeds_cell(values, digits=1):
    """A table cell: '96.9 ± 0.4' (mean +- the 95 % t interval's half-width), '96.9' for one seed."""
    stats = summary(list(values))
    if stats["n"] < 2:
        return f"{100 * stats['mean']:.{digits}f}"
    return f"{100 * stats['mean']:.{digits}f} ± {100 * (stats['high'] - stats['mean']):.{digits}f}"


def binomial_cell(value, images, digits=1):
    """A table cell: '97.1 (96.3-97.8)', the value and its single-run exact 95 % interval."""
    interval = binomial_interval(int(round(value * images)), images)
    return f"{100 * value:.{digits}f} ({100 * interval['low']:.{digits}f}-{100 * interval['high']:.{digits}f})"


def accuracy_cell(value, images, seed_values=None, digits=1):
    """A table cell for one accuracy: with numbers over seeds 'value (mean ± half-width)', else
    'value (low-high)' with the single-run interval."""
    if seed_values:
        return f"{100 * value:.{digits}f} ({seeds_cell(seed_values, digits)})"
    return binomial_cell(value, images, digits)


def legend(seeds, images, what="accuracy"):
    """The sentence that tells how a table's cells read."""
    if seeds:
        return (f"Each cell: the {what} of the weights compared, in %, and in brackets the mean over "
                f"the study's seeds ± the half-width of its 95 % t interval.")
    return (f"Each cell: the {what} in %, and in brackets its exact 95 % interval over the "
            f"{images:,} images (single run: the test images' luck, not the training seed's).")

